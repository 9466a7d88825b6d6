from __future__ import annotations

import bisect
import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from muvi.errors import MediaError, MediaNotFoundError, MediaRangeError
from muvi.media_gen import read_frame_code, write_shot_clip
from muvi.timeline import Rate, RationalTime, Segment, Timeline, TimeRange
from muvi.video import check_timeline, decode_timeline, iter_frames, probe, sample_times
from tests.conftest import R2398, R2997, VFR_OFFSET_MS, VFR_PTS, Media


def _codes(images: np.ndarray) -> list[int]:
    return [read_frame_code(im) for im in images]


def _whole(path: Path, rate: Rate, frames: int) -> Timeline:
    return Timeline.sequential([(path, TimeRange.from_frames(0, frames, rate))], rate=rate)


def _brute_force_shown(path: Path, source_times: list[Fraction]) -> list[int]:
    """Oracle: decode every frame, then pick the last one whose pts <= origin + t."""
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        tb = Fraction(vs.time_base)
        origin = Fraction(vs.start_time or 0) * tb
        frames = [(Fraction(f.pts) * tb - origin, read_frame_code(f.to_ndarray(format="rgb24"))) for f in c.decode(vs)]
    times = [t for t, _ in frames]
    return [frames[max(0, bisect.bisect_right(times, s) - 1)][1] for s in source_times]


# -- probe -------------------------------------------------------------------------------
def test_probe_reports_exact_rate_duration_and_size(media: Media) -> None:
    clip = media.shots(R2398)
    info = probe(clip.path)
    assert info.rate == R2398 and not info.variable_rate
    assert info.duration == R2398.seconds(90)  # 90 frames, exactly
    assert info.frame_count == 90 and (info.width, info.height) == (160, 96)
    assert info.rotation == 0 and info.audio == () and info.codec == "h264" and not info.truncated
    js = info.to_json()
    assert js["video"]["rate"] == {"num": 24000, "den": 1001, "fps": pytest.approx(23.976, abs=1e-3)}


def test_probe_lists_audio_streams(media: Media, tmp_path: Path) -> None:
    t = np.arange(48000) / 48000
    audio = np.stack([np.sin(2 * np.pi * 440 * t)] * 2) * 0.1
    clip = write_shot_clip(tmp_path / "with_audio.mp4", shots=[25], rate=Rate(25), audio=audio)
    info = probe(clip.path)
    assert len(info.audio) == 1
    a = info.audio[0]
    assert (a.codec, a.sample_rate, a.channels) == ("aac", 48000, 2)


def test_probe_rotation_and_display_size(tmp_path: Path) -> None:
    clip = write_shot_clip(tmp_path / "rot.mp4", shots=[10], rate=Rate(25), size=(160, 96), rotation=90)
    info = probe(clip.path)
    assert info.rotation == 90 and info.display_size == (96, 160)
    frames = decode_timeline(_whole(clip.path, Rate(25), 10), size=None)
    assert frames.images.shape[1:] == (160, 96, 3)  # (H, W) in display orientation
    frames = decode_timeline(_whole(clip.path, Rate(25), 10), size=(48, 80))
    assert frames.images.shape[1:] == (80, 48, 3)


# -- frame-exact sampling ----------------------------------------------------------------
@pytest.mark.parametrize("rate", [R2398, R2997, Rate(25)])
def test_10fps_sampling_shows_the_right_frame(media: Media, rate: Rate) -> None:
    clip = media.shots(rate)
    tl = _whole(clip.path, rate, clip.frame_count)
    frames = decode_timeline(tl, size=(80, 48))
    assert len(frames) == math.ceil(rate.seconds(clip.frame_count) * 10)
    assert frames.times == tuple(Fraction(k, 10) for k in range(len(frames)))
    assert _codes(frames.images) == [math.floor(t * rate.fraction) for t in frames.times]


@pytest.mark.parametrize("codec,ext", [("h264", ".mp4"), ("hevc", ".mkv"), ("vp9", ".webm"), ("prores", ".mov")])
def test_codecs_match_brute_force_decode(media: Media, codec: str, ext: str) -> None:
    clip = media.shots(R2997, codec=codec, ext=ext)
    tl = _whole(clip.path, R2997, clip.frame_count - 1)
    frames = decode_timeline(tl, size=(80, 48))
    assert _codes(frames.images) == _brute_force_shown(clip.path, list(frames.times))


