"""Checkpoints: safetensors shards + a JSON config that describes and verifies them.

A checkpoint folder holds ``config.json`` and ``model-0000N.safetensors`` shards, each at most
``max_shard_bytes`` (default 60 MiB, under the repository's 64 MB per-file limit). The config
carries the model config (preset, roll spec, encoder, adaptor, tags), the training recipe,
the sha256 of the data manifest the weights were trained on, and every shard's sha256 and
tensor names. Loading is strict: a missing, unexpected or mis-shaped tensor, or a shard whose
hash does not match, raises :class:`CheckpointError` with a readable list.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from muvi.errors import CheckpointError
from muvi.fileio import atomic_write_text
from muvi.nn.model import ModelConfig, MuVi

__all__ = ["save_checkpoint", "load_checkpoint", "read_checkpoint_config", "state_diff", "sha256_file", "FORMAT"]

FORMAT = "muvi-checkpoint/1"
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(
    directory: Path | str,
    model: MuVi,
    *,
    recipe: dict[str, Any] | None = None,
    data_manifest_sha256: str | None = None,
    dtype: str = "float32",
    max_shard_bytes: int = 60 * 2**20,
) -> Path:
    """Write ``model`` to ``directory`` (replacing a previous checkpoint there only when complete)."""
    from safetensors.torch import save_file

    if dtype not in _DTYPES:
        raise CheckpointError(f"unsupported storage dtype {dtype!r}; choose from {', '.join(_DTYPES)}")
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", _DTYPES[dtype]).contiguous() for k, v in model.state_dict().items()}
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for k in sorted(state):
        nbytes = state[k].numel() * state[k].element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][k] = state[k]
        size += nbytes
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        entries = []
        for i, shard in enumerate(shards, 1):
            name = f"model-{i:05d}.safetensors"
            save_file(shard, str(staging / name), metadata={"format": FORMAT})
            entries.append({"file": name, "sha256": sha256_file(staging / name), "tensors": sorted(shard)})
        config = {
            "format": FORMAT,
            "model": model.config.to_json(),
            "recipe": recipe or {},
            "data_manifest_sha256": data_manifest_sha256,
            "dtype": dtype,
            "parameters": sum(v.numel() for v in state.values()),
            "shards": entries,
        }
        atomic_write_text(staging / "config.json", json.dumps(config, indent=2, sort_keys=True))
        if directory.exists():
            old = directory.with_name(f".{directory.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            directory.rename(old)
            staging.rename(directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def read_checkpoint_config(directory: Path | str) -> dict[str, Any]:
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{directory}: not a muvi checkpoint (no config.json)")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from exc
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{path}: format {config.get('format')!r}, expected {FORMAT!r}")
    return config


def state_diff(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor], limit: int = 10) -> str:
    """Readable difference between two state dicts ('' when they match in keys and shapes)."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    shapes = sorted(
        f"{k}: checkpoint {tuple(found[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(found)
        if tuple(expected[k].shape) != tuple(found[k].shape)
    )
    lines = []
    for title, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
        if items:
            more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
            lines.append(f"{title} ({len(items)}): " + ", ".join(items[:limit]) + more)
    return "; ".join(lines)


def load_checkpoint(directory: Path | str, *, device: str = "cpu", verify: bool = True) -> tuple[MuVi, dict[str, Any]]:
    """Rebuild the model from ``directory`` and load its weights strictly (float32)."""
    from safetensors.torch import load_file

    directory = Path(directory)
    config = read_checkpoint_config(directory)
    try:
        model_config = ModelConfig.from_json(config["model"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{directory}/config.json: bad model config ({exc})") from exc
    model = MuVi(model_config)
    state: dict[str, torch.Tensor] = {}
    for entry in config["shards"]:
        path = directory / entry["file"]
        if not path.is_file():
            raise CheckpointError(f"{directory}: shard {entry['file']} is missing")
        if verify and sha256_file(path) != entry["sha256"]:
            raise CheckpointError(f"{path}: sha256 does not match config.json (corrupt or replaced file)")
        state.update(load_file(str(path)))
    if not model_config.controls:  # from before the control curves: their projection starts at zero
        state.update({k: torch.zeros_like(v) for k, v in model.state_dict().items()
                      if k.startswith("dit.control_proj.") and k not in state})
    diff = state_diff(model.state_dict(), state)
    if diff:
        raise CheckpointError(f"{directory}: weights do not fit the model: {diff}")
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    config["loaded_from"] = str(directory)  # not part of the file: where this copy came from
    return model.to(device).eval(), config
