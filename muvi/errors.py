"""Domain exceptions of muvi.

Library code raises these; only the boundaries translate them (the ``muvi`` command into exit
code 2 and one line, the plugin server into gRPC status codes). Each class says which kind of
problem it is so the boundary needs no string matching:

=====================  ===========================================  =================
exception              meaning                                      gRPC status
=====================  ===========================================  =================
``InvalidInputError``  malformed request, timeline or option        INVALID_ARGUMENT
``MediaNotFoundError`` a media file does not exist                  NOT_FOUND
``MediaRangeError``    a range reaches past the end of the media    OUT_OF_RANGE
``MediaError``         media unreadable / not video / undecodable   INVALID_ARGUMENT
``MuviError``          anything else raised on purpose              INTERNAL
=====================  ===========================================  =================
"""

from __future__ import annotations

__all__ = [
    "MuviError",
    "InvalidInputError",
    "TimelineError",
    "MediaError",
    "MediaNotFoundError",
    "MediaRangeError",
    "AudioWriteError",
    "RenderError",
    "Cancelled",
    "CheckpointError",
]


class MuviError(Exception):
    """Base class of every error muvi raises on purpose."""


class InvalidInputError(MuviError, ValueError):
    """Input that can never work (bad option value, malformed time, bad timeline)."""


class TimelineError(InvalidInputError):
    """A timeline that breaks the rules: overlaps, non-positive durations, mixed rates."""


class MediaError(MuviError):
    """A media file that cannot be used.

    The message always names the file and the reason, e.g.
    ``"clip.mp4: no video stream"``.
    """

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class MediaNotFoundError(MediaError):
    """The media file does not exist (or is not a regular file)."""


class MediaRangeError(MediaError):
    """A requested source range reaches past the end of the media."""


class AudioWriteError(MuviError):
    """Audio that must not be written (non-finite samples, mismatched stems, too large)."""


class RenderError(MuviError):
    """Synthesis cannot run: FluidSynth or the SoundFont is missing or unusable."""


class Cancelled(MuviError):
    """The caller asked to stop (checked between sampler steps); nothing was delivered."""


class CheckpointError(MuviError):
    """A checkpoint that cannot be loaded: missing files, wrong keys or shapes, bad hash."""
