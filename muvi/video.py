"""Reading the user's media with PyAV: probing and frame-exact sampled decoding.

``probe(path)`` (from :mod:`muvi.probe`) describes a file. ``iter_frames(timeline, fps=10, size=(224, 224))`` yields,
for every sample instant ``t_k = start + k / fps`` of the timeline, the frame *shown* at that
instant (the last frame whose presentation time is ≤ the source instant), scaled in the
decoding loop with libswscale, with its exact record time. Gaps yield black frames.
``decode_timeline`` collects the same into a :class:`Frames` with the cut indices.

Source time 0 of a media file is its first video frame (streams whose first pts is not zero
are handled by offsetting by the stream's start time). Variable frame rate is handled because
sampling follows pts, not frame counts.

Every failure becomes a :class:`~muvi.errors.MediaError` naming the file and the reason.
"""

from __future__ import annotations

import bisect
import logging
import math
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from fractions import Fraction
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence

import numpy as np

from muvi.analysis import colour_histograms, thumbnails
from muvi.errors import MediaError, MediaRangeError
from muvi.probe import AudioStreamInfo, MediaInfo, check_timeline, demux, ffmpeg_reason, open_media, probe
from muvi.timeline import Segment, Timeline

__all__ = [
    "AudioStreamInfo",
    "MediaInfo",
    "SampledFrame",
    "Frames",
    "DEFAULT_FPS",
    "probe",
    "check_timeline",
    "sample_times",
    "iter_frames",
    "decode_timeline",
    "decode_segment",
    "cut_indices",
]

log = logging.getLogger(__name__)
DEFAULT_FPS = Fraction(10)
_INTERPOLATION = "AREA"


@dataclass(frozen=True)
class SampledFrame:
    index: int  # sample index from the timeline start
    time: Fraction  # record seconds (absolute)
    image: np.ndarray  # (H, W, 3) uint8 RGB
    segment: int | None  # segment index, None in a gap
    source_time: Fraction | None  # seconds into the media, None in a gap
    # the (32, 32, 3) float32 thumbnail (:func:`muvi.analysis.thumbnails`), where the decode made
    # one (its cut-candidate test, with ``between``); None otherwise
    small: np.ndarray | None = None


@dataclass(frozen=True)
class Frames:
    """A timeline sampled at ``fps``: images (T, H, W, 3) uint8 with exact record times, or
    only what a reducer kept of them (:func:`decode_timeline`'s ``reduce``)."""

    images: np.ndarray | None  # (T, H, W, 3) uint8; None when decoded through a reducer
    times: tuple[Fraction, ...]  # record seconds of each sample
    segments: np.ndarray  # (T,) int64, segment index or -1 in a gap
    cut_indices: tuple[int, ...]  # first sample of every shot after the first
    fps: Fraction
    # record-time ranges (seconds) where damaged packets were concealed by the last good frame
    damaged: tuple[tuple[float, float], ...] = ()
    # per sample that may start a new shot: every frame shown since the previous sample, as
    # (record seconds of each, (n, 32, 32, 3) thumbnails), kept in the decode pass so a cut is
    # placed on its exact frame without decoding again (see :func:`decode_segment`)
    between: Mapping[int, tuple[tuple[Fraction, ...], np.ndarray]] = field(default_factory=dict)
    # what a reducer made of the images, per name: (T, ...) arrays in sample order
    features: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.times)


class FrameReducer(Protocol):
    """Turns consecutive chunks of decoded images into what is kept of them, so a long timeline
    never holds all its images at once. Called in sample order with (k, H, W, 3) uint8 chunks;
    returns, per name, a (k, ...) array for those samples."""

    def __call__(self, images: np.ndarray) -> Mapping[str, np.ndarray]:
        ...