def test_in_point_inside_a_long_gop_is_exact(media: Media) -> None:
    clip = media.shots(Rate(25), shots=(100, 140), gop=48)
    seg = Segment(clip.path, TimeRange.from_frames(157, 60, Rate(25)), RationalTime(1000, Rate(25)))
    tl = Timeline(Rate(25), (seg,))
    frames = decode_timeline(tl, size=(80, 48), fps=Fraction(25, 2))
    assert frames.times[0] == Fraction(40)
    assert _codes(frames.images) == [157 + 2 * k for k in range(len(frames))]


def test_variable_frame_rate_and_nonzero_first_pts(media: Media) -> None:
    clip = media.vfr()
    info = probe(clip.path)
    assert info.start_time == Fraction(VFR_OFFSET_MS, 1000) and info.variable_rate
    assert info.frame_count == len(VFR_PTS)
    last = Fraction(VFR_PTS[-1], 1000)
    assert last < info.duration <= last + Fraction(1, 10)
    tl = Timeline.sequential([(clip.path, TimeRange.from_frames(0, 38, Rate(25)))], rate=Rate(25))
    frames = decode_timeline(tl, fps=20, size=(80, 48))
    pts = [Fraction(p, 1000) for p in VFR_PTS]
    expected = [bisect.bisect_right(pts, t) - 1 for t in frames.times]
    assert _codes(frames.images) == expected
    assert _codes(frames.images) == _brute_force_shown(clip.path, list(frames.times))


def test_timeline_with_cuts_and_a_gap(media: Media) -> None:
    a = media.shots(Rate(25), shots=(50,))
    b = media.shots(Rate(25), shots=(30, 30))
    r = Rate(25)
    tl = Timeline(
        r,
        (
            Segment(a.path, TimeRange.from_frames(10, 25, r), RationalTime(250, r)),  # 10.0-11.0 s
            Segment(b.path, TimeRange.from_frames(0, 30, r), RationalTime(275, r)),  # 11.0-12.2 s
            Segment(a.path, TimeRange.from_frames(0, 20, r), RationalTime(320, r)),  # gap 12.2-12.8, 12.8-13.6
        ),
    )
    frames = decode_timeline(tl, size=(80, 48))
    assert frames.times[0] == 10 and len(frames) == 36
    assert frames.cut_indices == (10, 22, 28)
    seg = frames.segments.tolist()
    assert seg[:10] == [0] * 10 and seg[10:22] == [1] * 12 and seg[22:28] == [-1] * 6 and seg[28:] == [2] * 8
    assert not frames.images[22:28].any()  # gap is black
    codes = _codes(frames.images)
    assert codes[:10] == [10 + math.floor(Fraction(k, 10) * 25) for k in range(10)]
    assert codes[10:22] == [math.floor(Fraction(k, 10) * 25) for k in range(12)]
    assert codes[28:] == [math.floor(Fraction(k, 10) * 25) for k in range(8)]


def test_a_reducer_keeps_only_its_features_and_sees_every_sample_in_order(media: Media) -> None:
    """Decoded through a reducer in chunks of 7 (36 samples: a last partial chunk), the kept
    features are those of the whole array of images, in order, gaps included."""
    from muvi.nn.encoders import LowLevelEncoder
    from muvi.pipeline import PictureFeatures

    a = media.shots(Rate(25), shots=(50,))
    r = Rate(25)
    tl = Timeline(r, (Segment(a.path, TimeRange.from_frames(10, 25, r), RationalTime(250, r)),
                      Segment(a.path, TimeRange.from_frames(0, 20, r), RationalTime(295, r))))  # a gap 11.0-11.8
    whole = decode_timeline(tl, size=(80, 48))
    enc = LowLevelEncoder()
    reduced = decode_timeline(tl, size=(80, 48), reduce=PictureFeatures(enc), chunk=7)
    assert reduced.images is None and len(reduced) == len(whole) == 26
    assert reduced.cut_indices == whole.cut_indices and reduced.segments.tolist() == whole.segments.tolist()
    from muvi.analysis import thumbnails

    assert np.array_equal(reduced.features["small"], thumbnails(whole.images))
    # the encoder's motion features reach two samples back: equal to one encode of everything
    np.testing.assert_allclose(reduced.features["patches"], enc.encode(whole.images)[0].numpy(), atol=1e-6)


