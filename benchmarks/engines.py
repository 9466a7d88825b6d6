"""Backends compared (issue 9): one DiT step, a full 25-step CFG sampling run for 60 s of music,
and the adaptor, for every backend that can run here.

60 s of music at 120 BPM is 480 grid steps (16ths). The pipeline samples it as it always does:
in windows of the model's 16 bars (256 steps) overlapping by 4 bars, here 256 + 256 + 96 steps,
each with CFG (the DiT at batch 2) — the engines are built for calls up to one window. One DiT
step is timed at batch 2 × 256; the adaptor at one window over 600 frames (60 s at 10 fps).
Targets: on the 2-core CPU, onnxruntime-cpu ≥ 1.3× faster than torch-cpu for sampling; on an
H100, sampling ≤ 50 ms with the best backend.

    python benchmarks/engines.py [--weights weights/muvi] [--engines DIR] [--export] [--repeats 3] [--no-parity]

onnxruntime-cpu runs the int8 DiT graph where export-engines wrote one; its fp32 graph is then
timed too (onnxruntime-cpu-fp32). Unless --no-parity, every CPU backend also generates the
demo clip and its notes are compared with torch-cpu's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.common import emit, machine  # noqa: E402
from engines.cache import default_engine_dir  # noqa: E402
from engines.select import AUTO_ORDER, make_backend  # noqa: E402
from engines.specs import SPECS  # noqa: E402
from muvi.errors import MuviError  # noqa: E402
from muvi.flow import guidance_conditions, guided_velocity, sample  # noqa: E402
from muvi.pipeline import GenerateOptions, window_spans  # noqa: E402
from muvi.weights import load_checkpoint  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _time(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm-up (allocation, kernel choice)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--weights", type=Path, default=ROOT / "weights" / "muvi")
    ap.add_argument("--engines", type=Path, default=None)
    ap.add_argument("--export", action="store_true", help="run export-engines first (ONNX only; plans where possible)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--no-parity", dest="parity", action="store_false",
                    help="skip generating the demo clip with each CPU backend to compare notes")
    args = ap.parse_args()
    engines_dir = args.engines or default_engine_dir(args.weights)
    if args.export:
        from export.cli import export_all

        export_all(args.weights, engines_dir, precision="bf16", builder="auto", force=False)
    model, meta = load_checkpoint(args.weights)
    cfg = model.config
    T, W = 480, cfg.window_steps
    options = GenerateOptions()
    spans = window_spans(T, W, options.overlap_bars * 4 * cfg.roll.steps_per_beat)
    g = torch.Generator().manual_seed(0)
    step_in = SPECS["dit_step"].sample_inputs(cfg, sizes={"batch": 2, "steps": W}, generator=g)
    adapt_in = SPECS["adaptor"].sample_inputs(cfg, sizes={"batch": 1, "steps": T, "frames": 600}, generator=g)
    window_in = (adapt_in[0], adapt_in[1][:, :W], *adapt_in[2:5], adapt_in[5][:, :W])
    rows, skipped, made = {}, {}, {}
    for name in AUTO_ORDER:
        try:
            made[name] = make_backend(name, model, weights=args.weights, engines_dir=engines_dir)
        except (MuviError, ImportError) as exc:
            skipped[name] = str(exc)
    if getattr(made.get("onnxruntime-cpu"), "precision", "fp32") == "int8":  # also the fp32 graph, for comparison
        from engines.ort_backend import OrtBackend

        made["onnxruntime-cpu-fp32"] = OrtBackend(engines_dir, args.weights, precision="fp32")
    noise = torch.randn(1, T, cfg.roll.token_dim, generator=g)
    for name, backend in made.items():

        def full(backend=backend) -> None:  # type: ignore[no-untyped-def]
            for s0, s1 in spans:  # each window conditioned and sampled, as the pipeline does
                pos, ctl = adapt_in[1][:, s0:s1], adapt_in[5][:, s0:s1]
                cond, unc = guidance_conditions(backend.condition, adapt_in[0], pos, *adapt_in[2:4], ctl)
                n = s1 - s0
                prompt, mask = torch.zeros(1, n, cfg.roll.token_dim), torch.zeros(1, n, 1)
                fn = guided_velocity(backend.velocity, cond=cond, uncond=unc, scale=3.0, prompt=prompt,
                                     prompt_mask=mask)
                sample(fn, noise[:, s0:s1], steps=args.steps)

        rows[name] = {
            "precision": getattr(backend, "precision", "fp32"),
            "dit_step_ms": round(1000 * _time(lambda: backend.velocity(*step_in), args.repeats * 3), 2),
            "sampling_60s_ms": round(1000 * _time(full, args.repeats), 1),
            "adaptor_ms": round(1000 * _time(lambda: backend.condition(*window_in), args.repeats * 3), 2),
        }
        print(name, rows[name], flush=True)
    result = {"benchmark": "engines", "weights": str(args.weights), "preset": cfg.dit.name,
              "parameters_M": round(model.n_parameters("dit") / 1e6, 2), "music_steps": T,
              "windows": [s1 - s0 for s0, s1 in spans], "sampler_steps": args.steps,
              "cfg_batch": 2, "backends": rows, "skipped": skipped, "machine": machine()}
    if "torch-cpu" in rows and "onnxruntime-cpu" in rows:
        result["onnxruntime_cpu_speedup_sampling"] = round(
            rows["torch-cpu"]["sampling_60s_ms"] / rows["onnxruntime-cpu"]["sampling_60s_ms"], 2)
        result["target_cpu_speedup"] = 1.3
    if args.parity:
        result["parity_demo_clip"] = parity(model, meta, {k: v for k, v in made.items() if not k.endswith("cuda")
                                                          and k != "tensorrt"})
    emit(result, "engines")


def parity(model, meta, backends: dict) -> dict[str, dict[str, float]]:  # type: ignore[no-untyped-def]
    """Each backend against torch-cpu on the demo clip (what `muvi demo` makes; seed 11, pop):
    the share of roll cells that agree (the issue's measure, mostly silent cells) and the F1 of
    notes matched exactly (stem, pitch, onset) — the stricter view."""
    import tempfile

    from muvi.media_gen import write_demo_clip
    from muvi.pipeline import Generator
    from muvi.timeline import Timeline, TimeRange

    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        demo = write_demo_clip(Path(tmp) / "demo.mp4")
        tl = Timeline.sequential([(demo.path, TimeRange.from_frames(0, demo.frame_count, demo.rate))], rate=demo.rate)
        opts = GenerateOptions(style="pop", seed=11, preview=False)
        scores = {name: Generator(model, backend=b, meta=meta).generate(tl, opts, Path(tmp) / name).score
                  for name, b in backends.items()}
    spec = model.config.roll
    ref = scores["torch-cpu"]
    ref_roll, ref_notes = spec.encode(ref.notes, ref.n_steps), {(n.stem, n.pitch, n.start) for n in ref.notes}
    for name, sc in scores.items():
        notes = {(n.stem, n.pitch, n.start) for n in sc.notes}
        both = len(notes & ref_notes)
        f1 = 2 * both / (len(notes) + len(ref_notes)) if notes or ref_notes else 1.0
        out[name] = {"roll_cells_agree": round(float((spec.encode(sc.notes, sc.n_steps) == ref_roll).mean()), 4),
                     "note_f1": round(f1, 4), "notes": len(notes)}
    return out


if __name__ == "__main__":
    main()
