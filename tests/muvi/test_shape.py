from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from muvi.errors import InvalidInputError
from muvi.music.score import Note
from muvi.music.tempo import TempoChange, TempoMap
from muvi.sync import PlanAccent
from muvi.shape import (EditShape, Hit, Section, bars_for_ending, cadence_notes, check_hits, choose_ending, form_offsets, parse_hit,
                        plan_sections, shape_notes)


def _shape(**kw: object) -> EditShape:
    base = dict(ending="ring", ending_reason="test", out_step=Fraction(130), final_step=112, release_step=126,
                steps_per_beat=4, steps_per_bar=16)
    base.update(kw)
    return EditShape(**base)  # type: ignore[arg-type]


def test_parse_hit_and_its_errors() -> None:
    assert parse_hit("12.5") == Hit(Fraction(25, 2), stop=False)
    assert parse_hit(" 3:stop ") == Hit(Fraction(3), stop=True)
    for bad in ("x", "3:boom", ""):
        with pytest.raises(InvalidInputError, match="--hit"):
            parse_hit(bad)


def test_check_hits_refuses_outside_and_too_close() -> None:
    hits = check_hits([parse_hit("9"), parse_hit("2")], duration=10.0, min_gap=1.0)
    assert [float(h.time) for h in hits] == [2.0, 9.0]
    with pytest.raises(InvalidInputError, match="outside the timeline"):
        check_hits([parse_hit("10.5")], duration=10.0, min_gap=1.0)
    with pytest.raises(InvalidInputError, match="closer than one beat"):
        check_hits([parse_hit("2"), parse_hit("2.5")], duration=10.0, min_gap=1.0)


def test_choose_ending() -> None:
    assert choose_ending("auto", "pop")[0] == "ring"
    assert choose_ending("auto", "ambient")[0] == "fade"
    assert choose_ending("loop", "pop") == ("loop", "asked for")
    with pytest.raises(InvalidInputError, match="unknown ending 'boom'"):
        choose_ending("boom", "pop")


def test_sections_follow_a_lasting_change_and_long_timelines_get_a_form() -> None:
    energy = np.r_[np.full(12, 0.2), np.full(12, 0.9)]
    secs = plan_sections(energy, np.zeros(24), n_bars=24)
    assert [s.start_bar for s in secs] == [0, 12] and secs[1].reason == "picture energy change"
    # a brief flicker is not a section
    flicker = np.full(24, 0.5)
    flicker[10] = 1.0
    assert [s.start_bar for s in plan_sections(flicker, np.zeros(24), n_bars=24)] == [0]
    # a marker always starts one; 200 flat bars still get a form
    assert 7 in [s.start_bar for s in plan_sections(flicker, np.zeros(24), n_bars=24, marker_bars=[7])]
    long = plan_sections(np.full(200, 0.5), np.zeros(200), n_bars=200)
    starts = [s.start_bar for s in long]
    assert max(np.diff(starts + [200])) <= 32 and long[0].label == "intro" and long[-1].label == "outro"
    assert "peak" in {s.label for s in long}


def test_form_offsets_shape_the_levels() -> None:
    secs = [Section(0, "intro", "start"), Section(8, "peak", "form"), Section(16, "outro", "form")]
    off = form_offsets(secs, 24)
    assert off[0] < 0 < off[8] and off[20] < 0


def test_cadence_is_dominant_then_tonic_with_a_fill() -> None:
    notes = cadence_notes(_shape(), mode="major", stems=("drums", "bass", "chords", "melody"), drums=True, n_steps=144)
    before = {n.pitch % 12 for n in notes if n.stem == "chords" and n.start == 108}
    on = {n.pitch % 12 for n in notes if n.stem == "chords" and n.start == 112}
    assert before == {7, 11, 2} and on == {0, 4, 7}  # G major, then C major
    assert all(n.end <= 126 for n in notes if n.stem != "drums")
    drums = [n for n in notes if n.stem == "drums"]
    assert {36, 49} <= {n.pitch for n in drums if n.start == 112}
    assert len([n for n in drums if 108 <= n.start < 112]) == 4  # the fill
    minor = cadence_notes(_shape(), mode="minor", stems=("chords",), drums=False, n_steps=144)
    assert {n.pitch % 12 for n in minor if n.start == 112} == {0, 3, 7}
    button = cadence_notes(_shape(ending="button"), mode="major", stems=("bass",), drums=False, n_steps=144)
    assert max(n.end for n in button) == 114  # a stab


