"""Atomic file output: a crash never leaves a half-written file under the final name.

Every file muvi delivers is written to a temporary name in the same folder, flushed to disk
and renamed over the final name (``os.replace`` is atomic on one filesystem). On any error the
temporary file is removed and the final name is untouched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text"]


@contextlib.contextmanager
def atomic_path(final: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; on success it is fsynced and renamed to it.

    The temporary name keeps the final suffix (``.x.wav.tmp123.wav``) so tools that pick a
    format from the extension (PyAV's muxers) still work on it.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=f".part{final.suffix}", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_bytes(final: Path | str, data: bytes) -> None:
    """Write ``data`` to ``final`` atomically."""
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(final: Path | str, text: str) -> None:
    """Write UTF-8 ``text`` to ``final`` atomically."""
    atomic_write_bytes(final, text.encode("utf-8"))
