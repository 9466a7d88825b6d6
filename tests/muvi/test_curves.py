"""Control curves: from music, from the picture, the styles' ranges and the user's controls."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from muvi.curves import (CONTROL_CHANNELS, CONTROLS, N_CONTROLS, CurveRanges, auto_quantiles, curve_dropout,
                         curve_tokens, music_curves, parse_energy, parse_energy_curve, picture_levels, quantile_levels, rank_levels,
                         spearman)
from muvi.errors import InvalidInputError
from muvi.music.score import Note


def _bar_notes(bar: int, hits: int, stem: str = "drums", pitch: int = 36) -> list[Note]:
    return [Note(bar * 16 + i, pitch, bar * 16 + i + 1, 90, stem) for i in range(hits)]


def test_music_curves_count_onsets_per_bar_and_stem() -> None:
    notes = _bar_notes(0, 4) + _bar_notes(1, 16) + [Note(16, 48, 32, 80, "bass")]
    c = music_curves(notes, n_steps=48, steps_per_bar=16)
    i = {k: CONTROLS.index(k) for k in CONTROLS}
    assert c.shape == (3, N_CONTROLS)
    assert c[0, i["intensity"]] == pytest.approx(4 / 16) and c[1, i["intensity"]] == pytest.approx(1.0)
    assert c[1, i["intensity_bass"]] == pytest.approx(1 / 16) and c[0, i["intensity_bass"]] == 0
    assert c[2].sum() == 0  # an empty bar
    assert c[0, i["density"]] < c[1, i["density"]]
    assert c[1, i["polyphony"]] == pytest.approx(1 / 8)  # one bass note sounding through bar 1
    assert 0 < c[1, i["novelty"]] <= 1 and c[0, i["novelty"]] == 0


def test_curve_tokens_carry_each_bar_with_its_mask() -> None:
    values = np.tile(np.linspace(0, 1, 3)[:, None], (1, N_CONTROLS)).astype(np.float32)
    mask = np.ones_like(values)
    mask[:, 2] = 0
    tok = curve_tokens(values, mask, n_steps=40, steps_per_bar=16)
    assert tok.shape == (40, CONTROL_CHANNELS)
    assert np.allclose(tok[:16, 0], 0) and np.allclose(tok[16:32, 0], 0.5) and np.allclose(tok[32:, 0], 1.0)
    assert np.all(tok[:, 2] == 0) and np.all(tok[:, N_CONTROLS + 2] == 0) and np.all(tok[:, N_CONTROLS] == 1)
    with pytest.raises(InvalidInputError):
        curve_tokens(values[:, :3], mask[:, :3], n_steps=4, steps_per_bar=4)


def test_curve_dropout_drops_all_or_each() -> None:
    rng = np.random.default_rng(0)
    masks = [curve_dropout(4, rng) for _ in range(400)]
    all_dropped = np.mean([m.sum() == 0 for m in masks])
    assert 0.15 < all_dropped < 0.35
    kept = np.mean([m[0].mean() for m in masks if m.sum() > 0])
    assert 0.7 < kept < 0.9
    assert all(np.all(m == m[0]) for m in masks)  # a whole window keeps or drops a curve


def _ranges() -> CurveRanges:
    q = np.linspace(0.1, 0.9, 21)[:, None].repeat(N_CONTROLS, 1)
    presence = np.ones(N_CONTROLS)
    presence[CONTROLS.index("intensity_drums")] = 0.2  # a style that mostly plays without drums
    presence[CONTROLS.index("intensity_melody")] = 0.0  # and never with a melody
    return CurveRanges({"none": {"quantiles": q, "presence": presence}})


def test_ranges_map_levels_into_the_style_range_and_leave_rare_stems_free() -> None:
    r = CurveRanges.from_json(_ranges().to_json())
    v, m = r.values("pop", np.array([0.0, 0.5, 1.0]), novelty_levels=None)  # unknown style → pooled "none"
    assert np.allclose(v[:, 0], [0.1, 0.5, 0.9])
    assert np.all(m[:, CONTROLS.index("intensity_drums")] == 1)  # asked for at its range where it plays
    assert np.all(m[:, CONTROLS.index("intensity_melody")] == 0) and np.all(m[:, CONTROLS.index("novelty")] == 0)
    assert r.entry("pop") is r.entry(None)  # an unknown style reads the pooled range


def test_picture_levels_follow_motion_and_cuts() -> None:
    frames = 80
    motion = np.r_[np.full(40, 0.01), np.full(40, 0.08)]  # calm, then busy
    feats = np.random.default_rng(0).normal(size=(frames, 12))
    pos = np.linspace(0, frames - 1, 64).astype(np.float32)  # 4 bars of 16 steps
    energy, novelty, raw = picture_levels(motion=motion, cuts=[70], features=feats, positions=pos, steps_per_bar=16)
    assert energy.shape == (4,) and novelty.shape == (4,)
    assert energy[0] < energy[2] and energy[3] == energy.max()
    assert raw["cuts"][3] == 1
    flat, _, _ = picture_levels(motion=np.full(80, 0.02), cuts=[], features=feats, positions=pos, steps_per_bar=16)
    assert np.allclose(flat, 0.5)
    # a take of 3 bars (calm, calm, busy) sampled as 4: only its own bars are ranked, the 4th mirrors the 3rd
    short, nov, _ = picture_levels(motion=motion, cuts=[], features=feats, positions=pos, steps_per_bar=16, take_bars=3)
    assert np.allclose(short, [0.375, 0.375, 0.75, 0.75]) and nov[3] == nov[2]


def test_energy_controls() -> None:
    assert parse_energy(None) == 0.5 and parse_energy("HIGH") == 0.75 and parse_energy("0.3") == 0.3
    for bad in ("loud", "1.5", "-0.1"):
        with pytest.raises(InvalidInputError, match="--energy"):
            parse_energy(bad)
    q = auto_quantiles(np.array([0.0, 0.5, 1.0]), 0.75)
    assert q[0] < q[1] < q[2] <= 0.97 and q[1] == pytest.approx(0.75)
    c = parse_energy_curve("0:0.2, 12.5:0.9,30:0.4", duration=30.0)
    assert np.allclose(c.at([0, 6.25, 12.5, 40]), [0.2, 0.55, 0.9, 0.4]) and c.text() == "0:0.2,12.5:0.9,30:0.4"


@pytest.mark.parametrize("text,match", [
    ("", "no points"), ("0:0.2,x", "bad point 'x'"), ("0:1.5", "level 1.5"), ("0:0.2,40:0.5", "outside the timeline"),
    ("5:0.2,2:0.5", "does not come after"), ("nan:0.3", "not finite"),
])
def test_a_malformed_energy_curve_is_refused_naming_the_point(text: str, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        parse_energy_curve(text, duration=30.0)


def test_rank_levels_and_spearman() -> None:
    assert np.allclose(rank_levels([3, 1, 2]), [1.0, 0.0, 0.5])
    assert np.allclose(quantile_levels([3, 1, 2]), [0.75, 0.25, 0.5]) and np.allclose(quantile_levels([5, 5]), 0.5)
    assert spearman([1, 2, 3, 4], [10, 20, 30, 45]) == pytest.approx(1.0)
    assert spearman([1, 1, 1], [1, 2, 3]) is None


def test_follow_curves_raises_a_silent_stem_and_tames_a_runaway_one_by_the_model_ranking() -> None:
    from muvi.curves import follow_curves
    from muvi.music.roll import ONSET, RollSpec

    spec = RollSpec()
    roll = spec.empty(32)  # 2 bars, everything off (-1)
    drums, bass = spec.row_slice("drums"), spec.row_slice("bass")
    roll[:16, ONSET, drums.start] = np.linspace(0.5, -0.2, 16)  # bar 0: the model is unsure, nothing crosses 0.6
    roll[16:, ONSET, bass.start + 5] = np.linspace(0.95, 0.7, 16)  # bar 1: bass onsets on every step, far more than asked
    out, moved = follow_curves(roll, spec, {"intensity_drums": [0.25, 0.0], "intensity_bass": [0.0, 0.125]},
                               threshold=0.6, slack=1.5)
    on = out[:, ONSET] > 0.6
    assert on[:16, drums].any(axis=1).sum() == 2  # floor(0.25 × 16 / 1.5): its two best-scored steps, the first ones
    assert on[:2, drums.start].all()
    assert 2 <= on[16:, bass].any(axis=1).sum() <= 4 and moved == {"raised": 1, "lowered": 1, "filled": 0, "restruck": 0}
    hopeless = spec.empty(16)  # the model rules every cell out: no shift can reach them
    out, moved = follow_curves(hopeless, spec, {"intensity_drums": [0.5]}, threshold=0.6)
    assert not (out[:, ONSET] > 0.6).any()


def test_drums_the_ranking_cannot_raise_far_enough_get_the_rest_from_their_timekeeper() -> None:
    """A bar whose model plays eighth hats and rules every other cell out, asked for nearly
    every step: the hat row fills the sixteenths, softer than its own hits, spread evenly; the
    kick and snare stay as played."""
    from muvi.curves import follow_curves
    from muvi.music.roll import ONSET, VELOCITY, RollSpec

    spec = RollSpec()
    roll = spec.empty(16)
    drums = spec.row_slice("drums")
    kick, hat = drums.start, drums.start + 4
    roll[0::2, ONSET, hat] = 1.0  # eighths
    roll[0::2, VELOCITY, hat] = 0.6
    roll[[0, 8], ONSET, kick] = 1.0
    out, moved = follow_curves(roll, spec, {"intensity_drums": [0.6]}, threshold=0.6, slack=1.0)
    on = out[:, ONSET] > 0.6
    assert on[:, drums].any(axis=1).sum() == 9 and moved["filled"] == 1  # floor(0.6 × 16) = 9: one sixteenth more
    out, moved = follow_curves(roll, spec, {"intensity_drums": [1.0]}, threshold=0.6, slack=1.15)
    on = out[:, ONSET] > 0.6
    added = np.flatnonzero(on[:, hat] & ~(roll[:, ONSET, hat] > 0.6))
    assert on[:, drums].any(axis=1).sum() == 13 and moved["filled"] == 5 and len(added) == 5  # floor(16 / 1.15)
    assert all(s % 2 == 1 for s in added) and np.all(out[added, VELOCITY, hat] < 0.6)  # softer, on the sixteenths
    assert (np.diff(added) >= 2).all() and added[0] <= 3 and added[-1] >= 11  # spread over the bar
    assert on[:, kick].sum() == 2 and not on[:, drums.start + 1].any()  # the snare, never played, stays out


def test_a_pitched_bar_the_ranking_cannot_raise_strikes_again_what_its_stem_sounds() -> None:
    """Bass silent in bar 1 (every cell ruled out) after a note in bar 0: bar 1 re-strikes
    that note on its beats, softer, each held to the next; chords take the whole chord of
    their latest onset; a stem the roll never plays gets nothing."""
    from muvi.curves import follow_curves
    from muvi.music.roll import ONSET, SUSTAIN, VELOCITY, RollSpec

    spec = replace(RollSpec(), onset_threshold=0.6, sustain_threshold=0.6)  # as the model decodes
    roll = spec.empty(32)
    bass, chords = spec.row_slice("bass"), spec.row_slice("chords")
    low, high = bass.start + 7, bass.start + 12
    roll[0, ONSET, low] = roll[8, ONSET, high] = 1.0  # bar 0: two notes, the latest a fifth up
    roll[[0, 8], VELOCITY, low], roll[8, VELOCITY, high] = 0.5, 0.7
    roll[20, ONSET, chords.start + np.array([0, 4, 7])] = 1.0  # bar 1: one chord, off the beat
    out, moved = follow_curves(roll, spec, {"intensity_bass": [0.125, 0.25], "intensity_chords": [0.0, 0.25],
                                            "intensity_melody": [0.25, 0.25]}, threshold=0.6, slack=1.0)
    on = out[:, ONSET] > 0.6
    struck = np.flatnonzero(on[16:, bass].any(axis=1))
    assert struck.tolist() == [0, 4, 8, 12] and on[16 + struck, high].all()  # 0.25 × 16 steps, on the beats
    assert not on[16:, low].any() and np.all(out[16 + struck, VELOCITY, high] < 0.7)  # the sounding note, softer
    assert [(n.start, n.end) for n in spec.decode(out, stems=["bass"])][-4:] == [(16, 20), (20, 24), (24, 28), (28, 32)]
    chord_steps = np.flatnonzero(on[16:, chords].any(axis=1))
    assert chord_steps.tolist() == [0, 4, 8, 12]  # the model's chord on step 4, three beats added
    assert on[16 + chord_steps][:, chords.start + np.array([0, 4, 7])].all()  # the whole chord, before it: the one to come
    assert not on[:, spec.row_slice("melody")].any() and moved["restruck"] == 4 + 3
    assert (out[17:20, SUSTAIN, chords.start] > spec.sustain_threshold).all()


def test_a_style_whose_busy_chords_are_arpeggios_breaks_the_chord_it_strikes_again() -> None:
    """Ambient and cinematic play a busy chord bar as an arpeggio or an ostinato (every comping
    of theirs that strikes more than once a bar): the steps added to a bar the model under-plays
    take one voice each, low, middle, high, middle, low, from the latest whole chord (not a
    voice broken off before); the other styles strike the whole chord again."""
    from muvi.curves import follow_curves
    from muvi.music.roll import ONSET, RollSpec
    from muvi.music.styles import breaks_chords

    assert [s for s in ("pop", "rock", "electronic", "hiphop", "ambient", "cinematic", "jazz", "folk")
            if breaks_chords(s)] == ["ambient", "cinematic"]
    assert not breaks_chords(None) and not breaks_chords("chorale")  # no style, or none of the arranger's
    spec = replace(RollSpec(), onset_threshold=0.6, sustain_threshold=0.6)
    chords = spec.row_slice("chords")
    held = spec.empty(32)
    held[0, ONSET, chords.start + np.array([0, 4, 7])] = 1.0  # one chord, held (a pad)
    asked = {"intensity_chords": [0.375, 0.375]}  # six steps a bar: five to add to bar 0, six to bar 1
    out, moved = follow_curves(held, spec, asked, threshold=0.6, slack=1.0, broken_chords=True)
    on = out[:, ONSET, chords] > 0.6
    voices = [np.flatnonzero(on[s]).tolist() for s in np.flatnonzero(on.any(axis=1))]  # in time order
    assert voices[0] == [0, 4, 7] and voices[1:6] == [[0], [4], [7], [4], [0]]
    assert voices[6:] == [[0], [4], [7], [4], [0], [4]] and moved["restruck"] == 11  # bar 1: from the chord again
    whole, _ = follow_curves(held, spec, asked, threshold=0.6, slack=1.0)
    assert ((whole[:, ONSET, chords] > 0.6).sum(axis=1)[(whole[:, ONSET, chords] > 0.6).any(axis=1)] == 3).all()


def test_a_tighter_slack_holds_a_stem_closer_to_its_curve() -> None:
    from muvi.curves import follow_curves
    from muvi.music.roll import ONSET, RollSpec

    spec = RollSpec()
    roll = spec.empty(16)
    roll[:, ONSET, spec.row_slice("drums").start] = np.linspace(0.95, 0.65, 16)  # 16 onset steps
    loose, _ = follow_curves(roll, spec, {"intensity_drums": [0.5]}, threshold=0.6, slack=2.0)
    tight, _ = follow_curves(roll, spec, {"intensity_drums": [0.5]}, threshold=0.6, slack=1.15)
    assert (loose[:, ONSET] > 0.6).any(axis=1).sum() == 16  # 16 ≤ 0.5 × 16 × 2: left alone
    assert (tight[:, ONSET] > 0.6).any(axis=1).sum() == 10  # ceil(8 × 1.15)


def test_equally_sure_steps_are_kept_by_the_metre() -> None:
    from muvi.curves import follow_curves
    from muvi.music.roll import ONSET, RollSpec

    spec = RollSpec()
    roll = spec.empty(16)
    roll[:, ONSET, spec.row_slice("drums").start + 4] = 1.0  # hats on every sixteenth, all at full confidence
    out, moved = follow_curves(roll, spec, {"intensity_drums": [0.25]}, threshold=0.6, slack=1.0)
    kept = np.flatnonzero((out[:, ONSET] > 0.6).any(axis=1))
    assert kept.tolist() == [0, 4, 8, 12] and moved["lowered"] == 1  # the beats survive


def test_only_the_steps_in_the_span_are_held_a_partial_bar_by_its_share() -> None:
    """A take's pickup bar is held from its first step in the picture, the ending's bar up to
    the ending's given suffix; a bar with under a beat in the span is left as sampled."""
    from muvi.curves import follow_curves
    from muvi.music.roll import ONSET, RollSpec

    spec = RollSpec()
    roll = spec.empty(48)  # 3 bars: nothing crosses the threshold
    bass = spec.row_slice("bass")
    roll[:, ONSET, bass.start + 5] = np.linspace(0.5, -0.5, 48)
    want = {"intensity_bass": [0.5, 0.5, 0.5]}
    out, moved = follow_curves(roll, spec, want, threshold=0.6, slack=1.0, span=(8, 44))
    on = (out[:, ONSET, bass] > 0.6).any(axis=1)
    assert not on[:8].any() and not on[44:].any()  # before the picture, in the ending: untouched
    assert on[8:16].sum() == 4 and on[16:32].sum() == 8 and on[32:44].sum() == 6  # half of each bar's own steps
    _, few = follow_curves(roll, spec, want, threshold=0.6, slack=1.0, span=(13, 35))
    assert few["raised"] == 1  # 3 steps in bar 0 and 3 in bar 2: under a beat, only bar 1 is held
