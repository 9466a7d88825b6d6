"""Decode speed: muvi's 10 fps sampling decode vs. a plain PyAV decode of every frame.

Target (issue 2): (b) muvi sampling decode at the encoder size ≤ 1.1 × (a) the plain loop,
on the 60 s 1920x1080 30 fps H.264 clip. Prints JSON.

    python benchmarks/decode.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import av  # noqa: E402

from benchmarks.common import bench_clip, emit, machine  # noqa: E402
from muvi.timeline import Timeline, TimeRange  # noqa: E402
from muvi.video import decode_timeline, probe  # noqa: E402


def plain_decode(path: Path, threaded: bool) -> int:
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        if threaded:
            vs.thread_type = "AUTO"
        return sum(1 for _ in c.decode(vs))


def best_of(repeat: int, fn):  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    clip = bench_clip()
    info = probe(clip.path)
    tl = Timeline.sequential([(clip.path, TimeRange.from_frames(0, clip.frame_count, clip.rate))], rate=clip.rate)
    a, a_all = best_of(args.repeat, lambda: plain_decode(clip.path, threaded=False))
    a_thr, a_thr_all = best_of(args.repeat, lambda: plain_decode(clip.path, threaded=True))
    b, b_all = best_of(args.repeat, lambda: decode_timeline(tl, fps=10, size=(224, 224)))
    p, _ = best_of(args.repeat, lambda: probe(clip.path))
    emit(
        {
            "benchmark": "decode",
            "clip": {"path": clip.path.name, "frames": info.frame_count, "size": [info.width, info.height],
                     "rate": str(info.rate), "bytes": clip.path.stat().st_size},
            "a_plain_decode_s": round(a, 3),
            "a_plain_decode_threaded_s": round(a_thr, 3),
            "b_muvi_10fps_224_s": round(b, 3),
            "ratio_b_over_a": round(b / a, 3),
            "ratio_b_over_a_threaded": round(b / a_thr, 3),
            "target_ratio": 1.1,
            "meets_target": b / a <= 1.1,
            "probe_s": round(p, 3),
            "runs": {"a": [round(x, 3) for x in a_all], "a_threaded": [round(x, 3) for x in a_thr_all],
                     "b": [round(x, 3) for x in b_all]},
            "machine": machine(),
        },
        "decode",
    )


if __name__ == "__main__":
    main()
