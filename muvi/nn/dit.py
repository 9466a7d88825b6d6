"""The flow-matching diffusion transformer.

``prepare(visual, pooled, style, mood, drop, controls)`` turns the adaptor's output and the style tags
into the conditioning once per generation; ``velocity(x_t, t, cond_tokens, cond_vec, prompt,
prompt_mask)`` is one network evaluation per sampler step — the ``dit_step`` engine. Both are
pure tensor functions with no Python branching on tensor values.

The network predicts the clean roll x̂₁ and the velocity follows from it,
``v = (x̂₁ − x_t)/(1 − t)``. Measured on corpus windows, predicting the velocity directly
stalled at the loss of "silence, but no denoising" (the 372 token channels must pass almost
unchanged through the trunk to cancel the noise), while predicting x̂₁ denoised 4× better for
the same training steps; training uses a note-weighted loss on x̂₁ (see :mod:`muvi.flow`).

Conditioning: frame-aligned visual features are added to the tokens; the pooled visual vector
plus style and mood embeddings plus the timestep embedding drive adaLN-Zero in every block.
Dropping the condition (for classifier-free guidance) swaps in learned null features and the
``none`` tag (index 0). The in-context prompt enters as extra input channels: the clean prompt
roll (zero outside the prompt) and its mask.
"""

from __future__ import annotations

import torch
from torch import nn

from muvi.curves import CONTROL_CHANNELS
from muvi.nn.layers import DiTBlock, modulate, rope_tables, timestep_embedding
from muvi.nn.presets import DiTConfig

__all__ = ["MuViDiT", "MIN_REMAINING"]

# v = (x̂₁ − x_t)/(1 − t) is bounded by never dividing by less than this (t ≤ 0.98 in effect)
MIN_REMAINING = 0.02


