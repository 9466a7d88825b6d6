"""Generate the Python gRPC code for ``protos/`` into ``plugin_server/`` (checked in).

    python -m plugin_server.codegen            # rewrite the checked-in files
    python -m plugin_server.codegen --check    # exit 1 if they differ from the protos

The generated ``*_pb2_grpc.py`` imports its messages by the proto's path
(``from muvi.plugin.v1 import plugin_pb2``), which would collide with the ``muvi`` package;
the import is rewritten to this package's module path.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTOS = ROOT / "protos"
PROTO_FILES = ("muvi/plugin/v1/plugin.proto",)
PACKAGE = "plugin_server"  # muvi/plugin/v1/x.proto → plugin_server/v1/x_pb2.py
GENERATED = ("plugin_pb2.py", "plugin_pb2.pyi", "plugin_pb2_grpc.py")


def _target(proto_rel: str) -> Path:
    return Path(PACKAGE) / Path(proto_rel).parent.relative_to("muvi/plugin")


def generate(out_root: Path) -> list[Path]:
    """Run protoc for every proto into ``out_root/plugin_server/v1/``; returns the files written."""
    from grpc_tools import protoc  # dev dependency (grpcio-tools)
    import grpc_tools

    written = []
    with tempfile.TemporaryDirectory() as tmp:
        include = Path(grpc_tools.__file__).parent / "_proto"
        for rel in PROTO_FILES:
            code = protoc.main([
                "grpc_tools.protoc", f"-I{PROTOS}", f"-I{include}", f"--python_out={tmp}", f"--pyi_out={tmp}",
                f"--grpc_python_out={tmp}", str(PROTOS / rel),
            ])
            if code != 0:
                raise RuntimeError(f"protoc failed on {rel} (exit {code})")
            src_dir = Path(tmp) / Path(rel).parent
            dest_dir = out_root / _target(rel)
            dest_dir.mkdir(parents=True, exist_ok=True)
            proto_module = ".".join(Path(rel).with_suffix("").parts[:-1])  # muvi.plugin.v1
            for path in sorted(src_dir.iterdir()):
                text = path.read_text()
                text = text.replace(f"from {proto_module} import", f"from {'.'.join(_target(rel).parts)} import")
                (dest_dir / path.name).write_text(text)
                written.append(dest_dir / path.name)
    return written


def check() -> list[str]:
    """Names of checked-in generated files that differ from a fresh generation."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        drift = []
        for path in fresh:
            rel = path.relative_to(tmp)
            current = ROOT / rel
            if not current.is_file() or current.read_text() != path.read_text():
                drift.append(str(rel))
        return drift


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="only report drift")
    args = ap.parse_args()
    if args.check:
        drift = check()
        for name in drift:
            print(f"out of date: {name} (run python -m plugin_server.codegen)")
        return 1 if drift else 0
    for path in generate(ROOT):
        print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
