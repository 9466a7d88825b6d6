"""The Backend protocol: where the networks run. ``TorchBackend`` is the reference.

A backend evaluates the two cuts of the model: ``condition`` (adaptor + DiT.prepare, once per
window) and ``velocity`` (one DiT step). Other runtimes (ONNX Runtime, TensorRT) live in the
``engines`` package and implement the same two calls; ``muvi.cli`` picks one.
"""

from __future__ import annotations

import logging
from typing import Protocol

import torch

from muvi.nn.model import MuVi

__all__ = ["Backend", "TorchBackend", "BACKEND_NAMES", "available_backends", "select_backend"]

log = logging.getLogger(__name__)
BACKEND_NAMES = ("torch-cpu", "torch-cuda", "onnxruntime-cpu", "onnxruntime-cuda", "tensorrt")


class Backend(Protocol):
    name: str

    def condition(self, patches: torch.Tensor, positions: torch.Tensor, style: torch.Tensor, mood: torch.Tensor,
                  drop: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
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

    @torch.inference_mode()
    def condition(self, patches: torch.Tensor, positions: torch.Tensor, style: torch.Tensor, mood: torch.Tensor,
                  drop: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d = self.device
        return self.model.condition(patches.to(d), positions.to(d), style.to(d), mood.to(d), drop.to(d))

    @torch.inference_mode()
    def velocity(self, x_t: torch.Tensor, t: torch.Tensor, cond_tokens: torch.Tensor, cond_vec: torch.Tensor,
                 prompt: torch.Tensor, prompt_mask: torch.Tensor) -> torch.Tensor:
        d = self.device
        return self.model.dit.velocity(x_t.to(d), t.to(d), cond_tokens, cond_vec, prompt.to(d), prompt_mask.to(d)).cpu()


def available_backends() -> list[str]:
    """Backend names this machine can run now, best first."""
    import torch

    names = ["torch-cuda"] if torch.cuda.is_available() else []
    return names + ["torch-cpu"]


def select_backend(name: str, model: MuVi) -> Backend:
    """The backend called ``name`` (or the best available for ``auto``) for ``model``."""
    from muvi.errors import InvalidInputError

    if name == "auto":
        name = available_backends()[0]
        log.info("backend auto: %s (the ONNX Runtime and TensorRT backends arrive with the engines)", name)
    if name == "torch-cpu":
        return TorchBackend(model, "cpu")
    if name == "torch-cuda":
        import torch

        if not torch.cuda.is_available():
            raise InvalidInputError("backend torch-cuda: no CUDA GPU is visible")
        return TorchBackend(model, "cuda")
    if name in BACKEND_NAMES:
        raise InvalidInputError(f"backend {name} is not available in this build yet (engines); use torch-cpu or torch-cuda")
    raise InvalidInputError(f"unknown backend {name!r}; choose from auto, {', '.join(BACKEND_NAMES)}")
