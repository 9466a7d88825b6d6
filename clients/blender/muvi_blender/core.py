"""The add-on's work without Blender: strips → a request, the request → a running ``muvi serve``,
its answer → frames for sound strips and markers.

Imports only the standard library at load; grpc, protobuf and muvi's generated stubs come from
the muvi installation (``muvi_path``: its folder, whose ``.venv`` provides grpc) when a request
runs. Never the muvi package: torch and multiprocessing crash Blender 3.4 at exit.
"""

from __future__ import annotations

import glob
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

STYLES = ("pop", "rock", "electronic", "hiphop", "ambient", "cinematic", "jazz", "folk", "chorale")
MOODS = ("happy", "sad", "tense", "calm", "epic", "dark", "playful", "romantic")
ENDINGS = ("auto", "ring", "button", "fade", "loop", "none")
FEELS = ("grid", "tight", "natural", "loose")
STEMS = ("drums", "bass", "chords", "melody", "mix")
SAMPLE_RATE = 48000


class MuviError(Exception):
    """Something the user can act on, said in one line (the add-on shows it as a Blender report)."""


def scene_rate(fps: int, fps_base: float) -> Fraction:
    """Blender's ``render.fps / render.fps_base`` as an exact rate (30 / 1.001 → 30000/1001)."""
    return Fraction(int(fps)) / Fraction(fps_base).limit_denominator(10000)


@dataclass(frozen=True)
class StripInfo:
    name: str
    path: str  # absolute media path
    source_in: int  # first media frame shown
    duration: int  # frames on the timeline
    record_in: int  # the timeline frame it starts at
    media_fps: float | None = None  # the media's own rate (None: unknown)


@dataclass
class Request:
    muvi_path: str
    server: str
    token_file: str | None
    rate: Fraction
    strips: list[StripInfo]
    style: str = "auto"
    mood: str = "auto"
    energy: str = "auto"
    ending: str = "auto"
    feel: str = "natural"
    seed: int = 0
    output_name: str = ""
    overwrite: bool = False
    timeout: float = 3600.0
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])


@dataclass(frozen=True)
class Result:
    start_frame: int  # where the stems start on the scene's timeline (their TimeReference)
    stems: dict[str, str]  # stem → absolute WAV path
    samples: int
    beats: list[tuple[int, bool]]  # (scene frame, downbeat)
    cuts: list[int]  # scene frames
    output_dir: str
    summary: str


def default_output(scene_name: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in scene_name).strip("_") or "scene"
    return f"blender-{safe}-{time.strftime('%Y%m%d-%H%M%S')}"


def _stubs(muvi_path: str) -> tuple[Any, Any, Any]:
    """(grpc, plugin_pb2, plugin_pb2_grpc) from the muvi installation."""
    root = Path(muvi_path or os.environ.get("MUVI_HOME", "")).expanduser()
    if not (root / "plugin_server" / "v1" / "plugin_pb2.py").is_file():
        raise MuviError(f"no muvi installation at {str(root) or '(not set)'}: set its folder in the add-on's "
                        "preferences (the folder with plugin_server/ and .venv/)")
    paths = [str(root)] + sorted(glob.glob(str(root / ".venv" / "lib" / "python3*" / "site-packages")))
    for p in reversed(paths):
        if p not in sys.path:
            sys.path.insert(0, p)
    try:
        import grpc
        from plugin_server.v1 import plugin_pb2, plugin_pb2_grpc
    except ImportError as exc:
        raise MuviError(f"cannot load grpc or muvi's stubs from {root}: {exc} (run `make setup` there)") from exc
    return grpc, plugin_pb2, plugin_pb2_grpc


def _token(path: str | None) -> str:
    p = Path(path).expanduser() if path else Path.home() / ".muvi" / "server.token"
    try:
        token = p.read_text().strip()
    except OSError:
        raise MuviError(f"no server token at {p}: start `muvi serve` (it writes one there) or set the token "
                        "file in the add-on's preferences") from None
    if not token:
        raise MuviError(f"the token file {p} is empty")
    return token


def timeline_message(pb: Any, request: Request) -> Any:
    """The selection as a muvi Timeline: each strip a segment in the scene's frames. A strip
    whose media runs at another rate than the scene is refused: Blender plays it frame for
    frame (faster or slower than real time), which no real-time source range describes."""
    rate = request.rate
    tl = pb.Timeline(rate=pb.Rate(num=rate.numerator, den=rate.denominator), name="blender")
    for s in request.strips:
        if s.media_fps is not None and abs(s.media_fps - float(rate)) > 0.01:
            raise MuviError(f"strip {s.name!r}: its media runs at {s.media_fps:.3f} fps but the scene at "
                            f"{float(rate):.3f} fps, so Blender plays it frame for frame ({float(rate) / s.media_fps:.2f}x "
                            "speed); set the scene's frame rate to the media's, or conform the clip first")
        if s.duration < 1:
            raise MuviError(f"strip {s.name!r} has no frames on the timeline")
        if not os.path.isfile(s.path):
            raise MuviError(f"strip {s.name!r}: its media {s.path} does not exist")
        tl.segments.add(media_path=os.path.abspath(s.path), source_in=s.source_in, source_out=s.source_in + s.duration,
                        record_in=s.record_in, name=s.name)
    return tl


