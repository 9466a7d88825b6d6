"""Proto ↔ muvi: the only place that knows both the wire messages and muvi's types.

Validation errors raise :class:`FieldError` naming the request field (``timeline.segments[1].
source_out``); :mod:`plugin_server.status` turns every error into a gRPC status.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path, PurePosixPath
from typing import Any

from muvi.errors import InvalidInputError, MuviError
from muvi.pipeline import ALL_STEMS, GenerateOptions, GenerationResult
from muvi.timeline import AUDIO_SAMPLE_RATE, Rate, RationalTime, Segment, Timeline, TimeRange
from plugin_server.v1 import plugin_pb2 as pb

__all__ = ["FieldError", "timeline_from_proto", "timeline_to_proto", "options_from_proto", "output_dir", "check_against_timeline", "check_request_size",
           "done_event", "stem_events", "progress_event"]


class FieldError(InvalidInputError):
    """A request field is missing or wrong; the message starts with the field's path."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


def _rate(msg: pb.Rate, field: str) -> Rate:
    if msg.num <= 0 or msg.den <= 0:
        raise FieldError(field, f"a rate is positive integers num/den, got {msg.num}/{msg.den}")
    return Rate(int(msg.num), int(msg.den))


def timeline_from_proto(msg: pb.Timeline, *, max_seconds: float | None = None) -> Timeline:
    """A muvi Timeline from the request's; media paths must be absolute."""
    if not msg.HasField("rate"):
        raise FieldError("timeline.rate", "missing (e.g. num: 24000, den: 1001)")
    rate = _rate(msg.rate, "timeline.rate")
    if not msg.segments:
        raise FieldError("timeline.segments", "no segments")
    segments = []
    for i, s in enumerate(msg.segments):
        f = f"timeline.segments[{i}]"
        if not s.media_path:
            raise FieldError(f"{f}.media_path", "missing")
        media = Path(s.media_path)
        if not media.is_absolute():
            raise FieldError(f"{f}.media_path", f"must be an absolute path, got {s.media_path!r}")
        src_rate = _rate(s.source_rate, f"{f}.source_rate") if s.HasField("source_rate") else rate
        if s.source_in < 0:
            raise FieldError(f"{f}.source_in", f"must not be negative, got {s.source_in}")
        if s.source_out <= s.source_in:
            raise FieldError(f"{f}.source_out", f"must be after source_in ({s.source_out} ≤ {s.source_in})")
        if s.record_in < 0:
            raise FieldError(f"{f}.record_in", f"must not be negative, got {s.record_in}")
        try:
            segments.append(Segment(media, TimeRange.from_frames(s.source_in, s.source_out - s.source_in, src_rate),
                                    RationalTime(s.record_in, rate), name=s.name))
        except InvalidInputError as exc:
            raise FieldError(f, str(exc)) from exc
    try:
        timeline = Timeline(rate, tuple(segments), name=msg.name)
    except InvalidInputError as exc:
        raise FieldError("timeline.segments", str(exc)) from exc
    if max_seconds is not None and timeline.duration.seconds > max_seconds:
        raise FieldError("timeline", f"lasts {float(timeline.duration.seconds):.1f} s; this server's limit is "
                                     f"{max_seconds:.0f} s")
    return timeline


def timeline_to_proto(timeline: Timeline) -> pb.Timeline:
    """The wire form of a muvi Timeline (for clients)."""
    out = pb.Timeline(rate=pb.Rate(num=timeline.rate.num, den=timeline.rate.den), name=timeline.name)
    for s in timeline.segments:
        seg = out.segments.add(media_path=str(Path(s.media).resolve()), source_in=s.source.start.value,
                               source_out=s.source.end.value, record_in=s.record_start.value, name=s.name)
        if s.source.rate != timeline.rate:
            seg.source_rate.CopyFrom(pb.Rate(num=s.source.rate.num, den=s.source.rate.den))
    return out


def options_from_proto(msg: pb.GenerateOptions, defaults: GenerateOptions = GenerateOptions()) -> GenerateOptions:
    """Pipeline options: fields the request sets, the server's defaults for the rest."""
    changes: dict[str, Any] = {}
    for name in ("style", "mood", "key", "bpm", "meter", "seed", "steps", "cfg", "preview", "energy", "energy_curve",
                 "ending", "tail", "feel"):
        if msg.HasField(name):
            changes[name] = getattr(msg, name)
    if msg.hits:
        changes["hits"] = tuple(msg.hits)
    if msg.sections:
        changes["sections"] = tuple(float(x) for x in msg.sections)
    if msg.HasField("loudness_lufs"):
        changes["loudness_lufs"] = msg.loudness_lufs
    if msg.stems:
        unknown = [s for s in msg.stems if s not in ALL_STEMS]
        if unknown:
            raise FieldError("options.stems", f"unknown stem {unknown[0]!r}; choose from {', '.join(ALL_STEMS)}")
        changes["stems"] = tuple(msg.stems)
    if msg.HasField("prompt_path"):
        p = Path(msg.prompt_path)
        if not p.is_absolute():
            raise FieldError("options.prompt_path", f"must be an absolute path, got {msg.prompt_path!r}")
        changes["prompt"] = p
    for name, value in changes.items():  # each change alone names the field at fault
        try:
            GenerateOptions(**{**defaults.__dict__, name: value})
        except InvalidInputError as exc:
            raise FieldError(f"options.{name}", str(exc).replace("--", "")) from exc
    try:
        return GenerateOptions(**{**defaults.__dict__, **changes})
    except InvalidInputError as exc:  # a combination (e.g. overlap vs window) rather than one field
        raise FieldError("options", str(exc).replace("--", "")) from exc


