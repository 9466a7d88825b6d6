from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import mido
import pytest

from muvi.errors import InvalidInputError, MediaError
from muvi.music.keys import Key, estimate_key, normalise_key_shift, snap_to_scale, transpose
from muvi.music.midi import Part, assign_stems, read_midi, write_midi, write_stem_midis
from muvi.music.roll import RollSpec
from muvi.music.score import Note, Score
from muvi.music.tempo import TempoMap


@pytest.fixture(scope="module")
def chorale_midi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import music21

    score = music21.corpus.parse("bach/bwv66.6")
    path = tmp_path_factory.mktemp("midi") / "bwv66.6.mid"
    mf = music21.midi.translate.music21ObjectToMidiFile(score)
    mf.open(str(path), "wb")
    mf.write()
    mf.close()
    return path


def _cells(notes: list[Note]) -> set[tuple[str, int, int]]:
    return {(n.stem, t, n.pitch) for n in notes for t in range(n.start, n.end)}


def test_real_piece_round_trip_midi_roll_midi(chorale_midi: Path, tmp_path: Path) -> None:
    score = read_midi(chorale_midi)
    assert set(score.stems) == {"bass", "chords", "melody"}
    spec = RollSpec()
    in_range = [n for n in score.notes if spec.stem(n.stem).row_of(n.pitch) == n.pitch - spec.stem(n.stem).low]
    back = spec.decode(spec.encode(score.notes, score.n_steps))
    # every on-grid note whose pitch has no same-pitch overlap in its stem survives exactly
    overlapping = {
        (a.stem, a.pitch) for a in in_range for b in in_range
        if a is not b and a.stem == b.stem and a.pitch == b.pitch and a.start < b.end and b.start < a.end
    }
    clean = [n for n in in_range if (n.stem, n.pitch) not in overlapping]
    assert len(clean) > 100 and set(clean) <= set(back)
    # everything in range still sounds where it did and starts where it did
    assert _cells(in_range) <= _cells(back)
    assert {(n.stem, n.start, n.pitch) for n in in_range} <= {(n.stem, n.start, n.pitch) for n in back}
    # and through a MIDI file again
    again = read_midi(write_midi(score.with_notes(back), tmp_path / "again.mid"))
    assert {(n.start, n.pitch, n.end) for n in again.notes} == {(n.start, n.pitch, n.end) for n in back}
    assert estimate_key(score.notes) == Key.parse("F# minor")  # BWV 66.6 is in F# minor


def test_tempo_map_survives_and_beats_land_on_planned_seconds(tmp_path: Path) -> None:
    tempo = TempoMap.from_bpms([(0, Fraction("123.45")), (16, 90)], beats_per_bar=3)
    score = Score((Note(0, 60, 4, 90, "melody"), Note(0, 36, 1, 100, "drums")), tempo, 400, programs={"melody": 73})
    path = write_midi(score, tmp_path / "t.mid")
    mf = mido.MidiFile(str(path))
    # walk the file: absolute time of each beat from its tempo events
    us, t_us, beat_times, tick, changes = 500000, Fraction(0), {}, 0, {}
    for m in mf.tracks[0]:
        tick += m.time
        if m.type == "set_tempo":
            changes[tick] = m.tempo
    for b in range(100):
        beat_times[b] = t_us
        us = changes.get(b * mf.ticks_per_beat, us)
        t_us += us
    for b in (1, 15, 16, 17, 99):
        assert abs(beat_times[b] - tempo.time_at(b) * 1_000_000) <= Fraction(1, 2), b
    back = read_midi(path)
    assert back.tempo.beats_per_bar == 3 and back.programs == {"melody": 73}
    assert {(n.stem, n.start, n.pitch, n.end) for n in back.notes} == {("melody", 0, 60, 4), ("drums", 0, 36, 1)}


def test_stem_files_and_bad_files(tmp_path: Path) -> None:
    score = Score((Note(0, 40, 4, 90, "bass"), Note(0, 72, 2, 90, "melody")), TempoMap.constant(100), 16)
    files = write_stem_midis(score, tmp_path)
    assert sorted(files) == ["bass", "melody"]
    assert [n.pitch for n in read_midi(files["bass"]).notes] == [40]
    with pytest.raises(MediaError, match="file not found"):
        read_midi(tmp_path / "none.mid")
    (tmp_path / "bad.mid").write_bytes(b"MThd garbage")
    with pytest.raises(MediaError, match="not a readable MIDI"):
        read_midi(tmp_path / "bad.mid")


def test_stem_assignment() -> None:
    parts = [Part(0, False, 72, 1.0), Part(0, False, 64, 1.0), Part(0, False, 45, 1.0), Part(0, True, 40, 2.0),
             Part(48, False, 60, 3.0)]
    assert assign_stems(parts) == ["melody", "chords", "bass", "drums", "chords"]
    assert assign_stems([Part(33, False, 40, 1.0), Part(0, False, 40, 1.0)]) == ["bass", "melody"]


