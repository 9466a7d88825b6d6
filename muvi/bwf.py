"""Broadcast WAV (EBU Tech 3285 v2) writing and reading.

A file is ``RIFF/WAVE`` with, in order, a ``bext`` chunk, a ``fmt `` chunk (PCM, 16 or 24
bit) and a ``data`` chunk. The ``bext`` chunk carries Description, Originator,
OriginatorReference, OriginationDate/Time, the 64-bit TimeReference (samples since
midnight: where the editor places the file), Version 2 and the v2 loudness fields
(unknown values are written as 0x7FFF, as the specification asks). No iXML is written: a
wrong ``TIMECODE_RATE`` makes Final Cut Pro change playback speed, and omitting it is safe.

Writes are atomic and refuse non-finite samples.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import math
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from muvi.errors import AudioWriteError, MediaError
from muvi.fileio import atomic_path

__all__ = ["BextInfo", "LoudnessFields", "write_bwf", "BwfWriter", "read_bwf", "BwfFile"]

_BEXT_FIXED = 602
_UNKNOWN = 0x7FFF
_MAX_RIFF = 0xFFFFFFFF


@dataclass(frozen=True)
class LoudnessFields:
    """bext v2 loudness values (LUFS / LU / dBTP); ``None`` is written as unknown."""

    integrated_lufs: float | None = None
    loudness_range_lu: float | None = None
    true_peak_dbtp: float | None = None
    max_momentary_lufs: float | None = None
    max_short_term_lufs: float | None = None


@dataclass(frozen=True)
class BextInfo:
    """The ``bext`` fields muvi writes. ``time_reference`` is in samples since midnight."""

    description: str = ""
    originator: str = "muvi"
    originator_reference: str = ""
    origination: _dt.datetime | None = None  # None: now (local time, as BWF specifies)
    time_reference: int = 0
    loudness: LoudnessFields = field(default_factory=LoudnessFields)
    coding_history: str = ""


@dataclass(frozen=True)
class BwfFile:
    """A file read back by :func:`read_bwf`."""

    audio: np.ndarray  # (channels, samples) float64 in [-1, 1)
    sample_rate: int
    bit_depth: int
    bext: BextInfo | None


def _ascii(text: str, size: int, what: str) -> bytes:
    data = text.encode("ascii", errors="replace")
    if len(data) > size:
        data = data[:size]
    return data.ljust(size, b"\0")


def _loud(value: float | None) -> int:
    if value is None or not math.isfinite(value):
        return _UNKNOWN
    return int(max(-32767, min(32766, round(value * 100))))


def _bext_chunk(info: BextInfo) -> bytes:
    if info.time_reference < 0 or info.time_reference >= 1 << 64:
        raise AudioWriteError(f"TimeReference must be a non-negative 64-bit sample count, got {info.time_reference}")
    when = info.origination or _dt.datetime.now()
    lf = info.loudness
    body = b"".join(
        [
            _ascii(info.description, 256, "description"),
            _ascii(info.originator, 32, "originator"),
            _ascii(info.originator_reference, 32, "originator_reference"),
            when.strftime("%Y-%m-%d").encode("ascii"),
            when.strftime("%H:%M:%S").encode("ascii"),
            struct.pack("<IIH", info.time_reference & 0xFFFFFFFF, info.time_reference >> 32, 2),
            b"\0" * 64,  # UMID: none
            struct.pack(
                "<hhhhh",
                _loud(lf.integrated_lufs),
                _loud(lf.loudness_range_lu),
                _loud(lf.true_peak_dbtp),
                _loud(lf.max_momentary_lufs),
                _loud(lf.max_short_term_lufs),
            ),
            b"\0" * 180,
        ]
    )
    assert len(body) == _BEXT_FIXED
    history = info.coding_history.encode("ascii", errors="replace")
    if history and not history.endswith(b"\r\n"):
        history += b"\r\n"
    return body + history


def _chunk(tag: bytes, payload: bytes) -> bytes:
    pad = b"\0" if len(payload) % 2 else b""
    return tag + struct.pack("<I", len(payload)) + payload + pad


def _pcm_bytes(audio: np.ndarray, bit_depth: int) -> bytes:
    """Interleave (C, N) float to little-endian PCM with rounding and clipping."""
    full = float(1 << (bit_depth - 1))
    ints = np.ascontiguousarray(np.clip(np.rint(audio.T * full), -full, full - 1).astype("<i4"))  # (N, C)
    if bit_depth == 24:
        return ints.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    return ints.astype("<i2").tobytes()


class BwfWriter:
    """A Broadcast WAV written chunk by chunk, for audio too long to hold at once: the header
    (with the final length, ``n_samples``) goes first, then :meth:`write` appends (channels, k)
    float chunks. The file is written under a temporary name and appears whole when the context
    closes after exactly ``n_samples`` samples; on any error (or a short write) nothing is left."""

    def __init__(self, path: Path | str, *, channels: int, n_samples: int, sample_rate: int = 48000,
                 bit_depth: int = 24, bext: BextInfo | None = None) -> None:
        self.path = Path(path)
        if bit_depth not in (16, 24):
            raise AudioWriteError(f"{self.path.name}: bit depth must be 16 or 24, got {bit_depth}")
        if channels < 1:
            raise AudioWriteError(f"{self.path.name}: audio must have a channel, got {channels}")
        self.channels, self.n, self.bit_depth = channels, int(n_samples), bit_depth
        block = channels * bit_depth // 8
        self._data_size = self.n * block
        self._bext = _bext_chunk(bext or BextInfo())
        self._fmt = struct.pack("<HHIIHH", 1, channels, sample_rate, sample_rate * block, block, bit_depth)
        header = 4 + (8 + len(self._bext) + len(self._bext) % 2) + (8 + len(self._fmt)) + 8
        if header + self._data_size + self._data_size % 2 > _MAX_RIFF:
            raise AudioWriteError(f"{self.path.name}: {self._data_size} bytes of audio exceed the 4 GiB WAV limit")
        self._riff = header + self._data_size + self._data_size % 2
        self.written = 0

    def __enter__(self) -> "BwfWriter":
        self._stack = contextlib.ExitStack()
        try:
            tmp = self._stack.enter_context(atomic_path(self.path))
            self._fh = self._stack.enter_context(open(tmp, "wb"))
            self._fh.write(b"RIFF" + struct.pack("<I", self._riff) + b"WAVE")
            self._fh.write(_chunk(b"bext", self._bext))
            self._fh.write(_chunk(b"fmt ", self._fmt))
            self._fh.write(b"data" + struct.pack("<I", self._data_size))
        except BaseException:
            if not self._stack.__exit__(*sys.exc_info()):
                raise
        return self

    def write(self, audio: np.ndarray) -> None:
        """Append (channels, k) float samples in [-1, 1] (beyond full scale: clipped)."""
        a = np.asarray(audio, dtype=np.float64)
        if a.ndim != 2 or a.shape[0] != self.channels:
            raise AudioWriteError(f"{self.path.name}: a chunk must be ({self.channels}, samples), got {a.shape}")
        if self.written + a.shape[1] > self.n:
            raise AudioWriteError(f"{self.path.name}: more than the {self.n} samples announced")
        bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
        if bad:
            raise AudioWriteError(f"{self.path.name}: refusing to write {bad} non-finite samples (NaN/Inf)")
        step = 1 << 18  # samples per conversion: bounded memory
        for start in range(0, a.shape[1], step):
            self._fh.write(_pcm_bytes(a[:, start : start + step], self.bit_depth))
        self.written += a.shape[1]

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None:
            try:
                if self.written != self.n:
                    raise AudioWriteError(f"{self.path.name}: {self.written} of the {self.n} samples announced "
                                          "were written")
                if self._data_size % 2:
                    self._fh.write(b"\0")
            except AudioWriteError:
                if not self._stack.__exit__(*sys.exc_info()):
                    raise
                return False
        return bool(self._stack.__exit__(kind, exc, tb))


def write_bwf(
    path: Path | str,
    audio: np.ndarray,
    *,
    sample_rate: int = 48000,
    bit_depth: int = 24,
    bext: BextInfo | None = None,
) -> Path:
    """Write ``audio`` ((channels, samples) or (samples,) float in [-1, 1]) as Broadcast WAV.

    Samples beyond full scale are clipped. Raises :class:`AudioWriteError` on non-finite
    samples, an unsupported bit depth, or a file that would pass the 4 GiB RIFF limit.
    """
    path = Path(path)
    a = np.asarray(audio, dtype=np.float64)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[0] < 1:
        raise AudioWriteError(f"{path.name}: audio must be (channels, samples), got shape {np.shape(audio)}")
    bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
    if bad:
        raise AudioWriteError(f"{path.name}: refusing to write {bad} non-finite samples (NaN/Inf)")
    with BwfWriter(path, channels=a.shape[0], n_samples=a.shape[1], sample_rate=sample_rate, bit_depth=bit_depth,
                   bext=bext) as out:
        out.write(a)
    return path


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("ascii", errors="replace")


def _parse_bext(payload: bytes) -> BextInfo:
    desc, orig, ref = _text(payload[:256]), _text(payload[256:288]), _text(payload[288:320])
    date, time = _text(payload[320:330]), _text(payload[330:338])
    lo, hi, version = struct.unpack("<IIH", payload[338:348])
    when = None
    try:
        when = _dt.datetime.strptime(f"{date.replace(':', '-')} {time.replace('-', ':')}", "%Y-%m-%d %H:%M:%S")
    except ValueError:
        pass
    loud = LoudnessFields()
    if version >= 2 and len(payload) >= 422:
        vals = struct.unpack("<hhhhh", payload[412:422])
        conv = [None if v == _UNKNOWN else v / 100 for v in vals]
        loud = LoudnessFields(*conv)
    history = payload[_BEXT_FIXED:].split(b"\0", 1)[0].decode("ascii", errors="replace")
    return BextInfo(desc, orig, ref, when, (hi << 32) | lo, loud, history)


def read_bwf(path: Path | str) -> BwfFile:
    """Read a PCM WAV/BWF written by muvi or any standard tool (16/24/32-bit integer PCM)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise MediaError(path, f"cannot read: {exc.strerror or exc}") from exc
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise MediaError(path, "not a RIFF/WAVE file")
    pos, fmt, bext, data = 12, None, None, None
    while pos + 8 <= len(raw):
        tag, size = raw[pos : pos + 4], struct.unpack("<I", raw[pos + 4 : pos + 8])[0]
        payload = raw[pos + 8 : pos + 8 + size]
        if tag == b"fmt ":
            fmt = payload
        elif tag == b"bext":
            bext = _parse_bext(payload)
        elif tag == b"data":
            data = payload
        pos += 8 + size + size % 2
    if fmt is None or data is None:
        raise MediaError(path, "WAV file has no fmt or data chunk")
    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag not in (1, 0xFFFE) or bits not in (16, 24, 32):
        raise MediaError(path, f"unsupported WAV format tag {tag} / {bits} bit")
    width = bits // 8
    n = len(data) // (width * channels)
    buf = np.frombuffer(data[: n * width * channels], np.uint8).reshape(n * channels, width)
    if bits == 24:
        ints = np.zeros((n * channels, 4), np.uint8)
        ints[:, 1:] = buf  # place in the top 3 bytes, then arithmetic shift keeps the sign
        values = ints.view("<i4").reshape(-1) >> 8
    else:
        values = buf.view(f"<i{width}").reshape(-1).astype(np.int64)
    audio = values.reshape(n, channels).T.astype(np.float64) / float(1 << (bits - 1))
    return BwfFile(audio, rate, bits, bext)