def check_request_size(msg: pb.GenerateRequest, limits: Any) -> None:
    """The request's size against the server's limits (:class:`plugin_server.servicer.Limits`):
    segment count, output name, every text field and list option, before anything else."""
    segs = msg.timeline.segments
    if len(segs) > limits.max_segments:
        raise FieldError("timeline.segments", f"{len(segs)} segments, more than the {limits.max_segments} allowed")
    if len(msg.output_name) > limits.max_output_name:
        raise FieldError("output_name", f"{len(msg.output_name)} characters, more than the {limits.max_output_name} allowed")
    texts = [("request_id", msg.request_id), ("timeline.name", msg.timeline.name)]
    texts += [(f"timeline.segments[{i}].{f}", getattr(s, f)) for i, s in enumerate(segs) for f in ("media_path", "name")]
    o = msg.options
    texts += [(f"options.{f}", getattr(o, f)) for f in ("style", "mood", "key", "prompt_path", "energy", "energy_curve",
                                                        "ending", "feel")]
    texts += [(f"options.hits[{i}]", h) for i, h in enumerate(o.hits)] + [(f"options.stems[{i}]", h) for i, h in enumerate(o.stems)]
    for field, text in texts:
        if len(text) > limits.max_text:
            raise FieldError(field, f"{len(text)} characters, more than the {limits.max_text} allowed")
    for field, items in (("options.hits", o.hits), ("options.sections", o.sections), ("options.stems", o.stems)):
        if len(items) > limits.max_list:
            raise FieldError(field, f"{len(items)} entries, more than the {limits.max_list} allowed")


def check_against_timeline(options: GenerateOptions, timeline: Timeline) -> None:
    """What needs the timeline's length — an energy curve's points, hit points and section
    markers must lie inside it — refused before the job is queued, naming the field."""
    from muvi.curves import parse_energy_curve
    from muvi.pipeline import slowest_beat
    from muvi.shape import check_hits

    duration = float(timeline.duration.seconds)
    if options.energy_curve is not None:
        try:
            parse_energy_curve(options.energy_curve, duration=duration, field="energy_curve")
        except InvalidInputError as exc:
            raise FieldError("options.energy_curve", str(exc)) from exc
    try:
        check_hits(options.hit_points(), duration=duration, min_gap=slowest_beat(options.style, options.bpm), field="hits")
    except InvalidInputError as exc:
        raise FieldError("options.hits", str(exc)) from exc
    for s in options.sections:
        if s > duration:
            raise FieldError("options.sections", f"section at {s:g} s lies outside the timeline (0-{duration:.3f} s)")


def output_dir(root: Path, name: str, *, overwrite: bool) -> Path:
    """The request's output folder, which must lie under ``root``."""
    if not name:
        raise FieldError("output_name", "missing")
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or Path(name).is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise FieldError("output_name", f"must be relative to the output root, got {name!r}")
    raw = name.replace("\\", "/").split("/")
    if any(part in ("..", ".", "") for part in raw) or name.strip() != name or "\0" in name:
        raise FieldError("output_name", f"must not contain '..', '.' or empty parts, got {name!r}")
    root = root.resolve()
    out = (root / pure).resolve()
    if root not in out.parents:
        raise FieldError("output_name", f"{name!r} leaves the output root")
    if out.exists() and not out.is_dir():
        raise FieldError("output_name", f"{name!r} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise AlreadyExistsError(f"output_name: {name!r} already holds results; set overwrite to replace them")
    return out


class AlreadyExistsError(MuviError):
    """The output folder already holds results (and the request did not ask to overwrite), another
    job writes there, or the request id is already in use."""


def progress_event(request_id: str, stage: str, fraction: float, message: str = "") -> pb.GenerateEvent:
    return pb.GenerateEvent(request_id=request_id,
                            progress=pb.Progress(stage=stage, fraction=max(0.0, min(1.0, fraction)), message=message))


def _sample(seconds: Fraction) -> int:
    return int(seconds * AUDIO_SAMPLE_RATE)  # floor: the sample the instant falls in


def stem_events(request_id: str, result: GenerationResult) -> list[pb.GenerateEvent]:
    """One StemReady per stem WAV and the mix."""
    tl = result.report["timeline"]
    events = []
    for name, path in result.files.items():
        if not name.endswith(".wav"):
            continue
        events.append(pb.GenerateEvent(request_id=request_id, stem_ready=pb.StemReady(
            stem=name[:-4], path=str(path.resolve()), sample_rate=AUDIO_SAMPLE_RATE, bit_depth=24,
            time_reference_samples=int(tl["time_reference_samples"]), samples=int(tl["samples"]))))
    return events


def done_event(request_id: str, result: GenerationResult, duration: Fraction) -> pb.GenerateEvent:
    """The final event: files, tempo map and beats (samples from the timeline's start), report."""
    tempo = result.score.tempo
    downbeats = set(tempo.downbeat_times(duration))
    changes = [pb.TempoChange(sample=_sample(tempo.time_at(c.beat)), beat=float(c.beat), bpm=float(c.bpm))
               for c in tempo.changes]
    done = pb.Done(
        output_dir=str(result.out_dir.resolve()), files={k: str(v.resolve()) for k, v in result.files.items()},
        tempo_map=pb.TempoMap(beats_per_bar=tempo.beats_per_bar, changes=changes),
        beats=[pb.Beat(sample=_sample(t), downbeat=t in downbeats) for t in tempo.beat_times(duration)],
        report_json=json.dumps(result.report, default=float),
        accent_hit_rate=float(result.report.get("accent_hit_rate_cuts", 0.0)),
    )
    return pb.GenerateEvent(request_id=request_id, done=done)
