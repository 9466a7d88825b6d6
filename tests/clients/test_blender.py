"""The Blender add-on in real Blender, headless, against a real `muvi serve` (the tiny model)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from fractions import Fraction
from pathlib import Path

import pytest

from muvi.bwf import read_bwf
from muvi.media_gen import write_shot_clip
from muvi.timeline import Rate
from muvi.weights import save_checkpoint
from tests.muvi.nn.test_model_weights_prompt import tiny_model

ROOT = Path(__file__).resolve().parents[2]
ADDON = ROOT / "clients" / "blender" / "muvi_blender"
BLENDER = shutil.which("blender")
needs_blender = pytest.mark.skipif(BLENDER is None and not os.environ.get("MUVI_REQUIRE_BLENDER"),
                                   reason="Blender is not installed (make test installs it)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("blender")
    save_checkpoint(tmp / "w", tiny_model())
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "muvi", "serve", "--weights", str(tmp / "w"), "--port", str(port),
                             "--token-file", str(tmp / "token"), "--output-root", str(tmp / "out"), "--backend",
                             "torch-cpu"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    end = time.monotonic() + 60
    while not (tmp / "token").exists() and time.monotonic() < end and proc.poll() is None:
        time.sleep(0.1)
    try:
        yield {"port": port, "tmp": tmp}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _blender(script: Path, args: dict, env_dir: Path) -> dict:
    (env_dir / "addons").mkdir(parents=True, exist_ok=True)
    link = env_dir / "addons" / "muvi_blender"
    if not link.exists():
        link.symlink_to(ADDON, target_is_directory=True)
    arg_file = env_dir / "args.json"
    arg_file.write_text(json.dumps(args))
    env = {**os.environ, "BLENDER_USER_SCRIPTS": str(env_dir)}
    done = subprocess.run([BLENDER or "blender", "-b", "--factory-startup", "--python-exit-code", "1", "--python",
                           str(script), "--", str(arg_file)], env=env, capture_output=True, text=True, timeout=110)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("MUVI-RESULT ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(lines[-1][len("MUVI-RESULT "):])


@needs_blender
def test_generate_in_blender_places_the_stems_under_the_selection(served, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    c25 = write_shot_clip(tmp_path / "c25.mp4", shots=[60, 60, 60], rate=Rate(25), size=(160, 96)).path
    ntsc = Rate(30000, 1001)
    c30 = write_shot_clip(tmp_path / "c2997.mp4", shots=[70, 70, 70], rate=ntsc, size=(160, 96)).path
    cases = [
        # (media, first media frame, frames, record frame): two trimmed strips end to end
        {"name": "pal", "rate": [25, 1], "strips": [[str(c25), 10, 50, 101], [str(c25), 100, 60, 151]]},
        {"name": "ntsc", "rate": [30000, 1001], "strips": [[str(c30), 5, 80, 1], [str(c30), 120, 70, 81]]},
    ]
    refuse = [
        {"name": "mixed", "rate": [25, 1], "strips": [[str(c30), 0, 50, 1]]},  # 29.97 media in a 25 fps scene
        {"name": "down", "rate": [25, 1], "strips": [[str(c25), 0, 50, 1]], "server": f"127.0.0.1:{_free_port()}"},
        {"name": "token", "rate": [25, 1], "strips": [[str(c25), 0, 50, 1]], "token_file": str(tmp_path / "wrong")},
    ]
    (tmp_path / "wrong").write_text("not-the-token\n")
    out = _blender(Path(__file__).with_name("blender_scene.py"), {
        "muvi_path": str(ROOT), "token_file": str(served["tmp"] / "token"), "server": f"127.0.0.1:{served['port']}",
        "cases": cases, "refuse": refuse, "blend": str(tmp_path / "placed.blend")}, tmp_path / "scripts")
    for case in cases:
        got = out["cases"][case["name"]]
        rate = Fraction(*case["rate"])
        first = min(s[3] for s in case["strips"])
        length = sum(s[2] for s in case["strips"])
        assert got["status"] == ["FINISHED"], got
        assert [s["name"] for s in got["sounds"]] == [f"muvi {n}" for n in ("drums", "bass", "chords", "melody", "mix")]
        for s in got["sounds"]:
            assert s["start"] == first and s["duration"] == length, s  # exactly the selection
            assert s["channel"] > max(got["movie_channels"])  # free channels above the picture
            wav = read_bwf(s["path"])
            assert round(Fraction(wav.bext.time_reference) * rate / 48000) == first  # where the stems say they start
        assert got["markers"] > 0
    assert out["cases"]["mixed"]["status"] == ["CANCELLED"] and "frame for frame" in out["cases"]["mixed"]["error"]
    assert out["cases"]["down"]["status"] == ["CANCELLED"] and "not reachable" in out["cases"]["down"]["error"]
    assert out["cases"]["token"]["status"] == ["CANCELLED"] and "refused the token" in out["cases"]["token"]["error"]
    assert out["reloaded"]["pal"] == 5 and out["reloaded"]["ntsc"] == 5  # the saved .blend keeps them


@needs_blender
def test_the_addon_installs_from_its_zip(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("muvi_blender_build", ROOT / "clients" / "blender" / "build.py")
    build = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(build)  # type: ignore[union-attr]
    zpath = build.build_zip(tmp_path / "muvi_blender.zip")
    with zipfile.ZipFile(zpath) as z:
        assert {"muvi_blender/__init__.py", "muvi_blender/core.py"} <= set(z.namelist())
    script = tmp_path / "install.py"
    script.write_text(
        "import bpy, json, sys\n"
        f"bpy.ops.preferences.addon_install(filepath={str(zpath)!r})\n"
        "bpy.ops.preferences.addon_enable(module='muvi_blender')\n"
        "print('MUVI-RESULT ' + json.dumps({'op': hasattr(bpy.ops.muvi, 'generate'), "
        "'panel': hasattr(bpy.types, 'SEQUENCER_PT_muvi')}))\n")
    out = _blender(script, {}, tmp_path / "scripts")
    assert out == {"op": True, "panel": True}


def test_the_addon_core_needs_no_blender_and_refuses_what_it_cannot_time(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("muvi_blender_core", ADDON / "core.py")
    core = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["muvi_blender_core"] = core  # dataclasses look their module up
    spec.loader.exec_module(core)  # type: ignore[union-attr]
    from muvi.music.styles import STYLES
    from muvi.pipeline import ALL_STEMS
    from muvi.music.perform import FEELS
    from muvi.shape import ENDINGS
    from plugin_server.v1 import plugin_pb2 as pb

    assert set(core.STYLES) <= set(STYLES) | {"chorale"} and core.ENDINGS == ENDINGS and core.FEELS == FEELS
    assert set(core.STEMS) == set(ALL_STEMS) | {"mix"}
    assert core.scene_rate(30, 1.001) == Fraction(30000, 1001) and core.scene_rate(25, 1.0) == 25
    clip = write_shot_clip(tmp_path / "c.mp4", shots=[30], rate=Rate(25)).path
    req = core.Request(muvi_path=str(ROOT), server="x", token_file=None, rate=Fraction(25),
                       strips=[core.StripInfo("a", str(clip), 5, 20, 101, 25.0)])
    tl = core.timeline_message(pb, req)
    assert (tl.segments[0].source_in, tl.segments[0].source_out, tl.segments[0].record_in) == (5, 25, 101)
    req.strips = [core.StripInfo("b", str(clip), 0, 20, 1, 29.97)]
    with pytest.raises(core.MuviError, match="frame for frame"):
        core.timeline_message(pb, req)
    with pytest.raises(core.MuviError, match="no muvi installation"):
        core.run(core.Request(muvi_path=str(tmp_path), server="x", token_file=None, rate=Fraction(25), strips=[]))
    with pytest.raises(core.MuviError, match="no server token"):
        core.run(core.Request(muvi_path=str(ROOT), server="x", token_file=str(tmp_path / "none"), rate=Fraction(25),
                              strips=[]))
