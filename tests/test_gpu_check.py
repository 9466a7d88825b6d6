"""scripts/gpu_check.py runs through on a machine without a GPU, skipping every GPU step with its reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_skips_each_gpu_step_with_the_reason_and_writes_its_json(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: the script would run the real steps")
    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--out", str(tmp_path),
                        "--wheels", str(tmp_path / "none")], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    results = json.loads((tmp_path / "gpu_check.json").read_text())
    assert set(results) == {"install wheels", "pytest -m gpu", "export-engines", "engines benchmark + parity",
                            "e2e benchmark", "compact GPU recipe"}
    assert all(r["status"] == "skipped" and r["why"] for r in results.values())
    assert "no CUDA GPU" in results["export-engines"]["why"] and "no wheels" in results["install wheels"]["why"]
    assert "compact GPU recipe" in p.stdout and "skipped" in p.stdout
