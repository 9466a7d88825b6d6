"""Keys: estimation (Krumhansl–Schmuckler with the Krumhansl–Kessler profiles), transposition
and scale snapping. Drums are never transposed or snapped."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from muvi.errors import InvalidInputError
from muvi.music.score import Note

__all__ = ["Key", "estimate_key", "pitch_class_histogram", "transpose", "snap_to_scale", "normalise_key_shift"]

NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_ALIASES = {"Db": 1, "D#": 3, "Gb": 6, "G#": 8, "A#": 10, "Cb": 11, "E#": 5, "Fb": 4, "B#": 0}
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
MAJOR_STEPS = (0, 2, 4, 5, 7, 9, 11)
MINOR_STEPS = (0, 2, 3, 5, 7, 8, 10, 11)  # natural minor plus the leading tone (harmonic minor)


@dataclass(frozen=True)
class Key:
    tonic: int  # pitch class 0..11
    mode: str = "major"  # "major" | "minor"

    def __post_init__(self) -> None:
        if not 0 <= self.tonic <= 11 or self.mode not in ("major", "minor"):
            raise InvalidInputError(f"bad key {self.tonic} {self.mode}")

    @classmethod
    def parse(cls, text: str) -> "Key":
        """``"C"``, ``"F# minor"``, ``"Bbm"``, ``"a minor"``, ``"Eb major"``."""
        m = re.fullmatch(r"\s*([A-Ga-g])([#b]?)\s*(major|minor|maj|min|m|M)?\s*", text)
        if not m:
            raise InvalidInputError(f"not a key: {text!r} (e.g. 'C', 'F# minor', 'Bbm')")
        name = m.group(1).upper() + m.group(2)
        tonic = NAMES.index(name) if name in NAMES else _ALIASES.get(name)
        if tonic is None:
            raise InvalidInputError(f"not a key: {text!r}")
        mode = "minor" if (m.group(3) or "") in ("minor", "min", "m") else "major"
        return cls(tonic, mode)

    @property
    def name(self) -> str:
        return f"{NAMES[self.tonic]} {self.mode}"

    def __str__(self) -> str:
        return self.name

    @property
    def pitch_classes(self) -> frozenset[int]:
        steps = MAJOR_STEPS if self.mode == "major" else MINOR_STEPS
        return frozenset((self.tonic + s) % 12 for s in steps)

    def contains(self, pitch: int) -> bool:
        return pitch % 12 in self.pitch_classes


def pitch_class_histogram(notes: Iterable[Note], *, drum_stems: Sequence[str] = ("drums",)) -> np.ndarray:
    """Duration-weighted pitch-class histogram (12,) of the pitched notes."""
    h = np.zeros(12)
    for n in notes:
        if n.stem not in drum_stems:
            h[n.pitch % 12] += n.length
    return h


def estimate_key(notes: Iterable[Note], *, drum_stems: Sequence[str] = ("drums",)) -> Key | None:
    """The key whose Krumhansl–Kessler profile correlates best with the notes (None if no notes)."""
    h = pitch_class_histogram(notes, drum_stems=drum_stems)
    if h.sum() == 0 or np.std(h) == 0:
        return None if h.sum() == 0 else Key(int(np.argmax(h)))
    best, best_r = Key(0), -2.0
    for mode, profile in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE)):
        for tonic in range(12):
            r = float(np.corrcoef(h, np.roll(profile, tonic))[0, 1])
            if r > best_r:
                best, best_r = Key(tonic, mode), r
    return best


def transpose(notes: Iterable[Note], semitones: int, *, drum_stems: Sequence[str] = ("drums",)) -> list[Note]:
    """Shift pitched notes by ``semitones`` (drums unchanged); pitches stay inside 0..127 by octaves."""
    out = []
    for n in notes:
        if n.stem in drum_stems or semitones == 0:
            out.append(n)
            continue
        p = n.pitch + semitones
        while p > 127:
            p -= 12
        while p < 0:
            p += 12
        out.append(Note(n.start, p, n.end, n.velocity, n.stem))
    return out


def snap_to_scale(notes: Iterable[Note], key: Key, *, drum_stems: Sequence[str] = ("drums",)) -> list[Note]:
    """Move out-of-scale pitched notes to the nearest scale tone (down on a tie)."""
    out = []
    for n in notes:
        if n.stem in drum_stems or key.contains(n.pitch):
            out.append(n)
            continue
        for d in (-1, 1, -2, 2):
            if 0 <= n.pitch + d <= 127 and key.contains(n.pitch + d):
                out.append(Note(n.start, n.pitch + d, n.end, n.velocity, n.stem))
                break
    return out


def normalise_key_shift(key: Key, target_tonic: int = 0) -> int:
    """Smallest transposition (−6..+5 semitones) that moves ``key``'s tonic to ``target_tonic``."""
    d = (target_tonic - key.tonic) % 12
    return d - 12 if d > 5 else d
