"""Contrastive music–visual pre-training (paper §3.3, Table 4 ablation).

The music encoder's per-step embeddings ``m (B, T, E)`` and the visual side's per-step
embeddings ``v = visual_head(adaptor(patches, positions))`` are L2-normalised; the similarity
of a music window and a visual window is the mean over steps of their cosine, so alignment in
time matters. InfoNCE runs both ways over the batch (temperature τ), and the visual→music
direction adds hard negatives made from the matching music window itself:

- **temporal shift (TS)**: the same music moved by a few grid steps (silence fills the gap);
- **random replacement (RR)**: a span of the music swapped in from another window of the batch.

Each is switchable for the ablation. SIM = 100 × mean cosine of matched pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from muvi.nn.model import MuVi

__all__ = ["ContrastiveOptions", "sequence_similarity", "temporal_shift", "random_replacement", "contrastive_loss"]


@dataclass(frozen=True)
class ContrastiveOptions:
    temperature: float = 0.07
    temporal_shift: bool = True
    random_replacement: bool = True
    shift_range: tuple[int, int] = (2, 8)  # grid steps
    replace_fraction: tuple[float, float] = (0.25, 0.5)


def sequence_similarity(m: torch.Tensor, v: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """(B, T, E) × (B', T, E) → (B, B') mean-over-valid-steps cosine similarity."""
    m, v = F.normalize(m, dim=-1), F.normalize(v, dim=-1)
    if valid is None:
        return torch.einsum("ite,jte->ij", m, v) / m.shape[1]
    w = valid.squeeze(-1)  # (B, T) weights of the music side's steps
    return torch.einsum("ite,jte,it->ij", m, v, w) / w.sum(1, keepdim=True).clamp(min=1.0)


def temporal_shift(tokens: torch.Tensor, *, generator: torch.Generator, lo: int, hi: int) -> torch.Tensor:
    """Move each window by ±[lo, hi] steps, filling with silence (−1)."""
    b, t, _ = tokens.shape
    out = torch.full_like(tokens, -1.0)
    shifts = torch.randint(lo, hi + 1, (b,), generator=generator) * (torch.randint(0, 2, (b,), generator=generator) * 2 - 1)
    for i, s in enumerate(shifts.tolist()):
        if s > 0:
            out[i, s:] = tokens[i, : t - s]
        else:
            out[i, : t + s] = tokens[i, -s:]
    return out


def random_replacement(tokens: torch.Tensor, *, generator: torch.Generator, lo: float, hi: float) -> torch.Tensor:
    """Replace a random span of each window with the same span of another window in the batch."""
    b, t, _ = tokens.shape
    out = tokens.clone()
    if b < 2:
        return temporal_shift(tokens, generator=generator, lo=max(1, int(lo * t)), hi=max(1, int(hi * t)))
    other = (torch.arange(b) + torch.randint(1, b, (b,), generator=generator)) % b
    for i in range(b):
        n = int(t * (lo + (hi - lo) * float(torch.rand(1, generator=generator))))
        s = int(torch.randint(0, t - n + 1, (1,), generator=generator))
        out[i, s : s + n] = tokens[int(other[i]), s : s + n]
    return out


def contrastive_loss(
    model: MuVi, batch: dict[str, torch.Tensor], options: ContrastiveOptions, *, generator: torch.Generator
) -> tuple[torch.Tensor, dict[str, float]]:
    """Symmetric InfoNCE with TS/RR hard negatives; returns (loss, {"sim": SIM, ...})."""
    tokens, valid = batch["tokens"], batch["valid"]
    aligned, _ = model.adaptor(batch["patches"], batch["positions"])
    v = model.visual_head(aligned)  # (B, T, E)
    m = model.music_encoder(tokens)  # (B, T, E)
    sim = sequence_similarity(m, v, valid)  # (B, B): music i vs visual j
    tau = options.temperature
    b = tokens.shape[0]
    target = torch.arange(b, device=tokens.device)
    # visual → music: candidates are every music window plus the hard negatives of the match
    hard = []
    if options.temporal_shift:
        ts = temporal_shift(tokens, generator=generator, lo=options.shift_range[0], hi=options.shift_range[1])
        hard.append((F.normalize(model.music_encoder(ts), dim=-1) * F.normalize(v, dim=-1)).sum(-1).mul(valid.squeeze(-1))
                    .sum(1) / valid.squeeze(-1).sum(1).clamp(min=1.0))
    if options.random_replacement:
        rr = random_replacement(tokens, generator=generator, lo=options.replace_fraction[0], hi=options.replace_fraction[1])
        hard.append((F.normalize(model.music_encoder(rr), dim=-1) * F.normalize(v, dim=-1)).sum(-1).mul(valid.squeeze(-1))
                    .sum(1) / valid.squeeze(-1).sum(1).clamp(min=1.0))
    v2m = sim.t()  # (B visual, B music)
    if hard:
        v2m = torch.cat([v2m, torch.stack(hard, dim=1)], dim=1)  # (B, B + H)
    loss = 0.5 * (F.cross_entropy(v2m / tau, target) + F.cross_entropy(sim / tau, target))
    matched = sim.detach().diagonal()
    metrics = {"sim": 100.0 * float(matched.mean()), "sim_off": 100.0 * float((sim.detach().sum() - matched.sum()) / max(1, b * b - b))}
    if hard:
        metrics["sim_hard"] = 100.0 * float(torch.stack(hard).detach().mean())
    return loss, metrics
