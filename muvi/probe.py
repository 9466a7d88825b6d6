"""Probing media with PyAV: exact duration and frame count, rate, size, rotation, audio.

``probe(path)`` reads the header, decodes the first frame (proving the codec works and
giving the rotation) and scans packet timestamps without decoding, which gives the exact
duration and frame count, detects variable frame rate and tells a truncated file from a
short one. ``check_timeline`` probes every file of a timeline once and checks each source
range lies inside its media. Every failure is a :class:`~muvi.errors.MediaError` naming the
file and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from muvi.errors import MediaError, MediaNotFoundError, MediaRangeError
from muvi.timeline import Rate, Timeline

__all__ = ["AudioStreamInfo", "MediaInfo", "probe", "check_timeline", "open_media", "ffmpeg_reason"]


@dataclass(frozen=True)
class AudioStreamInfo:
    index: int
    codec: str
    sample_rate: int
    channels: int
    duration: Fraction | None


@dataclass(frozen=True)
class MediaInfo:
    """What :func:`probe` learns about a media file (video stream 0)."""

    path: Path
    container: str
    codec: str
    width: int
    height: int
    rotation: int  # counter-clockwise degrees to apply for display (0, 90, 180, 270)
    rate: Rate  # nominal frame rate, snapped to a standard rate where close
    variable_rate: bool
    start_time: Fraction  # pts of the first frame, seconds
    duration: Fraction  # from the first frame to the end of the last, seconds
    frame_count: int | None
    pix_fmt: str | None
    audio: tuple[AudioStreamInfo, ...] = field(default_factory=tuple)
    truncated: bool = False  # the header promises more than the file's packets hold

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) as displayed, rotation applied."""
        return (self.height, self.width) if self.rotation % 180 == 90 else (self.width, self.height)

    def to_json(self) -> dict[str, Any]:
        def frac(x: Fraction | None) -> Any:
            return None if x is None else {"seconds": float(x), "exact": f"{x.numerator}/{x.denominator}"}

        return {
            "path": str(self.path),
            "container": self.container,
            "video": {
                "codec": self.codec,
                "width": self.width,
                "height": self.height,
                "display_width": self.display_size[0],
                "display_height": self.display_size[1],
                "rotation": self.rotation,
                "rate": {"num": self.rate.num, "den": self.rate.den, "fps": float(self.rate)},
                "variable_rate": self.variable_rate,
                "start_time": frac(self.start_time),
                "duration": frac(self.duration),
                "frame_count": self.frame_count,
                "pix_fmt": self.pix_fmt,
                "truncated": self.truncated,
            },
            "audio": [
                {
                    "index": a.index,
                    "codec": a.codec,
                    "sample_rate": a.sample_rate,
                    "channels": a.channels,
                    "duration": frac(a.duration),
                }
                for a in self.audio
            ],
        }


def _av() -> Any:
    import av

    return av