class MuViDiT(nn.Module):
    def __init__(self, config: DiTConfig, *, token_dim: int, cond_dim: int) -> None:
        super().__init__()
        w = config.width
        self.config = config
        self.token_dim = token_dim
        self.in_proj = nn.Linear(2 * token_dim + 1, w)
        self.cond_proj = nn.Linear(cond_dim, w)
        # per-bar control curves (muvi.curves), added to the tokens like the visual features;
        # zero-initialised, so a checkpoint trained without them loads and behaves as before
        self.control_proj = nn.Linear(CONTROL_CHANNELS, w)
        nn.init.zeros_(self.control_proj.weight)
        nn.init.zeros_(self.control_proj.bias)
        self.pool_proj = nn.Linear(cond_dim, w)
        self.null_tokens = nn.Parameter(torch.zeros(cond_dim))
        self.null_pooled = nn.Parameter(torch.zeros(cond_dim))
        self.style_embed = nn.Embedding(config.n_styles, w)
        self.mood_embed = nn.Embedding(config.n_moods, w)
        self.t_mlp = nn.Sequential(nn.Linear(w, w), nn.SiLU(), nn.Linear(w, w))
        self.blocks = nn.ModuleList(DiTBlock(w, config.heads, config.mlp_ratio) for _ in range(config.depth))
        self.final_norm = nn.LayerNorm(w, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Sequential(nn.SiLU(), nn.Linear(w, 2 * w))
        self.out_proj = nn.Linear(w, token_dim)
        for m in (self.final_ada[1], self.out_proj):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)
        self.odds_scale, self.binary_features = 1.0, 0  # see set_note_odds

    def set_note_odds(self, scale: float, *, binary_features: int) -> None:
        """Sample the first ``binary_features`` token channels (cells that are ±1: onset and
        sustain) with a note's odds multiplied by ``scale`` relative to what ``predict_clean``
        estimates (1: unchanged). Not a weight: a constant of the sampling graph."""
        if scale <= 0 or not 0 <= binary_features <= self.token_dim:
            raise ValueError(f"bad note odds scale {scale} / binary features {binary_features}")
        self.odds_scale, self.binary_features = float(scale), int(binary_features)

    def prepare(
        self,
        visual: torch.Tensor,  # (B, T, C) frame-aligned features from the adaptor
        pooled: torch.Tensor,  # (B, C)
        style: torch.Tensor,  # (B,) int64, 0 = none
        mood: torch.Tensor,  # (B,) int64, 0 = none
        drop: torch.Tensor,  # (B,) bool: replace the picture and tags by their nulls (CFG)
        controls: torch.Tensor,  # (B, T, CONTROL_CHANNELS) curves per step: [value·mask, mask]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The conditioning. ``drop`` nulls the picture and the tags, not the control curves:
        training drops the curves on their own, by their mask, and guidance gives the
        unconditional branch no curves (:func:`muvi.flow.guidance_conditions`), so it amplifies
        the curves as well as the picture."""
        d = drop[:, None, None]
        visual = torch.where(d, self.null_tokens.to(visual.dtype).expand_as(visual), visual)
        pooled = torch.where(drop[:, None], self.null_pooled.to(pooled.dtype).expand_as(pooled), pooled)
        style = torch.where(drop, torch.zeros_like(style), style)
        mood = torch.where(drop, torch.zeros_like(mood), mood)
        cond_tokens = self.cond_proj(visual) + self.control_proj(controls.to(visual.dtype))  # (B, T, W)
        cond_vec = self.pool_proj(pooled) + self.style_embed(style) + self.mood_embed(mood)  # (B, W)
        return cond_tokens, cond_vec

    def velocity(
        self,
        x_t: torch.Tensor,  # (B, T, F) noisy roll tokens
        t: torch.Tensor,  # (B,) flow time in [0, 1]
        cond_tokens: torch.Tensor,  # (B, T, W)
        cond_vec: torch.Tensor,  # (B, W)
        prompt: torch.Tensor,  # (B, T, F) clean prompt roll (0 where no prompt)
        prompt_mask: torch.Tensor,  # (B, T, 1) 1 where the prompt is given
    ) -> torch.Tensor:
        """The flow velocity, from the predicted clean roll: ``v = (x̂₁ − x_t) / (1 − t)``."""
        x1 = self.predict_clean(x_t, t, cond_tokens, cond_vec, prompt, prompt_mask)
        if self.odds_scale != 1.0 and self.binary_features:
            x1 = torch.cat([_scale_odds(x1[..., : self.binary_features], self.odds_scale),
                            x1[..., self.binary_features:]], dim=-1)
        return (x1 - x_t) / (1.0 - t).clamp(min=MIN_REMAINING)[:, None, None]

    def predict_clean(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        cond_tokens: torch.Tensor,
        cond_vec: torch.Tensor,
        prompt: torch.Tensor,
        prompt_mask: torch.Tensor,
    ) -> torch.Tensor:
        """The network itself: the clean roll x̂₁ (B, T, F) estimated from x_t."""
        h = self.in_proj(torch.cat([x_t, prompt * prompt_mask, prompt_mask], dim=-1)) + cond_tokens  # (B, T, W)
        c = self.t_mlp(timestep_embedding(t, self.config.width)) + cond_vec  # (B, W)
        cos, sin = rope_tables(h.shape[1], self.config.head_dim, self.config.rope_base, h.device)
        cos, sin = cos.to(h.dtype), sin.to(h.dtype)
        for block in self.blocks:
            h = block(h, c, cos, sin)
        shift, scale = self.final_ada(c).chunk(2, dim=-1)
        return self.out_proj(modulate(self.final_norm(h), shift, scale))  # (B, T, F)


def _scale_odds(m: torch.Tensor, scale: float) -> torch.Tensor:
    """The mean of a ±1 cell whose odds of +1 are ``scale`` × those that the mean ``m`` implies:
    with p = (1 + m)/2, odds = (1 + m)/(1 − m), so x = (s(1 + m) − (1 − m)) / (s(1 + m) + (1 − m))."""
    m = m.clamp(-1.0, 1.0)
    on, off = scale * (1.0 + m), 1.0 - m
    return (on - off) / (on + off).clamp(min=1e-6)
