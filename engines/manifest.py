"""Engine manifests: what an ONNX graph or a TensorRT plan was built from, checked before use.

A plan is keyed on the ONNX graph's sha256 (which itself follows from the weights), the
precision, the profile, the TensorRT flavour and version, and the GPU's compute capability
(DESIGN §7). A manifest that does not match is never used: the file is rebuilt by
``export-engines`` or the backend says why it cannot run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from muvi.fileio import atomic_write_text
from muvi.weights import sha256_file

__all__ = ["sha256_file", "weights_digest", "write_manifest", "read_manifest", "mismatches"]


def weights_digest(weights: Path) -> str:
    """One digest for a checkpoint folder: its config.json (which lists every shard's sha256)."""
    return sha256_file(Path(weights) / "config.json")


def write_manifest(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def mismatches(manifest: dict[str, Any] | None, expected: dict[str, Any]) -> list[str]:
    """Human-readable differences between a manifest and what this run needs (empty: usable)."""
    if manifest is None:
        return ["no manifest"]
    out = []
    for key, want in expected.items():
        have = manifest.get(key)
        if have != want:
            out.append(f"{key} is {have!r}, needs {want!r}")
    return out
