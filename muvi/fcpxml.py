"""Final Cut Pro X XML (FCPXML 1.x and ``.fcpxmld`` bundles), read and written with exact times.

OpenTimelineIO's FCPXML adapter cannot serve an editor at NTSC rates: it truncates them
(23.976 → 23, 29.97 → 29; OTIO issues #903 and #741), fails to write audio at them, and drops
the sequence's ``tcStart``. muvi owns this format instead:

- :func:`read_fcpxml` reads the first project's primary storyline into an OTIO timeline (one
  video track, exact whole frames, ``global_start_time`` = ``tcStart``), so the muvi
  :class:`~muvi.timeline.Timeline` and the markers are then taken the shared way
  (:mod:`muvi.otio_io`). Connected audio-only clips become audio tracks, one per lane.
- :func:`write_fcpxml` writes the editor's own document back with the stems added: one audio
  asset per stem in ``<resources>`` and one connected clip per stem, on lanes below the
  picture, attached to the storyline item under the stem's first frame. Everything else in the
  file is kept as it was.

FCPXML times are rational seconds (``1001/30000s``); a storyline item's ``offset`` is in the
sequence's time (which starts at ``tcStart``), a connected clip's ``offset`` in its parent's
own time (the parent's ``start`` at the parent's ``offset``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Sequence
from urllib.parse import unquote, urlparse
from urllib.request import pathname2url

from muvi.errors import InvalidInputError, TimelineError
from muvi.timeline import Rate

__all__ = ["read_fcpxml", "write_fcpxml", "fcpxml_file"]

# storyline items muvi reads as pictures, as holes, and those it cannot flatten (with the advice)
_PICTURES = ("asset-clip", "clip", "video")
_HOLES = ("gap", "title")
_NESTED = {"ref-clip": "a compound clip", "mc-clip": "a multicam clip", "sync-clip": "a synchronized clip",
           "audition": "an audition"}


def fcpxml_file(path: Path) -> Path:
    """The XML document of an FCPXML file or of a ``.fcpxmld`` bundle (its ``Info.fcpxml``)."""
    path = Path(path)
    if path.is_dir():
        inner = path / "Info.fcpxml"
        if not inner.is_file():
            raise InvalidInputError(f"{path}: an FCPXML bundle without Info.fcpxml")
        return inner
    if not path.is_file():
        raise InvalidInputError(f"{path}: timeline file not found")
    return path


def _time(text: str | None, what: str) -> Fraction:
    """An FCPXML time (``"1001/30000s"``, ``"3600s"``, ``"0s"``) as exact seconds."""
    if text is None:
        return Fraction(0)
    body = text.strip()
    if not body.endswith("s"):
        raise TimelineError(f"FCPXML {what}: time {text!r} does not end in 's'")
    try:
        return Fraction(body[:-1])
    except (ValueError, ZeroDivisionError):
        raise TimelineError(f"FCPXML {what}: {text!r} is not a time") from None


def _text(t: Fraction) -> str:
    return "0s" if t == 0 else (f"{t.numerator}s" if t.denominator == 1 else f"{t.numerator}/{t.denominator}s")


@dataclass
class _Doc:
    """A parsed FCPXML document: its tree, resources by id, and the first project's sequence."""

    tree: ET.ElementTree
    resources: ET.Element
    by_id: dict[str, ET.Element]
    sequence: ET.Element
    spine: ET.Element
    rate: Rate
    tc_start: Fraction
    path: Path

    @classmethod
    def load(cls, path: Path) -> "_Doc":
        source = fcpxml_file(path)
        try:
            tree = ET.parse(source)
        except ET.ParseError as exc:
            raise InvalidInputError(f"{path}: not a readable FCPXML document ({exc})") from None
        root = tree.getroot()
        if root.tag != "fcpxml":
            raise InvalidInputError(f"{path}: not an FCPXML document (its root is <{root.tag}>)")
        resources = root.find("resources")
        sequence = root.find(".//project/sequence")
        if resources is None or sequence is None or sequence.find("spine") is None:
            raise InvalidInputError(f"{path}: the FCPXML document has no project with a sequence and a spine")
        by_id = {r.get("id"): r for r in resources if r.get("id")}
        rate = cls._format_rate(by_id, sequence.get("format"), f"{path}: the sequence")
        return cls(tree, resources, by_id, sequence, sequence.find("spine"), rate,
                   _time(sequence.get("tcStart"), "sequence tcStart"), Path(path))

    @staticmethod
    def _format_rate(by_id: dict[str, ET.Element], format_id: str | None, what: str) -> Rate:
        fmt = by_id.get(format_id or "")
        if fmt is None or fmt.tag != "format" or not fmt.get("frameDuration"):
            raise TimelineError(f"{what} names no format with a frameDuration (format {format_id!r})")
        frame = _time(fmt.get("frameDuration"), f"format {format_id}")
        if frame <= 0:
            raise TimelineError(f"{what}: format {format_id} has a frameDuration of {fmt.get('frameDuration')!r}")
        return Rate((1 / frame).numerator, (1 / frame).denominator)

    def asset(self, element: ET.Element, what: str) -> ET.Element:
        ref = element.get("ref")
        asset = self.by_id.get(ref or "")
        if asset is None or asset.tag != "asset":
            raise TimelineError(f"FCPXML {what}: refers to {ref!r}, which is no asset in <resources>")
        return asset

    def asset_rate(self, asset: ET.Element) -> Rate:
        return self._format_rate(self.by_id, asset.get("format"), f"asset {asset.get('id')}") \
            if asset.get("format") else self.rate

    def storyline(self) -> Iterator[ET.Element]:
        """The primary storyline's items (``spine`` children), in order."""
        return iter(self.spine)


