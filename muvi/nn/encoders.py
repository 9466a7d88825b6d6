"""Frozen visual encoders: frames (B, T, H, W, 3) uint8 → patch tokens (B, T, P, D).

- ``lowlevel`` (default, no weights): frames are area-averaged to ``size × size`` (64) so the
  statistics mean the same for any input size; on a ``grid × grid`` patch grid, per patch: mean RGB,
  luma, luma contrast, saturation, a hue vector, edge density and motion (mean absolute luma
  change from the previous frame); a frame token first with the same statistics over the
  whole frame plus a cut score (colour-histogram change) and the change in motion. Pure torch,
  deterministic, ~1 ms per frame at 224×224 on a CPU.
- ``clip``: a CLIP vision tower from a local folder (``transformers`` ``CLIPVisionModel``; the
  CLS token comes first). open_clip is not used because it requires torchvision, which this
  project cannot install next to its torch build.
- ``videomae``: a VideoMAE encoder from a local folder (``transformers`` ``VideoMAEModel``);
  tubelet tokens are given to each frame they cover and a mean token is put first.

Checkpoints are only ever read from the path the user gives (``local_files_only``); nothing
is downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from muvi.errors import InvalidInputError

__all__ = ["VisualEncoder", "LowLevelEncoder", "ClipEncoder", "VideoMAEEncoder", "load_encoder", "ENCODERS"]

ENCODERS = ("lowlevel", "clip", "videomae")


class VisualEncoder(Protocol):
    name: str
    dim: int  # D
    n_tokens: int  # P (first token is the frame/CLS token)

    def encode(self, frames: Any) -> torch.Tensor:
        """(B, T, H, W, 3) or (T, H, W, 3) uint8 → (B, T, P, D) float32."""
        ...

    def describe(self) -> dict[str, Any]:
        ...


def _as_video(frames: Any) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(frames) if not isinstance(frames, torch.Tensor) else frames)
    if x.ndim == 4:
        x = x.unsqueeze(0)
    if x.ndim != 5 or x.shape[-1] != 3:
        raise InvalidInputError(f"frames must be (B, T, H, W, 3), got {tuple(x.shape)}")
    return x


class LowLevelEncoder:
    """Colour, edge and motion statistics on a patch grid (see the module docstring)."""

    name = "lowlevel"
    FEATURES = 12

    def __init__(self, grid: int = 4, size: int = 64) -> None:
        if grid < 1 or size < grid:
            raise InvalidInputError("grid must be ≥ 1 and size ≥ grid")
        self.grid = grid
        self.size = size  # features are computed at size×size, whatever the input size
        self.dim = self.FEATURES
        self.n_tokens = 1 + grid * grid

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "grid": self.grid, "size": self.size, "dim": self.dim, "n_tokens": self.n_tokens}

    @torch.no_grad()
    def encode(self, frames: Any) -> torch.Tensor:
        x = _as_video(frames).float() / 255.0  # (B, T, H, W, 3)
        b, t = x.shape[:2]
        img = x.permute(0, 1, 4, 2, 3).reshape(b * t, 3, x.shape[2], x.shape[3])  # (BT, 3, H, W)
        if img.shape[-2:] != (self.size, self.size):
            # area averaging: edge and motion statistics mean the same at any input size
            img = F.interpolate(img, size=(self.size, self.size), mode="area")
        h, w = self.size, self.size
        r, g, bl = img[:, 0:1], img[:, 1:2], img[:, 2:3]
        luma = 0.299 * r + 0.587 * g + 0.114 * bl  # (BT, 1, H, W)
        mx, mn = img.max(dim=1, keepdim=True).values, img.min(dim=1, keepdim=True).values
        sat = (mx - mn) / (mx + 1e-4)
        gx = F.pad((luma[..., :, 1:] - luma[..., :, :-1]).abs(), (0, 1))
        gy = F.pad((luma[..., 1:, :] - luma[..., :-1, :]).abs(), (0, 0, 0, 1))
        edge = gx + gy
        lv = luma.reshape(b, t, 1, h, w)
        motion = torch.cat([torch.zeros_like(lv[:, :1]), (lv[:, 1:] - lv[:, :-1]).abs()], dim=1).reshape(b * t, 1, h, w)
        maps = torch.cat([img, luma, luma * luma, sat, edge, motion], dim=1)  # (BT, 8, H, W)

        def stats(pooled: torch.Tensor) -> torch.Tensor:  # (BT, 8, n) → (BT, n, 10)
            rgb, lu, lu2, s, e, m = pooled[:, 0:3], pooled[:, 3:4], pooled[:, 4:5], pooled[:, 5:6], pooled[:, 6:7], pooled[:, 7:8]
            contrast = (lu2 - lu * lu).clamp(min=0).sqrt()
            hx = rgb[:, 0:1] - 0.5 * (rgb[:, 1:2] + rgb[:, 2:3])
            hy = 0.866 * (rgb[:, 1:2] - rgb[:, 2:3])
            return torch.cat([rgb, lu, contrast, s, hx, hy, e * 4.0, m * 4.0], dim=1).transpose(1, 2)

        patches = stats(F.adaptive_avg_pool2d(maps, self.grid).flatten(2))  # (BT, g*g, 10)
        whole = stats(maps.mean(dim=(2, 3)).unsqueeze(-1))  # (BT, 1, 10)
        # frame-level change features: colour histogram distance (cut score) and motion change
        q = (img.clamp(0, 0.999) * 4).long()
        bins = (q[:, 0] * 16 + q[:, 1] * 4 + q[:, 2]).flatten(1)  # (BT, HW) in 0..63
        hist = torch.zeros(b * t, 64).scatter_add_(1, bins, torch.ones_like(bins, dtype=torch.float32)) / (h * w)
        hist = hist.reshape(b, t, 64)
        cut = torch.cat([torch.zeros(b, 1), 0.5 * (hist[:, 1:] - hist[:, :-1]).abs().sum(-1)], dim=1)  # (B, T)
        mot = whole[:, 0, 9].reshape(b, t)
        dmot = torch.cat([torch.zeros(b, 1), mot[:, 1:] - mot[:, :-1]], dim=1)
        extra = torch.stack([cut, dmot], dim=-1).reshape(b * t, 1, 2)
        tokens = torch.cat([whole, patches], dim=1)  # (BT, P, 10)
        tokens = torch.cat([tokens, extra.expand(-1, tokens.shape[1], -1)], dim=-1)  # (BT, P, 12)
        return tokens.reshape(b, t, self.n_tokens, self.FEATURES)


def _check_dir(path: Path | str | None, name: str) -> Path:
    if path is None:
        raise InvalidInputError(f"the {name} encoder needs a local checkpoint folder (--encoder-path); nothing is downloaded")
    p = Path(path)
    if not (p / "config.json").is_file():
        raise InvalidInputError(f"{p}: not a {name} checkpoint folder (no config.json)")
    return p


class _HFEncoder:
    """A frozen ``transformers`` vision model read from a local folder."""

    name = ""
    dim = 0
    n_tokens = 0

    def __init__(self, path: Path | str, model_class: str, device: str) -> None:
        import transformers

        self.path = _check_dir(path, self.name)
        cls = getattr(transformers, model_class)
        self.model = cls.from_pretrained(str(self.path), local_files_only=True).eval().to(device)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.device = device

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "dim": self.dim, "n_tokens": self.n_tokens}


class ClipEncoder(_HFEncoder):
    """CLIP vision tower from a local Hugging Face-format folder."""

    name = "clip"
    MEAN = (0.48145466, 0.4578275, 0.40821073)
    STD = (0.26862954, 0.26130258, 0.27577711)

    def __init__(self, path: Path | str, *, batch: int = 32, device: str = "cpu") -> None:
        super().__init__(path, "CLIPVisionModel", device)
        cfg = self.model.config
        self.size = int(cfg.image_size)
        self.dim = int(cfg.hidden_size)
        self.n_tokens = 1 + (self.size // int(cfg.patch_size)) ** 2
        self.batch = batch

    @torch.no_grad()
    def encode(self, frames: Any) -> torch.Tensor:
        x = _as_video(frames)
        b, t = x.shape[:2]
        flat = _normalise(x.reshape(b * t, *x.shape[2:]), self.size, self.MEAN, self.STD)
        outs = [
            self.model(pixel_values=flat[i : i + self.batch].to(self.device)).last_hidden_state.float().cpu()
            for i in range(0, flat.shape[0], self.batch)
        ]
        return torch.cat(outs).reshape(b, t, self.n_tokens, self.dim)


class VideoMAEEncoder(_HFEncoder):
    """VideoMAE encoder from a local Hugging Face-format folder."""

    name = "videomae"
    MEAN = (0.485, 0.456, 0.406)
    STD = (0.229, 0.224, 0.225)

    def __init__(self, path: Path | str, *, device: str = "cpu") -> None:
        super().__init__(path, "VideoMAEModel", device)
        cfg = self.model.config
        self.size, self.clip_len, self.tubelet = int(cfg.image_size), int(cfg.num_frames), int(cfg.tubelet_size)
        self.patches = (self.size // int(cfg.patch_size)) ** 2
        self.dim = int(cfg.hidden_size)
        self.n_tokens = 1 + self.patches

    @torch.no_grad()
    def encode(self, frames: Any) -> torch.Tensor:
        x = _as_video(frames)
        b, t = x.shape[:2]
        n_clips = -(-t // self.clip_len)
        pad = n_clips * self.clip_len - t
        if pad:
            x = torch.cat([x, x[:, -1:].expand(-1, pad, -1, -1, -1)], dim=1)
        flat = _normalise(x.reshape(-1, *x.shape[2:]), self.size, self.MEAN, self.STD)  # (B*T', 3, S, S)
        clips = flat.reshape(b * n_clips, self.clip_len, 3, self.size, self.size)
        tokens = self.model(pixel_values=clips.to(self.device)).last_hidden_state.float().cpu()
        tokens = tokens.reshape(b * n_clips, self.clip_len // self.tubelet, self.patches, self.dim)
        tokens = tokens.repeat_interleave(self.tubelet, dim=1)  # (B*nc, clip_len, Pp, D)
        tokens = torch.cat([tokens.mean(dim=2, keepdim=True), tokens], dim=2)
        return tokens.reshape(b, n_clips * self.clip_len, self.n_tokens, self.dim)[:, :t]


def _normalise(x: torch.Tensor, size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """(N, H, W, 3) uint8 → (N, 3, size, size) normalised float."""
    img = x.permute(0, 3, 1, 2).float() / 255.0
    if img.shape[-1] != size or img.shape[-2] != size:
        img = F.interpolate(img, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    m = torch.tensor(mean).reshape(1, 3, 1, 1)
    s = torch.tensor(std).reshape(1, 3, 1, 1)
    return (img - m) / s


def load_encoder(name: str = "lowlevel", path: Path | str | None = None, **kwargs: Any) -> VisualEncoder:
    """The frozen encoder ``name`` (``lowlevel``, ``clip``, ``videomae``)."""
    if name == "lowlevel":
        return LowLevelEncoder(**kwargs)
    if name == "clip":
        return ClipEncoder(_check_dir(path, "clip"), **kwargs)
    if name == "videomae":
        return VideoMAEEncoder(_check_dir(path, "videomae"), **kwargs)
    raise InvalidInputError(f"unknown visual encoder {name!r}; choose from {', '.join(ENCODERS)}")
