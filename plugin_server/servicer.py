"""The thin servicer: parse the request (convert), queue a job (jobs), stream its events."""

from __future__ import annotations

import logging
import queue
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import grpc

from muvi import __version__
from muvi.pipeline import ALL_STEMS, BPM_RANGE, MAX_CFG, MAX_STEPS, GenerateOptions
from muvi.errors import MediaNotFoundError
from plugin_server import convert
from plugin_server.jobs import Job, Worker
from plugin_server.status import brief, status_for
from plugin_server.v1 import plugin_pb2 as pb
from plugin_server.v1 import plugin_pb2_grpc as pb_grpc

__all__ = ["Limits", "MuviServicer"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """What one request may ask, each refused before any work starts (INVALID_ARGUMENT naming
    the field; a message over ``max_message_bytes`` is refused by gRPC: RESOURCE_EXHAUSTED)."""

    max_queue: int = 4
    max_timeline_seconds: float = 1200.0
    max_segments: int = 10_000
    max_output_name: int = 255  # characters
    max_text: int = 4096  # characters in any one text field (a media path, a curve, a hit, a name)
    max_list: int = 1000  # entries in a list option (hits, sections, stems)
    max_message_bytes: int = 4 * 2**20
    progress_interval_s: float = 0.1  # at most one Progress event per stage per interval


class MuviServicer(pb_grpc.MuviServicer):
    def __init__(self, worker: Worker, *, output_root: Path, limits: Limits, describe: dict[str, Any],
                 defaults: GenerateOptions = GenerateOptions()) -> None:
        self.worker, self.output_root, self.limits = worker, output_root, limits
        self.describe, self.defaults = describe, defaults

    @staticmethod
    def _abort(context: grpc.ServicerContext, exc: BaseException) -> None:
        code, message = status_for(exc)
        context.abort(code, message)

    def Generate(self, request: pb.GenerateRequest, context: grpc.ServicerContext) -> Iterator[pb.GenerateEvent]:
        rid = request.request_id or uuid.uuid4().hex
        try:
            if not request.HasField("timeline"):
                raise convert.FieldError("timeline", "missing")
            convert.check_request_size(request, self.limits)
            timeline = convert.timeline_from_proto(request.timeline, max_seconds=self.limits.max_timeline_seconds)
            options = convert.options_from_proto(request.options, self.defaults)
            convert.check_against_timeline(options, timeline)
            out = convert.output_dir(self.output_root, request.output_name or rid, overwrite=request.overwrite)
            for i, seg in enumerate(timeline.segments):  # a missing file fails now; ranges are probed by the job
                media = Path(seg.media)
                if media.exists() and not media.is_file():  # a folder, a FIFO, a device: never opened
                    raise convert.FieldError(f"timeline.segments[{i}].media_path", f"{media} is not a regular file")
                if not media.is_file():
                    raise MediaNotFoundError(seg.media, f"file not found (timeline.segments[{i}].media_path)")
            remaining = context.time_remaining()
            job = Job(timeline, options, out, request_id=rid,
                      deadline=None if remaining is None else time.monotonic() + remaining)
            ahead = self.worker.submit(job)
        except Exception as exc:  # noqa: BLE001 - mapped to a status in one place
            self._abort(context, exc)
            return
        if not context.add_callback(lambda: job.cancel("client went away")):
            job.cancel("client went away")
            return
        log.info("job %s queued (%d ahead): %d segments, %.1f s", rid, ahead, len(timeline.segments),
                 float(timeline.duration.seconds))
        yield convert.progress_event(rid, "queued", 0.0, f"{ahead} job(s) ahead")
        last_sent: dict[str, float] = {}
        while True:
            try:
                item = job.events.get(timeout=0.05)
            except queue.Empty:
                if not context.is_active():  # never yield to a client that has gone (grpc#22874)
                    job.cancel("client went away")
                    return
                continue
            kind = item[0]
            if kind == "progress":
                _, stage, fraction, message = item
                now = time.monotonic()
                if fraction < 1.0 and now - last_sent.get(stage, 0.0) < self.limits.progress_interval_s:
                    continue
                last_sent[stage] = now
                if not context.is_active():
                    job.cancel("client went away")
                    return
                yield convert.progress_event(rid, stage, fraction, message)
            elif kind == "done":
                result = item[1]
                for event in convert.stem_events(rid, result):
                    yield event
                yield convert.done_event(rid, result, timeline.duration.seconds)
                log.info("job %s done: %s", rid, result.out_dir)
                return
            else:
                log.info("job %s ended: %s", rid, item[1])
                self._abort(context, item[1])
                return

    def Cancel(self, request: pb.CancelRequest, context: grpc.ServicerContext) -> pb.CancelResponse:
        if not request.request_id:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "request_id: missing")
        if len(request.request_id) > self.limits.max_text:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"request_id: {len(request.request_id)} characters, more "
                                                            f"than the {self.limits.max_text} allowed")
        state = self.worker.cancel(request.request_id)
        if state is None:
            context.abort(grpc.StatusCode.NOT_FOUND, brief(f"request_id: no queued or running job {request.request_id!r}"))
        return pb.CancelResponse(state=state)

    def GetCapabilities(self, request: pb.GetCapabilitiesRequest, context: grpc.ServicerContext) -> pb.Capabilities:
        from muvi.music.styles import STYLES
        from muvi.nn.model import MOOD_TAGS

        d = self.describe
        gen = self.worker.generator
        return pb.Capabilities(
            version=__version__, backends_available=d.get("backends_available", []),
            backend=gen.backend.name if gen is not None else d.get("backend", ""), gpu=d.get("gpu", ""),
            engines=d.get("engines", []), styles=list(STYLES), moods=[m for m in MOOD_TAGS if m != "none"],
            stems=list(ALL_STEMS), model=d.get("model", ""), ready=self.worker.ready,
            limits=pb.Limits(max_queue=self.limits.max_queue, max_timeline_seconds=self.limits.max_timeline_seconds,
                             max_steps=MAX_STEPS, min_bpm=BPM_RANGE[0], max_bpm=BPM_RANGE[1],
                             max_cfg=MAX_CFG),
        )