def _media_src(asset: ET.Element, base: Path) -> Path:
    rep = asset.find("media-rep")
    url = rep.get("src") if rep is not None else asset.get("src")
    if not url:
        raise TimelineError(f"FCPXML asset {asset.get('id')} ({asset.get('name')!r}) names no media file")
    parsed = urlparse(url)
    if parsed.scheme not in ("", "file"):
        raise TimelineError(f"FCPXML asset {asset.get('id')}: media {url!r} is not a local file")
    path = Path(unquote(parsed.path) if parsed.scheme else url)
    return path if path.is_absolute() else base / path


@dataclass(frozen=True)
class _Picture:
    """A storyline item as a picture: its asset, and the item's times mapped to the asset's."""

    asset: ET.Element
    source_start: Fraction  # seconds into the media file of the item's first frame


def _picture(doc: _Doc, item: ET.Element) -> _Picture:
    """The media under a storyline item: an ``asset-clip`` or ``video`` refers to its asset; a
    ``clip`` holds a ``video`` (or ``asset-clip``) whose own offset maps the clip's time."""
    what = f"<{item.tag}> {item.get('name', '')!r} at {item.get('offset', '0s')}"
    start = _time(item.get("start"), what)
    if item.tag == "clip":
        inner = next((c for c in item if c.tag in ("video", "asset-clip") and c.get("lane") is None), None)
        if inner is None:
            raise TimelineError(f"FCPXML {what}: a clip without a video in it")
        # the inner element's own time at the clip's first frame
        start = _time(inner.get("start"), what) + (start - _time(inner.get("offset"), what))
        item = inner
    asset = doc.asset(item, what)
    return _Picture(asset, start - _time(asset.get("start"), f"asset {asset.get('id')}"))


