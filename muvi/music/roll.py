"""The multi-stem piano roll the DiT generates (DESIGN §4).

Layout: an array ``(T, C, R)`` float32 in [-1, 1], ``T`` grid steps (16ths by default),
``C = 3`` channels (onset, sustain, velocity) and ``R`` rows: the stems' pitch rows
concatenated in :class:`RollSpec` order (drums as 12 GM drum classes). A cell is +1 where
true and −1 where false; velocity is ``2·v/127 − 1`` at onset cells and −1 elsewhere. The DiT
sees one token per step: ``roll.reshape(T, C * R)``.

``encode`` puts notes on the grid (out-of-range pitches are folded by octaves into the stem's
range); ``decode`` thresholds the planes back into notes with: re-articulation on a new
onset, sustain continuing a note, monophony where the stem asks for it (highest onset wins),
minimum lengths, a maximum length (no stuck notes), and every note ending inside the roll.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from muvi.errors import InvalidInputError
from muvi.music.score import Note

__all__ = [
    "ONSET",
    "SUSTAIN",
    "VELOCITY",
    "DRUM_CLASSES",
    "drum_class_of",
    "StemSpec",
    "RollSpec",
    "DEFAULT_STEMS",
]

ONSET, SUSTAIN, VELOCITY = 0, 1, 2

# (name, GM note used when rendering, GM notes mapped to this class)
DRUM_CLASSES: tuple[tuple[str, int, tuple[int, ...]], ...] = (
    ("kick", 36, (35, 36)),
    ("snare", 38, (38, 40)),
    ("rim", 37, (31, 37)),
    ("clap", 39, (39,)),
    ("hh_closed", 42, (42,)),
    ("hh_pedal", 44, (44,)),
    ("hh_open", 46, (46,)),
    ("tom_low", 45, (41, 43, 45)),
    ("tom_high", 48, (47, 48, 50)),
    ("crash", 49, (49, 52, 55, 57)),
    ("ride", 51, (51, 53, 59)),
    ("perc", 54, (54, 56, 58, *range(60, 82))),
)
_DRUM_LOOKUP = {p: i for i, (_, _, ps) in enumerate(DRUM_CLASSES) for p in ps}


def drum_class_of(pitch: int) -> int | None:
    """Index of the drum class of a GM percussion note, ``None`` if it has none."""
    return _DRUM_LOOKUP.get(pitch)


@dataclass(frozen=True)
class StemSpec:
    """One stem: its rows and how its notes behave."""

    name: str
    low: int = 0  # lowest MIDI pitch (pitched stems)
    high: int = 127  # highest MIDI pitch, inclusive
    drums: bool = False
    monophonic: bool = False
    program: int = 0  # default GM program (0-based), the style may change it
    min_steps: int = 1  # shorter decoded notes are dropped

    def __post_init__(self) -> None:
        if not self.drums and not (0 <= self.low <= self.high <= 127):
            raise InvalidInputError(f"stem {self.name}: bad pitch range {self.low}..{self.high}")
        if self.high - self.low < 11 and not self.drums:
            raise InvalidInputError(f"stem {self.name}: pitch range must span at least an octave")

    @property
    def n_rows(self) -> int:
        return len(DRUM_CLASSES) if self.drums else self.high - self.low + 1

    def row_of(self, pitch: int) -> int | None:
        """Row inside this stem for a pitch (pitched: folded by octaves into range)."""
        if self.drums:
            return drum_class_of(pitch)
        while pitch < self.low:
            pitch += 12
        while pitch > self.high:
            pitch -= 12
        return pitch - self.low if self.low <= pitch <= self.high else None

    def pitch_of(self, row: int) -> int:
        return DRUM_CLASSES[row][1] if self.drums else self.low + row


DEFAULT_STEMS: tuple[StemSpec, ...] = (
    StemSpec("drums", drums=True),
    StemSpec("bass", 28, 60, monophonic=True, program=33),
    StemSpec("chords", 48, 84, program=0),
    StemSpec("melody", 55, 96, monophonic=True, program=73),
)


@dataclass(frozen=True)
class RollSpec:
    """Grid, stems and decoding rules of the roll."""

    stems: tuple[StemSpec, ...] = DEFAULT_STEMS
    steps_per_beat: int = 4
    beats_per_bar: int = 4
    onset_threshold: float = 0.0
    sustain_threshold: float = 0.0
    max_note_steps: int = 64  # 4 bars of 4/4: longer holds are cut (no stuck notes)
    channels: tuple[str, ...] = field(default=("onset", "sustain", "velocity"), init=False)

    def __post_init__(self) -> None:
        names = [s.name for s in self.stems]
        if not names or len(set(names)) != len(names):
            raise InvalidInputError(f"stem names must be unique and non-empty: {names}")
        if self.steps_per_beat not in (2, 3, 4, 6, 8) or self.beats_per_bar not in (2, 3, 4, 6):
            raise InvalidInputError(f"unsupported grid {self.steps_per_beat} steps/beat, {self.beats_per_bar} beats/bar")

    # -- geometry -------------------------------------------------------------------------
    @property
    def n_rows(self) -> int:
        return sum(s.n_rows for s in self.stems)

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    @property
    def token_dim(self) -> int:
        return self.n_channels * self.n_rows

    @property
    def steps_per_bar(self) -> int:
        return self.steps_per_beat * self.beats_per_bar

    def stem(self, name: str) -> StemSpec:
        for s in self.stems:
            if s.name == name:
                return s
        raise InvalidInputError(f"unknown stem {name!r}; this roll has {[s.name for s in self.stems]}")

    def row_slice(self, name: str) -> slice:
        start = 0
        for s in self.stems:
            if s.name == name:
                return slice(start, start + s.n_rows)
            start += s.n_rows
        raise InvalidInputError(f"unknown stem {name!r}")

    def empty(self, n_steps: int) -> np.ndarray:
        roll = np.full((n_steps, self.n_channels, self.n_rows), -1.0, np.float32)
        return roll

    # -- encode ---------------------------------------------------------------------------
    def encode(self, notes: Iterable[Note], n_steps: int) -> np.ndarray:
        """Notes → roll (T, C, R). Notes of unknown stems or unmappable drums are skipped."""
        roll = self.empty(n_steps)
        offsets = {s.name: (self.row_slice(s.name).start, s) for s in self.stems}
        for n in notes:
            if n.stem not in offsets or n.start >= n_steps or n.start < 0:
                continue
            base, stem = offsets[n.stem]
            row = stem.row_of(n.pitch)
            if row is None:
                continue
            r = base + row
            end = n.start + 1 if stem.drums else min(n.end, n_steps)
            roll[n.start, ONSET, r] = 1.0
            roll[n.start:end, SUSTAIN, r] = 1.0
            roll[n.start, VELOCITY, r] = max(roll[n.start, VELOCITY, r], 2.0 * n.velocity / 127.0 - 1.0)
        return roll

    # -- decode ---------------------------------------------------------------------------
    def decode(self, roll: Any, *, stems: Sequence[str] | None = None) -> list[Note]:
        """Roll (T, C, R) (numpy or torch) → notes, sorted."""
        x = _as_numpy(roll)
        if x.ndim != 3 or x.shape[1] != self.n_channels or x.shape[2] != self.n_rows:
            raise InvalidInputError(f"roll must be (T, {self.n_channels}, {self.n_rows}), got {tuple(x.shape)}")
        n_steps = x.shape[0]
        onset = x[:, ONSET] > self.onset_threshold
        sustain = x[:, SUSTAIN] > self.sustain_threshold
        notes: list[Note] = []
        for stem in self.stems:
            if stems is not None and stem.name not in stems:
                continue
            sl = self.row_slice(stem.name)
            if stem.monophonic:
                stem_notes = self._decode_mono(stem, x[:, :, sl], onset[:, sl], sustain[:, sl], n_steps)
            else:
                stem_notes = []
                for row in range(stem.n_rows):
                    stem_notes += self._decode_row(stem, row, x[:, VELOCITY, sl.start + row], onset[:, sl.start + row],
                                                   sustain[:, sl.start + row], n_steps)
            notes += [n for n in stem_notes if n.length >= stem.min_steps]
        return sorted(notes)

    def _decode_row(
        self, stem: StemSpec, row: int, vel: np.ndarray, on: np.ndarray, sus: np.ndarray, n_steps: int
    ) -> list[Note]:
        out = []
        pitch = stem.pitch_of(row)
        for t in np.flatnonzero(on):
            t = int(t)
            end = t + 1
            if not stem.drums:
                while end < n_steps and sus[end] and not on[end] and end - t < self.max_note_steps:
                    end += 1
            out.append(Note(t, pitch, end, _velocity(vel[t]), stem.name))
        return out

    def _decode_mono(
        self, stem: StemSpec, x: np.ndarray, on: np.ndarray, sus: np.ndarray, n_steps: int
    ) -> list[Note]:
        """One note at a time: at each onset step the strongest onset wins; a new onset ends
        the sounding note."""
        out: list[Note] = []
        starts = np.flatnonzero(on.any(axis=1))
        for i, t in enumerate(starts):
            t = int(t)
            rows = np.flatnonzero(on[t])
            row = int(rows[np.argmax(x[t, ONSET, rows])])
            limit = int(starts[i + 1]) if i + 1 < len(starts) else n_steps
            end = t + 1
            while end < limit and sus[end, row] and end - t < self.max_note_steps:
                end += 1
            out.append(Note(t, stem.pitch_of(row), end, _velocity(x[t, VELOCITY, row]), stem.name))
        return out

    # -- tokens ---------------------------------------------------------------------------
    def to_tokens(self, roll: np.ndarray) -> np.ndarray:
        """(T, C, R) → (T, C*R) token features."""
        return roll.reshape(roll.shape[0], -1)

    def from_tokens(self, tokens: Any) -> np.ndarray:
        """(T, C*R) → (T, C, R)."""
        x = _as_numpy(tokens)
        return x.reshape(x.shape[0], self.n_channels, self.n_rows)


def _velocity(v: float) -> int:
    return int(np.clip(round((float(v) + 1.0) / 2.0 * 127.0), 1, 127))


def _as_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float32)
