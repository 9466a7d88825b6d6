"""From a score on the grid to a performance: when each note is played, how hard, how long.

The model and the arranger write notes on 16ths. A player does not: a groove swings or sits
behind the beat, each hand drifts by a few milliseconds, strong beats are louder, a snare
drummer plays ghost notes, a bass player lets go of a note before the next, an open hi-hat
rings until the foot closes it. :func:`perform` adds that, per style (:data:`STYLE_FEELS`),
scaled by the feel the user asks for (:data:`FEELS`: ``grid`` is the score as written).

Rules:

- seeded: the same score, feel and seed give the same performance;
- a note that starts on a locked step (a hit point, a cut or accent the plan put on a beat,
  the ending's final event) keeps its grid time exactly;
- a note never ends later than written (nothing sounds past the out point that the score
  keeps clear), never starts before the music's time 0, and never overlaps the next note of
  the same pitch;
- times are whole MIDI ticks (1/:data:`~muvi.music.midi.PPQ` beat), so the audio and the
  MIDI files play the same performance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from muvi.errors import InvalidInputError
from muvi.music.score import Note, Score

__all__ = ["FEELS", "FEEL_SCALE", "StemFeel", "StyleFeel", "STYLE_FEELS", "Played", "Performance", "perform",
           "grid_performance", "TICKS_PER_BEAT"]

TICKS_PER_BEAT = 480  # the MIDI writer's resolution (muvi.music.midi.PPQ)
FEELS = ("grid", "tight", "natural", "loose")
# how much of the style's push and random deviation each feel plays (the swing is the style's)
FEEL_SCALE = {"grid": 0.0, "tight": 0.4, "natural": 1.0, "loose": 1.8}
SNARE, CLOSED_HH, PEDAL_HH, OPEN_HH = 38, 42, 44, 46
HATS = (CLOSED_HH, PEDAL_HH, OPEN_HH)
GHOST_VELOCITY = (22, 38)
JITTER_CLIP = 2.5  # deviations are drawn from a normal cut at this many SDs


@dataclass(frozen=True)
class StemFeel:
    """How one stem is played: ``push_ms`` its mean place against the beat (negative: ahead,
    on top of the beat; positive: laid back), ``jitter_ms`` the SD of each note's random
    deviation, ``length`` the share of the written length held (articulation), ``strum_ms``
    the spread of a chord's notes from low to high."""

    push_ms: float = 0.0
    jitter_ms: float = 4.0
    length: float = 0.95
    strum_ms: float = 0.0


@dataclass(frozen=True)
class StyleFeel:
    """A style's feel: ``swing`` the ratio of the swung pair's first half (0.5 straight, 2/3
    triplet swing) on ``swing_steps``-step notes (2: 8ths, 1: 16ths); ``accent`` the velocity
    lift of strong beats against weak ones; ``ghosts`` snare ghost notes per bar that has a
    backbeat; ``dynamics`` how far the velocity follows the intensity curve (0..1)."""

    swing: float = 0.5
    swing_steps: int = 2
    accent: float = 0.12
    ghosts: float = 0.0
    dynamics: float = 0.15
    velocity_sd: float = 5.0
    stems: Mapping[str, StemFeel] = field(default_factory=dict)

    def stem(self, name: str) -> StemFeel:
        return self.stems.get(name, StemFeel())