def test_iter_frames_streams_and_can_stop_early(media: Media) -> None:
    clip = media.shots(Rate(25))
    it = iter_frames(_whole(clip.path, Rate(25), 90), size=(32, 32))
    first = next(it)
    assert first.index == 0 and first.segment == 0 and first.source_time == 0 and first.image.shape == (32, 32, 3)
    it.close()
    assert len(sample_times(_whole(clip.path, Rate(25), 90), 10)) == 36


def test_progress_is_reported(media: Media) -> None:
    clip = media.shots(Rate(25))
    seen: list[float] = []
    decode_timeline(_whole(clip.path, Rate(25), 90), size=(32, 32), progress=seen.append)
    assert seen[-1] == 1.0 and seen == sorted(seen)


# -- bad media ---------------------------------------------------------------------------
def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(MediaNotFoundError, match=r"nope\.mp4: file not found"):
        probe(tmp_path / "nope.mp4")
    with pytest.raises(MediaNotFoundError, match="not a regular file"):
        probe(tmp_path)


def test_not_video(media: Media) -> None:
    with pytest.raises(MediaError, match=r"audio_only\.wav: no video stream"):
        probe(media.audio_only())
    with pytest.raises(MediaError, match=r"notes\.mp4: "):
        probe(media.text_file())


def test_truncated_file_is_a_media_error(media: Media) -> None:
    path = media.truncated()
    info = probe(path)
    assert info.truncated and info.duration < Fraction(9)
    tl = _whole(path, Rate(25), 240)
    with pytest.raises(MediaError, match="truncated"):
        check_timeline(tl)
    with pytest.raises(MediaError, match="truncated"):
        decode_timeline(tl, size=(32, 32))


def test_range_past_the_end(media: Media) -> None:
    clip = media.shots(Rate(25))
    tl = _whole(clip.path, Rate(25), 120)
    with pytest.raises(MediaRangeError, match="past the end"):
        check_timeline(tl)
    with pytest.raises(MediaRangeError, match="past the end"):
        decode_timeline(tl, size=(32, 32))
    assert check_timeline(_whole(clip.path, Rate(25), 90))[clip.path].frame_count == 90


def test_a_single_segment_decodes_on_its_own(media: Media) -> None:
    clip = media.shots(Rate(25))
    seg = Segment(clip.path, TimeRange.from_frames(30, 20, Rate(25)), RationalTime(500, Rate(25)))
    frames = decode_timeline(seg, size=(80, 48))
    assert frames.times[0] == 20 and len(frames) == 8
    assert _codes(frames.images) == [30 + math.floor(Fraction(k, 10) * 25) for k in range(8)]


def _damage(clip: Path, packets: list[int], out: Path) -> Path:
    """``clip`` with the payload of the given video packets replaced by noise."""
    import av
    import numpy as np

    with av.open(str(clip)) as c:
        where = [(p.pos, p.size) for p in c.demux(c.streams.video[0]) if p.size]
    data = bytearray(clip.read_bytes())
    rng = np.random.default_rng(0)
    for i in packets:
        pos, size = where[i]
        data[pos + 4:pos + size] = rng.integers(0, 256, size - 4, dtype=np.uint8).tobytes()
    out.write_bytes(bytes(data))
    return out


