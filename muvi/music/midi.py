"""MIDI in and out (mido), with exact tempo maps.

Reading keeps the file's tempo map (µs per quarter, exactly) and its first time signature,
pairs note-on/off per channel and pitch, and assigns each track/channel to a stem: channel 10
is drums; GM bass programs (32–39) are bass; other parts by register and polyphony (see
:func:`assign_stem`). Notes are quantised to the grid: ``round(tick / ppq * steps_per_beat)``.

Writing produces a type-1 file: a tempo track (time signature, key, tempo) and one track per
stem with its program (drums on channel 10). MIDI tempo is whole µs per quarter, so the
writer diffuses the rounding error over beats: every beat lands within 0.5 µs of the planned
time, with no drift however long the piece.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from muvi.errors import InvalidInputError, MediaError
from muvi.fileio import atomic_path
from muvi.music.keys import Key
from muvi.music.perform import TICKS_PER_BEAT, Performance, grid_performance
from muvi.music.score import Note, Score
from muvi.music.tempo import TempoChange, TempoMap

__all__ = ["read_midi", "write_midi", "write_stem_midis", "MidiStart", "Part", "assign_stems", "PPQ"]

PPQ = TICKS_PER_BEAT  # 480: a performance's times are whole ticks
DRUM_CHANNEL = 9


def _mido() -> Any:
    import mido

    return mido


@dataclass(frozen=True)
class Part:
    """One track/channel of a file, summarised for stem assignment."""

    program: int
    is_drum: bool
    median_pitch: float
    polyphony: float  # mean number of notes sounding while any sounds


def assign_stems(parts: Sequence[Part]) -> list[str]:
    """Stem for each part of one piece.

    drums: channel 10. bass: GM bass programs (32–39), else the lowest mostly-monophonic part
    if it lies low (median below G3). melody: the highest mostly-monophonic remaining part.
    chords: everything else (polyphonic parts and inner voices).
    """
    stems = ["drums" if p.is_drum else "" for p in parts]
    pitched = [i for i, p in enumerate(parts) if not p.is_drum]
    for i in pitched:
        if 32 <= parts[i].program <= 39:
            stems[i] = "bass"
    mono = [i for i in pitched if parts[i].polyphony < 1.3 and not stems[i]]
    if "bass" not in stems and mono:
        low = min(mono, key=lambda i: parts[i].median_pitch)
        if parts[low].median_pitch < 55 and len(pitched) > 1:
            stems[low] = "bass"
            mono.remove(low)
    if mono:
        stems[max(mono, key=lambda i: parts[i].median_pitch)] = "melody"
    return [s or "chords" for s in stems]


def read_midi(path: Path | str, *, steps_per_beat: int = 4) -> Score:
    """Read a MIDI file into a :class:`Score` on the grid (notes that round to zero length get one step)."""
    mido = _mido()
    path = Path(path)
    try:
        mf = mido.MidiFile(str(path))
    except FileNotFoundError as exc:
        raise MediaError(path, "file not found") from exc
    except Exception as exc:  # mido raises OSError/ValueError/EOFError for bad files
        raise MediaError(path, f"not a readable MIDI file ({exc})") from exc
    if mf.type == 2:
        raise MediaError(path, "MIDI type 2 (independent sequences) is not supported")
    ppq = mf.ticks_per_beat
    tempos: dict[int, int] = {}
    meters: list[tuple[int, tuple[int, int]]] = []  # (tick, (numerator, denominator))
    parts: dict[tuple[int, int], list[tuple[int, int, int, int]]] = defaultdict(list)  # (track, ch) -> notes
    programs: dict[tuple[int, int], int] = {}
    for ti, track in enumerate(mf.tracks):
        tick = 0
        open_notes: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
        for msg in track:
            tick += msg.time
            if msg.type == "set_tempo":
                tempos[tick] = msg.tempo
            elif msg.type == "time_signature":
                meters.append((tick, (msg.numerator, msg.denominator)))
            elif msg.type == "program_change":
                programs.setdefault((ti, msg.channel), msg.program)
            elif msg.type == "note_on" and msg.velocity > 0:
                open_notes[(msg.channel, msg.note)].append((tick, msg.velocity))
            elif msg.type in ("note_off", "note_on"):
                stack = open_notes.get((msg.channel, msg.note))
                if stack:
                    start, vel = stack.pop(0)
                    parts[(ti, msg.channel)].append((start, tick, msg.note, vel))
    beats_per_bar = 4
    meter = _main_meter(meters, end=max((e for notes in parts.values() for _, e, _, _ in notes), default=0))
    if meter is not None:
        q = Fraction(meter[0] * 4, meter[1])
        if q.denominator == 1 and int(q) in (2, 3, 4, 6):
            beats_per_bar = int(q)
    tempo = _tempo_map(tempos, ppq, beats_per_bar)
    keys = [k for k, raw in parts.items() if raw]
    summary = [
        Part(programs.get(k, 0), k[1] == DRUM_CHANNEL, float(np.median([p for _, _, p, _ in parts[k]])), _polyphony(parts[k]))
        for k in keys
    ]
    stem_of = dict(zip(keys, assign_stems(summary)))
    notes: list[Note] = []
    last = 0
    stem_programs: dict[str, int] = {}
    for k in keys:
        stem, is_drum = stem_of[k], k[1] == DRUM_CHANNEL
        if not is_drum:
            stem_programs.setdefault(stem, programs.get(k, 0))
        for start, end, pitch, vel in parts[k]:
            s = round(Fraction(start * steps_per_beat, ppq))
            e = max(s + 1, round(Fraction(end * steps_per_beat, ppq)))
            notes.append(Note(s, pitch, s + 1 if is_drum else e, vel, stem))
            last = max(last, e)
    n_steps = math.ceil(last / (steps_per_beat * beats_per_bar)) * steps_per_beat * beats_per_bar
    return Score(tuple(notes), tempo, n_steps, steps_per_beat, stem_programs)


def _polyphony(raw: list[tuple[int, int, int, int]]) -> float:
    """Mean number of notes sounding while any sounds."""
    if not raw:
        return 0.0
    total = sum(e - s for s, e, _, _ in raw)
    events = sorted([(s, 1) for s, _, _, _ in raw] + [(e, -1) for _, e, _, _ in raw])
    covered, depth, prev = 0, 0, None
    for t, d in events:
        if depth > 0 and prev is not None:
            covered += t - prev
        depth += d
        prev = t
    return total / covered if covered else 1.0


def _main_meter(meters: list[tuple[int, tuple[int, int]]], *, end: int) -> tuple[int, int] | None:
    """The time signature in force longest (a file may open with a short pickup measure)."""
    if not meters:
        return None
    meters = sorted(meters)
    spans: dict[tuple[int, int], int] = {}
    for (tick, m), nxt in zip(meters, [t for t, _ in meters[1:]] + [max(end, meters[-1][0] + 1)]):
        spans[m] = spans.get(m, 0) + max(0, nxt - tick)
    return max(spans, key=lambda m: spans[m])  # on a tie, the first


def _tempo_map(tempos: dict[int, int], ppq: int, beats_per_bar: int) -> TempoMap:
    if 0 not in tempos:
        tempos = {0: 500000, **tempos}
    changes = []
    for tick in sorted(tempos):
        spb = Fraction(tempos[tick], 1_000_000)
        if not (Fraction(60, 400) <= spb <= Fraction(3)):
            continue  # absurd tempo events (some files carry them) are ignored
        beat = Fraction(tick, ppq)
        if changes and changes[-1].seconds_per_beat == spb:
            continue
        if changes and changes[-1].beat == beat:
            changes[-1] = TempoChange(beat, spb)
        else:
            changes.append(TempoChange(beat, spb))
    if changes and changes[0].beat != 0:  # the first event was absurd (a take's short pickup beat): from beat 0 on
        changes[0] = TempoChange(Fraction(0), changes[0].seconds_per_beat)
    return TempoMap(tuple(changes) or (TempoChange(Fraction(0), Fraction(1, 2)),), beats_per_bar=beats_per_bar)


# -- writing ------------------------------------------------------------------------------
@dataclass(frozen=True)
class MidiStart:
    """The SMPTE offset a MIDI file carries: where its tick 0 (the timeline's first frame) sits
    on the editor's clock — the same instant as the WAV stems' BWF TimeReference.

    MIDI writes SMPTE at 24, 25, 29.97 (drop-frame) or 30 fps; a timeline at 23.976 counts in
    24 fps code, at 29.97 in 30 fps non-drop code (frame for frame, as the editor shows it), at
    48/50/60 (and 47.952/59.94) in half that with the odd frame as 50 sub-frames; any other
    rate is written as 30 fps code of its start time in seconds."""

    hours: int
    minutes: int
    seconds: int
    frames: int
    sub_frames: int
    frame_rate: int  # 24, 25 or 30

    @classmethod
    def of(cls, timeline: Any) -> "MidiStart":
        rate = timeline.rate
        nominal = round(rate.num / rate.den)
        frame = int(timeline.start.value)
        if nominal in (24, 25, 30):
            fps, f, sub = nominal, frame, 0
        elif nominal in (48, 50, 60):
            fps, f, sub = nominal // 2, frame // 2, 50 * (frame % 2)
        else:
            total = Fraction(frame) * rate.den / rate.num * 30
            fps, f, sub = 30, math.floor(total), math.floor((total - math.floor(total)) * 100)
        secs, frames = divmod(f, fps)
        mins, secs = divmod(secs, 60)
        hours, mins = divmod(mins, 60)
        return cls(hours % 24, mins, secs, frames, sub, fps)

    def message(self) -> Any:
        return _mido().MetaMessage("smpte_offset", frame_rate=self.frame_rate, hours=self.hours, minutes=self.minutes,
                                   seconds=self.seconds, frames=self.frames, sub_frames=self.sub_frames, time=0)


@dataclass(frozen=True)
class _Clock:
    """Music beats → MIDI ticks with tick 0 at the music's time 0 (the timeline's first frame).

    Beat 0 of a tempo map may lie before time 0 (a pickup: the first bar starts before the
    picture). The file then opens with one MIDI beat that spans exactly from time 0 to the
    first whole beat after it (its own tempo event), and a first measure short enough that the
    file's bar lines fall on the music's downbeats; what lies before time 0 is dropped."""

    b0: Fraction  # the music's beat at time 0
    first: int  # the first whole beat at or after it
    pickup: int  # 1 when the file opens with the partial beat, else 0

    @classmethod
    def of(cls, tempo: TempoMap) -> "_Clock":
        b0 = max(Fraction(0), tempo.beat_at(0))
        first = math.ceil(b0)
        return cls(b0, first, int(first > b0))

    def tick(self, beat: Fraction) -> int:
        if beat >= self.first:
            return int(round((beat - self.first + self.pickup) * PPQ))
        return int(round((beat - self.b0) / (self.first - self.b0) * PPQ))


def _tempo_events(tempo: TempoMap, n_beats: int, clock: _Clock | None = None) -> list[tuple[int, int]]:
    """(tick, µs per quarter) events; rounding error diffused so every beat lands within 0.5 µs
    of its planned time (from the music's time 0 when ``clock`` is given, else from beat 0)."""
    clock = clock or _Clock(Fraction(0), 0, 0)
    events: list[tuple[int, int]] = []
    origin = tempo.time_at(clock.b0)
    planned_us = (tempo.time_at(clock.first) - origin) * 1_000_000  # planned time of the beat reached
    written_us = 0
    current = None
    if clock.pickup:
        us = int(math.floor(planned_us + Fraction(1, 2)))
        events.append((0, max(1, us)))
        written_us, current = us, us
    for b in range(clock.first, clock.first + max(1, n_beats)):
        spb_us = tempo.seconds_per_beat_at(b) * 1_000_000
        planned_us += spb_us
        us = int(math.floor(planned_us - written_us + Fraction(1, 2)))
        written_us += us
        if us != current:
            events.append(((b - clock.first + clock.pickup) * PPQ, us))
            current = us
    return events


# the spellings a MIDI key signature can carry (at most 7 sharps or flats): D♭ major but C♯ minor
_MAJOR_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_MINOR_NAMES = ("Cm", "C#m", "Dm", "Ebm", "Em", "Fm", "F#m", "Gm", "G#m", "Am", "Bbm", "Bm")


def _midi_key_name(tonic: int, mode: str) -> str:
    return (_MINOR_NAMES if mode == "minor" else _MAJOR_NAMES)[tonic % 12]


def _score_tracks(score: Score, stems: Sequence[str], start: MidiStart | None = None,
                  performance: Performance | None = None) -> list[Any]:
    mido = _mido()
    if score.steps_per_beat <= 0 or PPQ % score.steps_per_beat:
        raise InvalidInputError(f"steps per beat {score.steps_per_beat} does not divide {PPQ}")
    clock = _Clock.of(score.tempo) if start is not None else _Clock(Fraction(0), 0, 0)
    spb = score.steps_per_beat
    n_beats = math.ceil(score.n_steps / spb) + 1 - clock.first
    meta = mido.MidiTrack()
    meta.append(mido.MetaMessage("track_name", name="tempo", time=0))
    if start is not None:
        meta.append(start.message())
    bpb = score.tempo.beats_per_bar
    lead = next(b for b in range(clock.first, clock.first + bpb) if score.tempo.is_downbeat(b)) - clock.first + clock.pickup
    signatures = [(0, lead), (lead * PPQ, bpb)] if lead else [(0, bpb)]
    events: list[tuple[int, int, Any]] = [(t, 0, mido.MetaMessage("time_signature", numerator=n, denominator=4))
                                          for t, n in signatures]
    if score.key:
        k = Key.parse(score.key)
        events.append((0, 1, mido.MetaMessage("key_signature", key=_midi_key_name(k.tonic, k.mode))))
    events += [(t, 2, mido.MetaMessage("set_tempo", tempo=us)) for t, us in _tempo_events(score.tempo, n_beats, clock)]
    tick = 0
    for t, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        meta.append(msg.copy(time=t - tick))
        tick = t
    tracks = [meta]
    by_stem = (performance or grid_performance(score)).by_stem()
    channel = 0
    for stem in stems:
        is_drum = stem == "drums"
        ch = DRUM_CHANNEL if is_drum else channel
        if not is_drum:
            channel += 1 + (channel + 1 == DRUM_CHANNEL)
        tr = mido.MidiTrack()
        tr.append(mido.MetaMessage("track_name", name=stem, time=0))
        if not is_drum:
            tr.append(mido.Message("program_change", channel=ch, program=int(score.programs.get(stem, 0)), time=0))
        notes = []
        for p in by_stem.get(stem, []):
            if p.on < clock.b0:  # before the first frame: not in the stems either
                continue
            a, e = clock.tick(p.on), clock.tick(p.off)
            notes += [(e, 0, p.pitch, 0), (a, 1, p.pitch, p.velocity)] if e > a else []
        notes.sort()  # offs before ons at the same tick
        tick = 0
        for t, on, pitch, vel in notes:
            kind = "note_on" if on else "note_off"
            tr.append(mido.Message(kind, channel=ch, note=pitch, velocity=vel if on else 0, time=t - tick))
            tick = t
        tracks.append(tr)
    return tracks


def write_midi(score: Score, path: Path | str, *, stems: Sequence[str] | None = None,
               start: MidiStart | None = None, performance: Performance | None = None) -> Path:
    """Write one type-1 MIDI file with a track per stem and the score's tempo map (atomic).
    With ``start`` (a take for a timeline), tick 0 is the music's time 0 — the timeline's first
    frame, where the stems start — and the file carries that SMPTE offset; without it, tick 0
    is the score's beat 0. With ``performance`` the notes are written as played (its timing,
    velocities and ghost notes, :mod:`muvi.music.perform`), else on the grid."""
    mido = _mido()
    stems = list(stems) if stems is not None else list(score.stems)
    mf = mido.MidiFile(type=1, ticks_per_beat=PPQ)
    mf.tracks.extend(_score_tracks(score, stems, start, performance))
    path = Path(path)
    with atomic_path(path) as tmp:
        mf.save(str(tmp))
    return path


def write_stem_midis(score: Score, out_dir: Path | str, *, stems: Sequence[str] | None = None,
                     start: MidiStart | None = None, performance: Performance | None = None) -> dict[str, Path]:
    """One MIDI file per stem (``<stem>.mid``), each with the tempo map (``start`` and
    ``performance``: as :func:`write_midi`)."""
    out = {}
    for stem in stems if stems is not None else score.stems:
        out[stem] = write_midi(score, Path(out_dir) / f"{stem}.mid", stems=[stem], start=start, performance=performance)
    return out
