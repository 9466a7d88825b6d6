"""A short fuzzing run against a real server on loopback (the long one: benchmarks/stress.py)."""

from __future__ import annotations

import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from muvi.media_gen import write_shot_clip
from muvi.pipeline import Generator
from muvi.timeline import Rate
from plugin_server.server import MuviServer, ServerConfig
from plugin_server.servicer import Limits
from plugin_server.v1 import plugin_pb2 as pb
from plugin_server.v1 import plugin_pb2_grpc as pb_grpc
from tests.muvi.nn.test_model_weights_prompt import tiny_model
from tests.stress.fuzz import judge, requests

EXAMPLES = 300


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("fuzz")
    clip = write_shot_clip(tmp / "cuts.mp4", shots=[50, 60], rate=Rate(25), size=(96, 64)).path
    (tmp / "folder.mp4").mkdir()
    cfg = ServerConfig(weights=tmp / "unused", port=0, token_file=tmp / "token", output_root=tmp / "out",
                       limits=Limits(max_queue=1), grace_s=5.0)
    server = MuviServer(cfg, load=lambda: Generator(tiny_model())).start()
    token = (tmp / "token").read_text().strip()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    end = time.monotonic() + 30
    health = health_pb2_grpc.HealthStub(channel)
    while health.Check(health_pb2.HealthCheckRequest()).status != health_pb2.HealthCheckResponse.SERVING:
        assert time.monotonic() < end
        time.sleep(0.05)
    before = {p for p in tmp.rglob("*")}
    yield {"tmp": tmp, "clip": clip, "folder": tmp / "folder.mp4", "stub": pb_grpc.MuviStub(channel), "token": token,
           "health": health, "before": before, "server": server}
    channel.close()
    server.stop()


def test_random_and_mutated_requests_get_documented_answers_and_the_server_survives(sandbox) -> None:  # type: ignore[no-untyped-def]
    seen: dict[str, int] = {}

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(request=requests(sandbox["clip"], sandbox["folder"]), wrong_token=st.integers(0, 9).map(lambda x: x == 0))
    def one(request: pb.GenerateRequest, wrong_token: bool) -> None:
        token = "nope" if wrong_token else sandbox["token"]
        call = sandbox["stub"].Generate(request, metadata=(("authorization", f"Bearer {token}"),), timeout=3)
        kind, _ = judge(call)
        seen[kind] = seen.get(kind, 0) + 1

    one()
    assert sum(seen.values()) == EXAMPLES and "INVALID_ARGUMENT" in seen and "UNAUTHENTICATED" in seen
    stub, md = sandbox["stub"], (("authorization", f"Bearer {sandbox['token']}"),)
    for rid in ("", "x" * 10_000, "../.."):  # the other RPCs
        with pytest.raises(grpc.RpcError) as info:
            stub.Cancel(pb.CancelRequest(request_id=rid), metadata=md, timeout=5)
        assert info.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)
    assert stub.GetCapabilities(pb.GetCapabilitiesRequest(), metadata=md, timeout=5).ready
    assert sandbox["health"].Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
    # nothing written outside the output root; no staging folder left behind
    time.sleep(1.0)
    out = sandbox["tmp"] / "out"
    new = {p for p in sandbox["tmp"].rglob("*")} - sandbox["before"]
    assert all(out in p.parents or p == out for p in new), sorted(map(str, new))[:5]
    assert not [p for p in out.rglob(".*")], "a staging folder was left behind"


def test_oversized_requests_are_refused_before_any_work(sandbox) -> None:  # type: ignore[no-untyped-def]
    stub, md = sandbox["stub"], (("authorization", f"Bearer {sandbox['token']}"),)
    many = pb.Timeline(rate=pb.Rate(num=25, den=1))
    for i in range(20_000):  # tens of thousands of segments
        many.segments.add(media_path=str(sandbox["clip"]), source_in=0, source_out=1, record_in=i)
    big = pb.GenerateRequest(timeline=pb.Timeline(rate=pb.Rate(num=25, den=1)), output_name="x" * 1000)
    huge = pb.GenerateRequest(timeline=pb.Timeline(rate=pb.Rate(num=25, den=1), name="n" * 5_000_000))
    cases = [(pb.GenerateRequest(timeline=many), grpc.StatusCode.INVALID_ARGUMENT, "timeline.segments"),
             (big, grpc.StatusCode.INVALID_ARGUMENT, "output_name"),
             (huge, grpc.StatusCode.RESOURCE_EXHAUSTED, "")]
    for request, code, field in cases:
        with pytest.raises(grpc.RpcError) as info:
            list(stub.Generate(request, metadata=md, timeout=10))
        assert info.value.code() == code and field in (info.value.details() or ""), info.value.details()
    seg = pb.GenerateRequest(timeline=pb.Timeline(rate=pb.Rate(num=25, den=1)))
    seg.timeline.segments.add(media_path=str(sandbox["folder"]), source_in=0, source_out=10, record_in=0)
    with pytest.raises(grpc.RpcError) as info:
        list(stub.Generate(seg, metadata=md, timeout=10))
    assert "not a regular file" in info.value.details()
