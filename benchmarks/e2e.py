"""End to end: `muvi generate` on the 60 s 1920x1080 30 fps H.264 clip with 12 cuts.

Per-stage timings (decode, analysis, plan, encode, adaptor, sampling, notes, render, write),
peak memory (max RSS), the plain decode floor of the same clip, and the share of the clip's
12 cuts that got a beat within one video frame. Targets (2-core CPU, shipped model): total ≤ 1.5×
the decode floor with the preview off (issue 21; issue 7's was the floor + 15 s), peak memory
≤ 3 GB, cut hit rate ≥ 95 %.

    python benchmarks/e2e.py [--weights weights/muvi] [--steps 25] [--backend auto] [--no-preview]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import bench_clip, emit, machine  # noqa: E402
from benchmarks.decode import plain_decode  # noqa: E402
from engines.select import select_backend  # noqa: E402
from muvi.pipeline import GenerateOptions, Generator  # noqa: E402
from muvi.weights import load_checkpoint  # noqa: E402
from muvi.timeline import Timeline, TimeRange  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--weights", default=str(Path(__file__).resolve().parents[1] / "weights" / "muvi"))
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--no-preview", action="store_true")
    ap.add_argument("--backend", default="auto", help="as `muvi generate --backend` (auto: ONNX Runtime when exported)")
    args = ap.parse_args()
    clip = bench_clip()
    t = time.perf_counter()
    plain_decode(clip.path, threaded=False)
    floor = time.perf_counter() - t
    tl = Timeline.sequential([(clip.path, TimeRange.from_frames(0, clip.frame_count, clip.rate))], rate=clip.rate)
    model, meta = load_checkpoint(args.weights)
    generator = Generator(model, backend=select_backend(args.backend, model, weights=Path(args.weights)), meta=meta)
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        result = generator.generate(tl, GenerateOptions(style="pop", seed=0, steps=args.steps,
                                                        preview=not args.no_preview), Path(out) / "result")
        total = time.perf_counter() - t
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    cut_times = [c / clip.rate.fraction for c in clip.cut_frames]  # the exact cut instants
    beats = result.score.tempo.beat_times(tl.duration.seconds)
    tol = 1 / clip.rate.fraction
    hit = [min(abs(b - c) for b in beats) <= tol for c in cut_times]
    emit({
        "benchmark": "e2e",
        "clip": {"seconds": 60, "size": [1920, 1080], "rate": 30, "cuts": len(cut_times)},
        "timings_s": result.report["timings_s"], "total_s": round(total, 2), "decode_floor_s": round(floor, 2),
        "target_total_s": round(1.5 * floor, 2), "meets_time_target": total <= 1.5 * floor,
        "meets_issue7_time_target": total <= floor + 15,
        "peak_memory_gb": round(peak_gb, 2), "meets_memory_target": peak_gb <= 3.0,
        "cut_hit_rate": sum(hit) / len(hit), "meets_hit_target": sum(hit) / len(hit) >= 0.95,
        "tempo": result.report["tempo"], "joins": result.report["joins"], "backend": result.report["backend"],
        "sampler_steps": args.steps,
        "machine": machine(),
    }, "e2e")


if __name__ == "__main__":
    main()
