"""Audio read in chunks: what the synthesiser renders and the mix reads, for any length.

A 60-minute stereo stem is 1.4 GB as float32 and 2.8 GB as float64; four of them and their
mix do not fit the memory of a laptop. So a stem is an :class:`Audio` source that hands out
(channels, k) float64 chunks on request:

- :class:`ArrayAudio` wraps an array already in memory (short takes, tests, ``muvi render``);
- :class:`FileAudio` reads a raw float32 file (interleaved frames) that :class:`FileAudioWriter`
  appended chunk by chunk, in the job's staging folder; only the chunk being worked on is in
  memory (the operating system's page cache is not the process's memory).

:func:`chunk_spans` is the one place that cuts a length into chunks (:data:`CHUNK` samples).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Protocol

import numpy as np

from muvi.errors import AudioWriteError

__all__ = ["Audio", "ArrayAudio", "FileAudio", "FileAudioWriter", "CHUNK", "chunk_spans", "read_all"]

CHUNK = 1 << 19  # samples per chunk (10.9 s at 48 kHz): 8 MB per stereo float64 chunk


class Audio(Protocol):
    channels: int
    n: int  # samples

    def read(self, a: int, b: int) -> np.ndarray:
        """(channels, b - a) float64 samples ``[a, b)``."""
        ...


def chunk_spans(n: int, chunk: int = CHUNK) -> Iterator[tuple[int, int]]:
    """``[a, b)`` spans of at most ``chunk`` samples covering ``[0, n)``."""
    for a in range(0, n, chunk):
        yield a, min(n, a + chunk)


def read_all(audio: Audio) -> np.ndarray:
    """The whole source as one (channels, n) float64 array."""
    return audio.read(0, audio.n)


class ArrayAudio:
    """A (channels, samples) array as an :class:`Audio` source (no copy)."""

    def __init__(self, array: np.ndarray) -> None:
        a = np.atleast_2d(np.asarray(array))
        if a.ndim != 2:
            raise AudioWriteError(f"audio must be (channels, samples), got shape {np.shape(array)}")
        self.array, self.channels, self.n = a, a.shape[0], a.shape[1]

    def read(self, a: int, b: int) -> np.ndarray:
        return np.asarray(self.array[:, a:b], dtype=np.float64)


class FileAudio:
    """A raw float32 file of interleaved frames (``channels`` values per sample)."""

    def __init__(self, path: Path | str, *, channels: int, n: int) -> None:
        self.path, self.channels, self.n = Path(path), channels, n

    def read(self, a: int, b: int) -> np.ndarray:
        a, b = max(0, a), min(self.n, b)
        if b <= a:
            return np.zeros((self.channels, 0))
        with open(self.path, "rb") as fh:
            fh.seek(a * self.channels * 4)
            data = np.fromfile(fh, dtype="<f4", count=(b - a) * self.channels)
        if data.size != (b - a) * self.channels:
            raise AudioWriteError(f"{self.path.name}: holds fewer than the {self.n} samples expected")
        return data.reshape(b - a, self.channels).T.astype(np.float64)


class FileAudioWriter:
    """Appends (k, channels) float32 frames to a raw file; :meth:`close` gives its
    :class:`FileAudio`."""

    def __init__(self, path: Path | str, *, channels: int) -> None:
        self.path, self.channels, self.n = Path(path), channels, 0
        self._fh = open(self.path, "wb")

    def append(self, frames: np.ndarray) -> None:
        f = np.ascontiguousarray(frames, dtype="<f4")
        if f.ndim != 2 or f.shape[1] != self.channels:
            raise AudioWriteError(f"{self.path.name}: frames must be (samples, {self.channels}), got {f.shape}")
        self._fh.write(f.tobytes())
        self.n += f.shape[0]

    def close(self) -> FileAudio:
        self._fh.close()
        return FileAudio(self.path, channels=self.channels, n=self.n)
