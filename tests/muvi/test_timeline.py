from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from muvi.errors import InvalidInputError, TimelineError
from muvi.timeline import STANDARD_RATES, Rate, RationalTime, Segment, Timeline, TimeRange

R2398, R2997, R5994 = Rate(24000, 1001), Rate(30000, 1001), Rate(60000, 1001)


# -- rates -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "fps,expected",
    [
        (23.976, Rate(24000, 1001)),
        (23.98, Rate(24000, 1001)),
        (24.0, Rate(24)),
        (25.0, Rate(25)),
        (29.97, Rate(30000, 1001)),
        (30.0, Rate(30)),
        (50.0, Rate(50)),
        (59.94, Rate(60000, 1001)),
        (60.0, Rate(60)),
        (12.5, Rate(25, 2)),
        (14.985, Rate(15000, 1001)),
    ],
)
def test_float_rates_snap_to_standard_rates(fps: float, expected: Rate) -> None:
    assert Rate.from_float(fps) == expected


def test_rate_parse_forms_and_normalisation() -> None:
    assert Rate.parse("24000/1001") == R2398
    assert Rate.parse("29.97") == R2997
    assert Rate.parse(25) == Rate(25)
    assert Rate.parse(Fraction(48000, 2002)) == R2398
    assert Rate(50, 2) == Rate(25)
    for bad in ("fast", 0, -24, "0/1", True):
        with pytest.raises(InvalidInputError):
            Rate.parse(bad)  # type: ignore[arg-type]


def test_standard_rates_are_unique_and_drop_frame_only_for_ntsc_30_60() -> None:
    assert len(set(STANDARD_RATES)) == len(STANDARD_RATES)
    assert {r for r in STANDARD_RATES if r.supports_drop_frame} == {R2997, R5994}


# -- samples -----------------------------------------------------------------------------
def test_samples_per_frame_at_48k_are_exact() -> None:
    assert all(R2398.samples(n) == 2002 * n for n in range(0, 10_000, 7))
    assert Rate(24).samples(1) == 2000 and Rate(25).samples(1) == 1920
    # 29.97: 1601.6 per frame -> 8008 per 5 frames, positions floored from frame 0
    assert [R2997.samples(n) for n in range(6)] == [0, 1601, 3203, 4804, 6406, 8008]
    assert R5994.samples(5) == 4004
    # one hour at 23.976 (86400 frames) without drift
    assert RationalTime(86400, R2398).to_samples() == 172_972_800


def test_timeline_sample_range_uses_absolute_positions() -> None:
    seg = Segment(Path("a.mp4"), TimeRange.from_frames(0, 7, R2997), RationalTime(1, R2997))
    tl = Timeline(R2997, (seg,))
    first, n = tl.sample_range()
    assert first == 1601 and n == R2997.samples(8) - 1601 == 11211
    tl24 = Timeline.sequential([("a.mp4", TimeRange.from_frames(0, 24, R2398))], rate=R2398)
    assert tl24.sample_range() == (0, 48048)


# -- timecode ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "frames,tc",
    [
        (0, "00:00:00;00"),
        (1799, "00:00:59;29"),
        (1800, "00:01:00;02"),
        (3597, "00:01:59;29"),
        (3598, "00:02:00;02"),
        (17982, "00:10:00;00"),
        (107892, "01:00:00;00"),
    ],
)
def test_drop_frame_timecode_2997(frames: int, tc: str) -> None:
    assert RationalTime(frames, R2997).to_timecode() == tc
    assert RationalTime.from_timecode(tc, R2997).value == frames


def test_drop_frame_round_trip_over_a_day_and_5994() -> None:
    for rate in (R2997, R5994):
        for f in range(0, 24 * 3600 * 60, 997):
            assert RationalTime.from_timecode(RationalTime(f, rate).to_timecode(), rate).value == f
    assert RationalTime.from_timecode("01:00:00;00", R5994).value == 215784


