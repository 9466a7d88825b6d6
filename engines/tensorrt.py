"""TensorRT plans: one module for the ``tensorrt`` package (any NVIDIA GPU from Turing on) and
``tensorrt_rtx`` (desktop RTX cards), for building (``export-engines``) and running (backend).

Both flavours expose the same Python API (``Builder``, ``OnnxParser``, ``Runtime``,
``IExecutionContext.execute_async_v3``); the differences handled here: TensorRT-RTX networks are
strongly typed (precision comes from the ONNX graph, so only ``fp32`` graphs are built with it)
and it compiles ahead of time, specialising on the user's card at load.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

import torch

from engines.manifest import mismatches, read_manifest, sha256_file, write_manifest
from engines.specs import SPECS, EngineSpec
from muvi.errors import MuviError
from muvi.fileio import atomic_path
from muvi.nn.model import ModelConfig

__all__ = ["FLAVOURS", "import_tensorrt", "gpu_identity", "plan_expected", "build_plan", "TensorRTBackend"]

log = logging.getLogger(__name__)
FLAVOURS = {"tensorrt": ("tensorrt",), "tensorrt_rtx": ("tensorrt_rtx", "tensorrt_rtx_bindings")}


class TensorRTError(MuviError):
    """TensorRT is missing, a plan does not fit, or a build failed (naming the layer)."""


def import_tensorrt(builder: str = "auto") -> tuple[str, Any]:
    """``(flavour, module)`` for ``tensorrt``, ``tensorrt_rtx`` or the first importable (``auto``)."""
    order = ["tensorrt", "tensorrt_rtx"] if builder == "auto" else [builder]
    tried = []
    for flavour in order:
        for module in FLAVOURS[flavour]:
            try:
                return flavour, importlib.import_module(module)
            except ImportError as exc:
                tried.append(f"{module} ({exc})")
    raise TensorRTError("TensorRT is not installed: tried " + ", ".join(tried) +
                        " (pip install 'muvi[tensorrt]' or tensorrt-rtx for desktop RTX cards)")


def gpu_identity() -> dict[str, Any]:
    if not torch.cuda.is_available():
        raise TensorRTError("TensorRT needs a CUDA GPU and none is visible")
    major, minor = torch.cuda.get_device_capability(0)
    return {"compute_capability": f"{major}.{minor}", "gpu": torch.cuda.get_device_name(0)}


def plan_expected(onnx: Path, *, precision: str, flavour: str, trt: Any, profile: dict[str, Any]) -> dict[str, Any]:
    """The cache key of a plan (DESIGN §7): every field must match for a plan to be used."""
    return {"onnx_sha256": sha256_file(onnx), "precision": precision, "tensorrt": f"{flavour} {trt.__version__}",
            "compute_capability": gpu_identity()["compute_capability"],
            "profile": {k: list(v) for k, v in profile.items()}}


class _Logger:
    def __new__(cls, trt: Any) -> Any:  # a trt.ILogger that keeps errors for the message
        class Logger(trt.ILogger):
            def __init__(self) -> None:
                trt.ILogger.__init__(self)
                self.errors: list[str] = []

            def log(self, severity: Any, msg: str) -> None:
                if severity <= trt.ILogger.Severity.ERROR:
                    self.errors.append(msg)
                    log.error("tensorrt: %s", msg)
                elif severity <= trt.ILogger.Severity.WARNING:
                    log.warning("tensorrt: %s", msg)

        return Logger()


def _progress_monitor(trt: Any, label: str) -> Any | None:
    if not hasattr(trt, "IProgressMonitor"):
        return None
    from tqdm import tqdm

    class Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self.bars: dict[str, Any] = {}

        def phase_start(self, parent: str | None, name: str, steps: int) -> None:
            self.bars[name] = tqdm(total=steps, desc=f"{label}: {name}", leave=False)

        def step_complete(self, name: str, step: int) -> bool:
            bar = self.bars.get(name)
            if bar is not None:
                bar.n = step + 1
                bar.refresh()
            return True  # False would cancel the build

        def phase_finish(self, name: str) -> None:
            bar = self.bars.pop(name, None)
            if bar is not None:
                bar.close()

    return Monitor()


def build_plan(spec: EngineSpec, config: ModelConfig, onnx: Path, plan: Path, *, precision: str, builder: str,
               timing_cache: Path, force: bool = False) -> dict[str, Any]:
    """Build (or keep, if its manifest matches) ``plan`` from ``onnx``; returns the manifest."""
    flavour, trt = import_tensorrt(builder)
    profile = spec.profile(config)
    expected = plan_expected(onnx, precision=precision, flavour=flavour, trt=trt, profile=profile)
    manifest_path = plan.with_suffix(".json")
    if not force and plan.is_file() and not mismatches(read_manifest(manifest_path), expected):
        log.info("%s: plan up to date", plan)
        return read_manifest(manifest_path) or {}
    if flavour == "tensorrt_rtx" and precision != "fp32":
        raise TensorRTError(f"{spec.name}: TensorRT-RTX builds strongly typed networks; build --precision fp32 "
                            "(its JIT picks the card's fast kernels) or use the tensorrt package for fp16/bf16")
    logger = _Logger(trt)
    b = trt.Builder(logger)
    strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    flags = 1 << int(strongly_typed) if flavour == "tensorrt_rtx" and strongly_typed is not None else 0
    network = b.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx)):
        errors = [parser.get_error(i) for i in range(parser.num_errors)]
        detail = "; ".join(f"node {e.node_name() or e.node()} ({e.node_operator()}): {e.desc()}" for e in errors)
        raise TensorRTError(f"{spec.name}: TensorRT could not parse {onnx.name}: {detail}")
    cfg = b.create_builder_config()
    if precision in ("fp16", "bf16"):
        cfg.set_flag(trt.BuilderFlag.FP16 if precision == "fp16" else trt.BuilderFlag.BF16)
        # normalisation in FP32: LayerNorm after attention overflows in FP16 (TensorRT#2564)
        cfg.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        for i in range(network.num_layers):
            layer = network.get_layer(i)
            if layer.type == trt.LayerType.NORMALIZATION or "norm" in layer.name.lower():
                layer.precision = trt.float32
                for j in range(layer.num_outputs):
                    layer.set_output_type(j, trt.float32)
    opt_profile = b.create_optimization_profile()
    lo, opt, hi = ({k: v[i] for k, v in profile.items()} for i in range(3))
    for t in spec.inputs:
        opt_profile.set_shape(t.name, spec.shape(t, config, lo), spec.shape(t, config, opt), spec.shape(t, config, hi))
    cfg.add_optimization_profile(opt_profile)
    cache = cfg.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file() else b"")
    cfg.set_timing_cache(cache, ignore_mismatch=False)
    monitor = _progress_monitor(trt, spec.name)
    if monitor is not None:
        cfg.progress_monitor = monitor
    serialized = b.build_serialized_network(network, cfg)
    if serialized is None:
        raise TensorRTError(f"{spec.name}: the TensorRT build failed: " + ("; ".join(logger.errors) or "no detail"))
    with atomic_path(timing_cache) as tmp:
        tmp.write_bytes(bytes(cfg.get_timing_cache().serialize()))
    with atomic_path(plan) as tmp:
        tmp.write_bytes(bytes(serialized))
    manifest = {**expected, "engine": spec.name, "gpu": gpu_identity()["gpu"], "plan_bytes": plan.stat().st_size}
    write_manifest(manifest_path, manifest)  # written last: a plan without one is never used
    return manifest


_TORCH = {"float32": torch.float32, "int64": torch.int64, "bool": torch.bool}


class TensorRTBackend:
    """Runs ``adaptor.plan`` and ``dit_step.plan`` on the GPU with torch CUDA tensors as I/O."""

    name = "tensorrt"

    def __init__(self, engines_dir: Path, config: ModelConfig, *, precision: str | None = None) -> None:
        flavour, trt = import_tensorrt("auto")
        self.trt, self.device = trt, torch.device("cuda")
        self.runtime = trt.Runtime(_Logger(trt))
        self.engines, self.contexts = {}, {}
        for name, spec in SPECS.items():
            plan, onnx = Path(engines_dir) / f"{name}.plan", Path(engines_dir) / f"{name}.onnx"
            if not plan.is_file() or not onnx.is_file():
                raise TensorRTError(f"tensorrt: no {name}.plan in {engines_dir} (run export-engines on this machine)")
            manifest = read_manifest(plan.with_suffix(".json"))
            want = plan_expected(onnx, precision=(manifest or {}).get("precision", precision or "bf16"),
                                 flavour=flavour, trt=trt, profile=spec.profile(config))
            bad = mismatches(manifest, want)
            if bad:
                raise TensorRTError(f"tensorrt: {plan} does not fit this GPU or these weights ({'; '.join(bad)}); "
                                    "run export-engines again (it rebuilds)")
            engine = self.runtime.deserialize_cuda_engine(plan.read_bytes())
            if engine is None:
                raise TensorRTError(f"tensorrt: {plan} could not be loaded")
            self.engines[name], self.contexts[name] = engine, engine.create_execution_context()
        self.stream = torch.cuda.Stream()
        self.max_steps = min(spec.profile(config)["steps"][2] for spec in SPECS.values())  # the plans' profile

    def _run(self, name: str, feeds: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        spec, ctx = SPECS[name], self.contexts[name]
        keep = []
        for t in spec.inputs:
            x = feeds[t.name].to(self.device, _TORCH[t.dtype]).contiguous()
            keep.append(x)
            ctx.set_input_shape(t.name, tuple(x.shape))
            ctx.set_tensor_address(t.name, x.data_ptr())
        outs = []
        for t in spec.outputs:
            y = torch.empty(tuple(ctx.get_tensor_shape(t.name)), dtype=_TORCH[t.dtype], device=self.device)
            ctx.set_tensor_address(t.name, y.data_ptr())
            outs.append(y)
        if not ctx.execute_async_v3(self.stream.cuda_stream):
            raise TensorRTError(f"tensorrt: {name} failed to run")
        self.stream.synchronize()
        return outs

    def condition(self, patches: torch.Tensor, positions: torch.Tensor, style: torch.Tensor, mood: torch.Tensor,
                  drop: torch.Tensor, controls: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens, vec = self._run("adaptor", {"patches": patches, "positions": positions, "style": style, "mood": mood,
                                            "drop": drop, "controls": controls})
        return tokens, vec

    def velocity(self, x_t: torch.Tensor, t: torch.Tensor, cond_tokens: torch.Tensor, cond_vec: torch.Tensor,
                 prompt: torch.Tensor, prompt_mask: torch.Tensor) -> torch.Tensor:
        (v,) = self._run("dit_step", {"x_t": x_t, "t": t, "cond_tokens": cond_tokens, "cond_vec": cond_vec,
                                      "prompt": prompt, "prompt_mask": prompt_mask})
        return v.cpu()
