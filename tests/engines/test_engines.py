"""Engine specs, ONNX export + verification, the onnxruntime backend, selection, export-engines."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch

from engines.ort_backend import BackendUnavailable, OrtBackend
from engines.select import available_backends, make_backend, select_backend
from engines.specs import SPECS
from export.cli import export_all, main as export_main
from muvi.backend import TorchBackend
from muvi.errors import InvalidInputError
from muvi.media_gen import write_demo_clip
from muvi.pipeline import GenerateOptions, Generator
from muvi.timeline import Timeline, TimeRange
from muvi.weights import load_checkpoint, save_checkpoint
from tests.muvi.nn.test_model_weights_prompt import tiny_model


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("engines")
    # with sampling note odds set, so the graph carries the odds conversion (muvi.nn.dit)
    weights = save_checkpoint(tmp / "weights", tiny_model().with_note_odds(3.0))
    summary = export_all(weights, tmp / "engines", precision="bf16", builder="auto", force=False, progress=lambda m: None)
    return {"weights": weights, "engines": tmp / "engines", "summary": summary, "tmp": tmp}  # type: ignore[dict-item]


def test_specs_describe_the_modules_they_export() -> None:
    model = tiny_model()
    for spec in SPECS.values():
        prof = spec.profile(model.config)
        # calls up to the pipeline's window, which the graphs are verified at (not dit.max_steps)
        assert prof["batch"] == (1, 2, 2) and prof["steps"] == (16, 256, 256) == (16, *[model.config.window_steps] * 2)
        for size in ({"batch": 1, "steps": 16, "frames": 3}, {"batch": 2, "steps": 40, "frames": 25}):
            inputs = spec.sample_inputs(model.config, sizes=size)
            for t, x in zip(spec.inputs, inputs):
                assert tuple(x.shape) == spec.shape(t, model.config, size) and str(x.dtype).endswith(t.dtype)
            with torch.no_grad():
                out = spec.module(model)(*inputs)
            out = out if isinstance(out, tuple) else (out,)
            assert [tuple(o.shape) for o in out] == [spec.shape(t, model.config, size) for t in spec.outputs]
    assert "frames" in SPECS["adaptor"].profile(model.config) and "frames" not in SPECS["dit_step"].profile(model.config)


def test_export_verifies_every_graph_and_writes_manifests(exported: dict[str, Path]) -> None:
    for name in SPECS:
        manifest = json.loads((exported["engines"] / f"{name}.json").read_text())
        assert manifest["engine"] == name and len(manifest["onnx_sha256"]) == 64 and manifest["opset"] >= 17
        errors = manifest["verify_max_rel_error"]
        assert len(errors) >= 3 and max(errors.values()) < 1e-4, errors
        assert not list(exported["engines"].glob(".*")), "a temporary file was left"
    # a second run keeps what matches (same sha), --force re-exports
    before = (exported["engines"] / "dit_step.onnx").stat().st_mtime_ns
    export_all(exported["weights"], exported["engines"], precision="bf16", builder="none", force=False,
               progress=lambda m: None)
    assert (exported["engines"] / "dit_step.onnx").stat().st_mtime_ns == before


def test_onnxruntime_backend_matches_torch_per_call(exported: dict[str, Path]) -> None:
    model, _ = load_checkpoint(exported["weights"])
    torch_b = TorchBackend(model)
    fp32 = OrtBackend(exported["engines"], exported["weights"], precision="fp32")
    int8 = OrtBackend(exported["engines"], exported["weights"])  # auto: the int8 DiT graph on the CPU
    assert (fp32.precision, int8.precision) == ("fp32", "int8")
    for name, call in (("adaptor", "condition"), ("dit_step", "velocity")):
        x = SPECS[name].sample_inputs(model.config, sizes={"batch": 2, "steps": 48, "frames": 30},
                                      generator=torch.Generator().manual_seed(9))
        a, b, c = getattr(fp32, call)(*x), getattr(torch_b, call)(*x), getattr(int8, call)(*x)
        for u, v, w in zip(*((r if isinstance(r, tuple) else (r,)) for r in (a, b, c))):
            assert torch.allclose(u, v, atol=1e-4, rtol=1e-4)
            assert float((w - v).abs().max() / v.abs().max()) < 0.05  # int8: close, not equal
            assert name == "dit_step" or torch.equal(w, u)  # the adaptor stays fp32


def test_int8_graph_is_checked_and_can_be_left_out(exported: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    engines, weights = exported["engines"], exported["weights"]
    manifest = json.loads((engines / "dit_step.int8.json").read_text())
    assert manifest["precision"] == "int8" and max(manifest["verify_max_rel_error"].values()) < 0.05
    assert manifest["source_onnx_sha256"] == json.loads((engines / "dit_step.json").read_text())["onnx_sha256"]
    assert not (engines / "adaptor.int8.onnx").exists()
    copy = exported["tmp"] / "int8-copy"
    shutil.copytree(engines, copy)
    bad = {**manifest, "source_onnx_sha256": "0" * 64}  # quantised from another fp32 graph
    (copy / "dit_step.int8.json").write_text(json.dumps(bad))
    with caplog.at_level(logging.WARNING, logger="engines.ort_backend"):
        assert OrtBackend(copy, weights).precision == "fp32"
    assert "not using" in caplog.text and "source_onnx_sha256" in caplog.text
    with pytest.raises(BackendUnavailable, match="no usable dit_step.int8.onnx"):
        OrtBackend(copy, weights, precision="int8")
    export_all(weights, copy, precision="bf16", builder="none", force=False, cpu_precision="fp32",
               progress=lambda m: None)
    assert not (copy / "dit_step.int8.onnx").exists() and not (copy / "dit_step.int8.json").exists()
    assert OrtBackend(copy, weights).precision == "fp32"


def test_engines_take_windows_up_to_their_profile(exported: dict[str, Path]) -> None:
    engines, weights = exported["engines"], exported["weights"]
    manifest = json.loads((engines / "dit_step.json").read_text())
    assert manifest["profile"]["steps"] == [16, 256, 256]
    assert set(manifest["verify_max_rel_error"]) == {"batch=1,steps=16", "batch=2,steps=256", "batch=2,steps=139",
                                                     "batch=1,steps=256"}
    assert json.loads((engines / "dit_step.int8.json").read_text())["profile"] == manifest["profile"]
    model, meta = load_checkpoint(weights)
    assert OrtBackend(engines, weights).max_steps == 256 == TorchBackend(model).max_steps
    copy = exported["tmp"] / "short-profile"
    shutil.copytree(engines, copy)
    short = json.loads((copy / "adaptor.json").read_text())
    short["profile"]["steps"] = [16, 128, 128]  # graphs exported for 8-bar windows
    (copy / "adaptor.json").write_text(json.dumps(short))
    backend = OrtBackend(copy, weights)
    assert backend.max_steps == 128
    demo = write_demo_clip(exported["tmp"] / "short.mp4", seconds=4.0)
    tl = Timeline.sequential([(demo.path, TimeRange.from_frames(0, demo.frame_count, demo.rate))], rate=demo.rate)
    gen = Generator(model, backend=backend, meta=meta)
    with pytest.raises(InvalidInputError, match="16 bars of 4/4 is 256 grid steps.*onnxruntime-cpu.*at most 128"):
        gen.generate(tl, GenerateOptions(seed=1, steps=2, preview=False), exported["tmp"] / "refused")
    assert not (exported["tmp"] / "refused").exists()  # refused before any work
    result = gen.generate(tl, GenerateOptions(seed=1, steps=2, preview=False, window_bars=8, overlap_bars=2),
                          exported["tmp"] / "eight-bars")
    assert result.report["joins"]["windows"] >= 1 and (exported["tmp"] / "eight-bars" / "mix.wav").is_file()
    # export-engines notices graphs exported for another profile and exports them again
    export_all(weights, copy, precision="bf16", builder="none", force=False, progress=lambda m: None)
    assert json.loads((copy / "adaptor.json").read_text())["profile"]["steps"] == [16, 256, 256]
    assert OrtBackend(copy, weights).max_steps == 256
    with pytest.raises(InvalidInputError, match="17 bars.*torch-cpu backend takes at most 256"):
        Generator(model, meta=meta).generate(tl, GenerateOptions(window_bars=17, preview=False), exported["tmp"] / "x")


def test_torch_and_onnxruntime_make_the_same_notes_for_the_demo_clip(exported: dict[str, Path]) -> None:
    demo = write_demo_clip(exported["tmp"] / "demo.mp4")  # what `muvi demo` makes: 20 s, 6 cuts
    tl = Timeline.sequential([(demo.path, TimeRange.from_frames(0, demo.frame_count, demo.rate))], rate=demo.rate)
    model, meta = load_checkpoint(exported["weights"])
    opts = GenerateOptions(style="pop", seed=11, steps=8, preview=False)
    results = {}
    for name in ("torch-cpu", "onnxruntime-cpu"):
        backend = make_backend(name, model, weights=exported["weights"], engines_dir=exported["engines"])
        results[name] = Generator(model, backend=backend, meta=meta).generate(tl, opts, exported["tmp"] / name)
    spec = model.config.roll
    rolls = [spec.encode(r.score.notes, r.score.n_steps) for r in results.values()]
    agree = float((rolls[0] == rolls[1]).mean())
    assert agree >= 0.99 and len(results["torch-cpu"].score.notes) > 0
    assert results["onnxruntime-cpu"].report["backend"] == "onnxruntime-cpu"
    assert results["onnxruntime-cpu"].report["backend_precision"] == "int8"  # what auto runs on a CPU


def test_a_graph_from_other_weights_is_never_used(exported: dict[str, Path]) -> None:
    other = save_checkpoint(exported["tmp"] / "other", tiny_model(seed=5))
    with pytest.raises(BackendUnavailable, match="other weights.*weights_sha256.*export-engines --force"):
        OrtBackend(exported["engines"], other)
    model, _ = load_checkpoint(exported["weights"])  # the same tensors sampled at other note odds: another graph
    assert model.config.note_odds == 3.0
    retuned = save_checkpoint(exported["tmp"] / "retuned", model.with_note_odds(2.0))
    with pytest.raises(BackendUnavailable, match="other weights"):
        OrtBackend(exported["engines"], retuned)
    with pytest.raises(BackendUnavailable, match="no adaptor.onnx.*export-engines"):
        OrtBackend(exported["tmp"] / "nowhere", exported["weights"])


def test_auto_selection_order_and_reasons(exported: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    model, _ = load_checkpoint(exported["weights"])
    with caplog.at_level(logging.INFO, logger="engines.select"):
        chosen = select_backend("auto", model, weights=exported["weights"], engines_dir=exported["engines"])
    expected = "onnxruntime-cpu" if not torch.cuda.is_available() else chosen.name
    assert chosen.name == expected
    if not torch.cuda.is_available():
        text = caplog.text
        assert "skipping tensorrt" in text and "skipping onnxruntime-cuda" in text and "skipping torch-cuda" in text
        assert available_backends(exported["weights"], engines_dir=exported["engines"]) == [
            "onnxruntime-cpu", "torch-cpu"]
        assert select_backend("auto", model, weights=exported["weights"],
                              engines_dir=exported["tmp"] / "none").name == "torch-cpu"
        with pytest.raises(InvalidInputError, match="no CUDA GPU"):
            make_backend("tensorrt", model, weights=exported["weights"])
    with pytest.raises(InvalidInputError, match="unknown backend"):
        make_backend("cuda-magic", model, weights=exported["weights"])


def test_export_engines_command_errors(exported: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert export_main(["--weights", str(tmp_path / "missing"), "--out", str(tmp_path / "e")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        code = export_main(["--weights", str(exported["weights"]), "--out", str(exported["engines"]),
                            "--builder", "tensorrt"])
        assert code == 2 and "TensorRT is not installed" in capsys.readouterr().err


@pytest.mark.gpu
def test_tensorrt_plans_build_and_match_torch(exported: dict[str, Path]) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    pytest.importorskip("tensorrt")
    summary = export_all(exported["weights"], exported["engines"], precision="fp32", builder="tensorrt", force=True,
                         progress=lambda m: None)
    assert all("plan" in row for row in summary.values())