STYLE_FEELS: dict[str, StyleFeel] = {
    "pop": StyleFeel(ghosts=1.0, stems={
        "drums": StemFeel(push_ms=2.0, jitter_ms=4.0, length=1.0), "bass": StemFeel(push_ms=3.0, jitter_ms=4.0, length=0.85),
        "chords": StemFeel(jitter_ms=5.0, length=0.92, strum_ms=6.0), "melody": StemFeel(push_ms=-3.0, jitter_ms=6.0, length=0.9)}),
    "rock": StyleFeel(accent=0.16, ghosts=0.6, stems={
        "drums": StemFeel(push_ms=-2.0, jitter_ms=5.0, length=1.0), "bass": StemFeel(push_ms=-2.0, jitter_ms=5.0, length=0.8),
        "chords": StemFeel(jitter_ms=6.0, length=0.85, strum_ms=10.0), "melody": StemFeel(jitter_ms=7.0, length=0.9)}),
    "electronic": StyleFeel(swing=0.54, swing_steps=1, accent=0.08, dynamics=0.2, velocity_sd=2.0, stems={
        "drums": StemFeel(jitter_ms=0.8, length=1.0), "bass": StemFeel(jitter_ms=0.8, length=0.6),
        "chords": StemFeel(jitter_ms=1.0, length=0.7), "melody": StemFeel(jitter_ms=1.5, length=0.85)}),
    "hiphop": StyleFeel(swing=0.58, swing_steps=1, accent=0.1, ghosts=1.4, stems={
        "drums": StemFeel(push_ms=8.0, jitter_ms=5.0, length=1.0), "bass": StemFeel(push_ms=10.0, jitter_ms=5.0, length=0.95),
        "chords": StemFeel(push_ms=6.0, jitter_ms=6.0, length=0.9, strum_ms=4.0), "melody": StemFeel(push_ms=4.0, jitter_ms=7.0, length=0.9)}),
    "ambient": StyleFeel(accent=0.06, dynamics=0.25, velocity_sd=4.0, stems={
        "drums": StemFeel(jitter_ms=6.0, length=1.0), "bass": StemFeel(jitter_ms=8.0, length=1.0),
        "chords": StemFeel(jitter_ms=10.0, length=1.0, strum_ms=12.0), "melody": StemFeel(push_ms=5.0, jitter_ms=10.0, length=1.0)}),
    "cinematic": StyleFeel(accent=0.14, dynamics=0.3, stems={
        "drums": StemFeel(jitter_ms=4.0, length=1.0), "bass": StemFeel(push_ms=2.0, jitter_ms=6.0, length=1.0),
        "chords": StemFeel(push_ms=4.0, jitter_ms=8.0, length=1.0, strum_ms=8.0), "melody": StemFeel(push_ms=3.0, jitter_ms=8.0, length=0.95)}),
    "jazz": StyleFeel(swing=0.64, swing_steps=2, accent=0.1, ghosts=0.8, velocity_sd=7.0, stems={
        "drums": StemFeel(push_ms=-3.0, jitter_ms=6.0, length=1.0), "bass": StemFeel(push_ms=-4.0, jitter_ms=6.0, length=0.9),
        "chords": StemFeel(push_ms=5.0, jitter_ms=8.0, length=0.7, strum_ms=5.0), "melody": StemFeel(push_ms=8.0, jitter_ms=9.0, length=0.85)}),
    "folk": StyleFeel(accent=0.14, stems={
        "drums": StemFeel(jitter_ms=6.0, length=1.0), "bass": StemFeel(jitter_ms=6.0, length=0.85),
        "chords": StemFeel(jitter_ms=6.0, length=0.9, strum_ms=14.0), "melody": StemFeel(push_ms=-2.0, jitter_ms=8.0, length=0.9)}),
}


def check_feel(feel: str) -> str:
    if feel not in FEELS:
        raise InvalidInputError(f"--feel: unknown feel {feel!r}; choose from {', '.join(FEELS)}")
    return feel


@dataclass(frozen=True)
class Played:
    """One note as played: ``on`` and ``off`` in beats of the score's tempo map (whole ticks),
    ``grid`` the beat it is written on; ``note`` is ``None`` for a ghost note the player adds."""

    on: Fraction
    off: Fraction
    pitch: int
    velocity: int
    stem: str
    grid: Fraction
    locked: bool = False
    ghost: bool = False