# ---------------------------------------------------------------------------------------
def sample_times(timeline: Timeline, fps: Fraction | int = DEFAULT_FPS) -> list[Fraction]:
    """Record instants ``start + k/fps`` for ``k`` in ``0 .. ceil(duration*fps) - 1``."""
    fps = Fraction(fps)
    if fps <= 0:
        raise MediaError(timeline.name or "timeline", f"sample rate must be positive, got {fps}")
    t0 = timeline.start.seconds
    n = math.ceil(timeline.duration.seconds * fps)
    return [t0 + Fraction(k) / fps for k in range(n)]


def _av() -> Any:
    import av

    return av


def _converter(size: tuple[int, int] | None, rotation: int) -> Callable[[Any], np.ndarray]:
    """Frame → (H, W, 3) uint8 RGB in display orientation, scaled with one reused swscale
    context (a fresh context per frame costs ~4x the scaling itself at 1080p → 224)."""
    from av.video.reformatter import VideoReformatter

    reformatter = VideoReformatter()
    k = (rotation // 90) % 4
    if size is not None:
        w, h = size
        if w <= 0 or h <= 0:
            raise ValueError(f"frame size must be positive, got {size}")
        # reformat in stored orientation, then rotate to display orientation
        sw, sh = (h, w) if k % 2 else (w, h)
    else:
        sw = sh = None

    def convert(frame: Any) -> np.ndarray:
        if sw is None:
            img = frame.to_ndarray(format="rgb24")
        else:
            img = reformatter.reformat(
                frame, width=sw, height=sh, format="rgb24", interpolation=_INTERPOLATION
            ).to_ndarray()
        return np.ascontiguousarray(np.rot90(img, k)) if k else img

    return convert


MAX_DAMAGE = 0.02  # the share of a segment's frames that may be concealed before it is refused
# a sample whose picture moved at least this far from the previous one (half-L1 colour
# histogram distance at 32×32) keeps the frames between them: every cut muvi.analysis finds
# has at least this distance (its structural-spike test needs 0.1 of colour change)
CUT_CANDIDATE = 0.1


class _Intervals:
    """In the decode pass: the frames shown between consecutive samples, kept (as 32×32
    thumbnails) only where the picture changed enough for a cut to lie between them."""

    def __init__(self, out: dict[int, tuple[tuple[Fraction, ...], np.ndarray]], origin: Fraction) -> None:
        self.out, self.origin = out, origin
        self.anchor: tuple[Fraction, Any] | None = None  # the frame shown at the previous sample
        self.recent: list[tuple[Fraction, Any]] = []  # frames decoded after it
        self.hist: np.ndarray | None = None  # the previous sample's colour histogram
        self.small: Callable[[Any], np.ndarray] | None = None

    def decoded(self, t: Fraction, frame: Any) -> None:
        self.recent.append((t, frame))

    def sampled(self, i: int, image: np.ndarray, shown: tuple[Fraction, Any], rotation: int) -> np.ndarray:
        """The sample's 32×32 thumbnail, after keeping the frames since the previous sample if
        the picture changed enough between them."""
        small = thumbnails(image[None])
        hist = colour_histograms(small)[0]  # as muvi.analysis measures the change between samples
        if self.hist is not None and self.anchor is not None and self.recent:
            if 0.5 * float(np.abs(hist - self.hist).sum()) >= CUT_CANDIDATE:
                self.small = self.small or _converter((32, 32), rotation)
                frames = [self.anchor, *self.recent]
                self.out[i] = (tuple(t - self.origin for t, _ in frames), np.stack([self.small(f) for _, f in frames]))
        self.hist, self.anchor, self.recent = hist, shown, []
        return small[0]


@dataclass
class Damage:
    """Packets a decode could not use (concealed: the last good frame stays on screen)."""

    good: int = 0
    bad: list[Fraction] = field(default_factory=list)  # pts seconds of each damaged packet
    reason: str = ""

    @property
    def share(self) -> float:
        return len(self.bad) / max(1, self.good + len(self.bad))


def _timed(container: Any, vs: Any, origin: Fraction, seek_pts: int | None,
           damage: Damage | None = None) -> Iterator[tuple[Fraction, Any]]:
    """Decoded frames of ``vs`` with exact pts seconds (continuing timestamps where missing).
    Packets are decoded one by one: one that FFmpeg cannot decode is skipped and counted in
    ``damage`` (without it, the error propagates)."""
    av = _av()
    tb = Fraction(vs.time_base)
    if seek_pts is not None:
        container.seek(seek_pts, stream=vs, backward=True, any_frame=False)
    last: Fraction | None = None
    step = Fraction(1) / Fraction(vs.guessed_rate or vs.average_rate or 25)
    for packet in demux(container, vs):
        if packet.size == 0 and packet.pts is not None:
            # Ogg Theora's mark for "the frame before, again" (a screen recording's still
            # stretches: 118 of the 228 packets of GNOME Mahjongg's help video): nothing to
            # decode, and FFmpeg takes an empty packet for the end of the stream, refusing every
            # packet after it. The frame before stays on screen. (The demuxer's own flush packet
            # at the end has no pts and is decoded.)
            continue
        try:
            frames = packet.decode()
        except av.error.InvalidDataError as exc:  # damaged data, not a broken decoder or a full memory
            if damage is None:
                raise
            at = Fraction(packet.pts) * tb if packet.pts is not None else (origin if last is None else last + step)
            damage.bad.append(at)
            damage.reason = damage.reason or ffmpeg_reason(exc)
            continue
        for frame in frames:
            t = Fraction(frame.pts) * tb if frame.pts is not None else (origin if last is None else last + step)
            if last is not None and t > last:
                step = t - last
            last = t
            if damage is not None:
                damage.good += 1
            yield t, frame


def _frames_from(
    container: Any, vs: Any, origin: Fraction, first_pts: int, target: Fraction, damage: Damage | None = None
) -> Iterator[tuple[Fraction, Any]]:
    """Timed frames starting at the keyframe at or before ``target`` (pts seconds).

    If the demuxer lands after ``target`` (imprecise seeking in some formats), decoding
    restarts from the first frame instead.
    """
    tb = Fraction(vs.time_base)
    nominal = Fraction(1) / Fraction(vs.guessed_rate or vs.average_rate or 25)
    if target <= origin + nominal:
        yield from _timed(container, vs, origin, None, damage)
        return
    it = _timed(container, vs, origin, math.floor(target / tb), damage)
    first = next(it, None)
    if first is not None and first[0] <= target:
        yield first
        yield from it
        return
    it.close()
    log.debug("seek overshoot in %s; decoding from the start", container.name)
    yield from _timed(container, vs, origin, first_pts, damage)


def decode_segment(
    segment: Segment,
    source_times: Sequence[Fraction],
    *,
    size: tuple[int, int] | None = None,
    fast: bool = True,
    damaged: list[tuple[Fraction, Fraction]] | None = None,
    max_damage: float = MAX_DAMAGE,
    between: dict[int, tuple[tuple[Fraction, ...], np.ndarray]] | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Yield the image shown at each of ``source_times`` (seconds from the media's first frame),
    with its 32×32 thumbnail where ``between`` asks for the cut-candidate test (else None).

    A packet FFmpeg cannot decode is concealed (the last good frame stays on screen, as every
    editor plays such a file) while at most ``max_damage`` of the decoded frames are lost; the
    damaged source ranges go to ``damaged``. Beyond that share the segment is refused, naming
    how much was damaged.

    ``source_times`` must be non-decreasing. Frames are decoded once, in order, from the
    keyframe at or before the first instant; only the frames actually shown are scaled and
    converted, and a frame shown at several instants is converted once. With ``between``, the
    frames shown between two samples whose pictures differ by :data:`CUT_CANDIDATE` or more go
    into it, keyed by the later sample's position in ``source_times``, as (source seconds,
    32×32 thumbnails).

    Decoding uses FFmpeg's own threading (on 2 cores it already keeps both busy; frame
    threading measured slower). ``fast`` skips the in-loop deblocking filter and allows
    FFmpeg's non-bit-exact speedups: which frame is shown never changes, only pixel detail
    that a downscale to analysis size averages away. Use ``fast=False`` for pictures people see.
    """
    av = _av()
    path = segment.media
    if not source_times:
        return
    container = open_media(path)
    try:
        vs = container.streams.video[0]
        if fast:
            vs.codec_context.options = {"skip_loop_filter": "all", "flags2": "+fast"}
        tb = Fraction(vs.time_base)
        first_pts = vs.start_time if vs.start_time is not None else 0
        origin = Fraction(first_pts) * tb
        nominal = Fraction(1) / Fraction(vs.guessed_rate or vs.average_rate or 25)
        targets = [origin + s for s in source_times]
        damage = Damage()
        frames = _frames_from(container, vs, origin, first_pts, targets[0], damage)
        convert: Callable[[Any], np.ndarray] | None = None
        i = 0
        prev: Any = None
        prev_t: Fraction | None = None
        prev_img: np.ndarray | None = None
        frame_dur = nominal
        intervals = _Intervals(between, origin) if between is not None else None
        rotation = 0
        try:
            for t, frame in frames:
                if convert is None:
                    rotation = int(round(getattr(frame, "rotation", 0) or 0)) % 360
                    convert = _converter(size, rotation)
                while i < len(targets) and t > targets[i]:
                    if prev is None:  # an instant before the first frame shows the first frame
                        prev, prev_t = frame, t
                    if prev_img is None:
                        prev_img = convert(prev)
                    yield prev_img, None if intervals is None else intervals.sampled(i, prev_img, (prev_t, prev), rotation)
                    i += 1
                if i == len(targets):
                    break
                if prev_t is not None and t > prev_t:
                    frame_dur = t - prev_t
                prev, prev_t, prev_img = frame, t, None
                if intervals is not None:
                    intervals.decoded(t, frame)
        except av.error.FFmpegError as exc:
            at = float(prev_t - origin) if prev_t is not None else 0.0
            raise MediaError(path, f"video undecodable at {at:.3f} s ({ffmpeg_reason(exc)})") from exc
        _check_damage(path, damage, origin, frame_dur, max_damage, damaged)
        if prev is None or convert is None:
            raise MediaError(path, "video stream has no decodable frame in the requested range")
        assert prev_t is not None
        # end of stream: the last frame stays on screen for one frame duration
        shown_until = prev_t + frame_dur
        while i < len(targets):
            if targets[i] >= shown_until + frame_dur / 2:
                raise MediaRangeError(
                    path,
                    f"video ends at {float(shown_until - origin):.3f} s but segment needs frames until "
                    f"{float(segment.source.end_seconds):.3f} s (range past the end, or file truncated)",
                )
            if prev_img is None:
                prev_img = convert(prev)
            yield prev_img, None if intervals is None else intervals.sampled(i, prev_img, (prev_t, prev), rotation)
            i += 1
    finally:
        container.close()


def _check_damage(path: Path, damage: Damage, origin: Fraction, frame_dur: Fraction, max_damage: float,
                  damaged: list[tuple[Fraction, Fraction]] | None) -> None:
    if not damage.bad:
        return
    ranges: list[list[Fraction]] = []
    for t in sorted(damage.bad):
        t -= origin
        if ranges and t <= ranges[-1][1] + 2 * frame_dur:
            ranges[-1][1] = t + frame_dur
        else:
            ranges.append([t, t + frame_dur])
    where = ", ".join(f"{float(a):.3f}-{float(b):.3f} s" for a, b in ranges[:4]) + (" …" if len(ranges) > 4 else "")
    if damage.share > max_damage:
        raise MediaError(path, f"video damaged: {100 * damage.share:.1f} % of its frames undecodable ({where}; "
                               f"{damage.reason}), more than the {100 * max_damage:g} % muvi conceals")
    log.warning("%s: concealed %d damaged packets (%s)", path, len(damage.bad), where)
    if damaged is not None:
        damaged.extend((a, b) for a, b in ranges)


def _as_timeline(source: Timeline | Segment) -> Timeline:
    """A lone segment is a timeline of one segment at its record rate."""
    return source if isinstance(source, Timeline) else Timeline(source.record_start.rate, (source,))


def iter_frames(
    timeline: Timeline | Segment,
    *,
    fps: Fraction | int = DEFAULT_FPS,
    size: tuple[int, int] | None = (224, 224),
    fast: bool = True,
    damaged: list[tuple[float, float]] | None = None,
    between: dict[int, tuple[tuple[Fraction, ...], np.ndarray]] | None = None,
) -> Iterator[SampledFrame]:
    """Yield the frame shown at every sample instant of ``timeline`` (black in gaps).
    Concealed damage (see :func:`decode_segment`) goes to ``damaged`` as record-time seconds;
    the frames between samples where a cut may lie (segments at the timeline's rate) go to
    ``between``, keyed by sample index, with record seconds.

    ``size`` is the (width, height) of the returned images in display orientation, ``None``
    for the native size (then every segment must share one display size). ``fast``: see
    :func:`decode_segment`. A single :class:`Segment` is decoded on its own record time.
    """
    timeline = _as_timeline(timeline)
    times = sample_times(timeline, fps)
    # group consecutive instants by segment
    groups: list[tuple[int | None, list[int]]] = []
    seg_i = 0
    for k, t in enumerate(times):
        while seg_i < len(timeline.segments) and t >= timeline.segments[seg_i].record.end_seconds:
            seg_i += 1
        s = seg_i if seg_i < len(timeline.segments) and t >= timeline.segments[seg_i].record_start.seconds else None
        if groups and groups[-1][0] == s:
            groups[-1][1].append(k)
        else:
            groups.append((s, [k]))
    black: np.ndarray | None = None
    for s, ks in groups:
        if s is None:
            if black is None:
                if size is None:
                    w, h = probe(timeline.segments[0].media).display_size
                else:
                    w, h = size
                black = np.zeros((h, w, 3), np.uint8)
            for k in ks:
                yield SampledFrame(k, times[k], black, None, None)
            continue
        seg = timeline.segments[s]
        src = [seg.source_seconds_at(times[k]) for k in ks]
        hurt: list[tuple[Fraction, Fraction]] = []
        local: dict[int, tuple[tuple[Fraction, ...], np.ndarray]] | None = (
            {} if between is not None and seg.source.rate == timeline.rate else None)
        # run the decoder to its end (not zip): its damage check comes after the last image
        for j, (img, small) in enumerate(decode_segment(seg, src, size=size, fast=fast, damaged=hurt, between=local)):
            yield SampledFrame(ks[j], times[ks[j]], img, s, src[j], small)
        shift = seg.record_start.seconds - seg.source.start_seconds  # source seconds -> record seconds
        for j, (at, thumbs) in (local or {}).items():
            between[ks[j]] = (tuple(a + shift for a in at), thumbs)  # type: ignore[index]
        if damaged is not None:
            offset = seg.record_start.seconds - seg.source.start_seconds - timeline.start.seconds
            damaged.extend((round(float(a + offset), 4), round(float(b + offset), 4)) for a, b in hurt)


PREFETCH = 16  # decoded samples the decoding thread may run ahead of the reducer


def prefetched(items: Iterator[Any], depth: int = PREFETCH) -> Iterator[Any]:
    """``items`` produced in a thread of their own, at most ``depth`` ahead of the consumer.

    FFmpeg's decoding and scaling release the GIL, so the decode of the next samples overlaps
    with whatever the consumer does with the last ones (in a job: the visual encoder; the
    thumbnails are made in the producer, beside the decode). An exception in the producer is raised in the consumer; when the consumer stops
    early (an error, a cancel), the producer stops at its next item and closes ``items`` (and with
    it the media files) before this generator returns."""
    q: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    end = object()

    def put(x: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(x, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for x in items:
                if not put(x):
                    return
            put(end)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            put(_Raised(exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="muvi-decode", daemon=True)
    worker.start()
    try:
        while True:
            x = q.get()
            if x is end:
                return
            if isinstance(x, _Raised):
                raise x.exc
            yield x
    finally:
        stop.set()
        worker.join()


@dataclass(frozen=True)
class _Raised:
    exc: BaseException


def decode_timeline(
    timeline: Timeline | Segment,
    *,
    fps: Fraction | int = DEFAULT_FPS,
    size: tuple[int, int] | None = (224, 224),
    fast: bool = True,
    progress: Callable[[float], None] | None = None,
    reduce: FrameReducer | None = None,
    chunk: int = 64,
) -> Frames:
    """Decode the whole timeline (or one segment) into :class:`Frames` (see :func:`iter_frames`),
    the decoding running :func:`prefetched` ahead of the rest.

    With ``reduce``, the images go to it ``chunk`` samples at a time and only what it returns is
    kept (``Frames.features``; ``images`` is None): memory then no longer grows with the
    timeline's length by a full image per sample. ``features["small"]`` then also holds every
    sample's 32×32 thumbnail (:func:`muvi.analysis.thumbnails`; the decode makes most of them for
    its cut-candidate test anyway)."""
    timeline = _as_timeline(timeline)
    fps = Fraction(fps)
    times = sample_times(timeline, fps)
    n = len(times)
    store = n if reduce is None else max(1, chunk)
    images: np.ndarray | None = None
    small = np.empty((n, 32, 32, 3), np.float32) if reduce is not None else None
    segments = np.full((n,), -1, np.int64)
    damaged: list[tuple[float, float]] = []
    between: dict[int, tuple[tuple[Fraction, ...], np.ndarray]] = {}
    kept: dict[str, list[np.ndarray]] = {}

    def flush(count: int) -> None:
        for name, value in reduce(images[:count]).items():  # type: ignore[misc, index]
            kept.setdefault(name, []).append(np.asarray(value))

    for sf in prefetched(iter_frames(timeline, fps=fps, size=size, fast=fast, damaged=damaged, between=between)):
        if images is None:
            images = np.empty((store, *sf.image.shape), np.uint8)
        if sf.image.shape != images.shape[1:]:
            raise MediaError(
                timeline.segments[sf.segment or 0].media,
                f"frame size {sf.image.shape[1]}x{sf.image.shape[0]} differs from the first segment's; pass a size",
            )
        images[sf.index % store] = sf.image
        segments[sf.index] = -1 if sf.segment is None else sf.segment
        if small is not None:
            small[sf.index] = sf.small if sf.small is not None else thumbnails(sf.image[None])[0]
        if reduce is not None and (sf.index + 1) % store == 0:
            flush(store)
        if progress is not None and (sf.index % 16 == 0 or sf.index == n - 1):
            progress((sf.index + 1) / n)
    assert images is not None
    if reduce is not None:
        if n % store:
            flush(n % store)
        features = {"small": small, **{name: np.concatenate(parts) for name, parts in kept.items()}}
        return Frames(None, tuple(times), segments, cut_indices(timeline, times), fps, tuple(damaged), between,
                      features)
    return Frames(images, tuple(times), segments, cut_indices(timeline, times), fps, tuple(damaged), between)


def cut_indices(timeline: Timeline, times: Sequence[Fraction]) -> tuple[int, ...]:
    """Index of the first sample at or after each cut frame of the timeline (excluding 0)."""
    out: set[int] = set()
    for frame in timeline.cut_frames():
        k = bisect.bisect_left(times, timeline.rate.seconds(frame))
        if 0 < k < len(times):
            out.add(k)
    return tuple(sorted(out))
