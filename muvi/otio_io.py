"""OpenTimelineIO import and export of :class:`muvi.timeline.Timeline`.

Kept apart from :mod:`muvi.timeline` so the time model has no third-party import.

Import reads the first video track of an OTIO timeline:

- each ``Clip`` becomes a :class:`Segment` (media from its ``ExternalReference``; relative
  paths are resolved against the ``.otio`` file's folder);
- each ``Gap`` advances the record position and stays a gap;
- each ``Transition`` becomes a hard cut at its midpoint: the transition spans
  ``[cut - in_offset, cut + out_offset)``, so the outgoing clip is extended (or trimmed) and
  the incoming one trimmed (or extended) by ``floor((out_offset - in_offset) / 2)`` frames;
- record frames are absolute: ``global_start_time`` + position in the track.

OTIO stores times as floats; they are read back to whole frames at a snapped rate, which is
exact for everything an editor writes.
"""

from __future__ import annotations

import math
from fractions import Fraction
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from muvi.errors import InvalidInputError, TimelineError
from muvi.timeline import AUDIO_SAMPLE_RATE, Rate, RationalTime, Segment, Timeline, TimeRange

__all__ = ["read_otio", "write_otio", "timeline_from_otio", "timeline_to_otio", "PlacedAudio", "stems_to_otio",
           "timeline_markers", "energy_curve_from_markers", "read_otio_with_markers",
           "shape_from_markers", "EDITOR_FORMATS", "editor_adapter", "read_editor_timeline", "write_editor_timeline", "edl_drop_frame",
           "result_suffix"]


def _otio() -> Any:
    try:
        import opentimelineio as otio
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise InvalidInputError("OTIO support needs the 'opentimelineio' package") from exc
    return otio


def _rt(t: Any, what: str) -> RationalTime:
    rate = Rate.from_float(float(t.rate))
    value = float(t.value)
    if abs(value - round(value)) > 1e-6:
        # a sub-frame value: keep the instant exactly, then take the nearest whole frame
        secs = Fraction(value).limit_denominator(10**6) / Fraction(float(t.rate)).limit_denominator(10**6)
        return RationalTime.from_seconds(secs, rate)
    if not math.isfinite(value):
        raise TimelineError(f"{what}: time is not finite")
    return RationalTime(round(value), rate)


def _media_path(clip: Any, base: Path | None) -> Path:
    otio = _otio()
    ref = clip.media_reference
    if not isinstance(ref, otio.schema.ExternalReference) or not ref.target_url:
        raise TimelineError(f"clip {clip.name!r}: no media reference (only external file references are supported)")
    url = ref.target_url
    if url.startswith("file:"):
        path = Path(otio.url_utils.filepath_from_url(url))
    elif "://" in url:
        raise TimelineError(f"clip {clip.name!r}: media {url!r} is not a local file")
    else:
        path = Path(url)
    if not path.is_absolute() and base is not None:
        path = base / path
    return path


