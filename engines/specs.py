"""One ``EngineSpec`` per engine: what export, build and runtime all read.

Two engines cut the model where :class:`muvi.backend.Backend` does:

- ``adaptor``: visual patches + grid positions + tags → the DiT's condition
  (``MuVi.condition``: adaptor then ``DiT.prepare``), once per window and CFG branch;
- ``dit_step``: one flow velocity evaluation (``DiT.velocity``), ``steps × windows`` times,
  batch 2 under classifier-free guidance.

The visual encoder muvi ships (``lowlevel``) is hand-written image statistics, not a network,
so it has no engine; it runs in NumPy before the adaptor.

Dimension names are symbolic (``batch``, ``steps``, ``frames``); each has a min/opt/max
profile derived from the model config. ``steps`` goes up to the window the pipeline samples
(``ModelConfig.window_steps``, 16 bars of 4/4), which is also the window the model was trained
on: the DiT would take up to ``dit.max_steps`` (1024) but has never seen such lengths, and the
int8 graph, accurate to ≈ 2 % inside the window, drifts to 3–10 % per call at 512–1024 steps
(measured on random inputs), so the engines promise only what is verified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from muvi.curves import CONTROL_CHANNELS, N_CONTROLS
from muvi.nn.model import MuVi, ModelConfig

__all__ = ["TensorSpec", "EngineSpec", "SPECS", "spec", "OPSET"]

OPSET = 18  # ≥ 17: LayerNormalization is one op, which TensorRT keeps as a normalization layer

DTYPES = {"float32": torch.float32, "int64": torch.int64, "bool": torch.bool}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # float32 | int64 | bool
    dims: tuple[str | int, ...]  # symbolic names or fixed sizes


@dataclass(frozen=True)
class EngineSpec:
    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    module: Callable[[MuVi], nn.Module]  # the torch module with forward(*inputs) → outputs
    fixed: Callable[[ModelConfig], dict[str, int]]  # sizes of the named fixed dims (W, F, P, D)
    # also write an int8 graph (dynamic quantisation) for the onnxruntime-cpu backend: worth it
    # where the weights' matrix products dominate (the DiT step), not for the small adaptor
    cpu_int8: bool = False

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def profile(self, config: ModelConfig) -> dict[str, tuple[int, int, int]]:
        """min / opt / max of every dynamic dimension this engine uses."""
        window = config.window_steps  # the pipeline's 16-bar window of 4/4
        table = {
            "batch": (1, 2, 2),  # 2: conditional and unconditional in one call (CFG)
            "steps": (16, window, window),
            "frames": (1, 600, 12000),  # 10 fps: up to 20 minutes of picture
        }
        used = {d for t in self.inputs for d in t.dims if isinstance(d, str) and d in table}
        return {k: v for k, v in table.items() if k in used}

    def shape(self, t: TensorSpec, config: ModelConfig, sizes: dict[str, int]) -> tuple[int, ...]:
        fixed = self.fixed(config)
        return tuple(d if isinstance(d, int) else sizes[d] if d in sizes else fixed[d] for d in t.dims)

    def sample_inputs(self, config: ModelConfig, *, sizes: dict[str, int] | None = None,
                      generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        """Random inputs of valid values at ``sizes`` (default: the profile's opt)."""
        sizes = {k: v[1] for k, v in self.profile(config).items()} | (sizes or {})
        g = generator or torch.Generator().manual_seed(0)
        out = []
        for t in self.inputs:
            shape = self.shape(t, config, sizes)
            if t.name == "positions":  # grid step → frame position, increasing within the clip
                frames = sizes["frames"]
                base = torch.linspace(0, max(frames - 1, 0), shape[1])
                out.append((base + 0.3 * torch.rand(shape, generator=g)).clamp(0, max(frames - 1, 0)))
            elif t.name == "t":
                out.append(torch.rand(shape, generator=g) * 0.98)
            elif t.name == "prompt_mask":
                out.append((torch.rand(shape, generator=g) < 0.3).float())
            elif t.name == "style":
                out.append(torch.randint(0, len(config.styles), shape, generator=g))
            elif t.name == "controls":  # [value·mask, mask] per curve
                mask = (torch.rand((*shape[:-1], N_CONTROLS), generator=g) < 0.7).float()
                out.append(torch.cat([torch.rand(mask.shape, generator=g) * mask, mask], dim=-1))
            elif t.name == "mood":
                out.append(torch.randint(0, len(config.moods), shape, generator=g))
            elif t.dtype == "bool":
                out.append(torch.rand(shape, generator=g) < 0.5)
            else:
                out.append(torch.randn(shape, generator=g))
        return tuple(out)


class _Adaptor(nn.Module):
    def __init__(self, model: MuVi) -> None:
        super().__init__()
        self.model = model

    def forward(self, patches: torch.Tensor, positions: torch.Tensor, style: torch.Tensor, mood: torch.Tensor,
                drop: torch.Tensor, controls: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.condition(patches, positions, style, mood, drop, controls)


class _DiTStep(nn.Module):
    def __init__(self, model: MuVi) -> None:
        super().__init__()
        self.dit = model.dit

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond_tokens: torch.Tensor, cond_vec: torch.Tensor,
                prompt: torch.Tensor, prompt_mask: torch.Tensor) -> torch.Tensor:
        return self.dit.velocity(x_t, t, cond_tokens, cond_vec, prompt, prompt_mask)


def _fixed(config: ModelConfig) -> dict[str, int]:
    return {"W": config.dit.width, "F": config.roll.token_dim, "P": int(config.encoder["n_tokens"]),
            "D": int(config.encoder["dim"]), "C": CONTROL_CHANNELS}


ADAPTOR = EngineSpec(
    name="adaptor",
    inputs=(
        TensorSpec("patches", "float32", ("batch", "frames", "P", "D")),  # visual tokens per frame
        TensorSpec("positions", "float32", ("batch", "steps")),  # frame position of each grid step
        TensorSpec("style", "int64", ("batch",)),
        TensorSpec("mood", "int64", ("batch",)),
        TensorSpec("drop", "bool", ("batch",)),  # the null condition (CFG's unconditional branch)
        TensorSpec("controls", "float32", ("batch", "steps", "C")),  # control curves per step (muvi.curves)
    ),
    outputs=(TensorSpec("cond_tokens", "float32", ("batch", "steps", "W")),
             TensorSpec("cond_vec", "float32", ("batch", "W"))),
    module=_Adaptor, fixed=_fixed,
)

DIT_STEP = EngineSpec(
    name="dit_step",
    inputs=(
        TensorSpec("x_t", "float32", ("batch", "steps", "F")),
        TensorSpec("t", "float32", ("batch",)),
        TensorSpec("cond_tokens", "float32", ("batch", "steps", "W")),
        TensorSpec("cond_vec", "float32", ("batch", "W")),
        TensorSpec("prompt", "float32", ("batch", "steps", "F")),
        TensorSpec("prompt_mask", "float32", ("batch", "steps", 1)),
    ),
    outputs=(TensorSpec("velocity", "float32", ("batch", "steps", "F")),),
    module=_DiTStep, fixed=_fixed, cpu_int8=True,
)

SPECS: dict[str, EngineSpec] = {s.name: s for s in (ADAPTOR, DIT_STEP)}


def spec(name: str) -> EngineSpec:
    from muvi.errors import InvalidInputError

    if name not in SPECS:
        raise InvalidInputError(f"unknown engine {name!r}; engines are {', '.join(SPECS)}")
    return SPECS[name]
