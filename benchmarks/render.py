"""Rendering speed and a listen-proxy survey of the arranger's styles.

(1) Speed: FluidSynth renders 60 s of four stems (target ≤ 2 s on the 2-core machine).
(2) Survey: for N pieces per style, musicality statistics on the notes and, on the rendered
    mix, how well the audio articulates the beat grid (BCS/BHS of the mix against a click
    track on the piece's own beats). (3) Optional: corpus build time (--corpus).

    python benchmarks/render.py [--pieces 3] [--corpus]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.common import emit, machine  # noqa: E402
from muvi.metrics import beat_scores, musicality  # noqa: E402
from muvi.music.arranger import arrange  # noqa: E402
from muvi.music.styles import STYLE_NAMES  # noqa: E402
from muvi.render import render_score  # noqa: E402


def clicks_at(times: list[Fraction], n: int, sr: int = 48000) -> np.ndarray:
    y = np.zeros(n)
    burst = np.exp(-np.arange(600) / 90.0) * np.sin(np.arange(600) * 0.9)
    for t in times:
        i = int(t * sr)
        if i < n:
            y[i : i + 600] += burst[: n - i]
    return y


def sixty_seconds(style: str, seed: int):  # type: ignore[no-untyped-def]
    """An arranged piece with all four stems, cut to 60 s of music."""
    for s in range(seed, seed + 50):
        p = arrange(style, seed=s)
        if set(p.stems_present) == {"drums", "bass", "chords", "melody"} and p.score.duration >= 60:
            return p
    raise RuntimeError("no four-stem piece found")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pieces", type=int, default=3)
    ap.add_argument("--corpus", action="store_true", help="also time a full corpus build")
    args = ap.parse_args()
    sr = 48000
    piece = sixty_seconds("pop", 1)
    n = 60 * sr
    render_score(piece.score, n_samples=sr)  # load the SoundFont once (page cache)
    times = []
    for _ in range(3):
        t = time.perf_counter()
        stems = render_score(piece.score, n_samples=n)
        times.append(time.perf_counter() - t)
    survey = {}
    for style in STYLE_NAMES:
        rows = []
        for seed in range(args.pieces):
            p = arrange(style, seed=100 + seed)
            audio = render_score(p.score)
            mix = sum(audio.values())
            beats = p.score.tempo.beat_times(p.score.duration)
            bs = beat_scores(mix, clicks_at(beats, mix.shape[-1]), sr)
            m = musicality(p.score, stems=list(p.stems_present))
            rows.append({
                "in_scale": m["in_scale_ratio"], "entropy": m["pitch_class_entropy"], "polyphony": m["polyphony"],
                "groove": m["groove_consistency"], "bcs_vs_beats": bs.bcs, "bhs_vs_beats": bs.bhs,
                "empty_bar_max": max(v["empty_bar_ratio"] for v in m["stems"].values()),
                "bpm": p.bpm, "stems": len(p.stems_present),
            })
        survey[style] = {k: round(statistics.fmean(r[k] for r in rows if r[k] == r[k]), 3) for k in rows[0]}
    result = {
        "benchmark": "render",
        "render_60s_4_stems_s": round(min(times), 3),
        "runs": [round(x, 3) for x in times],
        "target_s": 2.0,
        "meets_target": min(times) <= 2.0,
        "stems": {k: list(v.shape) for k, v in stems.items()},
        "survey_per_style_mean": survey,
        "machine": machine(),
    }
    if args.corpus:
        from muvi.music.corpus import CorpusOptions, build_corpus

        with tempfile.TemporaryDirectory() as d:
            t = time.perf_counter()
            m = build_corpus(d, CorpusOptions(), progress=False)
            result["corpus_build_s"] = round(time.perf_counter() - t, 1)
            result["corpus_summary"] = {k: m["summary"][k] for k in ("pieces", "hours", "bars", "bars_per_stem")}
            result["corpus_target_s"] = 900
    emit(result, "render")


if __name__ == "__main__":
    main()
