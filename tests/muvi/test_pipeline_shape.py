"""The edit's shape through the whole pipeline: endings, hit points, sections, the MIDI's start."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import mido
import numpy as np
import pytest

from muvi.bwf import read_bwf
from muvi.errors import InvalidInputError
from muvi.media_gen import write_shot_clip
from muvi.music.keys import Key
from muvi.pipeline import GenerateOptions, Generator
from muvi.timeline import Rate, RationalTime, Segment, Timeline, TimeRange
from tests.muvi.nn.test_model_weights_prompt import tiny_model

R = Rate(25)


@pytest.fixture(scope="module")
def timeline(tmp_path_factory: pytest.TempPathFactory) -> Timeline:
    clip = write_shot_clip(tmp_path_factory.mktemp("shape") / "cuts.mp4", shots=[60, 70, 50, 70], rate=R,
                           size=(160, 96)).path
    return Timeline(R, (Segment(clip, TimeRange.from_frames(0, 250, R), RationalTime(90000, R)),))  # 10 s at 01:00:00:00


@pytest.fixture(scope="module")
def generator() -> Generator:
    return Generator(tiny_model())


def _opts(**kw: object) -> GenerateOptions:
    return GenerateOptions(**{"style": "pop", "seed": 2, "steps": 2, "preview": False, "key": "D major", **kw})  # type: ignore[arg-type]


def test_ring_ends_on_the_tonic_at_a_downbeat_and_nothing_sounds_past_the_end(
        timeline: Timeline, generator: Generator, tmp_path: Path) -> None:
    take = generator.generate(timeline, _opts(), tmp_path / "ring")
    shape = take.report["shape"]
    assert shape["ending"] == "ring" and shape["ends_on_tonic_downbeat"] and shape["pitched_notes_past_end"] == 0
    score, out_s = take.score, 10.0
    pitched = [n for n in score.notes if n.stem != "drums"]
    last = max(n.start for n in pitched)
    assert last % 16 == 0 and out_s - float(score.step_time(last)) <= 2 * 60 / score.tempo.bpm_at(0) * 4
    tonic = Key.parse("D major").tonic
    assert {n.pitch % 12 for n in pitched if n.start == last} >= {tonic}
    assert all(float(score.step_time(n.end)) <= out_s for n in pitched)
    assert all(n.start <= last for n in score.notes)  # the final downbeat is the last event
    # a fill into it, kick and crash on it
    drums = [n for n in score.notes if n.stem == "drums"]
    assert {36, 49} <= {n.pitch for n in drums if n.start == last}
    assert len([n for n in drums if last - 4 <= n.start < last]) == 4


def test_button_stab_loop_and_none(timeline: Timeline, generator: Generator, tmp_path: Path) -> None:
    button = generator.generate(timeline, _opts(ending="button"), tmp_path / "b")
    last = max(n.start for n in button.score.notes)
    assert last % 4 == 0 and all(n.end - n.start <= 2 for n in button.score.notes if n.start == last)
    loop = generator.generate(timeline, _opts(ending="loop"), tmp_path / "l")
    tempo = loop.score.tempo
    assert tempo.origin == 0 and tempo.beat_at(Fraction(10)) % 4 == 0  # whole bars, first frame to out point
    assert "wrap_silent_stem_bars" in loop.report["joins"]
    assert all(float(loop.score.step_time(n.end)) <= 10.0 + 1e-9 for n in loop.score.notes if n.stem != "drums")
    none = generator.generate(timeline, _opts(ending="none"), tmp_path / "n")
    assert none.report["shape"]["ending"] == "none" and none.report["shape"]["final_step"] is None


@pytest.mark.parametrize("frames", [30, 37, 50])  # 1.2, 1.5 and 2 s: under a bar at any pop tempo
def test_a_take_shorter_than_a_bar_still_ends_on_the_tonic_at_a_downbeat(
        timeline: Timeline, generator: Generator, tmp_path: Path, frames: int) -> None:
    seg = timeline.segments[0]
    short = Timeline(R, (Segment(seg.media, TimeRange.from_frames(0, frames, R), seg.record_start),))
    take = generator.generate(short, _opts(), tmp_path / "s")
    shape, out_s = take.report["shape"], frames / 25
    assert shape["ends_on_tonic_downbeat"] and shape["pitched_notes_past_end"] == 0, shape["ending_reason"]
    final = shape["final_step"]
    assert 0 <= float(take.score.step_time(final)) < out_s  # the downbeat lies in the picture
    beat = float(take.score.step_time(final + take.score.steps_per_beat) - take.score.step_time(final))
    assert beat <= out_s - float(take.score.step_time(final)) < 2 * beat  # the last beat with a beat to ring in
    beats = json.loads((tmp_path / "s" / "beats.json").read_text())
    assert any(abs(d - float(take.score.step_time(final))) < 1e-6 for d in beats["downbeats"])


@pytest.mark.parametrize("ending", ["ring", "button"])
def test_a_take_shorter_than_a_beat_is_one_sting_in_every_stem(
        timeline: Timeline, generator: Generator, tmp_path: Path, ending: str) -> None:
    seg = timeline.segments[0]
    short = Timeline(R, (Segment(seg.media, TimeRange.from_frames(0, 14, R), seg.record_start),))  # 0.56 s
    take = generator.generate(short, _opts(ending=ending, bpm=80), tmp_path / "sting")  # a beat is 0.75 s
    shape = take.report["shape"]
    assert shape["final_step"] == 0 and "sting" in shape["ending_reason"], shape["ending_reason"]
    first = {n.stem: n for n in take.score.notes if n.start == 0}
    assert set(first) == {"drums", "bass", "chords", "melody"}  # the tonic in every stem, from the first frame
    tonic = Key.parse("D major").tonic
    assert all(n.pitch % 12 == tonic for s, n in first.items() if s in ("bass", "melody"))
    assert shape["pitched_notes_past_end"] == 0
    assert all(v["empty_bar_ratio"] == 0.0 for v in take.report["musicality"]["stems"].values())


def test_hits_land_on_downbeats_and_a_stop_silences_the_beat_before(
        timeline: Timeline, generator: Generator, tmp_path: Path) -> None:
    take = generator.generate(timeline, _opts(hits=("3.3", "6.1:stop")), tmp_path / "h")
    hits = take.report["hit_points"]
    assert [h["landed"] for h in hits] == [True, True] and all(abs(h["error_frames"]) <= 1 for h in hits)
    score = take.score
    spb = score.steps_per_beat
    for h in hits:
        step = round(score.tempo.beat_at(Fraction(h["grid_time"]).limit_denominator(10**6)) * spb)
        assert step % 16 == 0  # a downbeat
        assert {36, 49} <= {n.pitch for n in score.notes if n.stem == "drums" and n.start == step}
    stop = round(score.tempo.beat_at(Fraction(hits[1]["grid_time"]).limit_denominator(10**6)) * spb)
    assert not [n for n in score.notes if stop - spb <= n.start < stop]
    assert not [n for n in score.notes if n.start < stop - spb < n.end and n.stem != "drums"]
    beats = json.loads((tmp_path / "h" / "beats.json").read_text())
    assert len(beats["hit_points"]) == 2 and beats["sections"][0]["start_bar"] == 0


def test_a_tail_lengthens_the_stems_and_the_report_says_so(timeline: Timeline, generator: Generator,
                                                            tmp_path: Path) -> None:
    take = generator.generate(timeline, _opts(tail=2.5), tmp_path / "t")
    first, n = timeline.sample_range()
    wav = read_bwf(tmp_path / "t" / "chords.wav")
    assert wav.audio.shape[1] == n + 2.5 * 48000 and wav.bext.time_reference == first
    assert take.report["audio"]["tail_seconds"] == 2.5 and take.report["audio"]["samples"] == n + 120000


def test_the_midi_starts_at_the_first_frame_like_the_stems(timeline: Timeline, generator: Generator,
                                                          tmp_path: Path) -> None:
    """drums.mid's first hit and drums.wav's first sound agree within 1 ms (less the drum
    sample's own attack, measured on the same note alone), and the file carries the
    timeline's start (01:00:00:00) as its SMPTE offset."""
    from muvi.music.score import Note, Score
    from muvi.music.tempo import TempoMap
    from muvi.render import SynthOptions, render_score

    generator.generate(timeline, _opts(bpm=97), tmp_path / "m")
    mf = mido.MidiFile(str(tmp_path / "m" / "drums.mid"))
    t, first, pitch, vel = 0.0, None, 0, 0
    for msg in mf:
        t += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            first, pitch, vel = t, msg.note, msg.velocity
            break
    assert first is not None
    alone = render_score(Score((Note(0, pitch, 1, vel, "drums"),), TempoMap.constant(120), 16, 4),
                         options=SynthOptions(), stems=["drums"], n_samples=9600)["drums"]
    attack = int(np.flatnonzero(np.abs(alone).max(axis=0) > 1e-4)[0]) / 48000
    smpte = [m for m in mf.tracks[0] if m.type == "smpte_offset"][0]
    assert (smpte.hours, smpte.minutes, smpte.seconds, smpte.frames) == (1, 0, 0, 0)
    audio = np.abs(read_bwf(tmp_path / "m" / "drums.wav").audio).max(axis=0)
    sound = int(np.flatnonzero(audio > 1e-4)[0]) / 48000
    assert abs(sound - attack - first) < 1e-3


def test_bad_shape_options_are_refused_naming_the_field(timeline: Timeline, generator: Generator,
                                                        tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="--ending"):
        GenerateOptions(ending="explode")
    with pytest.raises(InvalidInputError, match="--tail"):
        GenerateOptions(tail=31)
    with pytest.raises(InvalidInputError, match="closer than one beat"):
        GenerateOptions(hits=("2", "2.4"))
    with pytest.raises(InvalidInputError, match="--hit: bad hit"):
        GenerateOptions(hits=("soon",))
    with pytest.raises(InvalidInputError, match="outside the timeline"):
        generator.generate(timeline, _opts(hits=("12",)), tmp_path / "x")
    assert not (tmp_path / "x").exists()
