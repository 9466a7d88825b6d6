"""``export-engines``: builds ONNX graphs and TensorRT plans for the adaptor and DiT step.

Until the export work lands this command only documents its interface: it prints its help and
exits with status 2 without touching any file.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="export-engines",
        description="Export muvi's adaptor and DiT step to ONNX and build TensorRT plans (not built yet).",
    )
    p.add_argument("--weights", metavar="DIR", help="checkpoint folder (safetensors + JSON)")
    p.add_argument("--out", metavar="DIR", help="where ONNX graphs, plans and manifests go")
    p.add_argument("--precision", choices=["fp32", "fp16", "bf16"], default="bf16")
    p.add_argument("--builder", choices=["auto", "tensorrt", "tensorrt_rtx", "none"], default="auto")
    p.add_argument("--force", action="store_true", help="rebuild even when a matching plan exists")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    parser.parse_args(argv)
    parser.print_help()
    print("\nexport-engines: engine export is not implemented yet; nothing was done.", file=sys.stderr)
    return 2
