"""Notes on the beat grid and the score that carries them with a tempo map."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Iterable, Mapping

from muvi.errors import InvalidInputError
from muvi.music.tempo import TempoMap

__all__ = ["Note", "Score"]


@dataclass(frozen=True, order=True)
class Note:
    """A note on the grid: ``[start, end)`` in grid steps, MIDI ``pitch`` (GM drum note for
    drums), ``velocity`` 1..127, on ``stem``."""

    start: int
    pitch: int
    end: int
    velocity: int = 96
    stem: str = ""

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise InvalidInputError(f"note {self.pitch} at step {self.start}: end {self.end} must be after start")
        if not 0 <= self.pitch <= 127:
            raise InvalidInputError(f"pitch {self.pitch} outside MIDI range 0..127")
        if not 1 <= self.velocity <= 127:
            raise InvalidInputError(f"velocity {self.velocity} outside 1..127")

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Score:
    """Notes of all stems with the tempo map that places grid steps in time.

    ``n_steps`` is the score's length in grid steps; step ``s`` is at beat
    ``s / steps_per_beat``. ``programs`` maps stem → GM program (0-based); drums use the GM
    percussion bank. ``key`` is a :class:`muvi.music.keys.Key` name like ``"A minor"``.
    """

    notes: tuple[Note, ...]
    tempo: TempoMap
    n_steps: int
    steps_per_beat: int = 4
    programs: Mapping[str, int] = field(default_factory=dict)
    key: str | None = None
    style: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "notes", tuple(sorted(self.notes)))
        if self.n_steps < 0:
            raise InvalidInputError("score length must not be negative")

    @property
    def stems(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(n.stem for n in self.notes))

    def by_stem(self) -> dict[str, list[Note]]:
        out: dict[str, list[Note]] = {}
        for n in self.notes:
            out.setdefault(n.stem, []).append(n)
        return out

    def step_time(self, step: int | Fraction) -> Fraction:
        """Seconds from the music's start of a grid step."""
        return self.tempo.time_at(Fraction(step) / self.steps_per_beat)

    @property
    def steps_per_bar(self) -> int:
        return self.steps_per_beat * self.tempo.beats_per_bar

    @property
    def duration(self) -> Fraction:
        return self.step_time(self.n_steps)

    def with_notes(self, notes: Iterable[Note]) -> "Score":
        return replace(self, notes=tuple(notes))