def read_fcpxml(path: Path | str) -> Any:
    """The first project's primary storyline as an OTIO timeline (see the module's notes)."""
    import opentimelineio as otio

    doc = _Doc.load(Path(path))
    ort, r = otio.opentime, float(doc.rate.fraction)
    frames = lambda t: ort.RationalTime(float(t * doc.rate.fraction), r)  # noqa: E731 - sequence time
    out = otio.schema.Timeline(name=_project_name(doc), global_start_time=frames(doc.tc_start))
    out.metadata["muvi"] = {"fcpxml": str(Path(path).resolve())}
    video = otio.schema.Track(name="primary storyline", kind=otio.schema.TrackKind.Video)
    lanes: dict[int, list[tuple[Fraction, Any]]] = {}
    pos = doc.tc_start
    base = Path(path).resolve().parent
    for item in doc.storyline():
        if item.tag == "transition":
            continue  # a hard cut at the edit point: the clips on either side meet there
        if item.tag in _NESTED:
            raise TimelineError(f"FCPXML <{item.tag}> {item.get('name', '')!r} at {item.get('offset')}: {_NESTED[item.tag]} "
                                "in the primary storyline is not supported; break it apart in Final Cut first")
        if item.tag not in _PICTURES + _HOLES:
            continue  # not a storyline item (metadata, markers of the sequence)
        offset, dur = _time(item.get("offset"), item.tag), _time(item.get("duration"), item.tag)
        if offset > pos:
            video.append(otio.schema.Gap(source_range=ort.TimeRange(frames(0), frames(offset - pos))))
        elif offset < pos:
            raise TimelineError(f"FCPXML <{item.tag}> {item.get('name', '')!r} at {item.get('offset')} overlaps the "
                                "item before it")
        video.append(_otio_item(doc, item, dur, base))
        pos = offset + dur
        _connected_audio(doc, item, base, lanes)
    out.tracks.append(video)
    for lane in sorted(lanes, reverse=True):
        out.tracks.append(_audio_track(lanes[lane], doc, lane))
    return out


def _project_name(doc: _Doc) -> str:
    project = doc.tree.getroot().find(".//project")
    return (project.get("name") if project is not None else None) or doc.path.stem


def _otio_item(doc: _Doc, item: ET.Element, dur: Fraction, base: Path) -> Any:
    """An OTIO clip (or gap) for a storyline item, its markers at their source times."""
    import opentimelineio as otio

    ort = otio.opentime
    if item.tag in _HOLES:
        r = float(doc.rate.fraction)
        return otio.schema.Gap(source_range=ort.TimeRange(ort.RationalTime(0, r),
                                                          ort.RationalTime(float(dur * doc.rate.fraction), r)))
    pic = _picture(doc, item)
    rate = doc.asset_rate(pic.asset)
    at = lambda t: ort.RationalTime(float(t * rate.fraction), float(rate.fraction))  # noqa: E731 - media time
    ref = otio.schema.ExternalReference(target_url=_media_src(pic.asset, base).as_uri())
    clip = otio.schema.Clip(name=item.get("name") or pic.asset.get("name") or "", media_reference=ref,
                            source_range=ort.TimeRange(at(pic.source_start), at(dur)))
    first = _time(item.get("start"), item.tag)
    for m in item:
        if m.tag in ("marker", "chapter-marker"):
            t = pic.source_start + (_time(m.get("start"), "marker") - first)
            clip.markers.append(otio.schema.Marker(name=m.get("value", ""), marked_range=ort.TimeRange(at(t), at(0))))
    return clip


def _connected_audio(doc: _Doc, parent: ET.Element, base: Path, lanes: dict[int, list[tuple[Fraction, Any]]]) -> None:
    """The audio-only clips connected to a storyline item, at their sequence times, by lane."""
    p_offset, p_start = _time(parent.get("offset"), parent.tag), _time(parent.get("start"), parent.tag)
    for child in parent:
        if child.tag != "asset-clip" or child.get("lane") is None:
            continue
        asset = doc.by_id.get(child.get("ref") or "")
        if asset is None or asset.get("hasVideo") == "1":
            continue
        at = p_offset + (_time(child.get("offset"), "connected clip") - p_start)
        lanes.setdefault(int(child.get("lane")), []).append(
            (at, (child, asset, _media_src(asset, base), _time(child.get("duration"), "connected clip"))))


def _audio_track(clips: list[tuple[Fraction, Any]], doc: _Doc, lane: int) -> Any:
    import opentimelineio as otio

    ort, r = otio.opentime, float(doc.rate.fraction)
    frames = lambda t: ort.RationalTime(float(t * doc.rate.fraction), r)  # noqa: E731
    track = otio.schema.Track(name=f"lane {lane}", kind=otio.schema.TrackKind.Audio)
    pos = doc.tc_start
    for at, (child, _, media, dur) in sorted(clips, key=lambda c: c[0]):
        if at > pos:
            track.append(otio.schema.Gap(source_range=ort.TimeRange(frames(0), frames(at - pos))))
        track.append(otio.schema.Clip(name=child.get("name", ""), media_reference=otio.schema.ExternalReference(
            target_url=media.as_uri()), source_range=ort.TimeRange(frames(0), frames(dur))))
        pos = at + dur
    return track