def timeline_from_otio(obj: Any, *, base_dir: Path | None = None, rate: Rate | None = None) -> Timeline:
    """Convert an ``opentimelineio.schema.Timeline`` to a muvi :class:`Timeline`."""
    otio = _otio()
    if not isinstance(obj, otio.schema.Timeline):
        raise TimelineError(f"expected an OTIO Timeline, got {type(obj).__name__}")
    tracks = list(obj.video_tracks())
    if not tracks:
        raise TimelineError(f"OTIO timeline {obj.name!r} has no video track")
    track = tracks[0]
    if rate is None:
        if obj.global_start_time is not None:
            rate = Rate.from_float(float(obj.global_start_time.rate))
        else:
            first = next((c for c in track if isinstance(c, otio.schema.Clip)), None)
            if first is None:
                raise TimelineError(f"OTIO timeline {obj.name!r}: first video track has no clips")
            rate = _rt(first.trimmed_range().duration, "first clip").rate
    pos = 0 if obj.global_start_time is None else _rt(obj.global_start_time, "global_start_time").rescaled(rate).value

    # (media, source start, source duration, record start) in frames, plus transitions
    items: list[list[Any]] = []
    pending_transition: tuple[int, Any] | None = None  # (index of outgoing clip, transition)
    for child in track:
        if isinstance(child, otio.schema.Gap):
            dur = _rt(child.trimmed_range().duration, "gap").rescaled(rate).value
            pos += dur
            pending_transition = None
        elif isinstance(child, otio.schema.Transition):
            if not items:
                raise TimelineError(f"transition {child.name!r} at the start of the track has no outgoing clip")
            pending_transition = (len(items) - 1, child)
        elif isinstance(child, otio.schema.Clip):
            src = child.source_range
            if src is None:
                try:
                    src = child.available_range()
                except Exception as exc:
                    raise TimelineError(f"clip {child.name!r}: no source range and no available range") from exc
            start = _rt(src.start_time, f"clip {child.name!r}")
            dur = _rt(src.duration, f"clip {child.name!r}").rescaled(start.rate)
            seg = [_media_path(child, base_dir), start.value, dur.value, pos, start.rate, child.name]
            if pending_transition is not None and pending_transition[0] == len(items) - 1:
                tr = pending_transition[1]
                shift_s = (_rt(tr.out_offset, "transition").seconds - _rt(tr.in_offset, "transition").seconds) / 2
                shift = math.floor(shift_s * rate.fraction)  # whole timeline frames
                prev = items[-1]
                prev_rate: Rate = prev[4]
                prev[2] += RationalTime(shift, rate).rescaled(prev_rate).value
                src_shift = RationalTime(shift, rate).rescaled(start.rate).value
                seg[1] += src_shift
                seg[2] -= src_shift
                seg[3] += shift
            pending_transition = None
            pos += RationalTime(dur.value, start.rate).rescaled(rate).value
            items.append(seg)
        else:
            raise TimelineError(
                f"{type(child).__name__} {getattr(child, 'name', '')!r} in the video track is not supported "
                "(flatten nested stacks/tracks first)"
            )
    if not items:
        raise TimelineError(f"OTIO timeline {obj.name!r}: first video track has no clips")
    segments = [
        Segment(media, TimeRange.from_frames(s, d, srate), RationalTime(rec, rate), name=name or "")
        for media, s, d, rec, srate, name in items
    ]
    return Timeline(rate, tuple(segments), name=obj.name or "")


def timeline_markers(obj: Any, timeline: Timeline) -> list[tuple[str, Fraction]]:
    """(name, seconds from the start of ``timeline``) of every marker on the OTIO timeline's
    stack, its first video track and that track's clips (a clip's marker is placed through
    the clip's position in the track)."""
    otio = _otio()
    track = list(obj.video_tracks())[0]
    rate = timeline.rate
    origin = 0 if obj.global_start_time is None else _rt(obj.global_start_time, "global_start_time").rescaled(rate).value

    def secs(track_time: Any) -> Fraction:
        frames = _rt(track_time, "marker").rescaled(rate).value
        return rate.seconds(origin + frames - timeline.start.value)

    out = [(m.name, secs(m.marked_range.start_time)) for m in list(obj.tracks.markers) + list(track.markers)]
    for clip in track:
        if isinstance(clip, otio.schema.Clip):
            parent = clip.range_in_parent().start_time
            first = clip.trimmed_range().start_time
            out += [(m.name, secs(parent + (m.marked_range.start_time - first))) for m in clip.markers]
    return sorted(out, key=lambda m: m[1])


def energy_curve_from_markers(markers: Sequence[tuple[str, Fraction]]) -> str | None:
    """``energy=<level>`` markers (level: low, medium, high or 0–1) as an energy-curve text
    ("seconds:level,..."), or None when there are none. A bad level is refused, naming it."""
    from muvi.curves import parse_energy

    points = []
    for name, t in markers:
        key, sep, value = (name or "").partition("=")
        if sep and key.strip().lower() == "energy":
            try:
                level = parse_energy(value)
            except InvalidInputError:
                raise InvalidInputError(f"OTIO marker {name!r} at {float(t):.3f} s: the level must be low, medium, high "
                                        "or a number in 0-1") from None
            points.append(f"{float(t):.6g}:{level:g}")
    return ",".join(points) or None


def shape_from_markers(markers: Sequence[tuple[str, Fraction]]) -> dict[str, tuple]:
    """Markers named ``hit`` (or ``hit:stop``) and ``section`` as the options they stand for:
    ``{"hits": ("12.5", "20:stop", ...), "sections": (31.0, ...)}`` (empty tuples when none)."""
    hits, sections = [], []
    for name, t in markers:
        kind = (name or "").strip().lower()
        if kind in ("hit", "hit:stop", "stop"):
            hits.append(f"{float(t):.6g}" + (":stop" if kind != "hit" else ""))
        elif kind == "section":
            sections.append(float(t))
    return {"hits": tuple(hits), "sections": tuple(sections)}