@dataclass(frozen=True)
class Performance:
    played: tuple[Played, ...]
    feel: str
    style: str | None
    scale: float  # the feel's share of the style's push and jitter

    def by_stem(self) -> dict[str, list[Played]]:
        out: dict[str, list[Played]] = {}
        for p in self.played:
            out.setdefault(p.stem, []).append(p)
        return out

    def stats(self, score: Score) -> dict[str, Any]:
        """Per stem: the measured timing against the style's target (what report.json says)."""
        style = STYLE_FEELS.get(self.style or "", StyleFeel())
        out: dict[str, Any] = {"feel": self.feel, "style": self.style, "swing_target": style.swing
                               if self.scale else 0.5, "stems": {}}
        for stem, notes in self.by_stem().items():
            target = style.stem(stem)
            # a chord's timing is its first (lowest) note's: the strum spreads the rest
            first: dict[Any, Played] = {}
            for p in notes:
                key = (p.grid, p.pitch) if stem == "drums" else p.grid  # each drum its own limb
                if not p.locked and not p.ghost and (key not in first or p.pitch < first[key].pitch):
                    first[key] = p
            free = list(first.values())
            dev = np.array([_ms(score, p.grid, p.on) - _swing_ms(score, p.grid, style, self.scale) for p in free])
            out["stems"][stem] = {
                "notes": len(notes), "locked": sum(p.locked for p in notes), "ghosts": sum(p.ghost for p in notes),
                "mean_offset_ms": _r(dev.mean()) if dev.size else None,
                "sd_ms": _r(dev.std()) if dev.size else None,
                "target_offset_ms": _r(target.push_ms * self.scale), "target_sd_ms": _r(target.jitter_ms * self.scale),
                "swing_ratio": _swing_ratio(score, free, style.swing_steps),
                "mean_velocity": _r(np.mean([p.velocity for p in notes])) if notes else None,
            }
        return out


def _r(x: float) -> float:
    return round(float(x), 2)


def _ms(score: Score, a: Fraction, b: Fraction) -> float:
    return float(score.tempo.time_at(b) - score.tempo.time_at(a)) * 1000.0


def _swing_shift(beat: Fraction, swing: float, steps: int, spb: int) -> float:
    """How far (in beats) swing moves a note written at ``beat``: the second note of each
    swung pair moves to ``swing`` of the pair; 16ths inside swung 8ths move in proportion."""
    if swing == 0.5:
        return 0.0
    pair = Fraction(2 * steps, spb)  # a swung pair's length in beats
    pos = float((beat % pair) / pair)  # 0..1 inside the pair
    if pos == 0.0:
        return 0.0
    swung = pos / 0.5 * swing if pos <= 0.5 else swing + (pos - 0.5) / 0.5 * (1.0 - swing)
    return (swung - pos) * float(pair)


def _swing_ms(score: Score, grid: Fraction, style: StyleFeel, scale: float) -> float:
    if not scale:
        return 0.0
    shift = _swing_shift(grid, style.swing, style.swing_steps, score.steps_per_beat)
    return shift * float(score.tempo.seconds_per_beat_at(grid)) * 1000.0


def _swing_ratio(score: Score, notes: Sequence[Played], steps: int) -> float | None:
    """Where the second note of a pair lands inside its pair, on average (0.5: straight)."""
    pair = Fraction(2 * steps, score.steps_per_beat)
    pos = [float((p.on - (p.grid - pair / 2)) / pair) for p in notes if p.grid % pair == pair / 2]
    return _r(np.mean(pos)) if pos else None


def grid_performance(score: Score, *, stems: Iterable[str] | None = None) -> Performance:
    """The score as written: every note on its grid step at its velocity."""
    keep = set(stems) if stems is not None else None
    spb = score.steps_per_beat
    played = tuple(Played(Fraction(n.start, spb), Fraction(n.end, spb), n.pitch, n.velocity, n.stem,
                          Fraction(n.start, spb)) for n in score.notes if keep is None or n.stem in keep)
    return Performance(played, "grid", score.style, 0.0)


def perform(
    score: Score,
    *,
    feel: str = "natural",
    seed: int = 0,
    locked_steps: Iterable[int] = (),
    quiet_steps: Iterable[tuple[int, int]] = (),
    intensity: Sequence[float] | None = None,
) -> Performance:
    """Play ``score`` with its style's feel at ``feel`` strength.

    ``locked_steps`` keep their notes on the grid; ``quiet_steps`` are [start, end) ranges
    (a stop's silence, the ending) where the player adds no ghost note; ``intensity`` is a
    per-bar curve the dynamics follow (any scale: it is min-max normalised within the take).
    """
    check_feel(feel)
    if feel == "grid":
        return grid_performance(score)
    style = STYLE_FEELS.get(score.style or "", StyleFeel())
    scale = FEEL_SCALE[feel]
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x9E1F])
    locked = set(locked_steps)
    notes = _hats_choked(list(score.notes))
    dyn = _dynamics(intensity, style.dynamics * min(1.0, scale))
    played = [_play(score, n, style, scale, rng, locked, dyn) for n in notes]
    played += _ghosts(score, notes, style, scale, rng, locked, list(quiet_steps), dyn)
    played = _no_overlaps(_strummed(score, played, style, scale))
    return Performance(tuple(sorted(played, key=lambda p: (p.on, p.stem, p.pitch))), feel, score.style, scale)


