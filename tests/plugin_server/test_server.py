"""The plugin server against a real gRPC server on loopback, with the tiny model."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from muvi.backend import TorchBackend
from muvi.bwf import read_bwf
from muvi.media_gen import write_shot_clip
from muvi.pipeline import Generator
from muvi.timeline import Rate
from plugin_server.client import Client
from plugin_server.server import MuviServer, ServerConfig
from plugin_server.servicer import Limits
from plugin_server.v1 import plugin_pb2 as pb
from tests.muvi.nn.test_model_weights_prompt import tiny_model

R = Rate(25)
START = 90000  # 01:00:00:00 at 25 fps → TimeReference 172 800 000 samples


class SlowBackend(TorchBackend):
    """The torch backend with a pause per DiT step, so a job is still running when a test
    cancels it (the tiny model alone finishes in a blink)."""

    def __init__(self, model, pause: float) -> None:  # type: ignore[no-untyped-def]
        super().__init__(model)
        self.pause = pause

    def velocity(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        time.sleep(self.pause)
        return super().velocity(*args, **kwargs)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shot_clip(tmp_path_factory.mktemp("srv") / "cuts.mp4", shots=[50, 60, 45], rate=R, size=(160, 96)).path


def _server(tmp: Path, *, pause: float = 0.0, max_queue: int = 2,
            load: Callable[[], Generator] | None = None) -> MuviServer:
    def default_load() -> Generator:
        model = tiny_model()
        return Generator(model, backend=SlowBackend(model, pause) if pause else TorchBackend(model))

    cfg = ServerConfig(weights=tmp / "unused", port=0, token_file=tmp / "token", output_root=tmp / "out",
                       limits=Limits(max_queue=max_queue), grace_s=5.0)
    return MuviServer(cfg, load=load or default_load).start()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[MuviServer]:
    srv = _server(tmp_path)
    yield srv
    srv.stop(grace=1.0)


@pytest.fixture
def slow_server(tmp_path: Path) -> Iterator[MuviServer]:
    srv = _server(tmp_path, pause=0.05)
    yield srv
    srv.stop(grace=0.5)


def _client(srv: MuviServer) -> Client:
    c = Client(f"127.0.0.1:{srv.port}", token_file=srv.config.token_file)
    c.wait_ready(timeout=30)
    return c


def _timeline(clip: Path, *segments: tuple[int, int, int]) -> pb.Timeline:
    tl = pb.Timeline(rate=pb.Rate(num=25, den=1))
    for sin, sout, rec in segments or ((0, 50, START), (50, 110, START + 50)):
        tl.segments.add(media_path=str(clip), source_in=sin, source_out=sout, record_in=rec)
    return tl


def _opts(**kw: object) -> pb.GenerateOptions:
    base = {"steps": 2, "preview": False, "seed": 1}
    return pb.GenerateOptions(**{**base, **kw})


def _error(call: Iterator[pb.GenerateEvent]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        for _ in call:
            pass
    return info.value


def _leftovers(srv: MuviServer) -> list[str]:
    root = srv.config.output_root
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _wait_idle(srv: MuviServer, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while srv.worker.jobs():
        assert time.monotonic() < end, "the worker never finished its jobs"
        time.sleep(0.05)


# -- a full job -----------------------------------------------------------------------------------
def test_full_generate_streams_progress_stems_and_done(server: MuviServer, clip: Path) -> None:
    with _client(server) as c:
        events = list(c.generate(_timeline(clip), options=_opts(style="rock"), output_name="edit/v1", request_id="r1"))
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[0] == "progress" and events[0].progress.stage == "queued"
    assert kinds[-1] == "done" and all(e.request_id == "r1" for e in events)
    stages = {e.progress.stage for e in events if e.HasField("progress")}
    assert {"queued", "decode", "sampling", "render", "write"} <= stages
    stems = {e.stem_ready.stem: e.stem_ready for e in events if e.HasField("stem_ready")}
    assert set(stems) == {"drums", "bass", "chords", "melody", "mix"}
    n = round(110 / 25 * 48000)
    for s in stems.values():
        assert s.sample_rate == 48000 and s.bit_depth == 24 and s.samples == n
        assert s.time_reference_samples == START // 25 * 48000 == 172_800_000
        bwf = read_bwf(Path(s.path))
        assert bwf.bext.time_reference == s.time_reference_samples and bwf.audio.shape == (2, n)
        assert Path(s.path).parent == (server.config.output_root / "edit" / "v1").resolve()
    done = events[-1].done
    report = json.loads(done.report_json)
    assert report["backend"] == "torch-cpu" and report["style"] == "rock" and report["seed"] == 1
    first_change = done.tempo_map.changes[0]  # the grid may start before the timeline (a pickup)
    assert done.tempo_map.beats_per_bar == 4 and first_change.beat == 0 and -48000 * 4 < first_change.sample <= 0
    samples = [b.sample for b in done.beats]
    assert samples == sorted(samples) and samples[0] >= 0 and samples[-1] < n and any(b.downbeat for b in done.beats)
    assert set(done.files) >= {"mix.wav", "stems.mid", "beats.json", "report.json", "roll.png"}
    assert _leftovers(server) == sorted(["edit", "edit/v1", *[f"edit/v1/{k}" for k in done.files]])


def test_capabilities_and_token_file(server: MuviServer) -> None:
    mode = stat.S_IMODE(os.stat(server.config.token_file).st_mode)
    assert mode == 0o600
    with _client(server) as c:
        caps = c.capabilities()
    assert caps.ready and caps.backend == "torch-cpu" and "torch-cpu" in caps.backends_available
    assert set(caps.stems) == {"drums", "bass", "chords", "melody"} and "pop" in caps.styles
    assert caps.limits.max_queue == 2 and caps.limits.max_steps == 200 and caps.version


# -- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("change, code, field", [
    (lambda r, clip: r.timeline.segments[0].__setattr__("media_path", str(clip.parent / "missing.mp4")),
     grpc.StatusCode.NOT_FOUND, "missing.mp4"),
    (lambda r, clip: (r.timeline.segments[1].__setattr__("source_out", 5000)),
     grpc.StatusCode.OUT_OF_RANGE, "cuts.mp4"),
    (lambda r, clip: r.timeline.segments[0].__setattr__("source_out", 0),
     grpc.StatusCode.INVALID_ARGUMENT, "timeline.segments[0].source_out"),
    (lambda r, clip: r.timeline.segments[1].__setattr__("record_in", START + 10),
     grpc.StatusCode.INVALID_ARGUMENT, "overlap"),
    (lambda r, clip: r.timeline.segments[0].__setattr__("media_path", "cuts.mp4"),
     grpc.StatusCode.INVALID_ARGUMENT, "timeline.segments[0].media_path"),
    (lambda r, clip: r.timeline.rate.__setattr__("num", 0), grpc.StatusCode.INVALID_ARGUMENT, "timeline.rate"),
    (lambda r, clip: r.ClearField("timeline"), grpc.StatusCode.INVALID_ARGUMENT, "timeline: missing"),
    (lambda r, clip: r.options.__setattr__("bpm", 0), grpc.StatusCode.INVALID_ARGUMENT, "options.bpm"),
    (lambda r, clip: r.options.__setattr__("cfg", -1), grpc.StatusCode.INVALID_ARGUMENT, "options.cfg"),
    (lambda r, clip: r.options.__setattr__("style", "polka"), grpc.StatusCode.INVALID_ARGUMENT, "options.style"),
    (lambda r, clip: r.options.stems.append("vocals"), grpc.StatusCode.INVALID_ARGUMENT, "options.stems"),
    (lambda r, clip: r.options.__setattr__("steps", 0), grpc.StatusCode.INVALID_ARGUMENT, "options.steps"),
    (lambda r, clip: r.options.__setattr__("energy", "loud"), grpc.StatusCode.INVALID_ARGUMENT, "options.energy"),
    (lambda r, clip: r.options.__setattr__("energy_curve", "0:0.2,3:x"), grpc.StatusCode.INVALID_ARGUMENT,
     "options.energy_curve"),
    (lambda r, clip: r.options.__setattr__("energy_curve", "0:0.2,999:0.5"), grpc.StatusCode.INVALID_ARGUMENT,
     "outside the timeline"),
    (lambda r, clip: r.options.__setattr__("ending", "explode"), grpc.StatusCode.INVALID_ARGUMENT, "options.ending"),
    (lambda r, clip: r.options.__setattr__("tail", 31), grpc.StatusCode.INVALID_ARGUMENT, "options.tail"),
    (lambda r, clip: r.options.hits.append("999"), grpc.StatusCode.INVALID_ARGUMENT, "options.hits"),
    (lambda r, clip: r.options.hits.extend(["1", "1.2"]), grpc.StatusCode.INVALID_ARGUMENT, "options.hits"),
    (lambda r, clip: r.options.sections.append(999.0), grpc.StatusCode.INVALID_ARGUMENT, "options.sections"),
    (lambda r, clip: r.options.__setattr__("feel", "sloppy"), grpc.StatusCode.INVALID_ARGUMENT, "options.feel"),
])
def test_bad_requests_get_the_right_status_naming_the_field(server: MuviServer, clip: Path, change, code, field) -> None:  # type: ignore[no-untyped-def]
    request = pb.GenerateRequest(timeline=_timeline(clip), options=_opts(), output_name="bad")
    change(request, clip)
    with _client(server) as c:
        err = _error(c.stub.Generate(request, metadata=c.metadata, timeout=30))
    assert err.code() == code and field in err.details(), err.details()
    assert _leftovers(server) == []


@pytest.mark.parametrize("name", ["../x", "/tmp/x", "a/../../x", "a//b", "..", " x"])
def test_output_outside_the_root_is_refused(server: MuviServer, clip: Path, name: str, tmp_path: Path) -> None:
    with _client(server) as c:
        err = _error(c.generate(_timeline(clip), options=_opts(), output_name=name))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "output_name" in err.details()
    assert _leftovers(server) == [] and not (tmp_path / "x").exists()


def test_existing_results_are_kept_unless_overwrite(server: MuviServer, clip: Path) -> None:
    keep = server.config.output_root / "mine" / "notes.txt"
    keep.parent.mkdir(parents=True)
    keep.write_text("an editor's file")
    with _client(server) as c:
        err = _error(c.generate(_timeline(clip), options=_opts(), output_name="mine"))
        assert err.code() == grpc.StatusCode.ALREADY_EXISTS and "overwrite" in err.details()
        events = list(c.generate(_timeline(clip), options=_opts(), output_name="mine", overwrite=True))
    assert events[-1].HasField("done") and keep.read_text() == "an editor's file"


# -- auth -----------------------------------------------------------------------------------------
def test_calls_without_or_with_a_wrong_token_are_unauthenticated(server: MuviServer, clip: Path) -> None:
    _client(server).close()  # loaded
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    from plugin_server.v1 import plugin_pb2_grpc as pb_grpc

    stub = pb_grpc.MuviStub(channel)
    for metadata in ((), (("authorization", "Bearer nope"),), (("authorization", server.token),)):
        with pytest.raises(grpc.RpcError) as info:
            stub.GetCapabilities(pb.GetCapabilitiesRequest(), metadata=metadata, timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        err = _error(stub.Generate(pb.GenerateRequest(timeline=_timeline(clip), output_name="a"), metadata=metadata,
                                   timeout=10))
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    # the health service stays open to generic probes
    health = health_pb2_grpc.HealthStub(channel)
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == health_pb2.HealthCheckResponse.SERVING
    channel.close()
    assert _leftovers(server) == []


# -- cancellation, deadlines, disconnects ---------------------------------------------------------
def test_cancel_mid_job_stops_it_and_leaves_no_files(slow_server: MuviServer, clip: Path) -> None:
    with _client(slow_server) as c:
        call = c.generate(_timeline(clip), options=_opts(steps=150), output_name="cancelled", request_id="job-x")
        with pytest.raises(grpc.RpcError) as info:
            for event in call:
                if event.HasField("progress") and event.progress.stage == "sampling":
                    assert c.cancel("job-x") == "running"
        assert info.value.code() == grpc.StatusCode.CANCELLED and "sampl" in info.value.details()
        with pytest.raises(grpc.RpcError) as unknown:
            c.cancel("job-x")
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    _wait_idle(slow_server)
    assert _leftovers(slow_server) == []


def test_deadline_stops_the_job(slow_server: MuviServer, clip: Path) -> None:
    with _client(slow_server) as c:
        t0 = time.monotonic()
        err = _error(c.generate(_timeline(clip), options=_opts(steps=200), output_name="late", timeout=2.0))
    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED and time.monotonic() - t0 < 5
    _wait_idle(slow_server, timeout=5.0)  # stopped between sampler steps, not after 200 of them
    assert _leftovers(slow_server) == []


def test_client_that_disconnects_cancels_its_job(slow_server: MuviServer, clip: Path) -> None:
    with _client(slow_server) as c:
        call = c.generate(_timeline(clip), options=_opts(steps=200), output_name="gone")
        for event in call:
            if event.HasField("progress") and event.progress.stage == "sampling":
                break
        call.cancel()
    _wait_idle(slow_server, timeout=5.0)
    assert _leftovers(slow_server) == []


def test_eight_concurrent_clients_complete_or_are_turned_away(server: MuviServer, clip: Path) -> None:
    outcomes: dict[int, str] = {}

    def run(i: int) -> None:
        with _client(server) as c:
            try:
                events = list(c.generate(_timeline(clip), options=_opts(seed=i), output_name=f"c{i}", timeout=120))
                outcomes[i] = "done" if events[-1].HasField("done") else "incomplete"
            except grpc.RpcError as exc:
                outcomes[i] = exc.code().name + (": " + exc.details() if "queue is full" not in exc.details() else "")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert not any(t.is_alive() for t in threads), "a client hung"
    assert set(outcomes.values()) <= {"done", "RESOURCE_EXHAUSTED"}, outcomes
    done = [i for i, o in outcomes.items() if o == "done"]
    assert len(done) >= 3  # the running job and a full queue of 2
    assert sorted(p.name for p in server.config.output_root.iterdir()) == sorted(f"c{i}" for i in done)


def test_queue_full_names_the_queue_length(tmp_path: Path, clip: Path) -> None:
    srv = _server(tmp_path, pause=0.05, max_queue=1)
    try:
        with _client(srv) as c:
            calls = [c.generate(_timeline(clip), options=_opts(steps=100), output_name=f"q{i}") for i in range(2)]
            for call in calls:  # wait until both are accepted (running + 1 waiting)
                assert next(iter(call)).progress.stage == "queued"
            err = _error(c.generate(_timeline(clip), options=_opts(), output_name="q2"))
            assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "1 waiting of 1" in err.details()
            for call in calls:
                call.cancel()
    finally:
        srv.stop(grace=0.5)


# -- health and shutdown --------------------------------------------------------------------------
def test_health_not_serving_while_loading_then_serving_then_shutdown(tmp_path: Path, clip: Path) -> None:
    release = threading.Event()

    def load() -> Generator:
        release.wait(30)
        return Generator(tiny_model())

    srv = _server(tmp_path, load=load)
    channel = grpc.insecure_channel(f"127.0.0.1:{srv.port}")
    health = health_pb2_grpc.HealthStub(channel)
    req = health_pb2.HealthCheckRequest(service="muvi.plugin.v1.Muvi")
    try:
        assert health.Check(req, timeout=10).status == health_pb2.HealthCheckResponse.NOT_SERVING
        c = Client(f"127.0.0.1:{srv.port}", token_file=srv.config.token_file)
        err = _error(c.generate(_timeline(clip), options=_opts(), output_name="early"))
        assert err.code() == grpc.StatusCode.UNAVAILABLE and "loading" in err.details()
        assert not c.capabilities().ready
        release.set()
        c.wait_ready(timeout=30)
        assert health.Check(req, timeout=10).status == health_pb2.HealthCheckResponse.SERVING
        c.close()
    finally:
        release.set()
        srv.stop(grace=1.0)
    channel.close()
    assert _leftovers(srv) == []


def test_shutdown_finishes_the_running_job_within_grace_or_cancels_it(tmp_path: Path, clip: Path) -> None:
    for grace, expect in ((30.0, "done"), (0.3, "CANCELLED")):
        root = tmp_path / expect
        srv = _server(root, pause=0.02)
        c = _client(srv)
        result: list[str] = []

        def run() -> None:
            try:
                events = list(c.generate(_timeline(clip), options=_opts(steps=40), output_name="job"))
                result.append("done" if events[-1].HasField("done") else "incomplete")
            except grpc.RpcError as exc:
                result.append(exc.code().name)

        t = threading.Thread(target=run)
        t.start()
        while not srv.worker.jobs() or srv.worker.jobs()[0].state != "running":
            time.sleep(0.02)
        srv.stop(grace=grace)
        t.join(timeout=60)
        c.close()
        assert result == [expect]
        files = _leftovers(srv)
        assert (files and "job/mix.wav" in files) if expect == "done" else files == []


def test_otio_round_trip_places_every_stem_at_its_time_reference(server: MuviServer, clip: Path, tmp_path: Path) -> None:
    """The worked example of docs/plugin-integration.md: OTIO selection → server → OTIO stems."""
    import opentimelineio as otio

    from muvi.otio_io import PlacedAudio, read_otio, stems_to_otio, write_otio
    from muvi.timeline import RationalTime, Segment, Timeline, TimeRange

    r = Rate(24000, 1001)
    selection = Timeline(r, (Segment(clip, TimeRange.from_frames(0, 50, R), RationalTime(86400, r)),
                             Segment(clip, TimeRange.from_frames(60, 45, R), RationalTime(86400 + 48, r))))
    write_otio(selection, tmp_path / "selection.otio")
    timeline = read_otio(tmp_path / "selection.otio")
    with _client(server) as c:
        events = list(c.generate(timeline, options=_opts(), output_name="reel2/v1", timeout=120))
    stems = [PlacedAudio(e.stem_ready.stem, Path(e.stem_ready.path), e.stem_ready.time_reference_samples,
                         e.stem_ready.samples) for e in events if e.HasField("stem_ready")]
    assert stems and {s.time_reference for s in stems} == {86400 * 1001 * 48000 // 24000}
    otio.adapters.write_to_file(stems_to_otio(stems, rate=r), str(tmp_path / "stems.otio"))
    back = otio.adapters.read_from_file(str(tmp_path / "stems.otio"))
    assert len(back.audio_tracks()) == 5
    for track, s in zip(back.audio_tracks(), stems):
        clip_item = track[-1]
        start = track.range_of_child(clip_item).start_time
        assert start.value == s.time_reference and start.rate == 48000  # sample-exact
        assert clip_item.source_range.duration.value == s.samples
        assert clip_item.media_reference.target_url.endswith(f"/{s.name}.wav")
        # and in the timeline's frames: exactly the selection's first record frame
        assert start.rescaled_to(r.num / r.den).value == pytest.approx(86400, abs=1e-6)


def test_reflection_only_behind_its_flag(tmp_path: Path) -> None:
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    for flag in (False, True):
        cfg = ServerConfig(weights=tmp_path / "unused", port=0, token_file=tmp_path / f"tok{flag}",
                           output_root=tmp_path / "out", reflection=flag)
        srv = MuviServer(cfg, load=lambda: Generator(tiny_model())).start()
        channel = grpc.insecure_channel(f"127.0.0.1:{srv.port}")
        try:
            db = ProtoReflectionDescriptorDatabase(channel)
            if flag:
                assert "muvi.plugin.v1.Muvi" in db.get_services()
            else:
                with pytest.raises(grpc.RpcError) as info:
                    db.get_services()
                assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
        finally:
            channel.close()
            srv.stop(grace=1.0)


def test_damaged_frames_are_concealed_with_a_warning_event(server: MuviServer, tmp_path: Path) -> None:
    from tests.muvi.test_video import _damage

    clip = write_shot_clip(tmp_path / "c.mp4", shots=[100, 100, 100], rate=R, size=(320, 192)).path
    light = _damage(clip, [40, 140], tmp_path / "light.mp4")
    with _client(server) as c:
        events = list(c.generate(_timeline(light, (0, 300, START)), options=_opts(), output_name="damaged"))
    warnings = [e.progress.message for e in events if e.WhichOneof("event") == "progress" and e.progress.stage == "warning"]
    assert len(warnings) == 1 and "concealed" in warnings[0] and "1.600-1.640 s" in warnings[0]
    report = json.loads(events[-1].done.report_json)
    assert report["damaged_video_s"] == [[1.6, 1.64], [5.6, 5.64]]


def test_a_server_killed_mid_job_cleans_up_when_it_restarts(tmp_path: Path) -> None:
    """kill -9 of `muvi serve` while a job writes its result, then a restart: the staging folder
    the job left is removed, no partial result is in place, and the server serves again."""
    import signal
    import subprocess
    import sys

    from muvi.pipeline import STAGING_MARK
    from muvi.weights import save_checkpoint

    save_checkpoint(tmp_path / "w", tiny_model())
    clip = write_shot_clip(tmp_path / "long.mp4", shots=[400, 400], rate=R, size=(160, 96)).path
    out_root = tmp_path / "out"
    root = Path(__file__).resolve().parents[2]

    def start() -> tuple[subprocess.Popen, int]:  # type: ignore[type-arg]
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        (tmp_path / "token").unlink(missing_ok=True)
        proc = subprocess.Popen([sys.executable, "-m", "muvi", "serve", "--weights", str(tmp_path / "w"), "--port",
                                 str(port), "--token-file", str(tmp_path / "token"), "--output-root", str(out_root),
                                 "--backend", "torch-cpu"], cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + 60
        while not (tmp_path / "token").exists():
            assert time.monotonic() < end and proc.poll() is None
            time.sleep(0.05)
        return proc, port

    proc, port = start()
    try:
        c = Client(f"127.0.0.1:{port}", token_file=tmp_path / "token")
        c.wait_ready(timeout=60)
        events = c.generate(_timeline(clip, (0, 800, START)), options=_opts(steps=40), output_name="take")
        for e in events:  # kill it once the job is writing (its staging folder exists) or late in sampling
            staging = [p for p in out_root.glob(".take.*") if (p / STAGING_MARK).exists()]
            if staging or (e.WhichOneof("event") == "progress" and e.progress.stage in ("render", "write")):
                break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        c.close()
    finally:
        if proc.poll() is None:
            proc.kill()
    # what a killed job may leave: its staging folder (made now if the kill came before it)
    left = out_root / ".take.crashed"
    left.mkdir(parents=True, exist_ok=True)
    (left / STAGING_MARK).touch()
    (left / "drums.wav").write_bytes(b"partial")
    (out_root / ".editor-notes").mkdir()  # a hidden folder muvi did not make stays
    proc, port = start()
    try:
        c = Client(f"127.0.0.1:{port}", token_file=tmp_path / "token")
        c.wait_ready(timeout=60)
        assert not [p for p in out_root.iterdir() if (p / STAGING_MARK).exists()]
        assert (out_root / ".editor-notes").is_dir()
        take = out_root / "take"  # absent, or whole if the job had finished before the kill
        assert not take.exists() or {"report.json", "mix.wav", "drums.wav"} <= {p.name for p in take.iterdir()}
        done = list(c.generate(_timeline(clip, (0, 100, START)), options=_opts(), output_name="take", overwrite=True))
        assert done[-1].WhichOneof("event") == "done"
        c.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_server_sets_a_fixed_mmap_threshold_on_glibc() -> None:
    """keep_memory_flat: a 40-job soak stayed at 426 ± 6 MB (it rose 441 MB without)."""
    import platform

    from muvi.memory import _glibc, keep_memory_flat

    keep_memory_flat()
    libc = _glibc()
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert libc is not None and libc.mallopt(-3, 1 << 20) == 1 and libc.malloc_trim(0) in (0, 1)