def timeline_to_otio(timeline: Timeline) -> Any:
    """Convert to an OTIO timeline: one video track, gaps where the record has holes."""
    otio = _otio()
    ort = otio.opentime

    def rt(t: RationalTime) -> Any:
        return ort.RationalTime(t.value, float(t.rate))

    out = otio.schema.Timeline(name=timeline.name, global_start_time=rt(timeline.start))
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    out.tracks.append(track)
    pos = timeline.start
    for seg in timeline.segments:
        if seg.record_start.value > pos.value:
            hole = seg.record_start - pos
            track.append(otio.schema.Gap(source_range=ort.TimeRange(rt(RationalTime(0, hole.rate)), rt(hole))))
        ref = otio.schema.ExternalReference(target_url=otio.url_utils.url_from_filepath(str(seg.media.resolve())))
        track.append(
            otio.schema.Clip(
                name=seg.name or seg.media.name,
                media_reference=ref,
                source_range=ort.TimeRange(rt(seg.source.start), rt(seg.source.duration)),
            )
        )
        pos = seg.record.end
    return out


def read_otio(path: Path | str) -> Timeline:
    """Read an ``.otio`` (or any adapter OTIO knows by extension) into a :class:`Timeline`."""
    return read_otio_with_markers(path)[0]


def read_otio_with_markers(path: Path | str) -> tuple[Timeline, list[tuple[str, Fraction]]]:
    """The :class:`Timeline` of an OTIO file and its markers (:func:`timeline_markers`)."""
    otio = _otio()
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"{path}: OTIO file not found")
    try:
        obj = otio.adapters.read_from_file(str(path))
    except Exception as exc:  # OTIO raises many unrelated types for a bad file
        raise InvalidInputError(f"{path}: not a readable OTIO timeline ({exc})") from exc
    timeline = timeline_from_otio(obj, base_dir=path.parent.resolve())
    return timeline, timeline_markers(obj, timeline)


def write_otio(timeline: Timeline, path: Path | str) -> None:
    """Write a :class:`Timeline` as OTIO JSON (atomically)."""
    from muvi.fileio import atomic_write_text

    otio = _otio()
    atomic_write_text(Path(path), otio.adapters.write_to_string(timeline_to_otio(timeline), "otio_json"))


@dataclass(frozen=True)
class PlacedAudio:
    """An audio file to place on a timeline: ``samples`` long from ``time_reference`` (samples
    since 00:00:00:00 at ``sample_rate``), like a Broadcast-WAV stem muvi returns."""

    name: str
    path: Path
    time_reference: int
    samples: int
    sample_rate: int = AUDIO_SAMPLE_RATE


def stems_to_otio(stems: Sequence[PlacedAudio], *, rate: Rate, name: str = "muvi music") -> Any:
    """An OTIO timeline with one audio track per stem, each starting at its TimeReference
    (the global start is 00:00:00:00 at ``rate``), for an editor to import beside the picture."""
    otio = _otio()
    ort = otio.opentime
    out = otio.schema.Timeline(name=name, global_start_time=ort.RationalTime(0, float(rate)))
    for s in stems:
        start = ort.RationalTime(s.time_reference, s.sample_rate)
        length = ort.RationalTime(s.samples, s.sample_rate)
        ref = otio.schema.ExternalReference(target_url=otio.url_utils.url_from_filepath(str(Path(s.path).resolve())),
                                            available_range=ort.TimeRange(start, length))
        track = otio.schema.Track(name=s.name, kind=otio.schema.TrackKind.Audio)
        if s.time_reference > 0:  # the gap from 00:00:00:00, in samples: exact at every frame rate
            track.append(otio.schema.Gap(source_range=ort.TimeRange(ort.RationalTime(0, s.sample_rate), start)))
        track.append(otio.schema.Clip(name=s.name, media_reference=ref, source_range=ort.TimeRange(start, length)))
        out.tracks.append(track)
    return out


# -- editors' timeline files -------------------------------------------------------------------

# what each editor's file is read and written with (OpenTimelineIO's adapters, by suffix)
# (FCPXML is muvi's own, muvi.fcpxml: OTIO's adapter truncates NTSC rates)
EDITOR_FORMATS = {".otio": "otio_json", ".xml": "fcp_xml", ".fcpxml": "fcpxml", ".fcpxmld": "fcpxml",
                  ".edl": "cmx_3600", ".kdenlive": "kdenlive"}


