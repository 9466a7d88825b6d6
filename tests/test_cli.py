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


@pytest.mark.parametrize("extra,match", [
    (["--footage-styles", "all"], "--footage-styles needs --footage DIR"),
    (["--footage", "clips", "--footage-only", "--footage-styles", "rock,polka"], "unknown style 'polka'"),
])
def test_eval_refuses_a_footage_styles_list_it_cannot_run(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         extra: list[str], match: str) -> None:
    assert main(["eval", "--weights", str(tmp_path / "w"), "--out", str(tmp_path / "out"), *extra]) == 2
    assert match in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_console_scripts_run(tmp_path: Path) -> None:
    bindir = Path(sys.executable).parent
    version = subprocess.run([bindir / "muvi", "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("muvi ")
    exp = subprocess.run([bindir / "export-engines"], capture_output=True, text=True)
    assert exp.returncode == 2 and "--weights" in exp.stderr  # required: says so
    helped = subprocess.run([bindir / "export-engines", "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "--precision" in helped.stdout and "--builder" in helped.stdout


def test_corpus_build_render_and_plot_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from muvi.music.arranger import arrange
    from muvi.music.midi import write_midi

    assert main(["corpus", "build", "--out", str(tmp_path / "c"), "--arranged", "8", "--no-music21",
                 "--no-hydrogen", "--quiet", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "pieces: 8" in out and (tmp_path / "c" / "manifest.json").is_file()
    midi = write_midi(arrange("folk", seed=1).score, tmp_path / "folk.mid")
    assert main(["plot-roll", str(midi), "--out", str(tmp_path / "roll.png"), "--bars", "8"]) == 0
    assert (tmp_path / "roll.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["render", str(midi), "--out", str(tmp_path / "r")]) == 0
    names = sorted(p.name for p in (tmp_path / "r").iterdir())
    assert "mix.wav" in names and "melody.wav" in names and "melody.mid" in names
    assert main(["render", str(tmp_path / "none.mid"), "--out", str(tmp_path / "x")]) == 2


def test_generate_command_and_clip_specs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from muvi.cli import parse_clip
    from muvi.media_gen import write_shot_clip
    from muvi.timeline import Rate
    from muvi.weights import save_checkpoint
    from tests.muvi.nn.test_model_weights_prompt import tiny_model

    assert parse_clip("a.mp4") == (Path("a.mp4"), None, None)
    assert parse_clip("dir@x/a.mp4@1.5-4") == (Path("dir@x/a.mp4"), "1.5", "4")
    clip = write_shot_clip(tmp_path / "c.mp4", shots=[40, 40], rate=Rate(25)).path
    save_checkpoint(tmp_path / "w", tiny_model())
    code = main(["generate", f"{clip}@0.4-3", "--out", str(tmp_path / "out"), "--weights", str(tmp_path / "w"),
                 "--steps", "2", "--no-preview", "--quiet", "--key", "E minor", "--stems", "drums,bass"])
    assert code == 0 and "cuts on beats" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").glob("*.wav")) == ["bass.wav", "drums.wav", "mix.wav"]
    assert main(["generate", f"{clip}@3-1", "--out", str(tmp_path / "bad"), "--weights", str(tmp_path / "w")]) == 2
    assert main(["generate", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "bad"), "--weights", str(tmp_path / "w")]) == 2
    assert main(["generate", str(clip), "--out", str(tmp_path / "bad"), "--weights", str(tmp_path / "w"), "--bpm", "0"]) == 2
    for bad, field in ((["--energy", "loud"], "energy"), (["--energy-curve", "0:0.5,1:x"], "energy"),
                       (["--energy-curve", "0:0.5,9:0.2"], "energy"), (["--hit", "9"], "--hit"),
                       (["--hit", "1", "--hit", "1.3"], "--hit"), (["--tail", "31"], "--tail"),
                       (["--hit", "1:boom"], "--hit")):
        capsys.readouterr()
        assert main(["generate", f"{clip}@0.4-3", "--out", str(tmp_path / "bad"), "--weights", str(tmp_path / "w"), "--quiet",
                     *bad]) == 2
        err = capsys.readouterr().err.strip()
        assert field in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "bad").exists()
