from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from muvi.errors import InvalidInputError
from muvi.metrics import accent_hit_rate, accent_hits, beat_scores, frechet_distance, musicality, onset_times
from muvi.music.score import Note, Score
from muvi.music.tempo import TempoMap

SR = 22050


def clicks(times: list[float], seconds: float = 20.0, sr: int = SR) -> np.ndarray:
    y = np.zeros(int(seconds * sr))
    burst = np.exp(-np.arange(400) / 60.0) * np.sin(np.arange(400) * 0.9)
    for t in times:
        i = int(t * sr)
        y[i : i + 400] += burst[: len(y) - i]
    return y


BEATS = [0.25 + 0.5 * k for k in range(39)]  # 120 BPM click track


def test_onsets_found_on_clicks() -> None:
    found = onset_times(clicks(BEATS), SR)
    assert len(found) == len(BEATS)
    assert np.max(np.abs(found - np.array(BEATS))) < 0.03


def test_click_track_against_itself_scores_100() -> None:
    s = beat_scores(clicks(BEATS), clicks(BEATS), SR)
    assert s.bcs == pytest.approx(100.0) and s.bhs == pytest.approx(100.0)


def test_half_tempo_covers_and_hits_half() -> None:
    s = beat_scores(clicks(BEATS[::2]), clicks(BEATS), SR)
    assert s.bcs == pytest.approx(50.0, abs=3) and s.bhs == pytest.approx(50.0, abs=3)


def test_double_tempo_over_covers() -> None:
    dense = sorted(BEATS + [t + 0.25 for t in BEATS])
    s = beat_scores(clicks(dense), clicks(BEATS), SR)
    assert s.bcs == pytest.approx(200.0, abs=6) and s.bhs == pytest.approx(100.0)


def test_shift_inside_a_bin_hits_and_a_bin_away_misses() -> None:
    near = beat_scores(clicks([t + 0.01 for t in BEATS]), clicks(BEATS), SR)  # stays in the 0.2 s bins
    assert near.bhs == pytest.approx(100.0)
    far = beat_scores(clicks([t + 0.2 for t in BEATS]), clicks(BEATS), SR)  # one whole bin later
    assert far.bcs == pytest.approx(100.0, abs=3) and far.bhs < 5
    assert math.isnan(beat_scores(clicks(BEATS), np.zeros(SR * 20), SR).bhs)


def test_accent_hit_rate_one_frame_tolerance() -> None:
    beats = [Fraction(k, 2) for k in range(20)]
    accents = [Fraction(1), Fraction(2) + Fraction(1, 30), Fraction(3) + Fraction(1, 20), Fraction(5, 4)]
    assert accent_hits(accents, beats, tolerance=Fraction(1, 30)) == [True, True, False, False]
    assert accent_hit_rate(accents, beats, frame_rate=30) == 0.5
    assert accent_hit_rate(accents, beats, frame_rate=Fraction(24000, 1001)) == 0.5
    assert math.isnan(accent_hit_rate([], beats))


def _score(notes: list[Note], bars: int = 4) -> Score:
    return Score(tuple(notes), TempoMap.constant(120), bars * 16, key="C major")


def test_musicality_known_values() -> None:
    notes = []
    for bar in range(4):
        notes += [Note(bar * 16 + s, 36, bar * 16 + s + 1, 100, "drums") for s in (0, 8)]
        notes += [Note(bar * 16, p, bar * 16 + 16, 80, "chords") for p in (60, 64, 67)]
    notes.append(Note(0, 61, 4, 90, "melody"))  # one out-of-key note, melody only in bar 0
    m = musicality(_score(notes))
    assert m["key"] == "C major"
    assert m["in_scale_ratio"] == pytest.approx(12 / 13)
    assert m["groove_consistency"] == 1.0
    assert m["stems"]["chords"]["polyphony"] == 3.0 and m["stems"]["chords"]["empty_bar_ratio"] == 0.0
    assert m["stems"]["melody"]["empty_bar_ratio"] == 0.75 and m["stems"]["melody"]["in_scale_ratio"] == 0.0
    assert m["stems"]["drums"]["note_density_per_bar"] == 2.0 and m["played_bars"] is None
    # played from step 8 (a half-bar pickup) to the cadence at step 48: 2.5 bars with 5 kicks
    p = musicality(_score(notes), played=(8, 48))
    assert p["played_bars"] == 2.5 and p["stems"]["drums"]["note_density_per_bar"] == pytest.approx(5 / 2.5)
    assert p["stems"]["melody"]["note_density_per_bar"] == 0.0  # its one note lies before the picture
    with pytest.raises(InvalidInputError, match="played span"):
        musicality(_score(notes), played=(8, 8))
    # a pickup bar lying mostly before the first frame is not judged: the melody's bar 0 drops out
    late = musicality(_score([n for n in notes if n.stem != "melody"] + [Note(20, 62, 24, 90, "melody")]), first_bar=1)
    assert late["bars"] == 3 and late["stems"]["melody"]["empty_bar_ratio"] == pytest.approx(2 / 3)
    assert late["stems"]["drums"]["note_density_per_bar"] == 2.0
    with pytest.raises(InvalidInputError, match="first judged bar"):
        musicality(_score(notes), first_bar=4)
    assert m["polyphony"] == pytest.approx((4 * 4 + 60 * 3) / 64)
    # three equally weighted pitch classes (+ a little C#): entropy a bit above log2(3)
    assert math.log2(3) < m["pitch_class_entropy"] < math.log2(4)


def test_groove_changes_lower_consistency() -> None:
    notes = [Note(s, 36, s + 1, 100, "drums") for s in (0, 8, 16 + 4, 16 + 12, 32, 40, 48 + 4, 48 + 12)]
    m = musicality(_score(notes))
    assert m["groove_consistency"] == pytest.approx(1 - 4 / 16)


def test_frechet_distance() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4000, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, a + np.array([3.0, 0, 0])) == pytest.approx(9.0, rel=1e-6)
    b = rng.standard_normal((4000, 3)) * 2  # variance 4: trace term 3*(1+4-2*2) = 3
    assert frechet_distance(a, b) == pytest.approx(3.0, rel=0.1)
    with pytest.raises(InvalidInputError):
        frechet_distance(a, a[:, :2])
