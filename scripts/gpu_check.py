"""Everything muvi needs a GPU for, in one call, with one table at the end (issue "On a GPU").

    python scripts/gpu_check.py --out $OUT [--wheels gpu-wheels] [--train-steps 60]

On a machine with a CUDA GPU (the device machine: Python 3.12, torch already there, no network):

1. installs what is missing from wheels prepared beforehand in ``--wheels`` (an ignored folder;
   ``--prepare`` downloads them here for Python 3.12 and says whether they fit the 64 MiB
   the device machine's transfer carries);
2. runs the GPU-marked tests (``pytest -m gpu``);
3. ``export-engines`` with the TensorRT builder when ``tensorrt`` or ``tensorrt_rtx`` imports
   (else ONNX only), and says whether plans were built and whether they ran;
4. ``benchmarks/engines.py``: every backend's speed (sampling 60 s of music; target ≤ 50 ms on
   the GPU) and its parity with torch-cpu on the demo clip (notes agreeing ≥ 99 %);
5. ``benchmarks/e2e.py`` (the whole job on a 60 s 1080p clip);
6. a short run of the ``compact`` GPU recipe (bf16, NCCL on one GPU): windows per second and
   whether the loss falls.

Each step that cannot run here is skipped with the reason (no CUDA, a package missing), so on a
CPU the script runs through in seconds and a GPU run spends no time on mistakes. Everything it
measured goes to ``--out``/gpu_check.json and the table to standard output.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
WHEELS = ("av", "onnxruntime-gpu", "tensorrt-rtx", "grpcio", "mido", "music21", "pyfluidsynth", "safetensors",
          "opentimelineio", "pyloudnorm", "librosa", "onnxscript")
TRANSFER_LIMIT = 64 * 2**20


def _cuda() -> str | None:
    """None when a CUDA GPU is usable, else why not."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    return None if torch.cuda.is_available() else "no CUDA GPU (torch.cuda.is_available() is False)"


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _run(cmd: list[str], *, timeout: float, env: dict[str, str] | None = None) -> tuple[int, str]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})
    tail = (p.stdout + p.stderr)[-3000:]
    return p.returncode, f"({time.perf_counter() - t0:.0f} s) {tail}"


def _json_tail(text: str) -> dict[str, Any] | None:
    """The last JSON object a benchmark printed."""
    start = text.rfind("\n{")
    try:
        return json.loads(text[start + 1:] if start >= 0 else text[text.index("{"):])
    except (ValueError, json.JSONDecodeError):
        return None


