"""Keeping a process's resident memory flat under glibc.

A job frees its large arrays when it ends, and a long decode frees tens of thousands of
frames as it goes; glibc keeps much of that freed memory in its heap instead of returning it,
so resident memory grew by about 70 MB per minute of timeline in the decode pass (a
60-minute timeline held 4.7 GB after decoding features of 0.5 GB; ``benchmarks/joins.py``) and
a long-running server rose 441 MB over a 60-job soak (``benchmarks/load.py``). Both helpers do
nothing off glibc. ``Generator.generate`` uses both (the threshold at the start of a job, a
trim after each stage), so a one-job CLI process stays as flat as the server.
"""

from __future__ import annotations

from typing import Any

__all__ = ["keep_memory_flat", "return_free_memory", "JOB_MMAP_THRESHOLD"]


def _glibc() -> Any:
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


_threshold: int | None = None  # the fixed mmap threshold this process runs with, once set

JOB_MMAP_THRESHOLD = 32 << 20  # a one-job process: chunk-sized buffers (4-16 MB) stay in the heap


def keep_memory_flat(threshold: int = 1 << 20) -> None:
    """A long-running server frees a job's large arrays (frames, stems) when it ends, but glibc
    raises its mmap threshold after each such free, so the next job's arrays of that size come
    from the heap and their pages are kept: resident memory rose 441 MB over a 60-job soak
    before levelling off (``benchmarks/load.py``). A fixed threshold (1 MiB for the server)
    keeps large arrays in their own mappings, returned to the system when freed. The first
    call in a process wins: the server's 1 MiB is not undone by the jobs it runs, which ask
    for :data:`JOB_MMAP_THRESHOLD` (at 1 MiB, mapping every chunk-sized buffer afresh made a
    60 s take's mix and write 1.4 s slower). No effect off glibc."""
    global _threshold
    libc = _glibc()
    if libc is not None and _threshold is None:
        libc.mallopt(-3, int(threshold))  # M_MMAP_THRESHOLD: fixed, which also ends the dynamic raise
        _threshold = int(threshold)


def return_free_memory() -> None:
    """Give the heap's free pages back to the system (after a job; after each chunk of a
    long decode)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


