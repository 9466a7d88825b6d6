"""torch → ONNX with the dynamo exporter, and verification against torch with ONNX Runtime."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from engines.specs import OPSET, EngineSpec
from muvi.errors import MuviError
from muvi.fileio import atomic_path
from muvi.nn.model import MuVi

__all__ = ["OPSET", "ExportError", "export_onnx", "verify_onnx", "quantize_int8", "INT8_METHOD"]

log = logging.getLogger(__name__)


class ExportError(MuviError):
    """Export or verification failed; the message names the engine and the op or input."""


def export_onnx(spec: EngineSpec, model: MuVi, path: Path) -> Path:
    """Write ``spec``'s graph for ``model`` to ``path`` (atomically), with its dynamic axes."""
    config = model.config
    module = spec.module(model).eval()
    inputs = spec.sample_inputs(config)
    dims = {name: torch.export.Dim(name, min=lo, max=hi) for name, (lo, _, hi) in spec.profile(config).items()}
    dynamic = tuple({i: dims[d] for i, d in enumerate(t.dims) if isinstance(d, str) and d in dims} for t in spec.inputs)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # "torchvision is not installed" notices
    with atomic_path(Path(path)) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(module, inputs, dynamo=True, input_names=spec.input_names,
                                        output_names=spec.output_names, dynamic_shapes=dynamic, opset_version=OPSET,
                                        optimize=True, verbose=False)
        except Exception as exc:  # the exporter's errors are long; keep the op it names
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExportError(f"{spec.name}: ONNX export failed: {first}") from exc
        program.save(str(tmp))
    return Path(path)


def verify_onnx(spec: EngineSpec, model: MuVi, path: Path, *, sizes: list[dict[str, int]],
                providers: list[str] | None = None, seed: int = 1) -> dict[str, float]:
    """Max relative error of the ONNX graph against torch at each of ``sizes`` (fresh random
    inputs each time); returns ``{"steps=64,batch=1": err, ...}``."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=providers or ["CPUExecutionProvider"])
    module = spec.module(model).eval()
    g = torch.Generator().manual_seed(seed)
    report = {}
    for size in sizes:
        inputs = spec.sample_inputs(model.config, sizes=size, generator=g)
        with torch.no_grad():
            ref = module(*inputs)
        ref = ref if isinstance(ref, tuple) else (ref,)
        got = session.run(spec.output_names, {t.name: x.numpy() for t, x in zip(spec.inputs, inputs)})
        err = 0.0
        for r, o in zip(ref, got):
            r = r.numpy()
            if r.shape != o.shape:
                raise ExportError(f"{spec.name}: ONNX output shape {o.shape} ≠ torch {r.shape} at {size}")
            err = max(err, float(np.abs(o - r).max() / max(float(np.abs(r).max()), 1e-6)))
        report[",".join(f"{k}={v}" for k, v in sorted(size.items()))] = err
    return report


INT8_METHOD = ("dynamic: MatMul/Gemm weights int8 per output channel, activations uint8 per call; "
               "the first and last two products (input and output projections) kept fp32")
KEEP_FP32 = 2  # matrix products at each end of the graph left in fp32


def _boundary_products(source: Path) -> list[str]:
    """Names of the first and last :data:`KEEP_FP32` MatMul/Gemm nodes (graph order): the input
    projection and the output projection with its modulation. Quantising them cost the most
    accuracy: with the v2 weights the int8 DiT step drifted to 7 % of torch with them, past the 5 %
    the export allows."""
    import onnx

    model = onnx.load(str(source), load_external_data=False)
    products = [n.name for n in model.graph.node if n.op_type in ("MatMul", "Gemm")]
    return products[:KEEP_FP32] + products[-KEEP_FP32:] if len(products) > 2 * KEEP_FP32 else []


def quantize_int8(source: Path, path: Path) -> Path:
    """Write an int8 copy of the fp32 graph ``source`` to ``path`` (atomically) for ONNX
    Runtime's CPU provider: weights quantised per output channel ahead of time, activations
    quantised on the fly (VNNI / AVX-512 integer kernels). No calibration data is needed."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser's "consider pre-processing" notice on the root logger
    try:
        with atomic_path(Path(path)) as tmp:
            try:
                quantize_dynamic(str(source), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                                 op_types_to_quantize=["MatMul", "Gemm"], nodes_to_exclude=_boundary_products(source))
            except Exception as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ExportError(f"{Path(source).name}: int8 quantisation failed: {first}") from exc
    finally:
        root.setLevel(level)
    return Path(path)