def test_light_damage_is_concealed_and_heavy_damage_refused_naming_how_much(tmp_path: Path) -> None:
    from muvi.timeline import Timeline, TimeRange
    from muvi.video import decode_timeline

    clip = write_shot_clip(tmp_path / "c.mp4", shots=[100, 100, 100], rate=Rate(25), size=(320, 192)).path
    light = _damage(clip, [40, 140], tmp_path / "light.mp4")  # 2 of 300 frames
    tl = Timeline.sequential([(light, TimeRange.from_frames(0, 300, Rate(25)))], rate=Rate(25))
    frames = decode_timeline(tl, fps=25, size=(64, 64))
    assert len(frames) == 300 and frames.damaged == ((1.6, 1.64), (5.6, 5.64))
    assert (frames.images[40] == frames.images[39]).all()  # the last good frame stays on screen
    heavy = _damage(clip, list(range(30, 300, 10)), tmp_path / "heavy.mp4")  # 27 of 300
    tl = Timeline.sequential([(heavy, TimeRange.from_frames(0, 300, Rate(25)))], rate=Rate(25))
    with pytest.raises(MediaError, match=r"video damaged: 10\.7 % of its frames undecodable .* more than the 2 %"):
        decode_timeline(tl, fps=25, size=(64, 64))


def test_an_empty_packet_is_the_frame_before_again(media: Media, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ogg Theora marks a frame that repeats the one before with an empty packet (screen
    recordings); FFmpeg takes an empty packet for the end of the stream and refuses every packet
    after it ('Invalid argument'), so it is not decoded: the frame before stays on screen."""
    import muvi.video as video

    clip = media.shots(Rate(25))
    real = video.demux

    class Repeat:
        size = 0

        def __init__(self, pts: int) -> None:
            self.pts = pts

        def decode(self) -> list:  # what FFmpeg does with it: the stream ends
            raise av.error.ArgumentError(22, "Invalid argument")

    def with_repeats(container, vs):  # type: ignore[no-untyped-def]
        for packet in real(container, vs):
            yield packet
            if packet.pts is not None:
                yield Repeat(packet.pts)

    monkeypatch.setattr(video, "demux", with_repeats)
    frames = decode_timeline(_whole(clip.path, Rate(25), clip.frame_count), size=(80, 48))
    assert _codes(frames.images) == [math.floor(t * 25) for t in frames.times]


def test_damage_that_breaks_the_demuxer_is_a_media_error() -> None:
    """Found by benchmarks/corruption.py: on some damaged MPEG program streams PyAV loses its
    stream table mid-demux (IndexError), and a damaged index makes seeking fail (EPERM); the
    first is refused as damaged media, the second leaves the header's duration standing."""
    import av

    from muvi.errors import MediaError
    from muvi.probe import _scan_packets, demux

    class Broken:
        name = "damaged.mpg"

        def demux(self, vs):  # type: ignore[no-untyped-def]
            yield "packet"
            raise IndexError("list index out of range")

        def seek(self, *a, **k):  # type: ignore[no-untyped-def]
            raise av.error.PermissionError(1, "Operation not permitted")

    packets = demux(Broken(), None)
    assert next(packets) == "packet"
    with pytest.raises(MediaError, match="damaged.mpg: video data damaged"):
        next(packets)

    class Stream:
        time_base = Fraction(1, 90000)

    assert _scan_packets(Broken(), Stream(), Fraction(0), False) == (None, None, False)


def test_prefetched_keeps_order_raises_the_producers_error_and_closes_on_early_stop() -> None:
    import threading

    from muvi.video import prefetched

    assert list(prefetched(iter(range(100)), depth=3)) == list(range(100))

    def broken():  # type: ignore[no-untyped-def]
        yield 1
        raise MediaError(Path("x.mp4"), "video undecodable at 0.040 s")

    got = []
    with pytest.raises(MediaError, match="undecodable"):
        for x in prefetched(broken()):
            got.append(x)
    assert got == [1]

    closed = threading.Event()
    produced = []

    def endless():  # type: ignore[no-untyped-def]
        try:
            k = 0
            while True:
                produced.append(k)
                yield k
                k += 1
        finally:
            closed.set()

    it = prefetched(endless(), depth=4)
    assert [next(it) for _ in range(5)] == [0, 1, 2, 3, 4]
    it.close()  # the consumer stops early (a cancel): the producer stops and closes its source
    assert closed.is_set() and len(produced) <= 5 + 4 + 2
    assert not any(t.name == "muvi-decode" for t in threading.enumerate())
