"""Backends compared (issue 9): one DiT step, a full 25-step CFG sampling run for 60 s of music,
and the adaptor, for every backend that can run here.

60 s of music at 120 BPM is 480 grid steps (16ths); CFG evaluates the DiT at batch 2. The
adaptor sees 600 frames (60 s at 10 fps). Targets: on the 2-core CPU, onnxruntime-cpu ≥ 1.3×
faster than torch-cpu for sampling; on an H100, sampling ≤ 50 ms with the best backend.

    python benchmarks/engines.py [--weights weights/muvi] [--engines DIR] [--export] [--repeats 3]
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
from muvi.flow import guided_velocity, sample  # noqa: E402
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
    args = ap.parse_args()
    engines_dir = args.engines or default_engine_dir(args.weights)
    if args.export:
        from export.cli import export_all

        export_all(args.weights, engines_dir, precision="bf16", builder="auto", force=False)
    model, _ = load_checkpoint(args.weights)
    cfg = model.config
    T = 480
    g = torch.Generator().manual_seed(0)
    step_in = SPECS["dit_step"].sample_inputs(cfg, sizes={"batch": 2, "steps": T}, generator=g)
    adapt_in = SPECS["adaptor"].sample_inputs(cfg, sizes={"batch": 1, "steps": T, "frames": 600}, generator=g)
    rows, skipped = {}, {}
    for name in AUTO_ORDER:
        try:
            backend = make_backend(name, model, weights=args.weights, engines_dir=engines_dir)
        except (MuviError, ImportError) as exc:
            skipped[name] = str(exc)
            continue
        cond = backend.condition(*adapt_in)
        unc = backend.condition(*adapt_in[:4], torch.tensor([True]))
        prompt, mask = torch.zeros(1, T, cfg.roll.token_dim), torch.zeros(1, T, 1)
        noise = torch.randn(1, T, cfg.roll.token_dim, generator=g)

        def full() -> None:
            fn = guided_velocity(backend.velocity, cond=cond, uncond=unc, scale=3.0, prompt=prompt, prompt_mask=mask)
            sample(fn, noise, steps=args.steps)

        rows[name] = {
            "dit_step_ms": round(1000 * _time(lambda: backend.velocity(*step_in), args.repeats * 3), 2),
            "sampling_60s_ms": round(1000 * _time(full, args.repeats), 1),
            "adaptor_ms": round(1000 * _time(lambda: backend.condition(*adapt_in), args.repeats * 3), 2),
        }
        print(name, rows[name], flush=True)
    result = {"benchmark": "engines", "weights": str(args.weights), "preset": cfg.dit.name,
              "parameters_M": round(model.n_parameters("dit") / 1e6, 2), "music_steps": T, "sampler_steps": args.steps,
              "cfg_batch": 2, "backends": rows, "skipped": skipped, "machine": machine()}
    if "torch-cpu" in rows and "onnxruntime-cpu" in rows:
        result["onnxruntime_cpu_speedup_sampling"] = round(
            rows["torch-cpu"]["sampling_60s_ms"] / rows["onnxruntime-cpu"]["sampling_60s_ms"], 2)
        result["target_cpu_speedup"] = 1.3
    emit(result, "engines")


if __name__ == "__main__":
    main()