def result_suffix(source: Path | str) -> str:
    """The suffix muvi writes an editor's file back with: the source's own (an ``.fcpxmld``
    bundle comes back as a plain ``.fcpxml`` document, which Final Cut imports alike)."""
    suffix = Path(source).suffix.lower()
    return ".fcpxml" if suffix == ".fcpxmld" else suffix


def editor_adapter(path: Path | str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in EDITOR_FORMATS:
        raise InvalidInputError(f"{path}: unknown timeline format {suffix!r}; muvi reads "
                                + ", ".join(f"{s} ({a})" for s, a in EDITOR_FORMATS.items()))
    return EDITOR_FORMATS[suffix]


def read_editor_timeline(path: Path | str, *, track: str | None = None, rate: Rate | None = None,
                         ) -> tuple[Timeline, list[tuple[str, Fraction]], Any]:
    """An editor's timeline file (Final Cut Pro 7 XML, FCPXML, CMX 3600 EDL, Kdenlive, OTIO):
    the muvi :class:`Timeline` of its first (or the named) video track, its markers, and the
    OTIO object (to write the result back into). An EDL carries no frame rate (``rate``), and
    its clips name their media: a file of that name next to the EDL."""
    otio = _otio()
    path = Path(path)
    adapter = editor_adapter(path)
    if not (path.is_file() or (adapter == "fcpxml" and path.is_dir())):
        raise InvalidInputError(f"{path}: timeline file not found")
    if adapter == "cmx_3600" and rate is None:
        raise InvalidInputError(f"{path}: an EDL carries no frame rate; pass --rate (e.g. 25 or 30000/1001)")
    try:
        if adapter == "fcpxml":
            from muvi.fcpxml import read_fcpxml

            obj = read_fcpxml(path)
        else:
            obj = otio.adapters.read_from_file(str(path), adapter_name=adapter,
                                               **({"rate": float(rate.fraction)} if adapter == "cmx_3600" else {}))
    except (InvalidInputError, TimelineError):
        raise
    except Exception as exc:  # the adapters raise many unrelated types for a bad file
        raise InvalidInputError(f"{path}: not a readable {adapter} timeline ({exc})") from exc
    if adapter == "cmx_3600":
        _edl_fixups(obj, path, rate)
    if track is not None:
        names = [t.name for t in obj.video_tracks()]
        if track not in names:
            raise InvalidInputError(f"{path}: no video track named {track!r} (it has {', '.join(map(repr, names))})")
        _select_track(obj, track)
    timeline = timeline_from_otio(obj, base_dir=path.parent.resolve(), rate=rate)
    return timeline, timeline_markers(obj, timeline), obj


def _select_track(obj: Any, name: str) -> None:
    """Move the named video track first (the one :func:`timeline_from_otio` reads)."""
    tracks = list(obj.tracks)
    chosen = next(t for t in tracks if t.kind == "Video" and t.name == name)
    obj.tracks[:] = [chosen] + [t for t in tracks if t is not chosen]


_TC = r"(\d\d):(\d\d):(\d\d)[:;.](\d\d)"


def edl_drop_frame(text: str) -> bool:
    """An EDL's ``FCM:`` line says drop-frame (``DROP FRAME``, not ``NON-DROP FRAME``)."""
    upper = text.upper()
    return "DROP FRAME" in upper and "NON-DROP" not in upper


def _edl_fixups(obj: Any, path: Path, rate: Rate) -> None:
    """OTIO's EDL reader starts the timeline at 0 and leaves media unresolved: the first event's
    record timecode becomes the global start, and a clip named like a file next to the EDL
    refers to that file."""
    import re

    otio = _otio()
    text = path.read_text(errors="replace")
    drop = edl_drop_frame(text)
    first = re.search(rf"^\d+\s+\S+\s+V\S*\s+\S+\s+{_TC}\s+{_TC}\s+{_TC}", text, re.M)
    if first:
        tc = ":".join(first.groups()[8:11]) + (";" if drop else ":") + first.groups()[11]
        frames = RationalTime.from_timecode(tc, rate).value
        obj.global_start_time = otio.opentime.RationalTime(frames, float(rate.fraction))
    for clip in obj.find_clips():
        ref = clip.media_reference
        if not isinstance(ref, otio.schema.ExternalReference) or not ref.target_url:
            candidate = path.parent / (clip.name or "")
            if clip.name and candidate.is_file():
                clip.media_reference = otio.schema.ExternalReference(
                    target_url=otio.url_utils.url_from_filepath(str(candidate.resolve())))


def write_editor_timeline(obj: Any, stems: Sequence[PlacedAudio], path: Path | str, *, rate: Rate,
                          drop_frame: bool = False) -> Path:
    """The editor's timeline with the stems under the picture, in the file's own format: one
    audio track per stem (``muvi <stem>``), each clip starting at the record frame its
    TimeReference names. Written atomically."""
    from muvi.fileio import atomic_path

    otio = _otio()
    path = Path(path)
    adapter = editor_adapter(path)
    if adapter == "fcpxml":
        from muvi.fcpxml import write_fcpxml

        return write_fcpxml(obj.metadata["muvi"]["fcpxml"], stems, path, rate=rate)
    if adapter == "cmx_3600":
        text = _stems_edl(obj, stems, rate=rate, drop=drop_frame)
        with atomic_path(path) as tmp:
            Path(tmp).write_text(text)
        return path
    out = obj.deepcopy()
    ort = otio.opentime
    r = float(rate.fraction)
    gst = 0 if out.global_start_time is None else round(out.global_start_time.rescaled_to(r).value)
    for s in stems:
        start = round(Fraction(s.time_reference) * rate.fraction / s.sample_rate)
        length = round(Fraction(s.samples) * rate.fraction / s.sample_rate)
        if start < gst:
            raise InvalidInputError(f"stem {s.name} starts before the timeline ({start} < {gst} frames)")
        track = otio.schema.Track(name=f"muvi {s.name}", kind=otio.schema.TrackKind.Audio)
        if start > gst:
            track.append(otio.schema.Gap(source_range=ort.TimeRange(ort.RationalTime(0, r), ort.RationalTime(start - gst, r))))
        ref = otio.schema.ExternalReference(target_url=otio.url_utils.url_from_filepath(str(Path(s.path).resolve())),
                                            available_range=ort.TimeRange(ort.RationalTime(0, r), ort.RationalTime(length, r)))
        track.append(otio.schema.Clip(name=Path(s.path).name, media_reference=ref,
                                      source_range=ort.TimeRange(ort.RationalTime(0, r), ort.RationalTime(length, r))))
        out.tracks.append(track)
    try:
        text = otio.adapters.write_to_string(out, adapter_name=adapter)
    except Exception as exc:  # an adapter that cannot write this timeline
        raise InvalidInputError(f"the {adapter} adapter cannot write the result at {float(rate.fraction):.3f} fps "
                                f"({type(exc).__name__}: {exc}); use another format (e.g. FCP 7 XML)") from exc
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)
    return path


