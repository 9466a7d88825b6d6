"""A Python client for ``muvi serve`` (what ``muvi client`` uses; a plugin in Python can too)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import grpc

from muvi.timeline import Timeline
from plugin_server.auth import read_token
from plugin_server.convert import timeline_to_proto
from plugin_server.v1 import plugin_pb2 as pb
from plugin_server.v1 import plugin_pb2_grpc as pb_grpc

__all__ = ["Client"]


class Client:
    """``Client("127.0.0.1:50051", token_file=...)``; every call sends the bearer token."""

    def __init__(self, server: str, *, token: str | None = None, token_file: Path | None = None) -> None:
        if token is None:
            if token_file is None:
                from plugin_server.server import default_token_file

                token_file = default_token_file()
            token = read_token(token_file)
        self.channel = grpc.insecure_channel(server)
        self.stub = pb_grpc.MuviStub(self.channel)
        self.metadata = (("authorization", f"Bearer {token}"),)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until the health service says SERVING (the model has loaded)."""
        import time

        from grpc_health.v1 import health_pb2, health_pb2_grpc

        stub = health_pb2_grpc.HealthStub(self.channel)
        end = time.monotonic() + timeout
        while True:
            try:
                status = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2.0).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
            if time.monotonic() > end:
                raise TimeoutError(f"the server was not ready within {timeout:.0f} s")
            time.sleep(0.1)

    def capabilities(self, timeout: float = 10.0) -> pb.Capabilities:
        return self.stub.GetCapabilities(pb.GetCapabilitiesRequest(), metadata=self.metadata, timeout=timeout)

    def generate(self, timeline: Timeline | pb.Timeline, *, options: pb.GenerateOptions | None = None,
                 output_name: str = "", request_id: str = "", overwrite: bool = False,
                 timeout: float | None = 3600.0) -> Iterator[pb.GenerateEvent]:
        """The server's events for one request (the call can be cancelled with ``.cancel()``)."""
        tl = timeline if isinstance(timeline, pb.Timeline) else timeline_to_proto(timeline)
        request = pb.GenerateRequest(request_id=request_id, timeline=tl, options=options or pb.GenerateOptions(),
                                     output_name=output_name, overwrite=overwrite)
        return self.stub.Generate(request, metadata=self.metadata, timeout=timeout)

    def cancel(self, request_id: str, timeout: float = 10.0) -> str:
        return self.stub.Cancel(pb.CancelRequest(request_id=request_id), metadata=self.metadata,
                                timeout=timeout).state
