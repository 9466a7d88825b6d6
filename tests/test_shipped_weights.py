"""The shipped checkpoint: present, small enough for the repository, strict to load, self-describing."""

from __future__ import annotations

from pathlib import Path

from muvi.weights import load_checkpoint

WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "muvi"


def test_shipped_weights_load_strictly_and_fit_the_repository_limits() -> None:
    files = sorted(WEIGHTS.iterdir())
    assert {p.suffix for p in files} == {".json", ".safetensors"}
    assert all(p.stat().st_size <= 64 * 2**20 for p in files)
    assert sum(p.stat().st_size for p in files) <= 128 * 2**20
    model, meta = load_checkpoint(WEIGHTS)  # strict: names any missing or unexpected tensor
    recipe = meta["recipe"]
    assert 1.0 <= recipe["default_cfg"] <= 6.0 and recipe["preset"] == model.config.dit.name
    assert meta["data_manifest_sha256"] and recipe["seed"] == 0 and recipe["trained"]["stages"]


def test_the_previous_weights_load_with_their_control_projection_at_zero() -> None:
    """weights/muvi-v1 (the starting point of the shipped model's recipe) predates the control
    curves: it loads, takes no curves and no visual normalisation until marked."""
    import torch

    model, _ = load_checkpoint(WEIGHTS.parent / "muvi-v1")
    assert model.config.controls == () and not model.config.normalise_visual
    assert torch.count_nonzero(model.dit.control_proj.weight) == 0 and torch.count_nonzero(model.dit.control_proj.bias) == 0
    model.with_controls()
    assert model.config.controls and model.adaptor.normalise


def test_the_shipped_model_takes_control_curves_with_each_style_range() -> None:
    from muvi.curves import CONTROLS

    model, _ = load_checkpoint(WEIGHTS)
    assert model.config.controls == CONTROLS and model.config.normalise_visual
    ranges = model.config.curve_ranges
    assert ranges is not None and {"pop", "rock", "ambient", "none"} <= set(ranges.styles)