def open_media(path: Path) -> Any:
    av = _av()
    if not path.exists():
        raise MediaNotFoundError(path, "file not found")
    if not path.is_file():
        raise MediaNotFoundError(path, "not a regular file")
    try:
        container = av.open(str(path), mode="r")
    except av.error.FFmpegError as exc:
        raise MediaError(path, f"not a readable media file ({ffmpeg_reason(exc)})") from exc
    except UnicodeDecodeError as exc:  # PyAV decodes the container's metadata as UTF-8
        raise MediaError(path, "not a readable media file (its metadata is not valid text: damaged header)") from exc
    except OSError as exc:
        raise MediaError(path, f"cannot open: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise MediaError(path, "no video stream")
    return container


def demux(container: Any, vs: Any) -> Iterator[Any]:
    """``container.demux(vs)``, with the demuxer's loss of its own stream table on damaged data
    (PyAV raises IndexError mid-iteration on some MPEG program streams) as a :class:`MediaError`."""
    packets = container.demux(vs)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except IndexError as exc:
            raise MediaError(Path(container.name), "video data damaged: the demuxer lost its streams") from exc
        yield packet


def ffmpeg_reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(": '")[0] if isinstance(text, str) else str(exc)


def _ts(value: int | None, time_base: Fraction | None) -> Fraction | None:
    if value is None or time_base is None:
        return None
    return Fraction(value) * Fraction(time_base)


def probe(path: Path | str) -> MediaInfo:
    """Describe ``path``'s first video stream and its audio streams.

    Raises :class:`MediaNotFoundError` when missing and :class:`MediaError` when the file is
    not media, has no video stream or its video cannot be decoded.
    """
    av = _av()
    path = Path(path)
    container = open_media(path)
    try:
        vs = container.streams.video[0]
        cc = vs.codec_context
        tb = vs.time_base
        start = _ts(vs.start_time, tb) or Fraction(0)  # source time 0 = this pts (decode_segment agrees)
        guessed = vs.guessed_rate or vs.average_rate or vs.base_rate
        avg = vs.average_rate
        if not guessed:
            raise MediaError(path, "video stream has no frame rate")
        rate = Rate.from_float(float(guessed))
        variable = bool(avg) and abs(float(avg) - float(guessed)) > 0.01 * float(guessed)
        # decode the first frame: proves the codec works and gives rotation
        try:
            first = next(container.decode(vs), None)
        except av.error.FFmpegError as exc:
            raise MediaError(path, f"video cannot be decoded ({ffmpeg_reason(exc)})") from exc
        if first is None:
            raise MediaError(path, "video stream has no decodable frame")
        rotation = int(round(getattr(first, "rotation", 0) or 0)) % 360
        if vs.start_time is None and first.pts is not None:
            start = Fraction(first.pts) * Fraction(tb)
        header = _header_duration(container, vs)
        duration, frame_count, variable = _scan_packets(container, vs, start, variable)
        truncated = duration is not None and header is not None and header - duration > Fraction(1, 2)
        if duration is None:
            duration = header
        if duration is None:
            raise MediaError(path, "duration unknown (no timestamps and no duration in the header)")
        audio = []
        for a in container.streams.audio:
            ac = a.codec_context
            channels = getattr(ac, "channels", None) or (ac.layout.nb_channels if ac.layout else 0)
            audio.append(
                AudioStreamInfo(a.index, ac.name, int(ac.sample_rate or 0), int(channels), _ts(a.duration, a.time_base))
            )
        return MediaInfo(
            path=path,
            container=container.format.name,
            codec=cc.name,
            width=cc.width,
            height=cc.height,
            rotation=rotation,
            rate=rate,
            variable_rate=variable,
            start_time=start,
            duration=max(duration, Fraction(0)),
            frame_count=frame_count or vs.frames or None,
            pix_fmt=cc.pix_fmt,
            audio=tuple(audio),
            truncated=truncated,
        )
    finally:
        container.close()


def _header_duration(container: Any, vs: Any) -> Fraction | None:
    """Duration the header claims. FFmpeg's container duration is the length for most formats
    but the absolute end time for Matroska, so the smaller reading is taken."""
    if vs.duration is not None:
        return Fraction(vs.duration) * Fraction(vs.time_base)
    if not container.duration:
        return None
    d = Fraction(container.duration, 1_000_000)
    return min(d, d - Fraction(container.start_time or 0, 1_000_000))


def _scan_packets(
    container: Any, vs: Any, start: Fraction, variable: bool
) -> tuple[Fraction | None, int | None, bool]:
    """Exact duration, frame count and VFR from packet timestamps (demux only, no decode).

    Returns ``(None, None, variable)`` when packets carry no timestamps.
    """
    av = _av()
    tb = Fraction(vs.time_base)
    try:
        container.seek(0, backward=True)
    except av.error.FFmpegError:  # a damaged index: no scan from the start, the header's word stands
        return None, None, variable
    pts_list: list[int] = []
    end = None
    try:
        for packet in demux(container, vs):
            if packet.pts is None or packet.size == 0:
                continue
            pts_list.append(packet.pts)
            e = packet.pts + (packet.duration or 0)
            end = e if end is None or e > end else end
    except (av.error.FFmpegError, MediaError):
        pass  # a damaged tail: what was read so far is what the file has
    if not pts_list or end is None:
        return None, None, variable
    pts_list.sort()
    deltas = np.diff(np.asarray(pts_list, dtype=np.int64))
    if end == pts_list[-1] and len(deltas):  # no packet durations: assume one median step
        end += int(np.median(deltas))
    if len(deltas) >= 2:
        med = float(np.median(deltas))
        spread = float(deltas.max() - deltas.min())
        variable = spread > max(2.0, 0.05 * med)
    return Fraction(end) * tb - start, len(pts_list), variable


def check_timeline(timeline: Timeline) -> dict[Path, MediaInfo]:
    """Probe every media file of ``timeline`` once and check each source range lies inside it.

    A range may end at most half a media frame past the probed duration (editors round out
    points to frames). Returns the probes by path.
    """
    infos: dict[Path, MediaInfo] = {}
    for i, seg in enumerate(timeline.segments):
        info = infos.get(seg.media) or probe(seg.media)
        infos[seg.media] = info
        tolerance = info.rate.seconds(1) / 2
        end = seg.source.end_seconds
        if end > info.duration + tolerance and info.truncated:
            raise MediaError(
                seg.media,
                f"file is truncated: its video data ends at {float(info.duration):.3f} s, but segment {i} "
                f"needs frames until {float(end):.3f} s",
            )
        if end > info.duration + tolerance:
            raise MediaRangeError(
                seg.media,
                f"segment {i} source range ends at {float(end):.3f} s, past the end of the media "
                f"({float(info.duration):.3f} s)",
            )
    return infos
