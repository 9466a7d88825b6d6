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

__all__ = ["BACKEND_NAMES", "AUTO_ORDER", "check_backend", "make_backend", "select_backend", "available_backends"]

log = logging.getLogger(__name__)
BACKEND_NAMES = ("torch-cpu", "torch-cuda", "onnxruntime-cpu", "onnxruntime-cuda", "tensorrt")
AUTO_ORDER = ("tensorrt", "onnxruntime-cuda", "torch-cuda", "onnxruntime-cpu", "torch-cpu")


def _engine_dir(name: str, weights: Path | None, engines_dir: Path | None) -> Path:
    if weights is None:
        raise InvalidInputError(f"backend {name}: needs the weights folder its engines were exported from")
    from engines.cache import default_engine_dir

    return Path(engines_dir) if engines_dir else default_engine_dir(weights)


def check_backend(name: str, *, weights: Path | None, engines_dir: Path | None = None) -> None:
    """Raise a :class:`MuviError` saying why backend ``name`` cannot run here (GPU, packages,
    engines and their manifests); cheap: builds no ONNX Runtime session."""
    import torch

    if name not in BACKEND_NAMES:
        raise InvalidInputError(f"unknown backend {name!r}; choose from auto, {', '.join(BACKEND_NAMES)}")
    if (name.endswith("cuda") or name == "tensorrt") and not torch.cuda.is_available():
        raise InvalidInputError(f"backend {name}: no CUDA GPU is visible")
    if name.startswith("onnxruntime-"):
        from engines.ort_backend import OrtBackend

        OrtBackend.check(_engine_dir(name, weights, engines_dir), weights, device=name.removeprefix("onnxruntime-"))
    elif name == "tensorrt":
        from engines.tensorrt import import_tensorrt

        import_tensorrt("auto")
        _engine_dir(name, weights, engines_dir)


def make_backend(name: str, model: MuVi, *, weights: Path | None, engines_dir: Path | None = None) -> Backend:
    """The backend ``name``; raises a :class:`MuviError` saying why it cannot run here."""
    check_backend(name, weights=weights, engines_dir=engines_dir)
    if name.startswith("torch-"):
        return TorchBackend(model, name.removeprefix("torch-"))
    folder = _engine_dir(name, weights, engines_dir)
    if name == "tensorrt":
        from engines.tensorrt import TensorRTBackend

        return TensorRTBackend(folder, model.config)  # refuses plans whose manifest does not match
    from engines.ort_backend import OrtBackend

    return OrtBackend(folder, weights, device=name.removeprefix("onnxruntime-"))  # type: ignore[arg-type]


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


def available_backends(weights: Path | None = None, *, engines_dir: Path | None = None) -> list[str]:
    """Backends that would start here, in auto order; without ``weights`` only the torch ones
    are considered (engines belong to a checkpoint)."""
    names = []
    for candidate in AUTO_ORDER:
        if weights is None and not candidate.startswith("torch-"):
            continue
        try:
            check_backend(candidate, weights=weights, engines_dir=engines_dir)
        except (MuviError, ImportError):
            continue
        names.append(candidate)
    return names