# -- writing ------------------------------------------------------------------------------------

def write_fcpxml(source: Path | str, stems: Sequence[Any], dest: Path | str, *, rate: Rate) -> Path:
    """The editor's FCPXML with each stem (:class:`muvi.otio_io.PlacedAudio`) added as an audio
    asset and a connected clip at the record frame its TimeReference names (whole frames of
    ``rate``, the sequence's), on the lanes below any already there. Written atomically."""
    from muvi.fileio import atomic_path

    doc = _Doc.load(Path(source))
    if doc.rate != rate:
        raise InvalidInputError(f"{source}: the sequence runs at {doc.rate} fps, the stems were placed at {rate}")
    ids = _ResourceIds(doc.by_id)
    version = tuple(int(x) for x in (doc.tree.getroot().get("version") or "1.9").split(".")[:2] if x.isdigit())
    for k, s in enumerate(stems):
        start = Fraction(round(Fraction(s.time_reference) * rate.fraction / s.sample_rate)) / rate.fraction
        length = Fraction(round(Fraction(s.samples) * rate.fraction / s.sample_rate)) / rate.fraction
        parent = _parent_at(doc, start, s.name)
        asset = _stem_asset(doc, ids.next(), s, media_rep=version >= (1, 9))
        lane = min([0] + [int(c.get("lane")) for c in parent if c.get("lane") and int(c.get("lane")) < 0]) - 1
        local = _time(parent.get("start"), parent.tag) + (start - _time(parent.get("offset"), parent.tag))
        clip = ET.Element("asset-clip", {"ref": asset.get("id"), "lane": str(lane), "offset": _text(local),
                                         "name": f"muvi {s.name}", "start": "0s", "duration": _text(length),
                                         "audioRole": "music"})
        _insert_connected(parent, clip)
    ET.indent(doc.tree, space="    ")
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE fcpxml>\n\n')
            doc.tree.write(fh, encoding="utf-8", xml_declaration=False)
            fh.write(b"\n")
    return Path(dest)


class _ResourceIds:
    """Fresh resource ids (``r<N>``) beside the document's own."""

    def __init__(self, taken: dict[str, ET.Element]) -> None:
        self.taken = set(taken)
        self.n = 1

    def next(self) -> str:
        while f"r{self.n}" in self.taken:
            self.n += 1
        self.taken.add(f"r{self.n}")
        return f"r{self.n}"


def _parent_at(doc: _Doc, t: Fraction, name: str) -> ET.Element:
    """The storyline item (picture or gap) whose span holds sequence time ``t``."""
    for item in doc.storyline():
        if item.tag in _PICTURES + _HOLES + tuple(_NESTED):
            a = _time(item.get("offset"), item.tag)
            if a <= t < a + _time(item.get("duration"), item.tag):
                return item
    raise InvalidInputError(f"stem {name} starts at {float(t):.3f} s, outside the FCPXML sequence's storyline")


def _stem_asset(doc: _Doc, rid: str, stem: Any, *, media_rep: bool) -> ET.Element:
    url = "file://" + pathname2url(str(Path(stem.path).resolve()))
    attrs = {"id": rid, "name": Path(stem.path).stem, "start": "0s",
             "duration": _text(Fraction(stem.samples, stem.sample_rate)), "hasAudio": "1",
             "audioSources": "1", "audioRate": str(stem.sample_rate)}
    if not media_rep:
        attrs["src"] = url  # FCPXML before 1.9 names the file on the asset itself
    asset = ET.SubElement(doc.resources, "asset", attrs)
    if media_rep:
        ET.SubElement(asset, "media-rep", {"kind": "original-media", "src": url})
    doc.by_id[rid] = asset
    return asset


def _insert_connected(parent: ET.Element, clip: ET.Element) -> None:
    """A connected clip goes after the parent's own media and before its markers and the like
    (FCPXML's element order: anchored items come before markers, keywords and filters)."""
    tail = ("marker", "chapter-marker", "audio-channel-source", "audio-role-source", "rating", "keyword", "analysis-marker", "filter-video", "filter-audio",
            "metadata")
    index = next((i for i, c in enumerate(parent) if c.tag in tail), len(parent))
    parent.insert(index, clip)
