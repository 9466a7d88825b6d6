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


def test_the_shipped_weights_ran_every_stage_of_the_committed_recipe() -> None:
    import yaml

    _, meta = load_checkpoint(WEIGHTS)
    committed = yaml.safe_load((WEIGHTS.parents[1] / "configs" / "ship-cpu.yaml").read_text())
    recipe = meta["recipe"]
    assert [s["name"] for s in recipe["stages"]] == [s["name"] for s in committed["stages"]]
    for ran, written in zip(recipe["stages"], committed["stages"]):
        assert {**ran, **written} == ran  # every setting written in the config is the one it ran with
    assert [s["index"] for s in recipe["trained"]["stages"]] == list(range(len(committed["stages"])))


def test_training_facts_of_a_continued_run_keep_the_checkpoints_earlier_stages(tmp_path: Path) -> None:
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("ship_weights", WEIGHTS.parents[1] / "scripts" / "ship_weights.py")
    ship = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ship)
    earlier = [{"index": 0, "stage": "pretrain", "steps": 2, "batch": 2, "seconds": 5.0, "last_loss": 0.5}]
    (tmp_path / "continued_from.json").write_text(json.dumps({"checkpoint": "w", "stages": 1,
                                                              "trained": {"stages": earlier}}))
    (tmp_path / "train_log.csv").write_text("stage,step,loss,seconds\nconditional,0,0.3,1.5\nconditional,1,0.2,3.0\n")
    stages = [{"name": "pretrain", "steps": 2, "batch": 2}, {"name": "conditional", "steps": 2, "batch": 2}]
    facts = ship._training_facts(tmp_path, stages)["stages"]
    assert facts[0] == earlier[0]
    assert facts[1] == {"index": 1, "stage": "conditional", "steps": 2, "batch": 2, "seconds": 3.0, "last_loss": 0.2}
