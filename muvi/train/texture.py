"""Texture variation of training windows: sections of a window thinned by the metre.

Corpus windows are mostly one texture repeated: within a 16-bar window the per-bar intensity
of a stem varies little, so the DiT learnt the curves' overall level and hardly their shape
(Spearman 0.26 between the curve it was given and the intensity it played, on held-out
windows with the reference music's own curves). Varying the texture by section gives the
curves a shape the music really follows: a window is split into sections of 2, 4 or 8 bars,
and in each section every stem plays at a level of its metre —

- 4: everything; 3: on eighths; 2: on beats; 1: on downbeats; 0: silent (a stem drop).

A pitched note whose re-attack is dropped is held instead (the previous note of that pitch
is extended over it), so chords and bass still sound through the bar. The curves of the
thinned music (:func:`muvi.curves.music_curves`) then vary as the sections do, and training
on them teaches the model to follow a curve bar by bar. This is what editors do with a loop
too: drop the drums for two bars, half-time the hats before a build.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from muvi.music.score import Note, Score

__all__ = ["LEVELS", "vary_texture", "metric_level"]

# a section's level per stem: the chance of each (4 = as written)
LEVELS = (0, 1, 2, 3, 4)
_LEVEL_P = (0.08, 0.12, 0.2, 0.2, 0.4)
_SECTION_BARS = (2, 4, 4, 8)


def metric_level(step: int, *, steps_per_bar: int, steps_per_beat: int) -> int:
    """3 on a bar's first step, 2 on a beat, 1 on an eighth, 0 on anything finer."""
    pos = step % steps_per_bar
    if pos == 0:
        return 3
    if pos % steps_per_beat == 0:
        return 2
    return 1 if pos % max(1, steps_per_beat // 2) == 0 else 0


def _sections(n_bars: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    out, b = [], 0
    while b < n_bars:
        n = int(rng.choice(_SECTION_BARS))
        out.append((b, min(n_bars, b + n)))
        b += n
    return out


def _bar_levels(n_bars: int, stems: tuple[str, ...], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per stem, (n_bars,) levels: one per section, and never every stem silent at once."""
    levels = {s: np.full(n_bars, 4, np.int64) for s in stems}
    for a, e in _sections(n_bars, rng):
        draw = {s: int(rng.choice(LEVELS, p=_LEVEL_P)) for s in stems}
        if stems and all(v == 0 for v in draw.values()):
            draw[stems[int(rng.integers(len(stems)))]] = 4
        for s, v in draw.items():
            levels[s][a:e] = v
    return levels


def vary_texture(score: Score, rng: np.random.Generator) -> Score:
    """``score`` with its texture varied by section (see the module docstring)."""
    bar, spb = score.steps_per_bar, score.steps_per_beat
    n_bars = max(1, -(-score.n_steps // bar))
    levels = _bar_levels(n_bars, score.stems, rng)
    kept: list[Note] = []
    last: dict[tuple[str, int], int] = {}  # (stem, pitch) → index in kept of its last note
    for n in score.notes:  # sorted by start
        level = levels[n.stem][min(n_bars - 1, n.start // bar)]
        if metric_level(n.start, steps_per_bar=bar, steps_per_beat=spb) >= 4 - level:
            last[(n.stem, n.pitch)] = len(kept)
            kept.append(n)
            continue
        if level == 0 or n.stem == "drums":
            continue
        j = last.get((n.stem, n.pitch))
        if j is not None and kept[j].end >= n.start:  # a re-attack dropped: hold the note through it
            kept[j] = replace(kept[j], end=max(kept[j].end, n.end))
    return replace(score, notes=tuple(kept))
