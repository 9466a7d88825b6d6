"""The import direction of DESIGN.md §2 holds: muvi's library never imports the outer layers."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN_IN_MUVI = {"grpc", "onnx", "onnxruntime", "tensorrt", "tensorrt_rtx", "engines", "export", "plugin_server"}
COMPOSITION_ROOT = {"cli.py"}  # may import engines / plugin_server lazily


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_muvi_library_does_not_import_outer_layers() -> None:
    offenders = {}
    for path in (ROOT / "muvi").rglob("*.py"):
        if path.name in COMPOSITION_ROOT and path.parent == ROOT / "muvi":
            continue
        bad = _imports(path) & FORBIDDEN_IN_MUVI
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}


def test_engines_do_not_import_export_or_server() -> None:
    for path in (ROOT / "engines").rglob("*.py"):
        assert not (_imports(path) & {"export", "plugin_server"}), path


def test_top_level_layout() -> None:
    for name in ("muvi", "plugin_server", "engines", "export"):
        assert (ROOT / name / "__init__.py").is_file(), name
    for name in ("protos", "tests", "benchmarks"):
        assert (ROOT / name).is_dir(), name