def test_keys_transpose_snap() -> None:
    assert Key.parse("Bbm") == Key(10, "minor") and Key.parse("eb major").name == "Eb major"
    with pytest.raises(InvalidInputError):
        Key.parse("H major")
    c_major = [Note(i * 4, p, i * 4 + 4, 90, "melody") for i, p in enumerate([60, 62, 64, 65, 67, 69, 71, 72, 67, 60])]
    assert estimate_key(c_major) == Key(0, "major")
    up = transpose(c_major + [Note(0, 36, 1, 90, "drums")], 7)
    assert estimate_key(up) == Key(7, "major") and up[-1].pitch == 36
    snapped = snap_to_scale([Note(0, 61, 2, 90, "melody"), Note(0, 66, 2, 90, "bass"), Note(0, 37, 1, 90, "drums")], Key(0))
    assert [n.pitch for n in snapped] == [60, 65, 37]
    assert normalise_key_shift(Key(7)) == 5 and normalise_key_shift(Key(5)) == -5 and normalise_key_shift(Key(6)) == -6
    assert Key(9, "minor").contains(68) and not Key(9, "minor").contains(66)


def test_every_key_can_be_written_as_a_key_signature() -> None:
    import mido

    from muvi.music.keys import Key
    from muvi.music.midi import _midi_key_name

    for tonic in range(12):
        for mode in ("major", "minor"):
            name = _midi_key_name(tonic, mode)
            mido.MetaMessage("key_signature", key=name)  # raises on a spelling MIDI cannot carry (e.g. 'Dbm')
            assert Key.parse(name) == Key(tonic, mode)


def _note_on_seconds(path: Path) -> list[float]:
    mf = mido.MidiFile(str(path))
    out, t = [], 0.0
    for msg in mf:  # iterating a file yields messages with their time in seconds
        t += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            out.append(t)
    return sorted(out)


def test_midi_for_a_take_starts_at_the_first_frame_with_its_smpte_offset(tmp_path: Path) -> None:
    from muvi.music.midi import MidiStart
    from muvi.timeline import Rate, RationalTime, Segment, Timeline, TimeRange

    # beat 0 is 0.55 s before the first frame (a pickup), the tempo changes twice
    tempo = TempoMap.from_bpms([(0, 120), (9, 96), (17, 131)], origin=Fraction(-11, 20))
    notes = [Note(s, 60 + s % 12, s + 2, 90, "chords") for s in range(0, 120, 3)]
    score = Score(tuple(notes), tempo, 128, 4, {"chords": 0})
    rate = Rate(24000, 1001)
    tl = Timeline(rate, (Segment(Path("x.mp4"), TimeRange.from_frames(0, 240, rate), RationalTime(86400, rate)),))
    start = MidiStart.of(tl)
    assert (start.hours, start.minutes, start.seconds, start.frames, start.frame_rate) == (1, 0, 0, 0, 24)
    path = write_midi(score, tmp_path / "take.mid", start=start)
    want = sorted(float(score.step_time(n.start)) for n in notes if score.step_time(n.start) >= 0)
    got = _note_on_seconds(path)
    assert len(got) == len(want) and max(abs(a - b) for a, b in zip(got, want)) < 1e-3
    mf = mido.MidiFile(str(path))
    assert any(m.type == "smpte_offset" and m.hours == 1 for m in mf.tracks[0])
    # the file's bar lines fall on the music's downbeats: its first measure is the pickup
    sigs = [m for m in mf.tracks[0] if m.type == "time_signature"]
    assert sigs[0].numerator < 4 and sigs[-1].numerator == 4
    assert read_midi(path).tempo.beats_per_bar == 4


def test_a_take_with_a_short_pickup_beat_reads_back(tmp_path: Path) -> None:
    """The first frame 0.05 s before a beat: the file's opening partial beat has a tempo over
    400 BPM, which reading ignores; the file still reads, its notes where they were."""
    from muvi.music.midi import MidiStart
    from muvi.timeline import Rate, RationalTime, Segment, Timeline, TimeRange

    tempo = TempoMap.from_bpms([(0, 120)], origin=Fraction(-9, 20))
    notes = [Note(s, 60 + s % 12, s + 2, 90, "chords") for s in range(4, 64, 4)]
    score = Score(tuple(notes), tempo, 64, 4, {"chords": 0})
    rate = Rate(25)
    tl = Timeline(rate, (Segment(Path("x.mp4"), TimeRange.from_frames(0, 200, rate), RationalTime(0, rate)),))
    back = read_midi(write_midi(score, tmp_path / "short.mid", start=MidiStart.of(tl)))
    assert len(back.notes) == len(notes) and back.tempo.bpm_at(4) == 120