def options_message(pb: Any, request: Request) -> Any:
    opts = pb.GenerateOptions(seed=request.seed, ending=request.ending, feel=request.feel, preview=False)
    if request.style != "auto":
        opts.style = request.style
    if request.mood != "auto":
        opts.mood = request.mood
    if request.energy != "auto":
        opts.energy = request.energy
    return opts


_CODES = {
    "UNAVAILABLE": "the muvi server at {server} is not reachable or still loading (is `muvi serve` running?)",
    "UNAUTHENTICATED": "the muvi server refused the token: check the token file in the add-on's preferences",
    "CANCELLED": "cancelled",
    "DEADLINE_EXCEEDED": "the muvi server took too long",
}


def _rpc_error(exc: Any, request: Request) -> MuviError:
    name = exc.code().name if hasattr(exc, "code") else "UNKNOWN"
    if name in _CODES:
        return MuviError(_CODES[name].format(server=request.server))
    return MuviError(f"muvi: {exc.details() or name}")  # the server names the field or the file at fault


def run(request: Request, *, on_event: Callable[[Any], None] = lambda e: None) -> Result:
    """Send the request, stream its events to ``on_event``, and return what to place."""
    grpc, pb, pb_grpc = _stubs(request.muvi_path)
    token = _token(request.token_file)
    msg = pb.GenerateRequest(request_id=request.request_id, timeline=timeline_message(pb, request),
                             options=options_message(pb, request), output_name=request.output_name,
                             overwrite=request.overwrite)
    stems: dict[str, tuple[str, int, int]] = {}
    done = None
    with grpc.insecure_channel(request.server) as channel:
        stub = pb_grpc.MuviStub(channel)
        try:
            for event in stub.Generate(msg, metadata=(("authorization", f"Bearer {token}"),), timeout=request.timeout):
                on_event(event)
                kind = event.WhichOneof("event")
                if kind == "stem_ready":
                    s = event.stem_ready
                    stems[s.stem] = (s.path, s.time_reference_samples, s.samples)
                elif kind == "done":
                    done = event.done
        except grpc.RpcError as exc:
            raise _rpc_error(exc, request) from None
    if done is None:
        raise MuviError("the muvi server ended the job without a result")
    return _result(request, stems, done)


def _result(request: Request, stems: dict[str, tuple[str, int, int]], done: Any) -> Result:
    rate = request.rate
    first = min(s.record_in for s in request.strips)
    refs = {tr for _, tr, _ in stems.values()}
    if len(refs) != 1:
        raise MuviError("the stems do not share one start")
    start = Fraction(refs.pop()) * rate / SAMPLE_RATE  # the TimeReference (whole samples) as a scene frame
    if abs(start - first) >= Fraction(1, 2):
        raise MuviError(f"the stems start at frame {float(start):g}, not at the selection's first frame {first}")

    def frame(sample: int) -> int:
        return first + round(Fraction(sample) * rate / SAMPLE_RATE)

    beats = [(frame(b.sample), bool(b.downbeat)) for b in done.beats]
    cuts: list[int] = []
    beats_json = done.files.get("beats.json")
    if beats_json and os.path.isfile(beats_json):
        accents = json.loads(Path(beats_json).read_text()).get("accents", [])
        cuts = [first + round(Fraction(a["time"]).limit_denominator(10**6) * rate) for a in accents if a["kind"] == "cut"]
    report = json.loads(done.report_json or "{}")
    summary = f"{report.get('style', '?')} in {report.get('key', '?')} at {report.get('tempo', {}).get('bpm', 0):.1f} BPM"
    samples = max((n for _, _, n in stems.values()), default=0)
    return Result(first, {k: v[0] for k, v in stems.items()}, samples, beats, cuts, done.output_dir, summary)


def cancel(request: Request) -> None:
    grpc, pb, pb_grpc = _stubs(request.muvi_path)
    token = _token(request.token_file)
    with grpc.insecure_channel(request.server) as channel:
        try:
            pb_grpc.MuviStub(channel).Cancel(pb.CancelRequest(request_id=request.request_id),
                                             metadata=(("authorization", f"Bearer {token}"),), timeout=10)
        except grpc.RpcError as exc:
            if exc.code().name != "NOT_FOUND":  # already over
                raise _rpc_error(exc, request) from None


def describe(event: Any) -> str:
    kind = event.WhichOneof("event")
    if kind == "progress":
        return f"{event.progress.stage} {100 * event.progress.fraction:.0f}%"
    if kind == "stem_ready":
        return f"{event.stem_ready.stem} ready"
    return "done"


def stem_files(result: Result) -> list[tuple[str, str]]:
    """(stem, path) in track order: drums, bass, chords, melody, then the mix."""
    return [(s, result.stems[s]) for s in STEMS if s in result.stems]


def marker_frames(result: Result) -> list[tuple[str, int]]:
    """(name, frame): ``bar N`` on downbeats, ``beat`` on the other beats, ``cut`` on cuts."""
    out, bar = [], 0
    for f, down in result.beats:
        if down:
            bar += 1
        out.append((f"bar {bar}" if down else "beat", f))
    return out + [("cut", f) for f in result.cuts]
