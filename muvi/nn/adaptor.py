"""The visual adaptor: patch tokens per frame → one feature per frame → features on the music grid.

Aggregations over the P patch tokens of a frame (DESIGN §5, paper Table 1):

- ``softmax``: ``a = softmax(w·v_i)``, ``f = Σ a_i v_i``
- ``sigmoid``: ``a_i = σ(w·v_i)``, ``f = Σ a_i v_i / Σ a_i``
- ``attention``: a learned query attends over the patches (multi-head)
- ``average``: mean of the patches
- ``cls``: the frame's first token (CLS for CLIP, the frame token of ``lowlevel``)

Length alignment: every grid step's time, from the tempo map, is a fractional frame position;
frame features are linearly interpolated there (``grid_positions`` computes the positions
outside the network). An MLP then projects to the DiT's condition width, and the pooled
vector is the mean over frames.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from muvi.errors import InvalidInputError
from muvi.music.tempo import TempoMap

__all__ = ["AGGREGATIONS", "VisualAdaptor", "grid_positions", "mirror_positions", "robust_normalise"]

AGGREGATIONS = ("softmax", "sigmoid", "attention", "average", "cls")


def grid_positions(
    tempo: TempoMap, n_steps: int, *, steps_per_beat: int, fps: Fraction | int, n_frames: int,
    beyond: str = "clamp",
) -> np.ndarray:
    """Fractional frame index (float32, (n_steps,)) of each grid step's time.

    Frames are the timeline sampled at ``fps`` from the music's start (frame k at k/fps).
    Steps after the last frame hold it (``beyond="clamp"``) or play the frames backwards and
    forwards again (``"mirror"``: the picture keeps moving as it did, for music sampled past
    the end of a short timeline).
    """
    if beyond not in ("clamp", "mirror"):
        raise ValueError(f"beyond must be 'clamp' or 'mirror', got {beyond!r}")
    fps = Fraction(fps)
    pos = np.maximum(np.asarray([float(tempo.time_at(Fraction(s, steps_per_beat)) * fps) for s in range(n_steps)],
                                np.float64), 0.0)
    last = max(0, n_frames - 1)
    if beyond == "mirror":
        pos = mirror_positions(pos, n_frames)
    return np.clip(pos, 0.0, last).astype(np.float32)


def mirror_positions(pos: np.ndarray, n_frames: int) -> np.ndarray:
    """Fractional frame positions past the last of ``n_frames`` folded back into them: the
    frames played backwards, then forwards again (a short take's picture under a whole window)."""
    last = max(0, n_frames - 1)
    if last == 0:
        return np.zeros_like(pos)
    phase = np.mod(pos, 2 * last)
    return np.where(phase <= last, phase, 2 * last - phase)


# the spread below which a feature counts as constant over the clip (its z-score stays small)
ROBUST_FLOOR = 0.02
ROBUST_CLIP = 6.0


def robust_normalise(patches: torch.Tensor) -> torch.Tensor:
    """Per clip and feature: subtract the median over all frames and patches and divide by the
    interquartile spread (IQR / 1.349, at least :data:`ROBUST_FLOOR`), clipped to ±6.
    (B, T, P, D) → (B, T, P, D). Real footage is brighter, greyer and calmer than any synthetic
    training picture; after this, what reaches the adaptor is how the clip moves and changes
    relative to itself. Quantiles come from one sort (exports to ONNX with dynamic sizes)."""
    b, t, p, d = patches.shape
    flat = patches.reshape(b, t * p, d)
    srt = torch.sort(flat, dim=1).values  # (B, N, D)
    n = t * p
    q1, q2, q3 = srt[:, (n - 1) // 4], srt[:, (n - 1) // 2], srt[:, (3 * (n - 1)) // 4]  # (B, D)
    scale = ((q3 - q1) / 1.349).clamp(min=ROBUST_FLOOR)
    z = (flat - q2[:, None]) / scale[:, None]
    return z.clamp(-ROBUST_CLIP, ROBUST_CLIP).reshape(b, t, p, d)


class VisualAdaptor(nn.Module):
    def __init__(self, in_dim: int, width: int, *, aggregation: str = "softmax", heads: int = 4,
                 normalise: bool = False) -> None:
        super().__init__()
        self.normalise = normalise  # robust_normalise per clip first (checkpoints since control curves)
        if aggregation not in AGGREGATIONS:
            raise InvalidInputError(f"unknown aggregation {aggregation!r}; choose from {', '.join(AGGREGATIONS)}")
        self.aggregation = aggregation
        self.norm = nn.LayerNorm(in_dim)
        if aggregation in ("softmax", "sigmoid"):
            self.gate = nn.Linear(in_dim, 1)
        if aggregation == "attention":
            if in_dim % heads:
                heads = 1
            self.heads = heads
            self.query = nn.Parameter(torch.randn(in_dim) * in_dim**-0.5)
            self.kv = nn.Linear(in_dim, 2 * in_dim)
        self.mlp = nn.Sequential(nn.Linear(in_dim, width), nn.GELU(), nn.Linear(width, width))

    def aggregate(self, patches: torch.Tensor) -> torch.Tensor:
        """(B, T, P, D) → (B, T, D)."""
        v = self.norm(patches)
        if self.aggregation == "softmax":
            a = torch.softmax(self.gate(v), dim=2)  # (B, T, P, 1)
            return (a * v).sum(dim=2)
        if self.aggregation == "sigmoid":
            a = torch.sigmoid(self.gate(v))
            return (a * v).sum(dim=2) / (a.sum(dim=2) + 1e-6)
        if self.aggregation == "attention":
            b, t, p, d = v.shape
            k, val = self.kv(v).chunk(2, dim=-1)  # (B, T, P, D)
            h = self.heads
            k = k.reshape(b * t, p, h, d // h).transpose(1, 2)  # (BT, H, P, Dh)
            val = val.reshape(b * t, p, h, d // h).transpose(1, 2)
            q = self.query.reshape(1, h, 1, d // h).expand(b * t, h, 1, d // h)
            out = F.scaled_dot_product_attention(q, k, val)  # (BT, H, 1, Dh)
            return out.reshape(b, t, d)
        if self.aggregation == "average":
            return v.mean(dim=2)
        return v[:, :, 0]  # cls

    def forward(self, patches: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """patches (B, Tf, P, D), positions (B, Ts) fractional frame indices →
        aligned (B, Ts, W), pooled (B, W)."""
        if self.normalise:
            patches = robust_normalise(patches)
        frames = self.aggregate(patches)  # (B, Tf, D)
        n = frames.shape[1]
        i0 = positions.floor().clamp(0, n - 1)
        w = (positions - i0).unsqueeze(-1)  # (B, Ts, 1)
        i0 = i0.long()
        i1 = (i0 + 1).clamp(max=n - 1)
        idx0 = i0.unsqueeze(-1).expand(-1, -1, frames.shape[-1])
        idx1 = i1.unsqueeze(-1).expand(-1, -1, frames.shape[-1])
        aligned = (1 - w) * frames.gather(1, idx0) + w * frames.gather(1, idx1)  # (B, Ts, D)
        out = self.mlp(aligned)  # (B, Ts, W)
        pooled = self.mlp(frames).mean(dim=1)  # (B, W)
        return out, pooled
