"""Shared benchmark inputs: a 60 s 1920x1080 30 fps H.264 clip with 12 hard cuts.

The picture is camera-like rather than flat: a moving noise texture (grain), a shot colour and
a moving square, encoded with libx264 ``veryfast`` at CRF 23. Generated once and cached under
``benchmarks/.cache`` (ignored by git).
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from muvi.media_gen import ShotClip, write_video
from muvi.timeline import Rate

CACHE = Path(__file__).resolve().parent / ".cache"
RATE = Rate(30)
SECONDS = 60
SIZE = (1920, 1080)
CUTS = 12


def bench_clip() -> ShotClip:
    """The 60 s 1080p30 clip with 12 cuts (13 shots of unequal length)."""
    total = SECONDS * RATE.num
    rng = np.random.default_rng(7)
    weights = rng.uniform(0.6, 1.4, CUTS + 1)
    lengths = np.floor(weights / weights.sum() * total).astype(int)
    lengths[-1] += total - lengths.sum()
    starts = tuple(int(x) for x in np.cumsum([0, *lengths[:-1]]))
    path = CACHE / f"clip_{SECONDS}s_{SIZE[0]}x{SIZE[1]}_{RATE.num}fps_{CUTS}cuts_v2.mp4"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        w, h = SIZE
        grain = rng.integers(0, 48, size=(h + 256, w + 256), dtype=np.uint8)
        # every cut must be visible: consecutive shots get clearly different colours
        palette = np.zeros((CUTS + 1, 3), np.uint8)
        palette[0] = rng.integers(30, 200, 3)
        for k in range(1, CUTS + 1):
            while True:
                cand = rng.integers(30, 200, 3)
                if np.abs(cand.astype(int) - palette[k - 1]).sum() >= 150:
                    palette[k] = cand
                    break

        def frames():  # type: ignore[no-untyped-def]
            shot = 0
            img = np.empty((h, w, 3), np.uint8)
            for i in range(total):
                while shot + 1 < len(starts) and i >= starts[shot + 1]:
                    shot += 1
                dx, dy = (i * 3) % 256, (i * 2) % 256
                g = grain[dy : dy + h, dx : dx + w]
                img[:] = palette[shot]
                img += g[:, :, None]
                s = 240
                x = int((w - s) * (0.5 + 0.45 * np.sin(i / 15)))
                img[400 : 400 + s, x : x + s] = 255 - palette[shot]
                yield img

        t = time.perf_counter()
        write_video(path, frames(), rate=RATE, codec="h264_bench")
        print(f"generated {path.name} in {time.perf_counter() - t:.1f} s", flush=True)
    return ShotClip(path, RATE, total, starts)


def start_server(work: Path, weights: Path, *extra: str) -> tuple[Any, int]:
    """A real `muvi serve` process on a free loopback port, its token and results under
    ``work``; returns (process, port) once its token file exists (the model may still load:
    a client waits for SERVING)."""
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-m", "muvi", "serve", "--weights", str(weights), "--port", str(port),
                             "--token-file", str(work / "token"), "--output-root", str(work / "out"),
                             "--backend", "torch-cpu", *extra], cwd=root, stdout=subprocess.DEVNULL,
                            stderr=open(work / "serve.log", "wb"))
    end = time.monotonic() + 120
    while not (work / "token").exists():
        if proc.poll() is not None or time.monotonic() > end:
            raise SystemExit(f"muvi serve did not start: {(work / 'serve.log').read_text()[-2000:]}")
        time.sleep(0.05)
    return proc, port


def rss_mb(pid: int) -> float:
    """A process's resident memory now (MB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class PeakMemory:
    """Samples this process's resident memory every ``interval`` seconds while open: the peak
    overall and per stage (``stage`` is set by the caller, e.g. from a progress callback)."""

    def __init__(self, interval: float = 0.1) -> None:
        import threading

        self.interval, self.stage, self.peak, self.by_stage = interval, "start", 0.0, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            mb = rss_mb(os.getpid())
            self.peak = max(self.peak, mb)
            self.by_stage[self.stage] = max(self.by_stage.get(self.stage, 0.0), mb)
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()}


def emit(result: dict[str, Any], name: str) -> None:
    """Print the result as JSON and keep a copy under benchmarks/results/."""
    text = json.dumps(result, indent=2)
    print(text)
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"{name}.json").write_text(text + "\n")
