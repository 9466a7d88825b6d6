"""Shared fixtures: media generated with PyAV once per test session (nothing downloads)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from muvi.media_gen import ShotClip, write_shot_clip, write_video
from muvi.timeline import Rate

R2398 = Rate(24000, 1001)
R2997 = Rate(30000, 1001)

# VFR clip: pts in ms, irregular steps; first pts 1500 ms
VFR_PTS = (0, 40, 80, 200, 210, 220, 600, 640, 680, 1000, 1033, 1100, 1500, 1540)
VFR_OFFSET_MS = 1500


class Media:
    """Lazily generated clips, cached for the session."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[str, object] = {}

    def _get(self, key: str, make):  # type: ignore[no-untyped-def]
        if key not in self._cache:
            self._cache[key] = make(self.root / key)
        return self._cache[key]

    def shots(self, rate: Rate = R2398, codec: str = "h264", ext: str = ".mp4", shots=(24, 36, 30), **kw) -> ShotClip:  # type: ignore[no-untyped-def]
        key = f"shots_{rate.num}_{rate.den}_{codec}_{'_'.join(map(str, shots))}_{'_'.join(f'{k}{v}' for k, v in sorted(kw.items()))}{ext}"
        return self._get(key, lambda p: write_shot_clip(p, shots=list(shots), rate=rate, codec=codec, **kw))  # type: ignore[return-value]

    def vfr(self) -> ShotClip:
        pts = [p + VFR_OFFSET_MS for p in VFR_PTS]
        return self._get(  # type: ignore[return-value]
            "vfr.mkv",
            lambda p: write_shot_clip(p, shots=[len(pts)], rate=Rate(25), pts=pts, time_base=Fraction(1, 1000)),
        )

    def truncated(self) -> Path:
        def make(p: Path) -> Path:
            full = p.with_name("full_for_trunc.mkv")
            write_shot_clip(full, shots=[120, 120], rate=Rate(25), size=(320, 192), gop=12)
            data = full.read_bytes()
            p.write_bytes(data[: len(data) // 2])
            return p

        return self._get("truncated.mkv", make)  # type: ignore[return-value]

    def audio_only(self) -> Path:
        def make(p: Path) -> Path:
            from muvi.bwf import write_bwf

            write_bwf(p, np.zeros((2, 4800)))
            return p

        return self._get("audio_only.wav", make)  # type: ignore[return-value]

    def text_file(self) -> Path:
        def make(p: Path) -> Path:
            p.write_text("this is not a video\n" * 50)
            return p

        return self._get("notes.mp4", make)  # type: ignore[return-value]


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    return Media(tmp_path_factory.mktemp("media"))


__all__ = ["Media", "R2398", "R2997", "VFR_PTS", "VFR_OFFSET_MS", "write_video"]
