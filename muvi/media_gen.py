"""Generated media with known content, for tests, benchmarks and the bundled demo.

Every generated frame carries its own index as a 16-bit code in big black/white blocks across
the top of the picture (robust to compression and downscaling), so a test can tell exactly
which source frame a decoder returned. Below the code, each shot has its own colour and a
square that moves, so cuts and motion are real picture changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from muvi.fileio import atomic_path
from muvi.timeline import Rate

__all__ = ["CODE_BITS", "frame_code_image", "read_frame_code", "write_video", "ShotClip", "write_shot_clip",
           "write_demo_clip", "DEMO_CUTS"]

CODE_BITS = 16
_CODE_COLS = 8
_CODE_ROWS = CODE_BITS // _CODE_COLS

# (codec, pix_fmt, codec options) for the encoders the bundled FFmpeg has
_ENCODERS: dict[str, tuple[str, str, dict[str, str]]] = {
    "h264": ("libx264", "yuv420p", {"preset": "ultrafast"}),
    "hevc": ("libx265", "yuv420p", {"preset": "ultrafast", "x265-params": "log-level=none"}),
    "vp9": ("libvpx-vp9", "yuv420p", {"deadline": "realtime", "cpu-used": "8"}),
    "prores": ("prores_ks", "yuv422p10le", {"profile": "0"}),
    "mpeg4": ("mpeg4", "yuv420p", {}),
    # camera-like H.264 for benchmarks: normal motion search, CRF 23
    "h264_bench": ("libx264", "yuv420p", {"preset": "veryfast", "crf": "23"}),
}


def _palette(shot: int) -> np.ndarray:
    rng = np.random.default_rng(1000 + shot)
    return rng.integers(40, 216, size=3).astype(np.uint8)


def frame_code_image(index: int, width: int, height: int, *, shot: int = 0) -> np.ndarray:
    """An RGB frame (H, W, 3) showing ``index`` as a block code, shot colour and a moving square."""
    img = np.empty((height, width, 3), np.uint8)
    img[:] = _palette(shot)
    code_h = height // 2
    bw, bh = width // _CODE_COLS, code_h // _CODE_ROWS
    for b in range(CODE_BITS):
        r, c = divmod(b, _CODE_COLS)
        img[r * bh : (r + 1) * bh, c * bw : (c + 1) * bw] = 255 if (index >> b) & 1 else 0
    side = max(2, height // 6)
    x = (index * max(1, width // 40)) % max(1, width - side)
    y = code_h + (height - code_h - side) // 2
    img[y : y + side, x : x + side] = (255 - _palette(shot)).astype(np.uint8)
    return img


def read_frame_code(img: np.ndarray) -> int:
    """Read back the index drawn by :func:`frame_code_image` (any scale, RGB)."""
    h, w = img.shape[:2]
    code_h = h * 0.5
    bw, bh = w / _CODE_COLS, code_h / _CODE_ROWS
    value = 0
    for b in range(CODE_BITS):
        r, c = divmod(b, _CODE_COLS)
        y, x = int((r + 0.5) * bh), int((c + 0.5) * bw)
        if img[y, x].mean() > 127:
            value |= 1 << b
    return value


def write_video(
    path: Path | str,
    frames: Iterable[np.ndarray],
    *,
    rate: Rate,
    codec: str = "h264",
    pts: Sequence[int] | None = None,
    time_base: Fraction | None = None,
    rotation: int = 0,
    audio: np.ndarray | None = None,
    gop: int | None = None,
) -> Path:
    """Encode RGB frames to ``path`` (container from the extension), atomically.

    ``pts`` (in ``time_base`` units) gives explicit timestamps, e.g. for variable frame rate
    or a first pts that is not zero. ``audio`` is an optional (channels, samples) float array
    at 48 kHz muxed as AAC.
    """
    import av

    path = Path(path)
    enc, pix_fmt, options = _ENCODERS[codec]
    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format=_format_for(path)) as out:
            vs = out.add_stream(enc, rate=rate.fraction, options=dict(options))
            vs.pix_fmt = pix_fmt
            if time_base is not None:
                vs.codec_context.time_base = time_base
                vs.time_base = time_base
            if gop is not None:
                vs.codec_context.gop_size = gop
            if rotation:
                vs.set_display_rotation(rotation)
            astream = None
            if audio is not None:
                astream = out.add_stream("aac", rate=48000, layout="stereo" if audio.shape[0] == 2 else "mono")
            first = True
            for i, img in enumerate(frames):
                if first:
                    vs.height, vs.width = img.shape[:2]
                    first = False
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
                frame.pts = pts[i] if pts is not None else i
                if time_base is not None:
                    frame.time_base = time_base
                for packet in vs.encode(frame):
                    out.mux(packet)
            for packet in vs.encode():
                out.mux(packet)
            if astream is not None and audio is not None:
                from muvi.render import mux_audio

                mux_audio(out, astream, audio)
    return path


def _format_for(path: Path) -> str | None:
    return {".mkv": "matroska", ".webm": "webm", ".mov": "mov", ".mp4": "mp4", ".ts": "mpegts"}.get(path.suffix.lower())


@dataclass(frozen=True)
class ShotClip:
    """A generated clip: where it is, its rate, and the first frame of each shot."""

    path: Path
    rate: Rate
    frame_count: int
    shot_starts: tuple[int, ...]  # frame index of each shot's first frame (0 first)

    @property
    def cut_frames(self) -> tuple[int, ...]:
        return self.shot_starts[1:]


def write_shot_clip(
    path: Path | str,
    *,
    shots: Sequence[int],
    rate: Rate,
    size: tuple[int, int] = (160, 96),
    codec: str = "h264",
    image_fn: Callable[[int, int, int, int], np.ndarray] | None = None,
    **kwargs: object,
) -> ShotClip:
    """Write a clip made of ``shots`` (frame counts per shot) with frame codes on every frame.

    ``image_fn(index, shot, width, height)`` can replace the picture (the code is then
    whatever it draws).
    """
    w, h = size
    starts = tuple(int(x) for x in np.cumsum([0, *shots[:-1]]))
    total = int(sum(shots))

    def gen() -> Iterable[np.ndarray]:
        shot = 0
        for i in range(total):
            while shot + 1 < len(starts) and i >= starts[shot + 1]:
                shot += 1
            yield image_fn(i, shot, w, h) if image_fn else frame_code_image(i, w, h, shot=shot)

    write_video(path, gen(), rate=rate, codec=codec, **kwargs)  # type: ignore[arg-type]
    return ShotClip(Path(path), rate, total, starts)


DEMO_CUTS = (2.9, 6.1, 8.4, 11.8, 14.0, 17.3)  # seconds: deliberately irregular


def write_demo_clip(path: Path | str, *, seconds: float = 20.0, size: tuple[int, int] = (640, 360),
                    rate: Rate = Rate(25)) -> ShotClip:
    """The bundled demonstration clip: shots cut at :data:`DEMO_CUTS`, each with its own palette,
    a grain texture panning at its own speed and a ball that bounces (motion accents)."""
    w, h = size
    total = int(round(seconds * float(rate)))
    cut_frames = [int(round(c * float(rate))) for c in DEMO_CUTS if c < seconds]
    starts = (0, *cut_frames)
    rng = np.random.default_rng(2024)
    grain = rng.integers(0, 40, size=(h + 64, w + 64), dtype=np.uint8)
    palettes = rng.integers(30, 190, size=(len(starts), 3), dtype=np.uint8)
    speeds = rng.uniform(0.5, 4.0, size=len(starts))
    yy = np.arange(h)[:, None]
    xx = np.arange(w)[None, :]

    def frames() -> Iterable[np.ndarray]:
        shot = 0
        for i in range(total):
            while shot + 1 < len(starts) and i >= starts[shot + 1]:
                shot += 1
            local = i - starts[shot]
            off = int(local * speeds[shot]) % 64
            img = np.empty((h, w, 3), np.uint8)
            img[:] = palettes[shot]
            img += grain[off : off + h, off : off + w, None]
            # a ball bouncing on the floor: fast motion near each bounce
            period = 12 + 4 * (shot % 3)
            phase = (local % period) / period
            by = int(h * 0.25 + (h * 0.55) * (1 - (2 * phase - 1) ** 2))
            bx = int((w * 0.1 + local * 7 * speeds[shot]) % (w * 0.8) + w * 0.1)
            r = max(6, h // 12)
            mask = (yy - by) ** 2 + (xx - bx) ** 2 < r * r
            img[mask] = 255 - palettes[shot]
            yield img

    write_video(path, frames(), rate=rate, codec="h264")
    return ShotClip(Path(path), rate, total, tuple(int(s) for s in starts))
