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
