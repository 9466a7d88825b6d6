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


def int8_expected(weights: Path, name: str, source_sha256: str) -> dict[str, object]:
    """What an int8 CPU graph's manifest must say: these weights, quantised from this fp32 graph."""
    return {**onnx_expected(weights, name), "precision": "int8", "source_onnx_sha256": source_sha256}


def _max_steps(graph: Path) -> int:
    """The longest ``steps`` in the profile ``graph`` was verified at (its manifest's, or for an
    int8 graph whose manifest predates the field, its fp32 source's)."""
    for manifest in (graph.with_suffix(".json"), graph.with_name(graph.name.split(".")[0] + ".json")):
        profile = (read_manifest(manifest) or {}).get("profile")
        if profile:
            return int(profile["steps"][2])
    raise BackendUnavailable(f"{graph}: its manifest records no profile; run export-engines --force")


class OrtBackend:
    """``onnxruntime-cpu`` or ``onnxruntime-cuda``: runs ``adaptor.onnx`` and ``dit_step.onnx``
    from ``engines_dir`` after checking their manifests against ``weights``.

    On the CPU, ``precision="auto"`` runs an engine's int8 graph (``<engine>.int8.onnx``, from
    ``export-engines``) where one matches these weights and that fp32 graph, and says so in
    :attr:`precision`; ``"fp32"`` never does; ``"int8"`` requires it."""

    def __init__(self, engines_dir: Path, weights: Path, *, device: str = "cpu", threads: int | None = None,
                 precision: str = "auto") -> None:
        import onnxruntime as ort

        paths = self.check(engines_dir, weights, device=device, precision=precision)
        self.name, self.device = f"onnxruntime-{device}", device
        self.precision = "int8" if any(p.name.endswith(".int8.onnx") for p in paths.values()) else "fp32"
        # the longest call the graphs were exported and verified for (their manifests' profiles)
        self.max_steps = min(_max_steps(path) for path in paths.values())
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        provider = _PROVIDERS[device]
        self.sessions = {name: ort.InferenceSession(str(path), sess_options=opts, providers=[provider])
                         for name, path in paths.items()}
        self._outputs = {name: [o.name for o in s.get_outputs()] for name, s in self.sessions.items()}

    @staticmethod
    def check(engines_dir: Path, weights: Path, *, device: str = "cpu", precision: str = "auto") -> dict[str, Path]:
        """The graphs this backend would load; raises :class:`BackendUnavailable` saying why it
        cannot run (no provider, no graph, a manifest from other weights). Builds no session."""
        import onnxruntime as ort

        name = f"onnxruntime-{device}"
        if precision not in ("auto", "fp32", "int8") or (precision == "int8" and device != "cpu"):
            raise BackendUnavailable(f"{name}: precision {precision!r} is not offered (auto or fp32; int8 on the CPU)")
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
            manifest = read_manifest(path.with_suffix(".json"))
            bad = mismatches(manifest, onnx_expected(weights, engine))
            if bad:
                raise BackendUnavailable(f"{name}: {path} was exported from other weights or settings "
                                         f"({'; '.join(bad)}); run export-engines --force")
            paths[engine] = path
            q8 = path.with_name(f"{engine}.int8.onnx")
            if device != "cpu" or precision == "fp32" or not (SPECS[engine].cpu_int8 and (q8.exists() or precision == "int8")):
                continue
            why = "missing" if not q8.is_file() else "; ".join(mismatches(
                read_manifest(q8.with_suffix(".json")),
                int8_expected(weights, engine, str((manifest or {}).get("onnx_sha256")))))
            if not why:
                paths[engine] = q8
            elif precision == "int8":
                raise BackendUnavailable(f"{name}: no usable {q8.name} ({why}); run export-engines --cpu-precision int8")
            else:
                log.warning("%s: not using %s (%s); running the fp32 graph — export-engines rebuilds it", name, q8, why)
        return paths

    def _run(self, name: str, feeds: dict[str, torch.Tensor]) -> list[np.ndarray]:
        return self.sessions[name].run(self._outputs[name], {k: v.detach().cpu().numpy() for k, v in feeds.items()})

    def condition(self, patches: torch.Tensor, positions: torch.Tensor, style: torch.Tensor, mood: torch.Tensor,
                  drop: torch.Tensor, controls: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens, vec = self._run("adaptor", {"patches": patches.float(), "positions": positions.float(),
                                            "style": style.long(), "mood": mood.long(), "drop": drop.bool(),
                                            "controls": controls.float()})
        return torch.from_numpy(tokens), torch.from_numpy(vec)

    def velocity(self, x_t: torch.Tensor, t: torch.Tensor, cond_tokens: torch.Tensor, cond_vec: torch.Tensor,
                 prompt: torch.Tensor, prompt_mask: torch.Tensor) -> torch.Tensor:
        (v,) = self._run("dit_step", {"x_t": x_t.float(), "t": t.float(), "cond_tokens": cond_tokens,
                                      "cond_vec": cond_vec, "prompt": prompt.float(), "prompt_mask": prompt_mask.float()})
        return torch.from_numpy(v)
