"""Bearer-token authentication: the token file and the interceptor that checks every call."""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path
from typing import Any, Callable

import grpc

__all__ = ["write_token", "read_token", "TokenInterceptor", "EXEMPT_PREFIXES"]

# Generic health probes carry no token; reflection (off by default) describes the API only.
EXEMPT_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def write_token(path: Path) -> str:
    """A fresh random token written to ``path`` (mode 0600, folder 0700, atomic replace)."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = secrets.token_urlsafe(32)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (token + "\n").encode())
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return token


def read_token(path: Path) -> str:
    """The token in ``path`` (what a client sends)."""
    from muvi.errors import InvalidInputError

    try:
        token = Path(path).expanduser().read_text().strip()
    except OSError as exc:
        raise InvalidInputError(f"cannot read the token file {path}: {exc.strerror or exc}") from exc
    if not token:
        raise InvalidInputError(f"the token file {path} is empty")
    return token


def _denied(handler: grpc.RpcMethodHandler, message: str) -> grpc.RpcMethodHandler:
    def abort(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    if handler.response_streaming and not handler.request_streaming:
        return grpc.unary_stream_rpc_method_handler(abort, handler.request_deserializer, handler.response_serializer)
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(abort, handler.request_deserializer, handler.response_serializer)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(abort, handler.request_deserializer, handler.response_serializer)
    return grpc.unary_unary_rpc_method_handler(abort, handler.request_deserializer, handler.response_serializer)


class TokenInterceptor(grpc.ServerInterceptor):
    """Rejects calls without ``authorization: Bearer <token>`` (UNAUTHENTICATED)."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler],
                          details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        handler = continuation(details)
        if handler is None or details.method.startswith(EXEMPT_PREFIXES):
            return handler
        meta = dict(details.invocation_metadata or ())
        given = meta.get("authorization")
        if given is None:
            return _denied(handler, "missing bearer token: send 'authorization: Bearer <token>' from the server's token file")
        if not hmac.compare_digest(str(given).encode(), self._expected):
            return _denied(handler, "wrong bearer token (the server writes a new one at every start)")
        return handler
