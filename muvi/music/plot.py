"""Drawing a score: one panel per stem, beat and downbeat lines, optional accent markers.

The picture is rasterised directly (numpy for the notes and lines, Pillow for the labels), not
through matplotlib: a result's roll plot costs tens of milliseconds instead of seconds, and the
cost stays proportional to the notes however long the timeline.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np

from muvi.fileio import atomic_path
from muvi.music.roll import DRUM_CLASSES, drum_class_of
from muvi.music.score import Note, Score

__all__ = ["plot_score"]

_COLORS = {"drums": (214, 39, 40), "bass": (31, 119, 180), "chords": (44, 160, 44), "melody": (148, 103, 189)}
_ORDER = ("drums", "bass", "chords", "melody")
LEFT, RIGHT, TOP, BOTTOM, GAP = 64, 10, 26, 22, 6
MAX_WIDTH = 6000


def _panels(score: Score, n_steps: int) -> list[tuple[str, list[Note], list[int], int, int]]:
    """(stem, notes, row of each note, rows, pixels per row) per panel, drums first."""
    by_stem = score.by_stem()
    stems = [s for s in _ORDER if s in by_stem] + [s for s in by_stem if s not in _ORDER]
    out = []
    for stem in stems:
        notes = [n for n in by_stem[stem] if n.start < n_steps]
        if stem == "drums":
            rows = [drum_class_of(n.pitch) or 0 for n in notes]
            out.append((stem, notes, rows, len(DRUM_CLASSES), 9))
            continue
        lo = min((n.pitch for n in notes), default=60) - 2
        hi = max((n.pitch for n in notes), default=60) + 2
        out.append((stem, notes, [n.pitch - lo for n in notes], hi - lo + 1, max(2, min(6, 150 // (hi - lo + 1)))))
    return out


def plot_score(
    score: Score,
    path: Path | str,
    *,
    title: str = "",
    accents: Sequence[Fraction | float] = (),
    hits: Sequence[bool] | None = None,
    max_bars: int | None = None,
) -> Path:
    """Write a PNG of the score's stems against beats (bar numbers along the bottom).

    ``accents`` are times in seconds (e.g. video cuts) drawn as vertical markers: green where
    ``hits[i]`` is true (a beat landed on it), red otherwise. Pitched panels run low to high
    from the bottom; a note's shade is its velocity.
    """
    from PIL import Image, ImageDraw

    bar = score.steps_per_bar
    n_steps = max(1, score.n_steps if max_bars is None else min(score.n_steps, max_bars * bar))
    pps = float(np.clip(3200 / n_steps, 0.5, 8.0))  # pixels per grid step
    if LEFT + RIGHT + n_steps * pps > MAX_WIDTH:
        pps = (MAX_WIDTH - LEFT - RIGHT) / n_steps
    width = int(LEFT + RIGHT + n_steps * pps)
    panels = _panels(score, n_steps) or [("", [], [], 1, 40)]
    heights = [rows * px for _, _, _, rows, px in panels]
    height = TOP + BOTTOM + sum(heights) + GAP * (len(panels) - 1)
    img = np.full((height, width, 3), 255, np.uint8)

    def x_of(step: float) -> int:
        return int(round(LEFT + step * pps))

    tops, y = [], TOP
    for h in heights:
        tops.append(y)
        y += h + GAP
    for (stem, notes, rows, n_rows, px), top, h in zip(panels, tops, heights):
        _grid(img, score, n_steps, top, h, x_of)
        rgb = np.array(_COLORS.get(stem, (60, 60, 60)), np.float32)
        for n, row in zip(notes, rows):
            y1 = top + h - row * px  # row 0 at the bottom
            alpha = 0.35 + 0.65 * n.velocity / 127
            colour = (255 * (1 - alpha) + rgb * alpha).astype(np.uint8)
            x0, x1 = x_of(n.start), max(x_of(n.start) + 1, x_of(min(n.end, n_steps) - 0.2))
            img[max(top, y1 - px + 1): y1, x0:x1] = colour
    _accents(img, score, accents, hits, n_steps, tops[0], tops[-1] + heights[-1], x_of)
    pic = Image.fromarray(img)
    draw = ImageDraw.Draw(pic)
    for (stem, *_), top, h in zip(panels, tops, heights):
        draw.text((4, top + h // 2 - 5), stem, fill=(0, 0, 0))
    step_bars = max(1, int(np.ceil(40 / (bar * pps))))  # a label every ~40 px at least
    for b in range(0, n_steps // bar + 1, step_bars):
        draw.text((x_of(b * bar) - 3, height - BOTTOM + 5), str(b), fill=(80, 80, 80))
    bpm = float(score.tempo.bpm_at(0))
    draw.text((LEFT, 7), title or f"{score.style or ''} {score.key or ''} {bpm:.1f} BPM {score.tempo.beats_per_bar}/4".strip(),
              fill=(0, 0, 0))
    path = Path(path)
    with atomic_path(path) as tmp:
        pic.save(tmp, format="PNG", compress_level=3)
    return path


def _grid(img: np.ndarray, score: Score, n_steps: int, top: int, h: int, x_of) -> None:  # type: ignore[no-untyped-def]
    """The panel's frame, a light line per beat and a dark one per downbeat."""
    spb = score.steps_per_beat
    img[top: top + h, LEFT - 1] = 120
    img[top + h - 1, LEFT: x_of(n_steps)] = 200
    for b in range(0, n_steps // spb + 1):
        x = min(img.shape[1] - 1, x_of(b * spb))
        img[top: top + h, x] = 110 if score.tempo.is_downbeat(b) else 225


def _accents(img: np.ndarray, score: Score, accents: Sequence[Fraction | float], hits: Sequence[bool] | None,
             n_steps: int, top: int, bottom: int, x_of) -> None:  # type: ignore[no-untyped-def]
    spb = score.steps_per_beat
    for i, t in enumerate(accents):
        step = float(score.tempo.beat_at(Fraction(t))) * spb
        if 0 <= step <= n_steps:
            x = min(img.shape[1] - 2, x_of(step))
            img[top:bottom, x: x + 2] = (44, 160, 44) if hits is None or hits[i] else (214, 39, 40)
