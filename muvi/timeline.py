"""Exact editorial time: rates, times, ranges, segments and timelines.

Everything here is exact. A time is an integer frame count at an integer rate ``num/den``;
seconds are :class:`fractions.Fraction`; audio sample positions are
``floor(frames * sample_rate * den / num)`` counted from frame 0 of the rate (not from a clip),
so that two stems that start at the same record frame start at the same sample whatever the
path that led there. Drop-frame is only a timecode label (29.97 and 59.94); arithmetic always
uses frame counts.

A :class:`Timeline` is the list of clips a user selected, each a :class:`Segment` (media
file, source range in the media, record start on the timeline). Holes between segments are
gaps (black picture). OTIO import/export lives in :mod:`muvi.otio`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Literal, Sequence

from muvi.errors import InvalidInputError, TimelineError

__all__ = [
    "AUDIO_SAMPLE_RATE",
    "STANDARD_RATES",
    "Rate",
    "RationalTime",
    "TimeRange",
    "Segment",
    "Timeline",
]

AUDIO_SAMPLE_RATE = 48000
Rounding = Literal["floor", "ceil", "round"]


def _round_fraction(x: Fraction, rounding: Rounding) -> int:
    if rounding == "floor":
        return math.floor(x)
    if rounding == "ceil":
        return math.ceil(x)
    if rounding == "round":  # half away from zero: deterministic and unsurprising for editors
        return math.floor(x + Fraction(1, 2)) if x >= 0 else -math.floor(-x + Fraction(1, 2))
    raise InvalidInputError(f"unknown rounding {rounding!r}")


@dataclass(frozen=True)
class Rate:
    """A frame (or sample) rate as an exact integer fraction ``num/den`` frames per second."""

    num: int
    den: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.num, int) or not isinstance(self.den, int) or isinstance(self.num, bool):
            raise InvalidInputError(f"rate must be integers num/den, got {self.num!r}/{self.den!r}")
        if self.num <= 0 or self.den <= 0:
            raise InvalidInputError(f"rate must be positive, got {self.num}/{self.den}")
        g = math.gcd(self.num, self.den)
        if g != 1:
            object.__setattr__(self, "num", self.num // g)
            object.__setattr__(self, "den", self.den // g)

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_float(cls, fps: float, *, tolerance: float = 0.1) -> "Rate":
        """Snap a float rate to the nearest standard rate within ``tolerance`` fps.

        ``23.976`` → 24000/1001, ``29.97`` → 30000/1001, ``25.0`` → 25. Rates far from every
        standard one keep an exact reading: NTSC-style ``N*1000/1001`` when they look like
        one, else the fraction with the smallest denominator ≤ 1001.
        """
        if not math.isfinite(fps) or fps <= 0:
            raise InvalidInputError(f"frame rate must be a positive number, got {fps!r}")
        best = min(STANDARD_RATES, key=lambda r: abs(float(r) - fps))
        if abs(float(best) - fps) <= tolerance:
            return best
        ntsc = round(fps * 1.001)
        if ntsc > 0 and abs(fps - ntsc * 1000 / 1001) < 1e-3 and abs(fps - ntsc) > 1e-3:
            return cls(ntsc * 1000, 1001)
        f = Fraction(fps).limit_denominator(1001)
        return cls(f.numerator, f.denominator)

    @classmethod
    def parse(cls, value: "Rate | int | float | Fraction | str") -> "Rate":
        """Read a rate from ``Rate``, an int, a ``Fraction``, ``"24000/1001"`` or ``"23.976"``."""
        if isinstance(value, Rate):
            return value
        if isinstance(value, bool):
            raise InvalidInputError(f"not a frame rate: {value!r}")
        if isinstance(value, int):
            return cls(value, 1)
        if isinstance(value, Fraction):
            return cls(value.numerator, value.denominator)
        if isinstance(value, float):
            return cls.from_float(value)
        if isinstance(value, str):
            text = value.strip()
            m = re.fullmatch(r"(\d+)\s*/\s*(\d+)", text)
            if m:
                return cls(int(m.group(1)), int(m.group(2)))
            try:
                return cls.from_float(float(text))
            except ValueError:
                pass
        raise InvalidInputError(f"not a frame rate: {value!r} (use e.g. 25, 24000/1001 or 29.97)")

    # -- views --------------------------------------------------------------------------
    @property
    def fraction(self) -> Fraction:
        return Fraction(self.num, self.den)

    def __float__(self) -> float:
        return self.num / self.den

    def __str__(self) -> str:
        return f"{self.num}/{self.den}" if self.den != 1 else str(self.num)

    @property
    def timecode_fps(self) -> int:
        """The integer frame count per timecode second (30 for 29.97, 24 for 23.976)."""
        return max(1, round(self.num / self.den))

    @property
    def supports_drop_frame(self) -> bool:
        """Drop-frame timecode exists only for 30000/1001 and 60000/1001."""
        return self.den == 1001 and self.num in (30000, 60000)

    # -- conversions --------------------------------------------------------------------
    def seconds(self, frames: int) -> Fraction:
        """Exact seconds of ``frames`` frames at this rate."""
        return Fraction(frames * self.den, self.num)

    def frames(self, seconds: Fraction | int, rounding: Rounding = "floor") -> int:
        """Frames in ``seconds`` (exact input), rounded as asked."""
        if isinstance(seconds, float):
            raise InvalidInputError("seconds must be exact (Fraction or int), not float")
        return _round_fraction(Fraction(seconds) * self.fraction, rounding)

    def samples(self, frames: int, sample_rate: int = AUDIO_SAMPLE_RATE) -> int:
        """Audio sample position of frame ``frames``: ``floor(frames * sr * den / num)``."""
        return (frames * sample_rate * self.den) // self.num


STANDARD_RATES: tuple[Rate, ...] = (
    Rate(24000, 1001),
    Rate(24),
    Rate(25),
    Rate(30000, 1001),
    Rate(30),
    Rate(48000, 1001),
    Rate(48),
    Rate(50),
    Rate(60000, 1001),
    Rate(60),
    Rate(120000, 1001),
    Rate(120),
)

_TC_RE = re.compile(r"^(\d+):(\d{1,2}):(\d{1,2})([:;.,])(\d{1,3})$")


@dataclass(frozen=True, order=False)
class RationalTime:
    """An exact time: ``value`` whole frames at ``rate``."""

    value: int
    rate: Rate

    def __post_init__(self) -> None:
        if not isinstance(self.value, int) or isinstance(self.value, bool):
            raise InvalidInputError(f"time must be a whole number of frames, got {self.value!r}")
        if not isinstance(self.rate, Rate):
            object.__setattr__(self, "rate", Rate.parse(self.rate))

    @classmethod
    def from_seconds(cls, seconds: Fraction | int | str, rate: Rate, rounding: Rounding = "round") -> "RationalTime":
        """The frame at ``seconds`` (exact; strings like ``"12.5"`` are read exactly)."""
        if isinstance(seconds, float):
            raise InvalidInputError("seconds must be exact (Fraction, int or decimal string), not float")
        try:
            sec = Fraction(seconds)
        except (ValueError, ZeroDivisionError) as exc:
            raise InvalidInputError(f"not a time in seconds: {seconds!r}") from exc
        return cls(rate.frames(sec, rounding), rate)

    @classmethod
    def from_timecode(cls, timecode: str, rate: Rate) -> "RationalTime":
        """Parse ``HH:MM:SS:FF`` (non-drop) or ``HH:MM:SS;FF`` (drop-frame, 29.97/59.94 only)."""
        m = _TC_RE.match(timecode.strip())
        if not m:
            raise InvalidInputError(f"not a timecode: {timecode!r} (expected HH:MM:SS:FF)")
        hh, mm, ss, sep, ff = int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4), int(m.group(5))
        fps = rate.timecode_fps
        drop = sep in ";,"
        if mm > 59 or ss > 59 or ff >= fps:
            raise InvalidInputError(f"timecode {timecode!r} is out of range for {rate} fps")
        frames = (hh * 3600 + mm * 60 + ss) * fps + ff
        if drop:
            if not rate.supports_drop_frame:
                raise InvalidInputError(f"drop-frame timecode {timecode!r} needs 29.97 or 59.94 fps, not {rate}")
            n = fps // 15  # frames numbers dropped per minute: 2 at 29.97, 4 at 59.94
            if ss == 0 and ff < n and mm % 10 != 0:
                raise InvalidInputError(f"timecode {timecode!r} does not exist in drop-frame (label dropped)")
            minutes = hh * 60 + mm
            frames -= n * (minutes - minutes // 10)
        return cls(frames, rate)

    # -- views --------------------------------------------------------------------------
    @property
    def seconds(self) -> Fraction:
        return self.rate.seconds(self.value)

    def to_samples(self, sample_rate: int = AUDIO_SAMPLE_RATE) -> int:
        """Sample position (``floor``) of this frame counted from frame 0."""
        return self.rate.samples(self.value, sample_rate)

    def rescaled(self, rate: Rate, rounding: Rounding = "round") -> "RationalTime":
        """The same instant at another rate (exact when it lands on a frame)."""
        return RationalTime(rate.frames(self.seconds, rounding), rate)

    def to_timecode(self, *, drop_frame: bool | None = None) -> str:
        """Timecode label; drop-frame defaults on for 29.97/59.94 (``;`` before frames)."""
        if self.value < 0:
            raise InvalidInputError(f"negative time {self.value} has no timecode")
        drop = self.rate.supports_drop_frame if drop_frame is None else drop_frame
        if drop and not self.rate.supports_drop_frame:
            raise InvalidInputError(f"drop-frame timecode needs 29.97 or 59.94 fps, not {self.rate}")
        fps = self.rate.timecode_fps
        frames = self.value
        if drop:
            n = fps // 15
            per_10min = 600 * fps - 9 * n
            per_min = 60 * fps - n
            tens, rem = divmod(frames, per_10min)
            frames += 9 * n * tens
            if rem > n:
                frames += n * ((rem - n) // per_min)
        ff = frames % fps
        total_s = frames // fps
        sep = ";" if drop else ":"
        return f"{total_s // 3600:02d}:{total_s // 60 % 60:02d}:{total_s % 60:02d}{sep}{ff:02d}"

    # -- arithmetic (same rate only) ----------------------------------------------------
    def _same(self, other: "RationalTime") -> None:
        if not isinstance(other, RationalTime):
            raise TypeError(f"cannot combine RationalTime with {type(other).__name__}")
        if other.rate != self.rate:
            raise InvalidInputError(f"times at different rates ({self.rate} vs {other.rate}); rescale first")

    def __add__(self, other: "RationalTime") -> "RationalTime":
        self._same(other)
        return RationalTime(self.value + other.value, self.rate)

    def __sub__(self, other: "RationalTime") -> "RationalTime":
        self._same(other)
        return RationalTime(self.value - other.value, self.rate)

    def __lt__(self, other: "RationalTime") -> bool:
        return self.seconds < other.seconds

    def __le__(self, other: "RationalTime") -> bool:
        return self.seconds <= other.seconds

    def __gt__(self, other: "RationalTime") -> bool:
        return self.seconds > other.seconds

    def __ge__(self, other: "RationalTime") -> bool:
        return self.seconds >= other.seconds

    def __str__(self) -> str:
        return f"{self.value}@{self.rate}"


@dataclass(frozen=True)
class TimeRange:
    """``[start, start + duration)`` at one rate."""

    start: RationalTime
    duration: RationalTime

    def __post_init__(self) -> None:
        if self.start.rate != self.duration.rate:
            raise InvalidInputError(f"range start and duration at different rates ({self.start.rate} vs {self.duration.rate})")

    @classmethod
    def from_frames(cls, start: int, duration: int, rate: Rate) -> "TimeRange":
        return cls(RationalTime(start, rate), RationalTime(duration, rate))

    @property
    def rate(self) -> Rate:
        return self.start.rate

    @property
    def end(self) -> RationalTime:
        """Exclusive end."""
        return self.start + self.duration

    @property
    def start_seconds(self) -> Fraction:
        return self.start.seconds

    @property
    def end_seconds(self) -> Fraction:
        return self.end.seconds

    def overlaps(self, other: "TimeRange") -> bool:
        return self.start_seconds < other.end_seconds and other.start_seconds < self.end_seconds

    def __str__(self) -> str:
        return f"[{self.start.value}, {self.end.value})@{self.rate}"


@dataclass(frozen=True)
class Segment:
    """One clip on the timeline: ``source`` range of ``media`` shown from ``record_start``.

    Playback is real time: record instant ``record_start + d`` shows source instant
    ``source.start + d`` (seconds). ``source`` is usually at the media's own rate and
    ``record_start`` at the timeline's; the record duration is the source duration rounded to
    whole timeline frames.
    """

    media: Path
    source: TimeRange
    record_start: RationalTime
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "media", Path(self.media))
        if self.source.duration.value <= 0:
            raise TimelineError(f"segment {self.label}: duration must be positive, got {self.source.duration.value} frames")
        if self.source.start.value < 0:
            raise TimelineError(f"segment {self.label}: source start must not be negative, got {self.source.start.value}")
        if self.record_duration.value <= 0:
            raise TimelineError(f"segment {self.label}: shorter than one timeline frame")

    @property
    def label(self) -> str:
        return self.name or self.media.name

    @property
    def record_duration(self) -> RationalTime:
        return self.source.duration.rescaled(self.record_start.rate, "round")

    @property
    def record(self) -> TimeRange:
        return TimeRange(self.record_start, self.record_duration)

    def source_seconds_at(self, record_seconds: Fraction) -> Fraction:
        """Source-media seconds (from the media's first frame) shown at a record instant."""
        return self.source.start_seconds + (record_seconds - self.record_start.seconds)


@dataclass(frozen=True)
class Timeline:
    """The clips a user selected: segments at one record ``rate``, sorted, never overlapping.

    Record times are absolute timeline frames (frame 0 = timecode 00:00:00:00), so the
    Broadcast-WAV TimeReference of a result is simply ``start.to_samples()``.
    """

    rate: Rate
    segments: tuple[Segment, ...]
    name: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.rate, Rate):
            object.__setattr__(self, "rate", Rate.parse(self.rate))
        segs = tuple(self.segments)
        if not segs:
            raise TimelineError("timeline has no segments")
        for i, s in enumerate(segs):
            if s.record_start.rate != self.rate:
                raise TimelineError(
                    f"segment {i} ({s.label}): record start is at {s.record_start.rate} fps, timeline is {self.rate} fps"
                )
            if s.record_start.value < 0:
                raise TimelineError(f"segment {i} ({s.label}): negative record start")
        segs = tuple(sorted(segs, key=lambda s: s.record_start.value))
        for i, (a, b) in enumerate(zip(segs, segs[1:])):
            if a.record.end.value > b.record_start.value:
                raise TimelineError(
                    f"segments overlap: {a.label} ends at frame {a.record.end.value}, "
                    f"{b.label} starts at frame {b.record_start.value}"
                )
        object.__setattr__(self, "segments", segs)

    @classmethod
    def sequential(
        cls,
        clips: Iterable[tuple[Path | str, TimeRange]],
        *,
        rate: Rate,
        start: int = 0,
        name: str = "",
    ) -> "Timeline":
        """Place source ranges end to end from record frame ``start``."""
        segs: list[Segment] = []
        pos = start
        for media, source in clips:
            seg = Segment(Path(media), source, RationalTime(pos, rate))
            segs.append(seg)
            pos += seg.record_duration.value
        return cls(rate, tuple(segs), name=name)

    # -- extent ---------------------------------------------------------------------------
    @property
    def start(self) -> RationalTime:
        return self.segments[0].record_start

    @property
    def end(self) -> RationalTime:
        return self.segments[-1].record.end

    @property
    def duration(self) -> RationalTime:
        return self.end - self.start

    @property
    def range(self) -> TimeRange:
        return TimeRange(self.start, self.duration)

    def sample_range(self, sample_rate: int = AUDIO_SAMPLE_RATE) -> tuple[int, int]:
        """``(first_sample, n_samples)`` the timeline covers, both from absolute positions.

        ``n = floor(end) - floor(start)``, so a stem written with TimeReference = first sample
        ends exactly at the editor's end frame; e.g. 24 frames at 23.976 are 48048 samples.
        """
        first = self.start.to_samples(sample_rate)
        return first, self.end.to_samples(sample_rate) - first

    # -- structure ------------------------------------------------------------------------
    def gaps(self) -> tuple[TimeRange, ...]:
        """Holes between consecutive segments (black picture)."""
        out = []
        for a, b in zip(self.segments, self.segments[1:]):
            if b.record_start.value > a.record.end.value:
                out.append(TimeRange(a.record.end, b.record_start - a.record.end))
        return tuple(out)

    def cut_frames(self) -> tuple[int, ...]:
        """Record frames where the picture changes source: segment starts and ends inside it."""
        cuts: set[int] = set()
        for a, b in zip(self.segments, self.segments[1:]):
            cuts.add(a.record.end.value)
            cuts.add(b.record_start.value)
        return tuple(sorted(cuts))

    def segment_at(self, record_seconds: Fraction) -> int | None:
        """Index of the segment showing at a record instant, ``None`` in a gap or outside."""
        for i, s in enumerate(self.segments):
            if s.record_start.seconds <= record_seconds < s.record.end_seconds:
                return i
        return None

    def between(self, first: int, end: int) -> "Timeline":
        """The part from record frame ``first`` to ``end`` (exclusive): segments trimmed to it."""
        segs = []
        for seg in self.segments:
            a, b = max(first, seg.record_start.value), min(end, seg.record.end.value)
            if a >= b:
                continue
            offset = RationalTime(a - seg.record_start.value, self.rate).rescaled(seg.source.rate)
            dur = RationalTime(b - a, self.rate).rescaled(seg.source.rate)
            if dur.value < 1:
                continue
            segs.append(Segment(seg.media, TimeRange(seg.source.start + offset, dur), RationalTime(a, self.rate),
                                name=seg.name))
        if not segs:
            raise InvalidInputError(f"no picture between record frames {first} and {end}")
        return Timeline(self.rate, tuple(segs), name=self.name)

    def with_segments(self, segments: Sequence[Segment]) -> "Timeline":
        return replace(self, segments=tuple(segments))
