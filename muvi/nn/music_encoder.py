"""Music encoder over roll windows, for contrastive music–visual pre-training and SIM.

Per-step embeddings (B, T, E) from a small rotary transformer over the roll tokens. The
contrastive objective compares them step by step with the adaptor's frame-aligned features, so
a window whose music is shifted by a few grid steps scores lower than the aligned one — what
the temporal-shift negatives teach.
"""

from __future__ import annotations

import torch
from torch import nn

from muvi.nn.layers import TransformerBlock, rope_tables

__all__ = ["MusicEncoder"]


class MusicEncoder(nn.Module):
    def __init__(self, token_dim: int, *, width: int = 192, depth: int = 2, heads: int = 4, out_dim: int = 128) -> None:
        super().__init__()
        self.width, self.heads = width, heads
        self.in_proj = nn.Linear(token_dim, width)
        self.blocks = nn.ModuleList(TransformerBlock(width, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.out_proj = nn.Linear(width, out_dim)
        self.out_dim = out_dim

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T, F) roll tokens → (B, T, E) per-step embeddings."""
        h = self.in_proj(tokens)
        cos, sin = rope_tables(h.shape[1], self.width // self.heads, 10000.0, h.device)
        for block in self.blocks:
            h = block(h, cos.to(h.dtype), sin.to(h.dtype))
        return self.out_proj(self.norm(h))

    def pooled(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T, F) → (B, E) window embedding (mean over steps)."""
        return self.forward(tokens).mean(dim=1)
