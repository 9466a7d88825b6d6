from __future__ import annotations

from pathlib import Path

import opentimelineio as otio
import pytest

from muvi.errors import InvalidInputError, TimelineError
from muvi.otio_io import read_otio, timeline_from_otio, timeline_to_otio, write_otio
from muvi.timeline import Rate, RationalTime, Segment, Timeline, TimeRange

RT = otio.opentime.RationalTime
TR = otio.opentime.TimeRange


def _clip(name: str, url: str, start: int, dur: int, rate: float = 24.0) -> otio.schema.Clip:
    return otio.schema.Clip(
        name=name,
        media_reference=otio.schema.ExternalReference(target_url=url),
        source_range=TR(RT(start, rate), RT(dur, rate)),
    )


def _otio_timeline(*children: object, start: int = 86400) -> otio.schema.Timeline:
    tl = otio.schema.Timeline(name="edit", global_start_time=RT(start, 24))
    track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    for c in children:
        track.append(c)
    tl.tracks.append(track)
    return tl


def test_import_clips_gaps_and_absolute_record_frames() -> None:
    tl = timeline_from_otio(
        _otio_timeline(
            _clip("a", "file:///media/a%20b.mp4", 10, 48),
            otio.schema.Gap(source_range=TR(RT(0, 24), RT(12, 24))),
            _clip("b", "/media/b.mp4", 0, 24),
        )
    )
    assert tl.rate == Rate(24)
    a, b = tl.segments
    assert a.media == Path("/media/a b.mp4") and (a.source.start.value, a.source.duration.value) == (10, 48)
    assert a.record_start.value == 86400
    assert b.record_start.value == 86400 + 48 + 12
    assert [(g.start.value, g.duration.value) for g in tl.gaps()] == [(86448, 12)]


def test_transition_becomes_a_cut_at_its_midpoint() -> None:
    # transition spans [cut - 6, cut + 10): midpoint is 2 frames after the cut
    tl = timeline_from_otio(
        _otio_timeline(
            _clip("a", "/m/a.mp4", 0, 48),
            otio.schema.Transition(in_offset=RT(6, 24), out_offset=RT(10, 24)),
            _clip("b", "/m/b.mp4", 100, 24),
            start=0,
        )
    )
    a, b = tl.segments
    assert a.source.duration.value == 50 and a.record.end.value == 50
    assert b.record_start.value == 50 and b.source.start.value == 102 and b.source.duration.value == 22
    assert tl.end.value == 72  # total length unchanged


def test_relative_media_resolved_against_the_otio_file(tmp_path: Path) -> None:
    path = tmp_path / "edit.otio"
    otio.adapters.write_to_file(_otio_timeline(_clip("a", "clips/a.mp4", 0, 24)), str(path))
    tl = read_otio(path)
    assert tl.segments[0].media == tmp_path / "clips" / "a.mp4"


def test_round_trip_through_a_file(tmp_path: Path) -> None:
    r = Rate(30000, 1001)
    segs = (
        Segment(tmp_path / "a.mp4", TimeRange.from_frames(5, 100, r), RationalTime(107892, r), name="a"),
        Segment(tmp_path / "b.mov", TimeRange.from_frames(0, 30, Rate(25)), RationalTime(108000, r), name="b"),
    )
    original = Timeline(r, segs, name="cut")
    write_otio(original, tmp_path / "cut.otio")
    back = read_otio(tmp_path / "cut.otio")
    assert back.rate == r and back.name == "cut"
    for x, y in zip(original.segments, back.segments):
        assert (x.media, x.source, x.record_start) == (y.media, y.source, y.record_start)
    assert back.gaps() == original.gaps()
    assert timeline_to_otio(back).tracks[0][1].__class__.__name__ == "Gap"


def test_import_errors_name_the_clip(tmp_path: Path) -> None:
    missing = otio.schema.Clip(name="nomedia", source_range=TR(RT(0, 24), RT(10, 24)))
    with pytest.raises(TimelineError, match="nomedia"):
        timeline_from_otio(_otio_timeline(missing))
    with pytest.raises(TimelineError, match="not a local file"):
        timeline_from_otio(_otio_timeline(_clip("web", "https://example.invalid/a.mp4", 0, 10)))
    with pytest.raises(TimelineError, match="no clips"):
        timeline_from_otio(_otio_timeline(otio.schema.Gap(source_range=TR(RT(0, 24), RT(12, 24)))))
    with pytest.raises(InvalidInputError, match="not found"):
        read_otio(tmp_path / "nope.otio")
    bad = tmp_path / "bad.otio"
    bad.write_text("{not json")
    with pytest.raises(InvalidInputError, match="not a readable OTIO"):
        read_otio(bad)


def test_energy_markers_on_the_timeline_become_an_energy_curve(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import opentimelineio as otio

    from muvi.errors import InvalidInputError
    from muvi.otio_io import energy_curve_from_markers, read_otio_with_markers

    tl = otio.schema.Timeline(name="t", global_start_time=otio.opentime.RationalTime(250, 25))
    track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    tl.tracks.append(track)
    clip = otio.schema.Clip(name="a", media_reference=otio.schema.ExternalReference(target_url=str(tmp_path / "a.mp4")),
                            source_range=otio.opentime.TimeRange(otio.opentime.RationalTime(50, 25),
                                                                 otio.opentime.RationalTime(500, 25)))
    clip.markers.append(otio.schema.Marker(name="energy=high", marked_range=otio.opentime.TimeRange(
        otio.opentime.RationalTime(100, 25), otio.opentime.RationalTime(0, 25))))  # 2 s into the clip's source
    track.append(clip)
    track.markers.append(otio.schema.Marker(name="energy=0.2", marked_range=otio.opentime.TimeRange(
        otio.opentime.RationalTime(0, 25), otio.opentime.RationalTime(0, 25))))
    track.markers.append(otio.schema.Marker(name="a note", marked_range=otio.opentime.TimeRange(
        otio.opentime.RationalTime(25, 25), otio.opentime.RationalTime(0, 25))))
    path = tmp_path / "edit.otio"
    otio.adapters.write_to_file(tl, str(path))
    timeline, markers = read_otio_with_markers(path)
    assert energy_curve_from_markers(markers) == "0:0.2,2:0.75"
    with pytest.raises(InvalidInputError, match="energy=loud"):
        energy_curve_from_markers([("energy=loud", 3)])