def _hats_choked(notes: list[Note]) -> list[Note]:
    """A drummer cannot play the closed and the open hi-hat at once: the open one wins. An open
    hat rings until the next hat stroke (the foot closes it), a beat at most."""
    drums = [n for n in notes if n.stem == "drums"]
    open_at = {n.start for n in drums if n.pitch == OPEN_HH}
    hats = sorted({n.start for n in drums if n.pitch in HATS})
    out = []
    for n in notes:
        if n.stem == "drums" and n.pitch in (CLOSED_HH, PEDAL_HH) and n.start in open_at:
            continue
        if n.stem == "drums" and n.pitch == OPEN_HH:
            nxt = next((s for s in hats if s > n.start), n.start + 4)
            n = Note(n.start, n.pitch, max(n.start + 1, min(nxt, n.start + 4)), n.velocity, n.stem)
        out.append(n)
    return out


def _dynamics(intensity: Sequence[float] | None, depth: float) -> Callable[[int], float]:
    """Per-bar velocity factor following the intensity curve: 1 ± depth/2 from its quietest to
    its busiest bar."""
    if intensity is None or len(intensity) == 0 or depth <= 0:
        return lambda bar: 1.0
    c = np.asarray(intensity, dtype=float)
    c = np.where(np.isfinite(c), c, np.nanmedian(c) if np.isfinite(c).any() else 0.0)
    lo, hi = float(c.min()), float(c.max())
    norm = (c - lo) / (hi - lo) if hi > lo else np.full_like(c, 0.5)
    factors = 1.0 + depth * (norm - 0.5)
    return lambda bar: float(factors[min(max(bar, 0), len(factors) - 1)])


