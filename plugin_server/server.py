"""``muvi serve``: the gRPC server, its health service, token and graceful shutdown."""

from __future__ import annotations

import logging
import signal
import threading
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from muvi.pipeline import Generator
from plugin_server.auth import TokenInterceptor, write_token
from muvi.memory import keep_memory_flat
from plugin_server.jobs import Worker
from plugin_server.servicer import Limits, MuviServicer
from plugin_server.v1 import plugin_pb2 as pb
from plugin_server.v1 import plugin_pb2_grpc as pb_grpc

__all__ = ["ServerConfig", "MuviServer", "default_token_file", "default_output_root", "serve"]

log = logging.getLogger(__name__)
SERVICE = pb.DESCRIPTOR.services_by_name["Muvi"].full_name  # muvi.plugin.v1.Muvi
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def default_token_file() -> Path:
    return Path.home() / ".muvi" / "server.token"


def default_output_root() -> Path:
    return Path.home() / "muvi-output"


@dataclass(frozen=True)
class ServerConfig:
    weights: Path
    host: str = "127.0.0.1"
    port: int = 50051  # 0: any free port (tests)
    token_file: Path = field(default_factory=default_token_file)
    output_root: Path = field(default_factory=default_output_root)
    backend: str = "auto"
    limits: Limits = Limits()
    reflection: bool = False
    grace_s: float = 30.0  # shutdown: how long a running job may take to finish
    threads: int = 32  # concurrent RPCs (each streaming Generate holds one)


class MuviServer:
    """A started server: ``port``, ``token``, ``stop()``; the model loads in the worker thread."""

    def __init__(self, config: ServerConfig, *, load: Callable[[], Generator] | None = None) -> None:
        self.config = config
        if config.host not in LOOPBACK:
            log.warning("listening on %s: other machines can reach this server (the token still guards it)",
                        config.host)
        config.output_root.mkdir(parents=True, exist_ok=True)
        from muvi.pipeline import remove_stale_staging

        for p in remove_stale_staging(config.output_root):  # a job killed with the server (kill -9)
            log.warning("removed the staging folder a killed job left: %s", p)
        self.token = write_token(config.token_file)
        self.health = health.HealthServicer(experimental_non_blocking=True)
        for name in ("", SERVICE):
            self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        keep_memory_flat()
        self.worker = Worker(load or self._load, max_queue=config.limits.max_queue, on_ready=self._on_ready)
        self.servicer = MuviServicer(self.worker, output_root=config.output_root.resolve(), limits=config.limits,
                                     describe=self._describe())
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=config.threads, thread_name_prefix="muvi-rpc"),
            interceptors=[TokenInterceptor(self.token)], maximum_concurrent_rpcs=config.threads,
            # no SO_REUSEPORT: a second `muvi serve` on the same port must fail, not share the traffic
            options=[("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", config.limits.max_message_bytes)],
        )
        pb_grpc.add_MuviServicer_to_server(self.servicer, self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        if config.reflection:
            from grpc_reflection.v1alpha import reflection

            reflection.enable_server_reflection((SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server)
        address = f"{config.host}:{config.port}"
        try:
            self.port = self.server.add_insecure_port(address)
        except RuntimeError:  # grpcio raises where older versions returned 0
            self.port = 0
        if self.port == 0:
            from muvi.errors import InvalidInputError

            raise InvalidInputError(f"cannot listen on {address} (in use or not an address of this machine)")
        self._stopped = threading.Event()

    def _load(self) -> Generator:
        from engines.select import available_backends, select_backend
        from muvi.weights import load_checkpoint

        model, meta = load_checkpoint(self.config.weights)
        generator = Generator(model, backend=select_backend(self.config.backend, model, weights=self.config.weights),
                              meta=meta)
        self.servicer.describe["backends_available"] = available_backends(self.config.weights)
        return generator

    def _describe(self) -> dict[str, object]:
        from engines.cache import default_engine_dir
        from engines.select import available_backends

        gpu = ""
        try:
            import torch

            if torch.cuda.is_available():
                gpu = torch.cuda.get_device_name(0)
        except Exception:  # noqa: BLE001 - capabilities must not fail on a driver problem
            gpu = ""
        engines = []
        if (Path(self.config.weights) / "config.json").is_file():
            folder = default_engine_dir(Path(self.config.weights))
            engines = sorted(p.name for p in folder.glob("*") if p.suffix in (".onnx", ".plan")) if folder.is_dir() else []
        return {"backends_available": available_backends(), "backend": self.config.backend, "gpu": gpu,
                "engines": engines, "model": str(self.config.weights)}

    def _on_ready(self, ok: bool) -> None:
        if ok and not self._stopped.is_set():
            for name in ("", SERVICE):
                self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
            log.info("model loaded; serving")
        elif not ok:
            log.error("the model failed to load: %s", self.worker.load_error)

    def start(self) -> "MuviServer":
        self.server.start()
        self.worker.start()
        log.info("muvi serve on %s:%d; token in %s; output under %s", self.config.host, self.port,
                 self.config.token_file, self.config.output_root)
        return self

    def stop(self, grace: float | None = None) -> None:
        """Graceful: NOT_SERVING, refuse new jobs, cancel queued ones, let the running one finish
        within ``grace`` seconds (then cancel it), then close the port."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        grace = self.config.grace_s if grace is None else grace
        self.health.enter_graceful_shutdown()
        self.worker.shutdown(grace)
        self.server.stop(grace=2.0).wait()

    def wait(self) -> None:
        self.server.wait_for_termination()


def serve(config: ServerConfig, *, ready: Callable[[MuviServer], None] | None = None) -> int:
    """Run until SIGINT/SIGTERM, then shut down gracefully."""
    srv = MuviServer(config).start()
    print(f"muvi serve: listening on {config.host}:{srv.port}; token file {config.token_file}; "
          f"output root {config.output_root}", flush=True)
    if ready is not None:
        ready(srv)
    done = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        log.info("signal %d: shutting down", signum)
        done.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    while not done.wait(0.5):
        pass
    print("muvi serve: shutting down (finishing the running job)", flush=True)
    srv.stop()
    print("muvi serve: stopped", flush=True)
    return 0