def _stems_edl(obj: Any, stems: Sequence[PlacedAudio], *, rate: Rate, drop: bool) -> str:
    """A CMX 3600 EDL: the picture's events as read, then one audio event per stem on channels
    A, A2, A3, A4… at its record frames (OTIO's EDL writer takes one video track only)."""
    r = float(rate.fraction)
    gst = 0 if obj.global_start_time is None else round(obj.global_start_time.rescaled_to(r).value)
    tc = lambda f: RationalTime(f, rate).to_timecode(drop_frame=drop)  # noqa: E731
    lines = [f"TITLE: {obj.name or 'muvi'}", f"FCM: {'DROP FRAME' if drop else 'NON-DROP FRAME'}", ""]
    n = 0
    for clip in list(obj.video_tracks())[0].find_clips():
        n += 1
        src = clip.source_range
        rec = clip.range_in_parent()
        a, d = round(src.start_time.rescaled_to(r).value), round(src.duration.rescaled_to(r).value)
        ra = gst + round(rec.start_time.rescaled_to(r).value)
        lines += [f"{n:03d}  AX       V     C        {tc(a)} {tc(a + d)} {tc(ra)} {tc(ra + d)}",
                  f"* FROM CLIP NAME: {clip.name}"]
    for k, s in enumerate(stems):
        n += 1
        start = round(Fraction(s.time_reference) * rate.fraction / s.sample_rate)
        length = round(Fraction(s.samples) * rate.fraction / s.sample_rate)
        channel = "A" if k == 0 else f"A{k + 1}"
        lines += [f"{n:03d}  AX       {channel:<5} C        {tc(0)} {tc(length)} {tc(start)} {tc(start + length)}",
                  f"* FROM CLIP NAME: {Path(s.path).name}"]
    return "\n".join(lines) + "\n"
