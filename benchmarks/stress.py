"""The long fuzzing run against a real server on loopback: ``--requests`` generated and mutated
GenerateRequests (tests/stress/fuzz.py; one in ten with a wrong token) plus Cancel and
GetCapabilities calls, then the checks of the short run in `make test`. Prints, as JSON, how many
answers of each status came back, how long it took, and whether the server still served and
kept everything inside its output root.

    python benchmarks/stress.py [--requests 10000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import emit, machine  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=10_000)
    args = ap.parse_args()

    import grpc
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

    tmp = Path(tempfile.mkdtemp(prefix="muvi-stress-"))
    clip = write_shot_clip(tmp / "cuts.mp4", shots=[50, 60], rate=Rate(25), size=(96, 64)).path
    (tmp / "folder.mp4").mkdir()
    server = MuviServer(ServerConfig(weights=tmp / "unused", port=0, token_file=tmp / "token", output_root=tmp / "out",
                                     limits=Limits(max_queue=1), grace_s=5.0),
                        load=lambda: Generator(tiny_model())).start()
    token = (tmp / "token").read_text().strip()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    health = health_pb2_grpc.HealthStub(channel)
    while health.Check(health_pb2.HealthCheckRequest()).status != health_pb2.HealthCheckResponse.SERVING:
        time.sleep(0.05)
    stub = pb_grpc.MuviStub(channel)
    before = set(tmp.rglob("*"))
    seen: dict[str, int] = {}
    undocumented: list[str] = []
    t0 = time.perf_counter()

    @settings(max_examples=args.requests, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(request=requests(clip, tmp / "folder.mp4"), wrong=st.integers(0, 9).map(lambda x: x == 0),
           cancel=st.integers(0, 19).map(lambda x: x == 0))
    def one(request: pb.GenerateRequest, wrong: bool, cancel: bool) -> None:
        md = (("authorization", f"Bearer {'nope' if wrong else token}"),)
        call = stub.Generate(request, metadata=md, timeout=3)
        if cancel:
            call.cancel()
        try:
            kind, _ = judge(call)
        except AssertionError as exc:
            undocumented.append(str(exc)[:200])
            kind = "undocumented"
        seen[kind] = seen.get(kind, 0) + 1
        if cancel:
            try:
                stub.Cancel(pb.CancelRequest(request_id=request.request_id or "x"), metadata=md, timeout=5)
            except grpc.RpcError as exc:
                seen[f"cancel:{exc.code().name}"] = seen.get(f"cancel:{exc.code().name}", 0) + 1

    one()
    seconds = time.perf_counter() - t0
    time.sleep(1.0)
    out = tmp / "out"
    outside = [str(p) for p in set(tmp.rglob("*")) - before if not (out in p.parents or p == out)]
    staging = [str(p) for p in out.rglob(".*")] if out.exists() else []
    serving = health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
    caps = stub.GetCapabilities(pb.GetCapabilitiesRequest(), metadata=(("authorization", f"Bearer {token}"),)).ready
    channel.close()
    server.stop()
    emit({"benchmark": "stress", "requests": args.requests, "answers": dict(sorted(seen.items())),
          "undocumented": undocumented[:10], "seconds": round(seconds, 1),
          "requests_per_s": round(args.requests / seconds, 1), "serving_after": serving, "capabilities_after": caps,
          "files_outside_output_root": outside[:10], "staging_left": staging[:10], "machine": machine()}, "stress")


if __name__ == "__main__":
    main()
