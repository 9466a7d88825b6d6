from __future__ import annotations

from fractions import Fraction

import pytest

from muvi.errors import InvalidInputError
from muvi.music.tempo import TempoMap


def test_constant_tempo_is_exact() -> None:
    t = TempoMap.constant(120)
    assert t.time_at(4) == 2 and t.beat_at(Fraction(3, 2)) == 3
    t = TempoMap.constant("123.45", origin=Fraction(1, 10))
    assert t.time_at(100) == Fraction(1, 10) + 100 * 60 / Fraction("123.45")


def test_tempo_changes_and_inverse() -> None:
    t = TempoMap.from_bpms([(0, 120), (8, 60), (10, 90)], beats_per_bar=3, downbeat=1)
    assert t.time_at(8) == 4 and t.time_at(10) == 6 and t.time_at(13) == 8
    for b in (Fraction(0), Fraction(7, 2), Fraction(9), Fraction(25, 2)):
        assert t.beat_at(t.time_at(b)) == b
    assert t.bpm_at(9) == 60
    assert [t.is_downbeat(b) for b in range(5)] == [False, True, False, False, True]
    assert t.beat_times(3) == [0, Fraction(1, 2), 1, Fraction(3, 2), 2, Fraction(5, 2)]
    assert t.downbeat_times(3) == [Fraction(1, 2), 2]


def test_negative_origin_is_a_pickup() -> None:
    t = TempoMap.constant(120, origin=Fraction(-1, 4))
    assert t.beat_times(2) == [Fraction(1, 4), Fraction(3, 4), Fraction(5, 4), Fraction(7, 4)]


def test_validation() -> None:
    with pytest.raises(InvalidInputError, match="outside"):
        TempoMap.constant(1000)
    with pytest.raises(InvalidInputError, match="positive"):
        TempoMap.constant(0)
    with pytest.raises(InvalidInputError, match="increasing"):
        TempoMap.from_bpms([(0, 100), (0, 90)])
    with pytest.raises(InvalidInputError, match="beats per bar"):
        TempoMap.constant(100, beats_per_bar=5)