def test_non_drop_timecode_and_errors() -> None:
    assert RationalTime(86400, R2398).to_timecode() == "01:00:00:00"
    assert RationalTime.from_timecode("01:00:00:00", R2398).value == 86400
    assert RationalTime.from_timecode("00:00:01:05", Rate(25)).value == 30
    assert RationalTime(1800, R2997).to_timecode(drop_frame=False) == "00:01:00:00"
    with pytest.raises(InvalidInputError, match="does not exist"):
        RationalTime.from_timecode("00:01:00;00", R2997)
    with pytest.raises(InvalidInputError, match="29.97 or 59.94"):
        RationalTime.from_timecode("00:01:00;02", R2398)
    with pytest.raises(InvalidInputError, match="out of range"):
        RationalTime.from_timecode("00:00:00:25", Rate(25))
    with pytest.raises(InvalidInputError, match="not a timecode"):
        RationalTime.from_timecode("1 minute", Rate(25))


# -- times and ranges --------------------------------------------------------------------
def test_rational_time_is_exact() -> None:
    t = RationalTime.from_seconds("12.5", Rate(24))
    assert t.value == 300 and t.seconds == Fraction(25, 2)
    assert RationalTime(1001, R2398).seconds == Fraction(1001 * 1001, 24000)
    assert RationalTime(24, R2398).rescaled(Rate(48000)).value == 48048
    with pytest.raises(InvalidInputError):
        RationalTime.from_seconds(1.5, Rate(24))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        RationalTime(1, Rate(24)) + RationalTime(1, Rate(25))
    with pytest.raises(InvalidInputError):
        RationalTime(1.5, Rate(24))  # type: ignore[arg-type]


# -- segments and timelines --------------------------------------------------------------
def _seg(name: str, start: int, dur: int, rec: int, rate: Rate = Rate(25)) -> Segment:
    return Segment(Path(name), TimeRange.from_frames(start, dur, rate), RationalTime(rec, rate))


def test_timeline_sorts_and_reports_gaps_and_cuts() -> None:
    tl = Timeline(Rate(25), (_seg("b.mp4", 0, 50, 100), _seg("a.mp4", 10, 100, 0), _seg("c.mp4", 0, 25, 200)))
    assert [s.media.name for s in tl.segments] == ["a.mp4", "b.mp4", "c.mp4"]
    assert tl.start.value == 0 and tl.end.value == 225 and tl.duration.value == 225
    assert [(g.start.value, g.duration.value) for g in tl.gaps()] == [(150, 50)]
    assert tl.cut_frames() == (100, 150, 200)
    assert tl.segment_at(Fraction(3)) == 0 and tl.segment_at(Fraction(4)) == 1 and tl.segment_at(Fraction(7)) is None


def test_timeline_validation_names_the_problem() -> None:
    with pytest.raises(TimelineError, match="overlap: a.mp4 ends at frame 100, b.mp4 starts at frame 90"):
        Timeline(Rate(25), (_seg("a.mp4", 0, 100, 0), _seg("b.mp4", 0, 50, 90)))
    with pytest.raises(TimelineError, match="duration must be positive"):
        _seg("z.mp4", 0, 0, 0)
    with pytest.raises(TimelineError, match="source start must not be negative"):
        _seg("n.mp4", -5, 10, 0)
    with pytest.raises(TimelineError, match="timeline is 25 fps"):
        Timeline(Rate(25), (_seg("a.mp4", 0, 10, 0, Rate(24)),))
    with pytest.raises(TimelineError, match="no segments"):
        Timeline(Rate(25), ())


def test_segment_with_other_source_rate_plays_in_real_time() -> None:
    seg = Segment(Path("a.mp4"), TimeRange.from_frames(0, 50, Rate(50)), RationalTime(0, Rate(25)))
    assert seg.record_duration.value == 25
    assert seg.source_seconds_at(Fraction(1, 2)) == Fraction(1, 2)