def step_install(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(args.wheels)
    wheels = sorted(folder.glob("*.whl")) if folder.is_dir() else []
    if not wheels:
        return {"status": "skipped", "why": f"no wheels in {folder} (run --prepare on a machine with a network)"}
    code, out = _run([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", *map(str, wheels)], timeout=300)
    return {"status": "ok" if code == 0 else "failed", "wheels": [w.name for w in wheels], "log": out[-500:]}


def step_tests(args: argparse.Namespace) -> dict[str, Any]:
    code, out = _run([sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider"], timeout=300)
    return {"status": "ok" if code == 0 else "failed", "log": out[-800:]}


def step_export(args: argparse.Namespace) -> dict[str, Any]:
    builder = "tensorrt_rtx" if _has("tensorrt_rtx") else "tensorrt" if _has("tensorrt") else "none"
    cmd = [sys.executable, "-m", "export.cli", "--weights", str(args.weights), "--builder", builder]
    if builder != "none":
        cmd += ["--precision", "bf16"]
    code, out = _run(cmd, timeout=420)
    return {"status": "ok" if code == 0 else "failed", "builder": builder,
            "plans_built": builder != "none" and code == 0, "log": out[-800:]}


def step_engines(args: argparse.Namespace) -> dict[str, Any]:
    code, out = _run([sys.executable, "benchmarks/engines.py", "--weights", str(args.weights)], timeout=420)
    return {"status": "ok" if code == 0 else "failed", "result": _json_tail(out), "log": out[-800:]}


def step_e2e(args: argparse.Namespace) -> dict[str, Any]:
    code, out = _run([sys.executable, "benchmarks/e2e.py", "--weights", str(args.weights), "--no-preview"], timeout=420)
    return {"status": "ok" if code == 0 else "failed", "result": _json_tail(out), "log": out[-800:]}


def step_train(args: argparse.Namespace) -> dict[str, Any]:
    run = Path(args.out) / "gpu-train"
    code, out = _run([sys.executable, "-m", "muvi", "train", "--config", "configs/gpu-1.yaml", "--out", str(run),
                      "--stop-after", str(args.train_steps), "--quiet"], timeout=540)
    log = run / "train_log.csv"
    rows = log.read_text().splitlines()[1:] if log.is_file() else []
    losses = [float(r.split(",")[2]) for r in rows]
    rates = [float(r.split(",")[6]) for r in rows]
    return {"status": "ok" if code == 0 else "failed", "windows_per_s": rates[-1] if rates else None,
            "loss_first": losses[0] if losses else None, "loss_last": losses[-1] if losses else None,
            "loss_falls": len(losses) > 1 and losses[-1] < losses[0], "log": out[-800:]}


STEPS: dict[str, tuple[Callable[[argparse.Namespace], dict[str, Any]], bool]] = {
    # name: (step, needs a CUDA GPU)
    "install wheels": (step_install, False),
    "pytest -m gpu": (step_tests, True),
    "export-engines": (step_export, True),
    "engines benchmark + parity": (step_engines, True),
    "e2e benchmark": (step_e2e, True),
    "compact GPU recipe": (step_train, True),
}


def prepare(folder: Path) -> int:
    """Download the device machine's wheels (Python 3.12, manylinux x86_64) and say whether they fit."""
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--python-version", "3.12",
           "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux2014_x86_64", "-d", str(folder), *WHEELS]
    code = subprocess.run(cmd).returncode
    total = sum(p.stat().st_size for p in folder.glob("*.whl"))
    print(json.dumps({"wheels": sorted(p.name for p in folder.glob("*.whl")), "bytes": total,
                      "fits_one_transfer": total <= TRANSFER_LIMIT}, indent=1))
    return code


def _table(results: dict[str, dict[str, Any]]) -> str:
    lines = [f"{'step':<28} {'status':<8} detail", "-" * 80]
    for name, r in results.items():
        detail = r.get("why", "")
        if name == "export-engines" and r["status"] == "ok":
            detail = f"builder {r['builder']}, plans {'built' if r['plans_built'] else 'not built'}"
        elif name == "compact GPU recipe" and r["status"] == "ok":
            detail = f"{r['windows_per_s']} windows/s, loss {r['loss_first']} → {r['loss_last']}"
        elif "result" in r and isinstance(r.get("result"), dict):
            detail = json.dumps(r["result"].get("backends", r["result"]))[:200]
        lines.append(f"{name:<28} {r['status']:<8} {detail}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "out/gpu-check")))
    ap.add_argument("--wheels", type=Path, default=ROOT / "gpu-wheels")
    ap.add_argument("--weights", type=Path, default=ROOT / "weights" / "muvi")
    ap.add_argument("--train-steps", type=int, default=60)
    ap.add_argument("--prepare", action="store_true", help="download the wheels into --wheels and stop")
    args = ap.parse_args()
    if args.prepare:
        return prepare(args.wheels)
    args.out.mkdir(parents=True, exist_ok=True)
    no_gpu = _cuda()
    results: dict[str, dict[str, Any]] = {}
    for name, (step, needs_gpu) in STEPS.items():
        if needs_gpu and no_gpu:
            results[name] = {"status": "skipped", "why": no_gpu}
            continue
        try:
            results[name] = step(args)
        except subprocess.TimeoutExpired as exc:
            results[name] = {"status": "failed", "why": f"timed out after {exc.timeout:.0f} s"}
    (args.out / "gpu_check.json").write_text(json.dumps(results, indent=1, default=str))
    print(_table(results))
    return 0 if all(r["status"] in ("ok", "skipped") for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
