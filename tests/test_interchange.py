"""Editors' timeline files in and out: `muvi generate --timeline FILE` reads Final Cut Pro 7 XML,
FCPXML, CMX 3600 EDL and Kdenlive, and writes the same format back with the stems under the
picture; re-imported, each stem's clip starts where its Broadcast-WAV TimeReference says."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest

from muvi.bwf import read_bwf
from muvi.cli import main
from muvi.fcpxml import read_fcpxml
from muvi.media_gen import write_shot_clip
from muvi.otio_io import read_editor_timeline, timeline_to_otio
from muvi.timeline import Rate, RationalTime, Segment, Timeline, TimeRange
from muvi.weights import save_checkpoint
from tests.muvi.nn.test_model_weights_prompt import tiny_model

RATES = {"23.976": Rate(24000, 1001), "25": Rate(25), "29.97df": Rate(30000, 1001)}
HOUR = {"23.976": 86400, "25": 90000, "29.97df": 107892}  # 01:00:00:00 (29.97: drop-frame)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    w = tmp_path_factory.mktemp("w") / "tiny"
    save_checkpoint(w, tiny_model())
    return w


def _editor_file(tmp: Path, rate_name: str, suffix: str) -> tuple[Path, Timeline]:
    rate = RATES[rate_name]
    clip = write_shot_clip(tmp / "clip.mp4", shots=[60, 60, 60], rate=rate, size=(160, 96)).path
    start = HOUR[rate_name]
    tl = Timeline(rate, (Segment(clip, TimeRange.from_frames(10, 70, rate), RationalTime(start, rate), name="clip.mp4"),
                         Segment(clip, TimeRange.from_frames(100, 60, rate), RationalTime(start + 70, rate), name="clip.mp4")))
    obj = timeline_to_otio(tl)
    r = float(rate.fraction)
    for c in obj.find_clips():  # an editor's file knows its media's length
        c.media_reference.available_range = otio.opentime.TimeRange(otio.opentime.RationalTime(0, r),
                                                                    otio.opentime.RationalTime(180, r))
    path = tmp / f"edit{suffix}"
    if suffix == ".edl":
        path.write_text(_edl(tl, drop=rate_name.endswith("df")))
    elif suffix == ".fcpxml":
        path.write_text(_fcpxml(tl, clip, media_frames=180, drop=rate_name.endswith("df")))
    else:
        otio.adapters.write_to_file(obj, str(path), adapter_name={".xml": "fcp_xml", ".fcpxml": "fcpx_xml",
                                                                  ".kdenlive": "kdenlive"}[suffix])
    return path, tl


def _edl(tl: Timeline, *, drop: bool) -> str:
    lines = ["TITLE: edit", f"FCM: {'DROP FRAME' if drop else 'NON-DROP FRAME'}", ""]
    for i, s in enumerate(tl.segments, 1):
        tc = lambda t: t.to_timecode(drop_frame=drop)  # noqa: E731
        lines += [f"{i:03d}  AX       V     C        {tc(s.source.start)} {tc(s.source.end)} "
                  f"{tc(s.record_start)} {tc(s.record.end)}", f"* FROM CLIP NAME: {s.media.name}"]
    return "\n".join(lines) + "\n"


def _fcpxml(tl: Timeline, media: Path, *, media_frames: int, drop: bool) -> str:
    """An FCPXML 1.10 document as Final Cut Pro exports it: exact rational times, the sequence
    starting at its tcStart, clips in the primary storyline, a `hit` marker on the first."""
    f = tl.rate.fraction

    def t(frames: int) -> str:
        x = frames / f
        return f"{x.numerator}/{x.denominator}s" if x.denominator != 1 else f"{x.numerator}s"

    clips = []
    for i, s in enumerate(tl.segments):
        marker = f'<marker start="{t(s.source.start.value + 25)}" duration="{t(1)}" value="hit"/>' if i == 0 else ""
        clips.append(f'<asset-clip ref="r2" offset="{t(s.record_start.value)}" name="{s.media.name}" '
                     f'start="{t(s.source.start.value)}" duration="{t(s.source.duration.value)}" format="r1" '
                     f'tcFormat="{"DF" if drop else "NDF"}">{marker}</asset-clip>')
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE fcpxml>
<fcpxml version="1.10">
  <resources>
    <format id="r1" name="FFVideoFormatRateUndefined" frameDuration="{t(1)}" width="160" height="96"/>
    <asset id="r2" name="{media.stem}" uid="0" start="0s" duration="{t(media_frames)}" hasVideo="1" format="r1">
      <media-rep kind="original-media" src="{media.resolve().as_uri()}"/>
    </asset>
  </resources>
  <library>
    <event name="muvi test">
      <project name="edit">
        <sequence format="r1" duration="{t(tl.duration.value)}" tcStart="{t(tl.start.value)}" tcFormat="{"DF" if drop else "NDF"}">
          <spine>{"".join(clips)}</spine>
        </sequence>
      </project>
    </event>
  </library>
</fcpxml>
"""


def _stem_starts(path: Path, rate: Rate) -> dict[str, int]:
    """Record frame (since 00:00:00:00) of each muvi audio clip in a re-imported file."""
    if path.suffix == ".edl":  # OTIO's EDL reader drops absolute record times: read the events
        out = {}
        for line, name in re.findall(r"^(\d+\s+\S+\s+A\d?\s+C.*)\n\* FROM CLIP NAME: (\S+)", path.read_text(), re.M):
            rec = line.split()[-2]
            out[name.split(".")[0]] = RationalTime.from_timecode(rec, rate).value
        return out
    obj = read_fcpxml(path) if path.suffix == ".fcpxml" else otio.adapters.read_from_file(str(path))
    gst = 0 if obj.global_start_time is None else round(obj.global_start_time.rescaled_to(float(rate.fraction)).value)
    out = {}
    for tr in obj.audio_tracks():
        for clip in tr.find_clips():
            name = Path(clip.media_reference.target_url).name.split(".")[0]
            out[name] = gst + round(clip.range_in_parent().start_time.rescaled_to(float(rate.fraction)).value)
    return out