def _accent(score: Score, step: int, style: StyleFeel, scale: float) -> float:
    """Velocity factor of the metric position: the downbeat strongest, then the other beats,
    then 8ths, 16ths weakest."""
    spb, bar = score.steps_per_beat, score.steps_per_bar
    a = style.accent * min(1.0, max(scale, 0.5))
    if step % bar == 0:
        return 1.0 + a
    if step % spb == 0:
        return 1.0 + a * (0.5 if score.tempo.beats_per_bar == 4 and step % bar == bar // 2 else 0.25)
    return 1.0 - a * (0.25 if step % (spb // 2 or 1) == 0 else 0.5)


def _deviation(stem: StemFeel, scale: float, rng: np.random.Generator) -> float:
    z = float(np.clip(rng.standard_normal(), -JITTER_CLIP, JITTER_CLIP))
    return (stem.push_ms + z * stem.jitter_ms) * scale


def _to_ticks(beat: float) -> Fraction:
    return Fraction(round(beat * TICKS_PER_BEAT), TICKS_PER_BEAT)


def _velocity(v: float, rng: np.random.Generator, sd: float, scale: float) -> int:
    return int(np.clip(round(v + rng.standard_normal() * sd * scale), 1, 127))


def _play(score: Score, n: Note, style: StyleFeel, scale: float, rng: np.random.Generator, locked: set[int],
          dyn: Callable[[int], float]) -> Played:
    spb = score.steps_per_beat
    grid, end = Fraction(n.start, spb), Fraction(n.end, spb)
    spb_s = float(score.tempo.seconds_per_beat_at(grid))
    feel = style.stem(n.stem)
    dev_ms = _deviation(feel, scale, rng)  # drawn for every note: the seed's stream does not depend on locks
    vel = n.velocity * _accent(score, n.start, style, scale) * dyn(n.start // score.steps_per_bar)
    velocity = _velocity(vel, rng, style.velocity_sd, scale)
    if n.start in locked:
        return Played(grid, end, n.pitch, max(velocity, n.velocity), n.stem, grid, locked=True)
    shift = _swing_shift(grid, style.swing, style.swing_steps, spb) + dev_ms / 1000.0 / spb_s
    b0 = score.tempo.beat_at(0)  # the music's time 0: nothing written after it is played before it
    on = max(_to_ticks(float(grid) + shift), min(grid, b0))
    on = min(on, end - Fraction(1, 2 * spb))  # a laid-back note still sounds for half a step
    length = float(end - grid) * (1.0 if n.stem == "drums" else feel.length)
    off = max(on + Fraction(1, TICKS_PER_BEAT), min(end, _to_ticks(float(on) + length)))
    return Played(on, off, n.pitch, velocity, n.stem, grid)


def _ghosts(score: Score, notes: Sequence[Note], style: StyleFeel, scale: float, rng: np.random.Generator,
            locked: set[int], quiet: list[tuple[int, int]], dyn) -> list[Played]:
    """Quiet snare strokes on free 16ths around the backbeat, in bars whose snare plays it."""
    if style.ghosts <= 0 or scale <= 0:
        return []
    spb, bar = score.steps_per_beat, score.steps_per_bar
    drums = [n for n in notes if n.stem == "drums"]
    busy = {n.start for n in drums if n.pitch in (SNARE, 40, 37)}
    candidates = [spb - 1, spb + 1, 2 * spb + spb // 2 + 1, 3 * spb - 1, 3 * spb + 1, 4 * spb - 1]
    out = []
    for b in range(score.n_steps // bar):
        start = b * bar
        if not any(start <= s < start + bar for s in busy):
            continue
        free = [start + c for c in candidates if c < bar and start + c not in busy and start + c not in locked
                and not any(a <= start + c < e for a, e in quiet)]
        k = min(len(free), int(rng.poisson(style.ghosts * min(1.0, scale))))
        for step in sorted(rng.choice(free, size=k, replace=False)) if k else ():
            grid = Fraction(int(step), spb)
            dev = _deviation(style.stem("drums"), scale, rng) / 1000.0 / float(score.tempo.seconds_per_beat_at(grid))
            on = max(Fraction(0), _to_ticks(float(grid) + _swing_shift(grid, style.swing, style.swing_steps, spb) + dev))
            vel = int(rng.integers(*GHOST_VELOCITY) * dyn(b))
            out.append(Played(on, on + Fraction(1, spb), SNARE, max(1, vel), "drums", grid, ghost=True))
    return out


def _strummed(score: Score, played: list[Played], style: StyleFeel, scale: float) -> list[Played]:
    """A chord's notes on one step spread from low to high by the stem's strum (ms)."""
    out, groups = [], {}
    for p in played:
        groups.setdefault((p.stem, p.grid, p.locked), []).append(p)
    for (stem, grid, lock), group in groups.items():
        strum = style.stem(stem).strum_ms * scale
        if lock or strum <= 0 or len(group) < 3 or stem == "drums":
            out += group
            continue
        spb_s = float(score.tempo.seconds_per_beat_at(grid))
        for i, p in enumerate(sorted(group, key=lambda p: p.pitch)):
            on = min(_to_ticks(float(p.on) + strum * i / (len(group) - 1) / 1000.0 / spb_s),
                     p.off - Fraction(1, TICKS_PER_BEAT))
            out.append(Played(max(p.on, on), p.off, p.pitch, p.velocity, p.stem, p.grid, p.locked, p.ghost))
    return out


def _no_overlaps(played: list[Played]) -> list[Played]:
    """A note of one pitch on one stem ends before that pitch plays again."""
    out: list[Played] = []
    last: dict[tuple[str, int], int] = {}
    for p in sorted(played, key=lambda p: (p.stem, p.pitch, p.on)):
        key = (p.stem, p.pitch)
        i = last.get(key)
        if i is not None and out[i].off > p.on:
            prev = out[i]
            if p.on <= prev.on:  # two strokes at one tick: keep the louder
                if p.velocity > prev.velocity:
                    out[i] = p
                continue
            out[i] = Played(prev.on, p.on, prev.pitch, prev.velocity, prev.stem, prev.grid, prev.locked, prev.ghost)
        last[key] = len(out)
        out.append(p)
    return out
