"""Procedural arranger: genre-labelled multi-stem pieces for the training corpus.

Each piece is made from a seed: a style (:mod:`muvi.music.styles`), key, tempo, meter and a
form of sections (intro / A / B / outro) of 2–8 bars. Per section it picks a diatonic chord
progression and harmonic rhythm, voices the chords with nearest-voice leading, writes a bass
line that follows the chord roots in the style's manner (eighths, root–fifth, walking, 808
slides, pedals…), a groove with per-bar variation, fills before section changes and crashes
after them, and a melody built from a motif with answers and cadences on chord tones. Section
dynamics shape velocities. Everything is in key by construction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from muvi.errors import InvalidInputError
from muvi.music.keys import Key
from muvi.music.roll import DRUM_CLASSES
from muvi.music.score import Note, Score
from muvi.music.styles import STYLES, StyleSpec
from muvi.music.tempo import TempoMap

__all__ = ["Chord", "parse_chord", "ArrangedPiece", "arrange"]

_QUALITIES = {
    "": (0, 4, 7), "m": (0, 3, 7), "dim": (0, 3, 6), "7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11),
    "m7": (0, 3, 7, 10), "m7b5": (0, 3, 6, 10), "sus4": (0, 5, 7),
}
_DEGREES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
_NUMERALS = ("I", "II", "III", "IV", "V", "VI", "VII")
_DRUM_NOTE = {name: note for name, note, _ in DRUM_CLASSES}
FORMS = (
    (("intro", 2), ("A", 8), ("B", 8), ("A", 8), ("outro", 2)),
    (("A", 8), ("A", 8), ("B", 8), ("B", 8)),
    (("intro", 4), ("A", 8), ("B", 8), ("outro", 4)),
    (("A", 4), ("B", 4), ("A", 4), ("B", 4), ("C", 4), ("B", 4)),
    (("intro", 4), ("A", 8), ("A", 8), ("B", 8), ("outro", 4)),
)
DYNAMICS = {"intro": 0.72, "A": 0.88, "B": 1.0, "C": 0.8, "outro": 0.7}


@dataclass(frozen=True)
class Chord:
    root: int  # pitch class
    intervals: tuple[int, ...]

    @property
    def pitch_classes(self) -> tuple[int, ...]:
        return tuple((self.root + i) % 12 for i in self.intervals)


def parse_chord(symbol: str, key: Key) -> Chord:
    """Roman numeral in ``key`` → :class:`Chord` (see :mod:`muvi.music.styles`)."""
    m = re.fullmatch(r"([b#]?)(VII|VI|V|IV|III|II|I|vii|vi|v|iv|iii|ii|i)(maj7|m7b5|m7|7|sus4|dim)?", symbol)
    if not m:
        raise InvalidInputError(f"bad chord symbol {symbol!r}")
    acc, numeral, suffix = m.group(1), m.group(2), m.group(3) or ""
    degree = _NUMERALS.index(numeral.upper())
    root = (key.tonic + _DEGREES[key.mode][degree] + (-1 if acc == "b" else 1 if acc == "#" else 0)) % 12
    minor = numeral.islower()
    if suffix == "7" and minor:
        suffix = "m7"
    elif suffix == "" and minor:
        suffix = "m"
    return Chord(root, _QUALITIES[suffix])


@dataclass(frozen=True)
class ArrangedPiece:
    score: Score
    style: str
    key: Key
    bpm: int
    beats_per_bar: int
    sections: tuple[tuple[str, int, int], ...]  # (name, first bar, bars)
    chords: tuple[tuple[int, int, tuple[int, ...]], ...]  # (step, root pc, intervals)
    stems_present: tuple[str, ...]


class _Builder:
    def __init__(self, style: StyleSpec, key: Key, spb: int, bpb: int, rng: np.random.Generator) -> None:
        self.style, self.key, self.spb, self.bpb, self.rng = style, key, spb, bpb, rng
        self.bar = spb * bpb
        self.notes: list[Note] = []

    def add(self, start: int, pitch: int, length: int, vel: float, stem: str) -> None:
        v = int(np.clip(round(vel + self.rng.normal(0, 5)), 20, 127))
        self.notes.append(Note(start, int(pitch), start + max(1, length), v, stem))

    def swing(self, step: int) -> int:
        """Hard swing on the 16th grid: the off-beat eighth moves to the last 16th of the beat."""
        return step + 1 if self.style.swing and step % self.spb == 2 else step

    # -- chords -------------------------------------------------------------------------------
    def voicing(self, chord: Chord, prev: list[int] | None, size: int, low: int = 52, high: int = 79) -> list[int]:
        pcs = list(chord.pitch_classes)[:size] if len(chord.pitch_classes) >= size else list(chord.pitch_classes)
        candidates = []
        for rot in range(len(pcs)):
            order = pcs[rot:] + pcs[:rot]
            for base in range(low, low + 12):
                if base % 12 != order[0]:
                    continue
                v, cur = [base], base
                for pc in order[1:]:
                    cur += (pc - cur) % 12 or 12
                    v.append(cur)
                if v[-1] <= high:
                    candidates.append(v)
        if not candidates:
            return [low + (pc - low) % 12 for pc in pcs]
        if prev is None:
            center = (low + high) / 2
            return min(candidates, key=lambda v: abs(np.mean(v) - center))
        return min(candidates, key=lambda v: sum(min(abs(p - q) for q in prev) for p in v))

    def comp(self, kind: str, start: int, length: int, chord: Chord, voicing: list[int], vel: float) -> None:
        spb = self.spb
        hits: list[tuple[int, int, list[int]]] = []
        if kind in ("whole", "pad"):
            hits = [(0, length, voicing)]
        elif kind == "quarters":
            hits = [(t, spb - 1, voicing) for t in range(0, length, spb)]
        elif kind in ("straight8", "power8"):
            root = min(p for p in range(48, 60) if p % 12 == chord.root)
            v = voicing if kind == "straight8" else [root, root + 7, root + 12]
            hits = [(t, 2, v) for t in range(0, length, 2)]
        elif kind == "push":
            hits = [(t, n, voicing) for t, n in ((0, 6), (6, 4), (10, 6)) if t < length]
        elif kind in ("stabs", "sparse", "charleston"):
            pat = {"stabs": ((0, 2), (6, 1), (10, 2)), "sparse": ((0, 8),), "charleston": ((0, 3), (6, 2))}[kind]
            hits = [(self.swing(t), n, voicing) for t, n in pat if t < length]
        elif kind == "offbeat_stabs":
            hits = [(t + 2, 1, voicing) for t in range(0, length, spb)]
        elif kind == "comp_swing":
            opts = [t for t in range(0, length, 2)]
            picks = sorted(self.rng.choice(opts, size=min(len(opts), 2), replace=False))
            hits = [(self.swing(int(t)), 2, voicing) for t in picks]
        elif kind in ("arp", "arp_slow", "ostinato"):
            step = 2 if kind != "arp_slow" else spb
            seq = voicing + voicing[1:-1][::-1] if kind != "ostinato" else [voicing[0], voicing[-1]] * 2
            hits = [(t, step, [seq[i % len(seq)]]) for i, t in enumerate(range(0, length, step))]
        elif kind == "strum":
            hits = [(t, spb, voicing) for t in range(0, length, spb)]
        else:
            raise InvalidInputError(f"unknown comping {kind!r}")
        pad = kind in ("pad", "whole")
        for t, n, pitches in hits:
            if t >= length:
                continue
            accent = 1.0 if t % self.bar == 0 else 0.9
            for p in pitches:
                self.add(start + t, p, min(n, length - t), vel * accent * (0.75 if pad else 0.85), "chords")

    # -- bass -----------------------------------------------------------------------------------
    def bass(self, kind: str, start: int, length: int, chord: Chord, nxt: Chord, prev_root: int, vel: float) -> int:
        root = min((p for p in range(28, 53) if p % 12 == chord.root), key=lambda p: abs(p - prev_root))
        fifth = root + 7 if root + 7 <= 60 else root - 5
        spb = self.spb
        seq: list[tuple[int, int, int]] = []
        if kind == "roots8":
            seq = [(t, 2, root) for t in range(0, length, 2)]
        elif kind == "root_fifth":
            seq = [(t, spb * 2 if self.bpb == 4 else spb, root if i % 2 == 0 else fifth)
                   for i, t in enumerate(range(0, length, spb * 2 if self.bpb == 4 else spb))]
        elif kind == "syncopated":
            seq = [(t, n, p) for t, n, p in ((0, 3, root), (3, 3, root), (6, 2, fifth), (10, 2, root), (12, 4, root + 12 if root + 12 <= 60 else root)) if t < length]
        elif kind == "root_octave":
            seq = [(t, 2, root if (t // 2) % 2 == 0 else root + 12) for t in range(0, length, 2)]
        elif kind == "offbeat":
            seq = [(t + 2, 2, root) for t in range(0, length, spb)]
        elif kind == "octave8":
            seq = [(t, 2, root if (t // 2) % 2 == 0 else min(root + 12, 60)) for t in range(0, length, 2)]
        elif kind == "pulse16":
            seq = [(t, 1, root) for t in range(0, length)]
        elif kind == "long808":
            seq = [(t, n, root) for t, n in ((0, 6), (6, 4), (10, 6)) if t < length]
        elif kind == "roots_sparse":
            seq = [(t, n, root) for t, n in ((0, 8), (10, 4)) if t < length]
        elif kind == "whole":
            seq = [(0, length, root)]
        elif kind == "pedal":
            tonic = min((p for p in range(28, 53) if p % 12 == self.key.tonic), key=lambda p: abs(p - prev_root))
            seq = [(0, length, tonic if self.rng.random() < 0.6 else root)]
        elif kind == "walking":
            target = min((p for p in range(28, 53) if p % 12 == nxt.root), key=lambda p: abs(p - root))
            n_beats = max(1, length // spb)
            line = [root]
            tones = [root + i for i in chord.intervals[1:]]
            while len(line) < n_beats - 1:
                line.append(int(self.rng.choice(tones)) if self.rng.random() < 0.6 else self._scale_step(line[-1], 1))
            if n_beats > 1:
                approach = self._scale_step(target, -1 if target > line[-1] else 1)
                line.append(approach)
            seq = [(i * spb, spb, p) for i, p in enumerate(line[:n_beats])]
        else:
            raise InvalidInputError(f"unknown bass {kind!r}")
        for t, n, p in seq:
            if t < length:
                p = p - 12 if p > 60 else p
                self.add(start + t, p, min(n, length - t), vel * (1.0 if t % spb == 0 else 0.85), "bass")
        return root

    def _scale_step(self, pitch: int, direction: int) -> int:
        p = pitch + direction
        while p % 12 not in self.key.pitch_classes:
            p += direction
        return p

    # -- drums ----------------------------------------------------------------------------------
    def groove(self, groove: dict[str, str], start: int, vel: float, *, fill: bool, crash: bool, sparse: bool) -> None:
        bar = self.bar
        for name, pattern in groove.items():
            if self.bpb == 3:
                pattern = self._waltz(name, pattern)
            for t, ch in enumerate(pattern[:bar]):
                if ch == "." or (fill and t >= bar - self.spb * (2 if self.rng.random() < 0.5 else 1)):
                    continue
                if sparse and name not in ("kick", "hh_closed", "ride", "hh_pedal") and self.rng.random() < 0.5:
                    continue
                if ch == "x" and name.startswith("hh") and self.rng.random() < 0.06:
                    continue  # ghost variation
                self.add(start + t, _DRUM_NOTE[name], 1, vel * (1.0 if ch == "X" else 0.8 if t % self.spb else 0.92), "drums")
        if crash:
            self.add(start, _DRUM_NOTE["crash"], 1, vel, "drums")
        if fill:
            n = self.spb * (2 if self.rng.random() < 0.5 else 1)
            voices = ["snare", "tom_high", "tom_low"] if self.rng.random() < 0.7 else ["snare"]
            for i, t in enumerate(range(bar - n, bar, 1 if self.rng.random() < 0.5 else 2)):
                name = voices[min(len(voices) - 1, i * len(voices) // n)]
                self.add(start + t, _DRUM_NOTE[name], 1, vel * (0.7 + 0.3 * i / n), "drums")

    def _waltz(self, name: str, pattern: str) -> str:
        if name == "kick":
            return "x..........."
        if name in ("snare", "clap", "rim"):
            return "....x...x..."
        return pattern[:12]

    # -- melody ---------------------------------------------------------------------------------
    def motif(self, density: float) -> list[tuple[int, int]]:
        """(onset, length) pairs inside one bar: denser on strong positions."""
        bar, spb = self.bar, self.spb
        weights = np.array([1.0 if t % spb == 0 else 0.55 if t % (spb // 2 or 1) == 0 else 0.18 for t in range(bar)])
        weights[0] = 1.0
        p = np.clip(weights * density / weights.mean() / spb, 0.02, 0.97)
        onsets = [t for t in range(bar) if self.rng.random() < p[t]] or [0]
        out = []
        for i, t in enumerate(onsets):
            nxt = onsets[i + 1] if i + 1 < len(onsets) else bar
            length = nxt - t if self.rng.random() < 0.8 else max(1, (nxt - t) // 2)
            out.append((self.swing(t), length))
        return out

    def melody_phrase(
        self, start_bar: int, chords: Sequence[tuple[int, Chord]], motif: list[tuple[int, int]], bars: int,
        vel: float, lo: int, hi: int, last_pitch: int, cadence: bool,
    ) -> int:
        """Write ``bars`` bars: motif, varied answer, new bar, cadence (repeating every 4)."""
        chord_at = dict(chords)
        steps_sorted = sorted(chord_at)
        pitch = last_pitch
        alt = self.motif(self.rng.uniform(*self.style.melody_density))
        for b in range(bars):
            role = b % 4
            rhythm = motif if role in (0, 1) else alt if role == 2 else motif[: max(1, len(motif) // 2)]
            bar0 = (start_bar + b) * self.bar
            for i, (t, n) in enumerate(rhythm):
                step = bar0 + t
                chord = chord_at[max(s for s in steps_sorted if s <= step)]
                strong = t % self.spb == 0
                last_of_phrase = role == 3 and i == len(rhythm) - 1
                if last_of_phrase and cadence:
                    targets = [p for p in range(lo, hi + 1) if p % 12 == self.key.tonic]
                    pitch = min(targets, key=lambda p: abs(p - pitch))
                    n = self.bar - t
                elif strong or self.rng.random() < 0.3:
                    tones = [p for p in range(lo, hi + 1) if p % 12 in chord.pitch_classes]
                    pitch = min(tones, key=lambda p: abs(p - pitch) + (0 if self.rng.random() < 0.7 else 5))
                else:
                    move = int(self.rng.choice([-2, -1, -1, 1, 1, 2, 3, -3]))
                    for _ in range(abs(move)):
                        pitch = self._scale_step(pitch, 1 if move > 0 else -1)
                    if role == 1 and self.rng.random() < 0.3:
                        pitch = self._scale_step(pitch, 1)
                pitch = int(np.clip(pitch, lo, hi))
                while pitch % 12 not in self.key.pitch_classes:
                    pitch -= 1
                self.add(step, pitch, max(1, min(n, self.bar - t)), vel * (1.0 if strong else 0.85), "melody")
        return pitch


def arrange(
    style: str,
    *,
    seed: int,
    key: Key | None = None,
    bpm: int | None = None,
    beats_per_bar: int | None = None,
    form: Sequence[tuple[str, int]] | None = None,
    steps_per_beat: int = 4,
) -> ArrangedPiece:
    """Arrange one piece of ``style`` (one of :data:`muvi.music.styles.STYLE_NAMES`)."""
    if style not in STYLES:
        raise InvalidInputError(f"unknown style {style!r}; choose from {', '.join(STYLES)}")
    spec = STYLES[style]
    rng = np.random.default_rng(seed)
    if key is None:
        key = Key(int(rng.integers(12)), "minor" if rng.random() < spec.minor_share else "major")
    bpm = int(bpm if bpm is not None else rng.integers(spec.tempo[0], spec.tempo[1] + 1))
    bpb = beats_per_bar or (3 if rng.random() < spec.waltz_share else 4)
    form = list(form or FORMS[int(rng.integers(len(FORMS)))])
    b = _Builder(spec, key, steps_per_beat, bpb, rng)
    has_drums = rng.random() < spec.drums_share
    programs = {s: int(rng.choice(progs)) for s, progs in spec.programs.items()}
    bank = spec.progressions_minor if key.mode == "minor" else spec.progressions_major
    section_plan: dict[str, tuple] = {}
    melody_lo, melody_hi = spec.melody_range
    prev_voicing: list[int] | None = None
    prev_root = 40
    last_pitch = (melody_lo + melody_hi) // 2
    chords_out: list[tuple[int, int, tuple[int, ...]]] = []
    sections: list[tuple[str, int, int]] = []
    bar_no = 0
    for si, (name, bars) in enumerate(form):
        if name not in section_plan:
            prog = [parse_chord(c, key) for c in str(rng.choice(bank)).split()]
            per_bar = int(rng.choice(spec.harmonic_rhythm))
            section_plan[name] = (
                prog, per_bar, spec.grooves[int(rng.integers(len(spec.grooves)))], str(rng.choice(spec.bass)),
                str(rng.choice(spec.comp)), b.motif(rng.uniform(*spec.melody_density)),
            )
        prog, per_bar, groove, bass_kind, comp_kind, motif = section_plan[name]
        dyn = DYNAMICS.get(name, 0.85)
        vel = 100 * dyn
        sections.append((name, bar_no, bars))
        # chords for each slot of this section
        slot = b.bar // per_bar
        slots = [(bar_no * b.bar + i * slot, prog[i % len(prog)]) for i in range(bars * per_bar)]
        if name == "outro":
            slots[-1] = (slots[-1][0], parse_chord("i" if key.mode == "minor" else "I", key))
        for i, (step, chord) in enumerate(slots):
            nxt = slots[i + 1][1] if i + 1 < len(slots) else prog[0]
            prev_voicing = b.voicing(chord, prev_voicing, 4 if comp_kind == "pad" else 3)
            b.comp(comp_kind, step, slot, chord, prev_voicing, vel)
            prev_root = b.bass(bass_kind if name != "intro" or rng.random() < 0.5 else "whole", step, slot, chord, nxt,
                               prev_root, vel)
            chords_out.append((step, chord.root, chord.intervals))
        if has_drums:
            for k in range(bars):
                start = (bar_no + k) * b.bar
                phrase_end = k == bars - 1 and si + 1 < len(form)
                b.groove(groove, start, vel, fill=phrase_end or (k % 4 == 3 and rng.random() < 0.3),
                         crash=k == 0 and name != "intro", sparse=name in ("intro", "outro"))
        if name != "intro" or rng.random() < 0.3:
            lo = melody_lo + (3 if name == "B" else 0)
            last_pitch = b.melody_phrase(bar_no, slots, motif, bars, vel, lo, melody_hi, last_pitch,
                                         cadence=name in ("B", "outro") or si == len(form) - 1 or rng.random() < 0.5)
        bar_no += bars
    n_steps = bar_no * b.bar
    tempo = TempoMap.constant(bpm, beats_per_bar=bpb)
    score = Score(tuple(b.notes), tempo, n_steps, steps_per_beat, programs, key=key.name, style=style)
    present = tuple(s for s in ("drums", "bass", "chords", "melody") if any(n.stem == s for n in b.notes))
    return ArrangedPiece(score, style, key, bpm, bpb, tuple(sections), tuple(chords_out), present)