@pytest.mark.parametrize("suffix, rate_name", [
    (".xml", "23.976"), (".xml", "25"), (".xml", "29.97df"),
    (".edl", "23.976"), (".edl", "25"), (".edl", "29.97df"),
    (".fcpxml", "23.976"), (".fcpxml", "25"), (".fcpxml", "29.97df"),
    (".kdenlive", "23.976"), (".kdenlive", "25"), (".kdenlive", "29.97df"),
])
def test_round_trip_places_the_stems_at_their_time_reference(weights: Path, tmp_path: Path, suffix: str,
                                                             rate_name: str) -> None:
    path, tl = _editor_file(tmp_path, rate_name, suffix)
    rate = RATES[rate_name]
    read, _, _ = read_editor_timeline(path, rate=rate if suffix == ".edl" else None)
    # OTIO's Kdenlive adapter carries no timeline start: that timeline begins at 0
    start = 0 if suffix == ".kdenlive" else tl.start.value
    assert read.start.value == start and read.duration.value == tl.duration.value
    extra = ["--rate", str(rate)] if suffix == ".edl" else []
    assert main(["generate", "--timeline", str(path), "--out", str(tmp_path / "out"), "--weights", str(weights),
                 "--steps", "2", "--no-preview", "--quiet", *extra]) == 0
    back = tmp_path / "out" / f"timeline.muvi{suffix}"
    starts = _stem_starts(back, rate)
    assert set(starts) == {"drums", "bass", "chords", "melody"}
    for stem, frame in starts.items():
        tr = read_bwf(tmp_path / "out" / f"{stem}.wav").bext.time_reference
        assert frame == round(tr * rate.fraction / 48000) == start, (stem, frame, tr)


def test_a_named_track_a_range_and_bad_files(weights: Path, tmp_path: Path) -> None:
    path, tl = _editor_file(tmp_path, "25", ".xml")
    with pytest.raises(Exception, match="no video track named 'B-roll'"):
        read_editor_timeline(path, track="B-roll")
    assert main(["generate", "--timeline", str(path), "--out", str(tmp_path / "o"), "--weights", str(weights),
                 "--steps", "2", "--no-preview", "--quiet", "--range", "1-4"]) == 0
    wav = read_bwf(tmp_path / "o" / "drums.wav")
    assert wav.audio.shape[1] == 3 * 48000 and wav.bext.time_reference == (90000 + 25) * 48000 // 25
    (tmp_path / "x.edl").write_text("TITLE: x\n")
    assert main(["generate", "--timeline", str(tmp_path / "x.edl"), "--out", str(tmp_path / "e"),
                 "--weights", str(weights)]) == 2  # an EDL needs --rate
    assert main(["generate", "--timeline", str(tmp_path / "x.mov"), "--out", str(tmp_path / "e"),
                 "--weights", str(weights)]) == 2
    assert not (tmp_path / "e").exists()


def test_fcpxml_bundles_markers_nested_clips_and_an_independent_reader(weights: Path, tmp_path: Path) -> None:
    """An `.fcpxmld` bundle reads like its Info.fcpxml; a `hit` marker is read at its sequence
    time; a compound clip is refused by name; OTIO's own FCPXML reader (exact at 25 fps) finds
    the written stems under the picture at the same frames as muvi's reader."""
    path, tl = _editor_file(tmp_path, "25", ".fcpxml")
    bundle = tmp_path / "edit.fcpxmld"
    bundle.mkdir()
    (bundle / "Info.fcpxml").write_text(path.read_text())
    read, markers, _ = read_editor_timeline(bundle)
    assert read.start.value == tl.start.value and read.segments == tl.segments
    assert markers == [("hit", Fraction(1))]  # 25 frames after the first clip's in point
    assert main(["generate", "--timeline", str(bundle), "--out", str(tmp_path / "out"), "--weights", str(weights),
                 "--steps", "2", "--no-preview", "--quiet"]) == 0
    back = tmp_path / "out" / "timeline.muvi.fcpxml"
    ours = _stem_starts(back, Rate(25))
    theirs = otio.adapters.read_from_file(str(back), adapter_name="fcpx_xml")  # a collection: the project's timeline
    theirs = theirs if isinstance(theirs, otio.schema.Timeline) else next(
        c for c in theirs if isinstance(c, otio.schema.Timeline))
    found = {}
    for tr in theirs.audio_tracks():
        for clip in tr.find_clips():
            found[clip.name.split()[-1]] = round(clip.range_in_parent().start_time.value)
    assert ours == {s: tl.start.value for s in ("drums", "bass", "chords", "melody")}
    assert found == {s: tl.start.value for s in ours}, found  # OTIO's reader counts from 00:00:00:00 here
    nested = path.read_text().replace("<asset-clip ref=\"r2\"", "<ref-clip ref=\"r2\"", 1).replace(
        "</asset-clip>", "</ref-clip>", 1)
    (tmp_path / "nested.fcpxml").write_text(nested)
    with pytest.raises(Exception, match="compound clip.*break it apart"):
        read_editor_timeline(tmp_path / "nested.fcpxml")
    (tmp_path / "broken.fcpxml").write_text("<fcpxml version='1.10'><resources/>")
    assert main(["generate", "--timeline", str(tmp_path / "broken.fcpxml"), "--out", str(tmp_path / "e"),
                 "--weights", str(weights)]) == 2
    assert not (tmp_path / "e").exists()
