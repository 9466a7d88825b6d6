"""The generated code is in sync with protos/; `muvi serve` as a process; both reference clients."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from muvi.media_gen import write_shot_clip
from muvi.timeline import Rate
from muvi.weights import save_checkpoint
from plugin_server import codegen
from tests.muvi.nn.test_model_weights_prompt import tiny_model

ROOT = Path(__file__).resolve().parents[2]
NODE_CLIENT = ROOT / "clients" / "node"


def test_generated_code_matches_the_protos() -> None:
    assert codegen.check() == [], "run: python -m plugin_server.codegen"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A real `muvi serve` process on a free loopback port with the tiny model."""
    tmp = tmp_path_factory.mktemp("serve")
    weights = save_checkpoint(tmp / "weights", tiny_model())
    clip = write_shot_clip(tmp / "clip.mp4", shots=[40, 50, 35], rate=Rate(25), size=(160, 96)).path
    token, out = tmp / "token", tmp / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "muvi.cli", "serve", "--weights", str(weights), "--port", "0", "--token-file", str(token),
         "--output-root", str(out), "--grace", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
    assert m, line + proc.stdout.read()
    yield {"address": f"127.0.0.1:{m.group(1)}", "token": token, "out": out, "clip": clip, "proc": proc}
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_python_client_cli_against_muvi_serve(served, capsys) -> None:  # type: ignore[no-untyped-def]
    from muvi.cli import main

    code = main(["client", "--server", served["address"], "--token-file", str(served["token"]), "generate",
                 f"{served['clip']}@0-3", f"{served['clip']}@3.6-5", "--out", "py", "--steps", "2", "--no-preview",
                 "--style", "jazz"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "queued" in out and "sampling" in out and "stem mix" in out and "done:" in out
    assert (served["out"] / "py" / "mix.wav").is_file() and (served["out"] / "py" / "drums.mid").is_file()
    code = main(["client", "--server", served["address"], "--token-file", str(served["token"]), "generate",
                 f"{served['clip']}@0-3", "--out", "../escape"])
    err = capsys.readouterr().err
    assert code == 2 and "INVALID_ARGUMENT" in err and "output_name" in err
    assert main(["client", "--server", served["address"], "--token-file", str(served["token"]), "capabilities"]) == 0
    assert '"ready": true' in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed (make setup installs it)")
def test_node_client_against_muvi_serve(served) -> None:  # type: ignore[no-untyped-def]
    assert (NODE_CLIENT / "node_modules" / "@grpc" / "grpc-js").is_dir(), "run: npm ci --prefix clients/node"
    base = ["node", str(NODE_CLIENT / "generate.js"), "--server", served["address"], "--token-file", str(served["token"]),
            "--rate", "25/1"]
    r = subprocess.run(base + ["--out", "node", "--steps", "2", "--no-preview", "--seed", "4", "--record-in", "90000",
                               f"{served['clip']}:0:60", f"{served['clip']}:90:125"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "stem drums" in r.stdout and "TimeReference 172800000" in r.stdout and "done:" in r.stdout
    assert (served["out"] / "node" / "bass.wav").is_file()
    r = subprocess.run(base + ["--out", "node-missing", f"{served['clip'].parent / 'nope.mp4'}:0:10"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "NOT_FOUND" in r.stderr
    bad_token = served["token"].parent / "bad-token"
    bad_token.write_text("wrong\n")
    r = subprocess.run(base[:5] + [str(bad_token), "--out", "x", f"{served['clip']}:0:10"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "UNAUTHENTICATED" in r.stderr


def test_serve_reports_a_port_in_use(served, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from muvi.cli import main

    port = served["address"].rsplit(":", 1)[1]
    weights = save_checkpoint(tmp_path / "w", tiny_model())
    code = main(["serve", "--weights", str(weights), "--port", port, "--token-file", str(tmp_path / "t"),
                 "--output-root", str(tmp_path / "o")])
    assert code == 2 and "cannot listen" in capsys.readouterr().err


def test_sigterm_stops_muvi_serve_cleanly(served) -> None:  # type: ignore[no-untyped-def]
    proc = served["proc"]
    assert oct(os.stat(served["token"]).st_mode & 0o777) == "0o600"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "stopped" in out
    assert not list(served["out"].glob(".*")), "a staging folder was left behind"

