"""``export-engines``: ONNX graphs and TensorRT plans for the adaptor and the DiT step.

    export-engines --weights DIR [--out DIR] [--precision fp32|fp16|bf16]
                   [--builder auto|tensorrt|tensorrt_rtx|none] [--cpu-precision int8|fp32] [--force]

For each engine in :data:`engines.specs.SPECS`: export ONNX with the dynamo exporter (skipped
when the manifest says the graph is from these weights already), verify it with ONNX Runtime
against torch on fresh random inputs at several lengths (max relative error reported), then —
unless ``--builder none`` — build a TensorRT plan with the spec's optimisation profile, a
timing cache and FP32 normalisation under reduced precision. Engines that gain from it (the
DiT step) also get an int8 graph for the onnxruntime-cpu backend (dynamic quantisation,
verified against torch like the fp32 one); ``--cpu-precision fp32`` leaves it out. Every file is written
atomically, its manifest last. ``--out`` defaults to the cache folder the backends read
(``engines.cache.default_engine_dir``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Sequence

log = logging.getLogger("export-engines")
VERIFY_TOLERANCE = 1e-3  # max relative error of an fp32 graph against torch
INT8_TOLERANCE = 0.05  # of the int8 CPU graph (per call; measured about 0.02 on the shipped model)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="export-engines", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", metavar="DIR", required=True, type=Path, help="checkpoint folder (safetensors + JSON)")
    p.add_argument("--out", metavar="DIR", type=Path, default=None,
                   help="where graphs, plans and manifests go (default: the engine cache for these weights)")
    p.add_argument("--precision", choices=["fp32", "fp16", "bf16"], default="bf16", help="TensorRT plan precision")
    p.add_argument("--builder", choices=["auto", "tensorrt", "tensorrt_rtx", "none"], default="auto",
                   help="none: ONNX only (for the onnxruntime backends)")
    p.add_argument("--cpu-precision", choices=["int8", "fp32"], default="int8",
                   help="int8 (default): also write an int8 DiT graph, which onnxruntime-cpu then runs "
                        "(about 1.4x faster on AVX-512/VNNI CPUs); fp32: remove it, so onnxruntime-cpu runs fp32")
    p.add_argument("--force", action="store_true", help="re-export and rebuild even when manifests match")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def _sizes(profile: dict[str, tuple[int, int, int]]) -> list[dict[str, int]]:
    """Sizes to verify at, each once: the profile's min, opt and max, an odd size between, and
    the longest ``steps`` at the smallest ``batch``."""
    picks = [{k: v[i] for k, v in profile.items()} for i in range(3)]
    picks.append({k: max(v[0], min(v[2], (v[0] + v[1]) // 2 + 3)) for k, v in profile.items()})
    picks.append({k: v[0] if k == "batch" else v[2] for k, v in profile.items()})
    if "frames" in profile:  # keep the verification quick: the longest picture is 20 minutes
        for p in picks:
            p["frames"] = min(p["frames"], 1200)
    unique: list[dict[str, int]] = []
    for p in picks:
        if p not in unique:
            unique.append(p)
    return unique


def _verified(spec, model, path: Path, tolerance: float, what: str, hint: str,  # type: ignore[no-untyped-def]
              progress) -> dict[str, float]:
    """Verify ``path`` against torch at the profile's sizes; delete it and raise if it is off."""
    from export.onnx_export import ExportError, verify_onnx

    errors = verify_onnx(spec, model, path, sizes=_sizes(spec.profile(model.config)))
    worst = max(errors.values())
    progress(f"{spec.name}: {what} verified against torch at {len(errors)} sizes, max relative error {worst:.2e}")
    if worst > tolerance:
        path.unlink()
        raise ExportError(f"{spec.name}: {what} differs from torch (max relative error {worst:.2e} > {tolerance:g}: "
                          f"{json.dumps(errors)}); nothing was kept{hint}")
    return errors


