from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from muvi.cli import main
from tests.conftest import R2398, Media


def test_probe_prints_json(media: Media, capsys: pytest.CaptureFixture[str]) -> None:
    clip = media.shots(R2398)
    assert main(["probe", str(clip.path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["video"]["rate"]["num"] == 24000 and out["video"]["frame_count"] == 90
    assert out["video"]["duration"]["exact"] == "3003/800"


def test_probe_error_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", str(tmp_path / "missing.mov")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.mov: file not found" in err[0]


def test_console_scripts_run(tmp_path: Path) -> None:
    bindir = Path(sys.executable).parent
    version = subprocess.run([bindir / "muvi", "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("muvi ")
    exp = subprocess.run([bindir / "export-engines"], capture_output=True, text=True)
    assert exp.returncode == 2 and "--precision" in exp.stdout and "nothing was done" in exp.stderr
