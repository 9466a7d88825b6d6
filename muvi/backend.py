"""The Backend protocol: where the networks run. ``TorchBackend`` is the reference.

A backend evaluates the two cuts of the model: ``condition`` (adaptor + DiT.prepare, once per
window) and ``velocity`` (one DiT step). Other runtimes (ONNX Runtime, TensorRT) live in the
``engines`` package and implement the same two calls; ``engines.select`` picks one.
"""

from __future__ import annotations

from typing import Protocol

import torch

from muvi.nn.model import MuVi

__all__ = ["Backend", "TorchBackend"]


class Backend(Protocol):
    name: str
    max_steps: int  # the longest sequence (grid steps) one call takes

    def condition(self, patches: torch.Tensor, positions: torch.Tensor, style: torch.Tensor, mood: torch.Tensor,
                  drop: torch.Tensor, controls: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ...

    def velocity(self, x_t: torch.Tensor, t: torch.Tensor, cond_tokens: torch.Tensor, cond_vec: torch.Tensor,
                 prompt: torch.Tensor, prompt_mask: torch.Tensor) -> torch.Tensor:
        ...


class TorchBackend:
    """The model in PyTorch on ``device`` (``cpu`` or ``cuda``)."""

    def __init__(self, model: MuVi, device: str = "cpu") -> None:
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.name = f"torch-{self.device.type}"
        self.max_steps = model.config.dit.max_steps

    @torch.inference_mode()
    def condition(self, patches: torch.Tensor, positions: torch.Tensor, style: torch.Tensor, mood: torch.Tensor,
                  drop: torch.Tensor, controls: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d = self.device
        return self.model.condition(patches.to(d), positions.to(d), style.to(d), mood.to(d), drop.to(d), controls.to(d))

    @torch.inference_mode()
    def velocity(self, x_t: torch.Tensor, t: torch.Tensor, cond_tokens: torch.Tensor, cond_vec: torch.Tensor,
                 prompt: torch.Tensor, prompt_mask: torch.Tensor) -> torch.Tensor:
        d = self.device
        return self.model.dit.velocity(x_t.to(d), t.to(d), cond_tokens, cond_vec, prompt.to(d), prompt_mask.to(d)).cpu()

