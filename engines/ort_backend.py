"""The ONNX Runtime backend (CPU or CUDA execution provider) over ``export-engines``' graphs."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from engines.manifest import mismatches, read_manifest, weights_digest
from engines.specs import OPSET, SPECS
from muvi.errors import MuviError

__all__ = ["BackendUnavailable", "OrtBackend", "onnx_expected"]

log = logging.getLogger(__name__)


class BackendUnavailable(MuviError):
    """A backend cannot run here; the message says why and what to do."""


_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def onnx_expected(weights: Path, name: str) -> dict[str, object]:
    return {"engine": name, "weights_sha256": weights_digest(weights), "opset": OPSET}


class OrtBackend:
    """``onnxruntime-cpu`` or ``onnxruntime-cuda``: runs ``adaptor.onnx`` and ``dit_step.onnx``
    from ``engines_dir`` after checking their manifests against ``weights``."""

    def __init__(self, engines_dir: Path, weights: Path, *, device: str = "cpu", threads: int | None = None) -> None:
        import onnxruntime as ort

        paths = self.check(engines_dir, weights, device=device)
        self.name, self.device = f"onnxruntime-{device}", device
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        provider = _PROVIDERS[device]
        self.sessions = {name: ort.InferenceSession(str(path), sess_options=opts, providers=[provider])
                         for name, path in paths.items()}
        self._outputs = {name: [o.name for o in s.get_outputs()] for name, s in self.sessions.items()}

    @staticmethod
    def check(engines_dir: Path, weights: Path, *, device: str = "cpu") -> dict[str, Path]:
        """The graphs this backend would load; raises :class:`BackendUnavailable` saying why it
        cannot run (no provider, no graph, a manifest from other weights). Builds no session."""
        import onnxruntime as ort

        name = f"onnxruntime-{device}"
        provider = _PROVIDERS[device]
        if provider not in ort.get_available_providers():
            raise BackendUnavailable(f"{name}: ONNX Runtime here has no {provider} "
                                     f"(install onnxruntime-gpu for CUDA; have {', '.join(ort.get_available_providers())})")
        paths = {}
        for engine in SPECS:
            path = Path(engines_dir) / f"{engine}.onnx"
            if not path.is_file():
                raise BackendUnavailable(f"{name}: no {path.name} in {engines_dir} (run: export-engines --weights "
                                         f"{weights} --builder none)")
            bad = mismatches(read_manifest(path.with_suffix(".json")), onnx_expected(weights, engine))
            if bad:
                raise BackendUnavailable(f"{name}: {path} was exported from other weights or settings "
                                         f"({'; '.join(bad)}); run export-engines --force")
            paths[engine] = path
        return paths

    def _run(self, name: str, feeds: dict[str, torch.Tensor]) -> list[np.ndarray]:
        return self.sessions[name].run(self._outputs[name], {k: v.detach().cpu().numpy() for k, v in feeds.items()})

    def condition(self, patches: torch.Tensor, positions: torch.Tensor, style: torch.Tensor, mood: torch.Tensor,
                  drop: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens, vec = self._run("adaptor", {"patches": patches.float(), "positions": positions.float(),
                                            "style": style.long(), "mood": mood.long(), "drop": drop.bool()})
        return torch.from_numpy(tokens), torch.from_numpy(vec)

    def velocity(self, x_t: torch.Tensor, t: torch.Tensor, cond_tokens: torch.Tensor, cond_vec: torch.Tensor,
                 prompt: torch.Tensor, prompt_mask: torch.Tensor) -> torch.Tensor:
        (v,) = self._run("dit_step", {"x_t": x_t.float(), "t": t.float(), "cond_tokens": cond_tokens,
                                      "cond_vec": cond_vec, "prompt": prompt.float(), "prompt_mask": prompt_mask.float()})
        return torch.from_numpy(v)
