"""Sections on a long timeline: does the music change where the picture does, with a fill before?

Builds a 10-minute timeline of real footage that alternates calm and busy blocks of about a
minute (the three calmest and three busiest clips of a footage folder, by mean motion; each
block repeats its clip's shots as an editor's montage would), generates music for it with the
shipped weights and prints, as JSON: the block boundaries (the big picture changes, known by
construction), the sections the plan found and their labels, how many boundaries have a
section starting within ``--within`` bars, whether each section after the first has a drum
fill in the beat before it, and how long the generation took.

    python benchmarks/long_form.py --footage data/footage [--minutes 10] [--out /tmp/long]
"""

from __future__ import annotations

import argparse
import sys
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.common import emit, machine  # noqa: E402


def _mean_motion(path: Path) -> float:
    from muvi.analysis import motion_curve, thumbnails
    from muvi.footage import clip_timeline
    from muvi.video import decode_timeline

    frames = decode_timeline(clip_timeline(path, 20.0), fps=Fraction(5), size=(64, 64))
    return float(np.mean(motion_curve(thumbnails(frames.images), list(frames.cut_indices))))


def _timeline(blocks: list[Path], block_s: float):  # type: ignore[no-untyped-def]
    from muvi.timeline import Rate, Timeline, TimeRange
    from muvi.video import probe

    rate = Rate(25)
    clips, bounds, at = [], [], 0
    for path in blocks:
        info = probe(path)
        n_src = info.rate.frames(info.duration) - 1
        want = rate.frames(Fraction(block_s).limit_denominator(100))
        while want > 0:  # the clip's shots again until the block is full
            take = min(want, int(n_src * rate.num * info.rate.den / (rate.den * info.rate.num)))
            src = int(take * info.rate.num * rate.den / (info.rate.den * rate.num))
            if src < 1:
                break
            clips.append((path, TimeRange.from_frames(0, src, info.rate)))
            want -= take
            at += take
        bounds.append(float(rate.seconds(at)))
    tl = Timeline.sequential(clips, rate=rate)
    return tl, bounds[:-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--footage", type=Path, default=Path("data/footage"))
    ap.add_argument("--weights", default="weights/muvi")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--blocks", type=int, default=10)
    ap.add_argument("--within", type=int, default=4, help="bars between a boundary and a section start")
    ap.add_argument("--out", type=Path, default=Path("/tmp/muvi-long-form"))
    args = ap.parse_args()

    from muvi.footage import footage_clips
    from muvi.pipeline import GenerateOptions, Generator

    clips = [p for p, _ in footage_clips(args.footage)]
    motion = {p: _mean_motion(p) for p in clips}
    ranked = sorted(clips, key=lambda p: motion[p])
    calm, busy = ranked[:3], ranked[-3:]
    blocks = [(calm if i % 2 == 0 else busy)[(i // 2) % 3] for i in range(args.blocks)]
    tl, bounds = _timeline(blocks, args.minutes * 60 / args.blocks)
    gen = Generator.from_weights(args.weights)
    t0 = time.perf_counter()
    res = gen.generate(tl, GenerateOptions(preview=False), args.out)
    seconds = time.perf_counter() - t0
    score, report = res.score, res.report
    sections = report["sections"]
    bar = score.steps_per_bar
    bar_s = [float(score.step_time(b * bar)) for b in range(score.n_steps // bar + 1)]
    matched = []
    for t in bounds:
        b = int(np.argmin([abs(x - t) for x in bar_s]))
        matched.append(any(abs(s["start_bar"] - b) <= args.within for s in sections[1:]))
    spb = score.steps_per_beat
    drums = {n.start for n in score.notes if n.stem == "drums"}
    fills = [all(s["start_bar"] * bar - spb + i in drums for i in range(spb)) for s in sections[1:]]
    emit({"benchmark": "long_form", "weights": args.weights, "minutes": round(float(tl.duration.seconds) / 60, 2),
          "blocks": [f"{p.name} ({'calm' if p in calm else 'busy'}, motion {motion[p]:.4f})" for p in blocks],
          "boundaries_s": [round(b, 2) for b in bounds], "sections": sections,
          "boundaries_with_a_section": f"{sum(matched)}/{len(matched)}", "sections_with_a_fill": f"{sum(fills)}/{len(fills)}",
          "labels": [s["label"] for s in sections], "style": report["style"], "key": report["key"],
          "ending": report["shape"]["ending"], "ends_on_tonic_downbeat": report["shape"]["ends_on_tonic_downbeat"],
          "generate_seconds": round(seconds, 1), "timings_s": report["timings_s"], "machine": machine()}, "long_form")


if __name__ == "__main__":
    main()