def test_shape_notes_end_stop_and_accent() -> None:
    notes = [Note(100, 60, 140, 90, "chords"), Note(120, 64, 124, 90, "melody"), Note(118, 36, 119, 90, "drums"),
             Note(40, 50, 70, 80, "bass"), Note(62, 55, 63, 80, "melody")]
    shaped, info = shape_notes(notes, _shape(hits=((64, True),)), stems=("drums", "bass", "chords", "melody"),
                               drums=True)
    assert all(n.start <= 112 for n in shaped)  # nothing after the final event
    assert all(n.end <= 126 for n in shaped if n.stem != "drums")
    assert not [n for n in shaped if 60 <= n.start < 64]  # the stop: the beat before the hit is silent
    assert not [n for n in shaped if n.stem != "drums" and n.start < 60 < n.end]
    assert {36, 49} <= {n.pitch for n in shaped if n.start == 64 and n.stem == "drums"}
    assert any(n.pitch == 50 and n.start == 64 for n in shaped)  # the bass re-attacked on the hit
    assert info["hits"] == 1
    faded, _ = shape_notes([Note(96 + 4 * i, 60, 98 + 4 * i, 100, "chords") for i in range(4)],
                           _shape(ending="fade", fade_from_step=96), stems=("chords",), drums=False)
    vel = [n.velocity for n in faded]
    assert vel == sorted(vel, reverse=True) and vel[-1] < vel[0]
    untouched, _ = shape_notes(notes, _shape(ending="none", final_step=None, release_step=1 << 30),
                               stems=("drums", "bass", "chords", "melody"), drums=True)
    assert sorted(untouched) == sorted(notes)


def test_a_take_that_ends_on_its_first_step_still_gets_its_tonic() -> None:
    shape = _shape(final_step=0, release_step=6, out_step=Fraction(8))
    notes = cadence_notes(shape, mode="major", stems=("drums", "bass", "chords", "melody"), drums=True, n_steps=16)
    assert notes and all(n.start == 0 for n in notes) and {n.pitch % 12 for n in notes if n.stem == "chords"} == {0, 4, 7}


def _grid(downbeat: int) -> TempoMap:  # 120 BPM, beat 0 at 0
    return TempoMap((TempoChange(Fraction(0), Fraction(1, 2)),), Fraction(0), 4, downbeat)


def test_the_bar_lines_put_the_tonic_on_the_last_beat_with_room_to_ring_unless_cuts_outweigh_it() -> None:
    # 4.6 s: beats 0..9; the last with a beat to ring in is beat 8 (4.0 s), a downbeat only if beat 0 is
    moved, why = bars_for_ending(_grid(1), Fraction(46, 10), ending="ring", tail=0.0)
    assert moved.is_downbeat(8) and "bar lines are moved" in why  # no cut: from a ring of 5.6 beats to 1.2
    kept, why = bars_for_ending(_grid(0), Fraction(46, 10), ending="ring", tail=0.0)
    assert kept.downbeat == 0 and why == ""  # already there
    cuts = [PlanAccent(Fraction(b, 2), 1.0) for b in (1, 5)]  # two cuts on beats 1 and 5: downbeats now
    kept, why = bars_for_ending(_grid(1), Fraction(46, 10), ending="ring", tail=0.0, accents=cuts, tolerance=Fraction(1, 25))
    assert kept.downbeat == 1 and why == ""
    one = cuts[:1]  # one cut weighs as much as the ending: a tie keeps the cut on its downbeat
    assert bars_for_ending(_grid(1), Fraction(46, 10), ending="ring", tail=0.0, accents=one,
                           tolerance=Fraction(1, 25))[0].downbeat == 1
    peak = [PlanAccent(Fraction(1, 2), 1.0, "motion")]  # a motion peak weighs less
    moved, _ = bars_for_ending(_grid(1), Fraction(46, 10), ending="ring", tail=0.0, accents=peak, tolerance=Fraction(1, 25))
    assert moved.is_downbeat(8)
    assert bars_for_ending(_grid(1), Fraction(46, 10), ending="button", tail=0.0)[0].downbeat == 1  # a button: any beat
    short, why = bars_for_ending(_grid(0), Fraction(24, 10), ending="ring", tail=0.0)  # beats 0-4, no downbeat in 1-3
    assert short.is_downbeat(3) and "shorter than a bar" in why
