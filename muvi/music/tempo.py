"""Tempo maps: beats ↔ seconds, exactly.

A :class:`TempoMap` is piecewise-constant tempo (a gentle ramp is a run of small per-beat
changes, as MIDI writes it anyway) plus a meter. Beat 0 is grid step 0 of a roll; its time is
``origin`` seconds from the music's start (the timeline's record-in), and may be negative
when the first bar starts before the picture (a pickup). All arithmetic is
:class:`~fractions.Fraction`, so beats land on the planned seconds with no drift.
"""

from __future__ import annotations

import bisect
import functools
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

from muvi.errors import InvalidInputError

__all__ = ["TempoChange", "TempoMap"]

MIN_BPM, MAX_BPM = Fraction(20), Fraction(400)


def _frac(x: Fraction | int | float | str) -> Fraction:
    return Fraction(x).limit_denominator(10**9) if isinstance(x, float) else Fraction(x)


@dataclass(frozen=True)
class TempoChange:
    """From ``beat`` on, each beat lasts ``seconds_per_beat``."""

    beat: Fraction
    seconds_per_beat: Fraction

    @property
    def bpm(self) -> Fraction:
        return 60 / self.seconds_per_beat


@dataclass(frozen=True)
class TempoMap:
    """Piecewise-constant tempo with a meter.

    ``changes[0].beat`` is 0. ``beats_per_bar`` is the meter numerator (4 or 3, quarter-note
    beats); ``downbeat`` is the beat index of the first downbeat (0 ≤ downbeat < beats_per_bar).
    """

    changes: tuple[TempoChange, ...]
    origin: Fraction = Fraction(0)
    beats_per_bar: int = 4
    downbeat: int = 0

    def __post_init__(self) -> None:
        if not self.changes or self.changes[0].beat != 0:
            raise InvalidInputError("a tempo map starts with a change at beat 0")
        beats = [c.beat for c in self.changes]
        if any(b <= a for a, b in zip(beats, beats[1:])):
            raise InvalidInputError("tempo changes must be at increasing beats")
        for c in self.changes:
            if not (MIN_BPM <= c.bpm <= MAX_BPM):
                raise InvalidInputError(f"tempo {float(c.bpm):.2f} BPM is outside {MIN_BPM}-{MAX_BPM} BPM")
        if self.beats_per_bar not in (2, 3, 4, 6):
            raise InvalidInputError(f"beats per bar must be 2, 3, 4 or 6, got {self.beats_per_bar}")
        if not 0 <= self.downbeat < self.beats_per_bar:
            raise InvalidInputError(f"downbeat must be in 0..{self.beats_per_bar - 1}, got {self.downbeat}")

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def constant(
        cls,
        bpm: Fraction | int | float | str,
        *,
        origin: Fraction | int = 0,
        beats_per_bar: int = 4,
        downbeat: int = 0,
    ) -> "TempoMap":
        b = _frac(bpm)
        if b <= 0:
            raise InvalidInputError(f"tempo must be positive, got {bpm} BPM")
        return cls((TempoChange(Fraction(0), 60 / b),), Fraction(origin), beats_per_bar, downbeat)

    @classmethod
    def from_bpms(
        cls,
        changes: Sequence[tuple[Fraction | int, Fraction | int | float]],
        *,
        origin: Fraction | int = 0,
        beats_per_bar: int = 4,
        downbeat: int = 0,
    ) -> "TempoMap":
        """From ``[(beat, bpm), ...]``."""
        return cls(
            tuple(TempoChange(Fraction(b), 60 / _frac(bpm)) for b, bpm in changes),
            Fraction(origin),
            beats_per_bar,
            downbeat,
        )

    def with_downbeat_at_zero(self) -> "TempoMap":
        """The same beats renumbered so that beat 0 is a downbeat: a map whose first downbeat is
        beat ``d`` > 0 gains ``beats_per_bar - d`` beats before its old beat 0, at its first
        tempo (so a roll's step 0, where the model's bars start, is a bar line of the plan)."""
        k = (self.beats_per_bar - self.downbeat) % self.beats_per_bar
        if k == 0:
            return self
        first = self.changes[0].seconds_per_beat
        changes = (TempoChange(Fraction(0), first),) + tuple(TempoChange(c.beat + k, c.seconds_per_beat)
                                                            for c in self.changes)
        merged = [changes[0]] + [c for a, c in zip(changes, changes[1:]) if c.seconds_per_beat != a.seconds_per_beat]
        return TempoMap(tuple(merged), self.origin - k * first, self.beats_per_bar, 0)

    # -- conversions ----------------------------------------------------------------------
    @functools.cached_property
    def _change_beats(self) -> tuple[Fraction, ...]:
        """Beat of each change (computed once per map: a long timeline's map has hundreds)."""
        return tuple(c.beat for c in self.changes)

    @functools.cached_property
    def _starts(self) -> tuple[Fraction, ...]:
        """Time of each change (computed once per map)."""
        out = [self.origin]
        for a, b in zip(self.changes, self.changes[1:]):
            out.append(out[-1] + (b.beat - a.beat) * a.seconds_per_beat)
        return tuple(out)

    def time_at(self, beat: Fraction | int) -> Fraction:
        """Seconds (from the music's start) of a beat position (may be fractional)."""
        beat = Fraction(beat)
        i = max(0, bisect.bisect_right(self._change_beats, beat) - 1)
        c = self.changes[i]
        return self._starts[i] + (beat - c.beat) * c.seconds_per_beat

    def beat_at(self, seconds: Fraction | int) -> Fraction:
        """Beat position at a time (inverse of :meth:`time_at`)."""
        seconds = Fraction(seconds)
        starts = self._starts
        i = max(0, bisect.bisect_right(starts, seconds) - 1)
        c = self.changes[i]
        return c.beat + (seconds - starts[i]) / c.seconds_per_beat

    def times_at(self, beats: Sequence[Fraction | int]) -> list[Fraction]:
        return [self.time_at(b) for b in beats]

    def seconds_per_beat_at(self, beat: Fraction | int) -> Fraction:
        i = max(0, bisect.bisect_right(self._change_beats, Fraction(beat)) - 1)
        return self.changes[i].seconds_per_beat

    def bpm_at(self, beat: Fraction | int) -> Fraction:
        return 60 / self.seconds_per_beat_at(beat)

    def n_beats(self, duration: Fraction | int) -> int:
        """Whole beats needed to cover ``[0, duration)`` seconds of music."""
        return max(0, math.ceil(self.beat_at(Fraction(duration))))

    def is_downbeat(self, beat: int) -> bool:
        return (beat - self.downbeat) % self.beats_per_bar == 0

    def beat_times(self, duration: Fraction | int) -> list[Fraction]:
        """Times of integer beats inside ``[0, duration)`` seconds."""
        first = max(0, math.ceil(self.beat_at(0)))
        return [t for t in (self.time_at(b) for b in range(first, self.n_beats(duration) + 1)) if 0 <= t < duration]

    def downbeat_times(self, duration: Fraction | int) -> list[Fraction]:
        first = max(0, math.ceil(self.beat_at(0)))
        return [
            t
            for b in range(first, self.n_beats(duration) + 1)
            if self.is_downbeat(b) and 0 <= (t := self.time_at(b)) < duration
        ]

    def to_json(self) -> dict[str, object]:
        return {
            "origin_seconds": float(self.origin),
            "beats_per_bar": self.beats_per_bar,
            "downbeat": self.downbeat,
            "changes": [{"beat": float(c.beat), "bpm": float(c.bpm)} for c in self.changes],
        }
