"""The DiT step exports with the dynamo exporter and ONNX Runtime agrees at other lengths."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from muvi.nn.dit import MuViDiT
from muvi.nn.presets import preset

NAMES = ("x_t", "t", "cond_tokens", "cond_vec", "prompt", "prompt_mask")


class Step(torch.nn.Module):
    def __init__(self, dit: MuViDiT) -> None:
        super().__init__()
        self.dit = dit

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond_tokens: torch.Tensor, cond_vec: torch.Tensor,
                prompt: torch.Tensor, prompt_mask: torch.Tensor) -> torch.Tensor:
        return self.dit.velocity(x_t, t, cond_tokens, cond_vec, prompt, prompt_mask)


def _inputs(b: int, n: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(n)
    return (torch.randn(b, n, 24, generator=g), torch.rand(b, generator=g), torch.randn(b, n, 64, generator=g),
            torch.randn(b, 64, generator=g), torch.randn(b, n, 24, generator=g),
            (torch.rand(b, n, 1, generator=g) > 0.5).float())


def test_velocity_exports_with_dynamic_length(tmp_path: Path) -> None:
    import onnxruntime as ort

    torch.manual_seed(0)
    dit = MuViDiT(preset("tiny"), token_dim=24, cond_dim=64).eval()
    for p in dit.parameters():
        torch.nn.init.normal_(p, std=0.05)
    T = torch.export.Dim("T", min=16, max=256)
    B = torch.export.Dim("B", min=1, max=8)
    shapes = {"x_t": {0: B, 1: T}, "t": {0: B}, "cond_tokens": {0: B, 1: T}, "cond_vec": {0: B},
              "prompt": {0: B, 1: T}, "prompt_mask": {0: B, 1: T}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(Step(dit), _inputs(2, 32), dynamo=True, dynamic_shapes=shapes,
                                    input_names=list(NAMES), output_names=["velocity"], verbose=False)
    program.save(str(tmp_path / "dit_step.onnx"))
    sess = ort.InferenceSession(str(tmp_path / "dit_step.onnx"), providers=["CPUExecutionProvider"])
    for b, n in ((2, 48), (1, 200)):  # neither is the export length
        inp = _inputs(b, n)
        with torch.no_grad():
            ref = Step(dit)(*inp).numpy()
        out = sess.run(None, {k: v.numpy() for k, v in zip(NAMES, inp)})[0]
        assert out.shape == ref.shape
        assert np.max(np.abs(out - ref)) <= 1e-4 * max(1.0, float(np.abs(ref).max()))
