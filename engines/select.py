"""Backend selection: an explicit ``--backend`` or the best one this machine can run.

``auto`` tries tensorrt → onnxruntime-cuda → torch-cuda → onnxruntime-cpu → torch-cpu and logs
why each earlier one was skipped (no GPU, no engines exported, manifest mismatch, package
missing). The chosen backend's name goes into every result report.
"""

from __future__ import annotations

import logging
from pathlib import Path

from muvi.backend import Backend, TorchBackend
from muvi.errors import InvalidInputError, MuviError
from muvi.nn.model import MuVi

__all__ = ["BACKEND_NAMES", "AUTO_ORDER", "make_backend", "select_backend", "available_backends"]

log = logging.getLogger(__name__)
BACKEND_NAMES = ("torch-cpu", "torch-cuda", "onnxruntime-cpu", "onnxruntime-cuda", "tensorrt")
AUTO_ORDER = ("tensorrt", "onnxruntime-cuda", "torch-cuda", "onnxruntime-cpu", "torch-cpu")


def make_backend(name: str, model: MuVi, *, weights: Path | None, engines_dir: Path | None = None) -> Backend:
    """The backend ``name``; raises a :class:`MuviError` saying why it cannot run here."""
    import torch

    if name not in BACKEND_NAMES:
        raise InvalidInputError(f"unknown backend {name!r}; choose from auto, {', '.join(BACKEND_NAMES)}")
    if name.endswith("cuda") or name == "tensorrt":
        if not torch.cuda.is_available():
            raise InvalidInputError(f"backend {name}: no CUDA GPU is visible")
    if name.startswith("torch-"):
        return TorchBackend(model, name.removeprefix("torch-"))
    if weights is None:
        raise InvalidInputError(f"backend {name}: needs the weights folder its engines were exported from")
    from engines.cache import default_engine_dir

    engines_dir = Path(engines_dir) if engines_dir else default_engine_dir(weights)
    if name == "tensorrt":
        from engines.tensorrt import TensorRTBackend

        return TensorRTBackend(engines_dir, model.config)
    from engines.ort_backend import OrtBackend

    return OrtBackend(engines_dir, weights, device=name.removeprefix("onnxruntime-"))


def select_backend(name: str, model: MuVi, *, weights: Path | None = None, engines_dir: Path | None = None) -> Backend:
    """``name`` or, for ``auto``, the first of :data:`AUTO_ORDER` that can run."""
    if name != "auto":
        return make_backend(name, model, weights=weights, engines_dir=engines_dir)
    for candidate in AUTO_ORDER:
        try:
            backend = make_backend(candidate, model, weights=weights, engines_dir=engines_dir)
        except (MuviError, ImportError) as exc:
            log.info("backend auto: skipping %s: %s", candidate, exc)
            continue
        log.info("backend auto: %s", candidate)
        return backend
    raise MuviError("no backend can run here")  # torch-cpu always can: unreachable in practice


def available_backends(model: MuVi | None = None, *, weights: Path | None = None,
                       engines_dir: Path | None = None) -> list[str]:
    """Backends that would start here, in auto order (with ``model``: really constructed)."""
    import torch

    names = []
    for candidate in AUTO_ORDER:
        if model is None:
            ok = candidate.startswith("torch-") and (candidate == "torch-cpu" or torch.cuda.is_available())
        else:
            try:
                make_backend(candidate, model, weights=weights, engines_dir=engines_dir)
                ok = True
            except (MuviError, ImportError):
                ok = False
        if ok:
            names.append(candidate)
    return names
