"""Errors → gRPC status codes, in one place (DESIGN §9: translate only at the boundary)."""

from __future__ import annotations

import logging

import grpc

from muvi.errors import (
    Cancelled, CheckpointError, InvalidInputError, MediaError, MediaNotFoundError, MediaRangeError, MuviError,
)
from plugin_server.convert import AlreadyExistsError

__all__ = ["QueueFull", "NotReady", "DeadlineExceeded", "status_for"]

log = logging.getLogger(__name__)


class QueueFull(MuviError):
    """The job queue is full."""


class NotReady(MuviError):
    """The model is still loading, failed to load, or the server is shutting down."""


class DeadlineExceeded(Cancelled):
    """The client's deadline passed before the job finished."""


# most specific first
_CODES: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (MediaNotFoundError, grpc.StatusCode.NOT_FOUND),
    (MediaRangeError, grpc.StatusCode.OUT_OF_RANGE),
    (AlreadyExistsError, grpc.StatusCode.ALREADY_EXISTS),
    (InvalidInputError, grpc.StatusCode.INVALID_ARGUMENT),
    (MediaError, grpc.StatusCode.INVALID_ARGUMENT),  # unreadable / not media: the request's file is bad
    (QueueFull, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (NotReady, grpc.StatusCode.UNAVAILABLE),
    (DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
    (Cancelled, grpc.StatusCode.CANCELLED),
    (CheckpointError, grpc.StatusCode.FAILED_PRECONDITION),
    (MemoryError, grpc.StatusCode.RESOURCE_EXHAUSTED),
)


# gRPC sends the message percent-encoded in a trailer that must stay under 8 KB: a message that
# echoes a long (or non-ASCII) value from the request is cut to this many characters
MAX_MESSAGE = 400


def brief(message: str) -> str:
    """``message`` cut to :data:`MAX_MESSAGE` characters (with … when cut)."""
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and one-line message a client gets for ``exc``."""
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code, brief(str(exc) or kind.__name__)
    if isinstance(exc, MuviError):  # render / audio-write failures: ours, not the request's
        return grpc.StatusCode.INTERNAL, brief(str(exc))
    log.exception("internal error", exc_info=exc)
    return grpc.StatusCode.INTERNAL, brief(f"internal error: {type(exc).__name__}: {exc}")
