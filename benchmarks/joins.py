"""Long timelines (issue 7): are the joins between model windows audible as restarts?

Generates music for a long timeline (default 10 minutes: a generated 640x360 clip with a cut
every 3–9 s) window by window, with its time per minute of timeline and its peak memory (the
job's resident memory sampled every 0.1 s, overall and per stage), then measures at every join (the first bar a new window
writes): empty bars in the 2 bars either side (per stem the piece uses), the key estimated
from the 8 bars before against the 8 bars after (a change counts when the tonic or mode
differs), and the note density either side. Prints JSON.

    python benchmarks/joins.py [--weights weights/muvi] [--minutes 10] [--backend auto]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.common import PeakMemory, emit, machine  # noqa: E402
from engines.select import select_backend  # noqa: E402
from muvi.media_gen import write_shot_clip  # noqa: E402
from muvi.music.keys import estimate_key  # noqa: E402
from muvi.pipeline import STAGES, GenerateOptions, Generator  # noqa: E402
from muvi.timeline import Rate, Timeline, TimeRange  # noqa: E402
from muvi.weights import load_checkpoint  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--weights", type=Path, default=ROOT / "weights" / "muvi")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--style", default="pop")
    ap.add_argument("--steps", type=int, default=25)
    args = ap.parse_args()
    rate = Rate(25)
    n = int(args.minutes * 60 * 25)
    rng = np.random.default_rng(3)
    shots, total = [], 0
    while total < n:
        k = int(min(rng.integers(75, 225), n - total))
        shots.append(k)
        total += k
    model, meta = load_checkpoint(args.weights)
    gen = Generator(model, backend=select_backend(args.backend, model, weights=args.weights), meta=meta)
    options = GenerateOptions(style=args.style, seed=0, steps=args.steps, preview=False)
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_shot_clip(Path(tmp) / "long.mp4", shots=shots, rate=rate, size=(640, 360))
        tl = Timeline.sequential([(clip.path, TimeRange.from_frames(0, n, rate))], rate=rate)
        t = time.perf_counter()
        with PeakMemory() as memory:
            memory.stage = STAGES[0]

            def running(stage: str, fraction: float) -> None:  # a stage reports 1.0 as it ends: the next one runs
                done = fraction >= 1.0 and stage in STAGES and STAGES.index(stage) + 1 < len(STAGES)
                memory.stage = STAGES[STAGES.index(stage) + 1] if done else stage

            result = gen.generate(tl, options, Path(tmp) / "out", progress=running)
        seconds = time.perf_counter() - t
    score = result.score
    bar = score.steps_per_beat * score.tempo.beats_per_bar
    n_bars = score.n_steps // bar
    win, ov = options.window_bars, options.overlap_bars
    joins = list(range(win, n_bars, win - ov))  # first bar each later window writes
    stems = sorted({x.stem for x in score.notes})

    def notes_in(b0: int, b1: int, stem: str | None = None) -> list:  # type: ignore[type-arg]
        return [x for x in score.notes if b0 * bar <= x.start < b1 * bar and (stem is None or x.stem == stem)]

    rows = []
    for j in joins:
        empty = [f"{s}@{b}" for s in stems for b in range(max(0, j - 2), min(n_bars, j + 2)) if not notes_in(b, b + 1, s)]
        before, after = estimate_key(notes_in(j - 8, j)), estimate_key(notes_in(j, j + 8))
        change = before is not None and after is not None and (before.tonic, before.mode) != (after.tonic, after.mode)
        rows.append({"bar": j, "empty_stem_bars": empty, "key_before": before.name if before else None,
                     "key_after": after.name if after else None, "key_change": change,
                     "notes_per_bar_before": round(len(notes_in(j - 4, j)) / 4, 1),
                     "notes_per_bar_after": round(len(notes_in(j, j + 4)) / 4, 1)})
    all_empty = sum(1 for s in stems for b in range(n_bars) if not notes_in(b, b + 1, s))
    emit({
        "benchmark": "joins", "weights": str(args.weights), "backend": result.report["backend"],
        "minutes": args.minutes, "bars": n_bars, "windows": len(joins) + 1, "joins": len(joins),
        "joins_with_an_empty_bar": sum(1 for r in rows if r["empty_stem_bars"]),
        "joins_with_a_key_change": sum(1 for r in rows if r["key_change"]),
        "empty_stem_bar_ratio_overall": round(all_empty / max(1, n_bars * len(stems)), 4),
        "key": score.key, "seconds": round(seconds, 1), "seconds_per_minute": round(seconds / args.minutes, 2),
        "peak_rss_mb": round(memory.peak), "peak_rss_mb_by_stage": {k: round(v) for k, v in memory.by_stage.items()},
        "timings_s": result.report["timings_s"],
        "accent_hit_rate_cuts": result.report["accent_hit_rate_cuts"], "join_check": result.report["joins"],
        "per_join": rows, "machine": machine(),
    }, "joins")


if __name__ == "__main__":
    main()