def export_all(weights: Path, out: Path, *, precision: str, builder: str, force: bool, cpu_precision: str = "int8",
               progress=print) -> dict[str, dict[str, object]]:  # type: ignore[no-untyped-def]
    from engines.manifest import mismatches, read_manifest, sha256_file, write_manifest
    from engines.ort_backend import int8_expected, onnx_expected
    from engines.specs import SPECS
    from export.onnx_export import INT8_METHOD, export_onnx, quantize_int8
    from muvi.weights import load_checkpoint

    model, _ = load_checkpoint(weights)
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, dict[str, object]] = {}
    if builder == "auto":  # plans where TensorRT and a GPU are here; otherwise ONNX only, said plainly
        from engines.tensorrt import TensorRTError, gpu_identity, import_tensorrt

        try:
            import_tensorrt("auto")
            gpu_identity()
        except TensorRTError as exc:
            progress(f"TensorRT plans skipped ({exc}); the ONNX graphs serve the onnxruntime backends")
            builder = "none"
    for name, spec in SPECS.items():
        onnx, manifest_path = out / f"{name}.onnx", out / f"{name}.json"
        profile = {k: list(v) for k, v in spec.profile(model.config).items()}
        expected = {**onnx_expected(weights, name), "profile": profile}  # another profile: export again
        row: dict[str, object] = {}
        if not force and onnx.is_file() and not mismatches(read_manifest(manifest_path), expected):
            progress(f"{name}: ONNX up to date ({onnx})")
            row.update(read_manifest(manifest_path) or {})
        else:
            t = time.perf_counter()
            progress(f"{name}: exporting ONNX (dynamo) ...")
            export_onnx(spec, model, onnx)
            errors = _verified(spec, model, onnx, VERIFY_TOLERANCE, "ONNX", "", progress)
            row = {**expected, "onnx_sha256": sha256_file(onnx), "verify_max_rel_error": errors,
                   "export_s": round(time.perf_counter() - t, 1)}
            write_manifest(manifest_path, row)
        q8, q8_manifest = out / f"{name}.int8.onnx", out / f"{name}.int8.json"
        if spec.cpu_int8 and cpu_precision == "int8":
            q_expected = {**int8_expected(weights, name, str(row["onnx_sha256"])), "profile": profile}
            if not force and q8.is_file() and not mismatches(read_manifest(q8_manifest), q_expected):
                progress(f"{name}: int8 CPU graph up to date ({q8})")
            else:
                t = time.perf_counter()
                progress(f"{name}: quantising to int8 for onnxruntime-cpu ...")
                q8_manifest.unlink(missing_ok=True)  # the graph is never newer than a manifest that vouches for it
                quantize_int8(onnx, q8)
                errors = _verified(spec, model, q8, INT8_TOLERANCE, "the int8 graph", ": use --cpu-precision fp32",
                                   progress)
                write_manifest(q8_manifest, {**q_expected, "quantization": INT8_METHOD, "onnx_sha256": sha256_file(q8),
                                             "verify_max_rel_error": errors,
                                             "quantize_s": round(time.perf_counter() - t, 1)})
            row["cpu_int8"] = read_manifest(q8_manifest)
        elif q8.exists() or q8_manifest.exists():
            q8_manifest.unlink(missing_ok=True)
            q8.unlink(missing_ok=True)
            progress(f"{name}: removed the int8 CPU graph (--cpu-precision fp32)")
        if builder != "none":
            from engines.tensorrt import build_plan

            t = time.perf_counter()
            progress(f"{name}: building the TensorRT plan ({precision}) ...")
            plan_manifest = build_plan(spec, model.config, onnx, out / f"{name}.plan", precision=precision,
                                       builder=builder, timing_cache=out / "timing.cache", force=force)
            row["plan"] = plan_manifest
            progress(f"{name}: plan ready ({plan_manifest.get('tensorrt')}, compute capability "
                     f"{plan_manifest.get('compute_capability')}, {time.perf_counter() - t:.0f} s)")
        summary[name] = row
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from muvi.errors import MuviError

    try:
        if not (args.weights / "config.json").is_file():
            from muvi.errors import InvalidInputError

            raise InvalidInputError(f"no checkpoint at {args.weights} (a folder with config.json)")
        if args.out is None:
            from engines.cache import default_engine_dir

            args.out = default_engine_dir(args.weights)
        export_all(args.weights, args.out, precision=args.precision, builder=args.builder, force=args.force,
                   cpu_precision=args.cpu_precision)
    except MuviError as exc:
        print(f"export-engines: error: {exc}", file=sys.stderr)
        return 2
    print(f"engines in {args.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
