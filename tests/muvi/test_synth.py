from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from muvi.errors import RenderError
from muvi.music.score import Note, Score
from muvi.music.tempo import TempoMap
from muvi.render import SynthOptions, find_soundfont, render_score

SR = 48000


def _score() -> Score:
    notes = (
        Note(0, 36, 1, 110, "drums"), Note(8, 38, 9, 110, "drums"),
        Note(16, 40, 24, 100, "bass"), Note(0, 60, 8, 90, "chords"), Note(0, 64, 8, 90, "chords"),
    )
    return Score(notes, TempoMap.constant(120), 32, programs={"bass": 33, "chords": 0})


def test_stems_render_where_the_notes_are() -> None:
    out = render_score(_score(), options=SynthOptions(reverb=False))
    assert set(out) == {"drums", "bass", "chords"}
    n = {a.shape for a in out.values()}
    assert len(n) == 1 and next(iter(n))[0] == 2
    step = SR // 8  # 16th at 120 BPM = 0.125 s
    bass = out["bass"]
    assert np.abs(bass[:, : 16 * step - 100]).max() < 1e-4  # silent before its note
    assert np.abs(bass[:, 16 * step + 200 : 17 * step]).max() > 0.01
    drums = out["drums"]
    assert np.abs(drums[:, 100:2000]).max() > 0.01  # the kick starts at 0
    onset = int(np.argmax(np.abs(out["chords"][0]) > 1e-3))
    assert onset < 100


def test_fixed_length_and_missing_pieces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = render_score(_score(), n_samples=SR)
    assert all(a.shape == (2, SR) for a in out.values())
    with pytest.raises(RenderError, match="SoundFont not found"):
        render_score(_score(), options=SynthOptions(soundfont=tmp_path / "none.sf2"))
    monkeypatch.setenv("MUVI_SOUNDFONT", "")
    import muvi.render as r

    monkeypatch.setattr(r, "SOUNDFONT_CANDIDATES", ())
    with pytest.raises(RenderError, match="fluid-soundfont-gm"):
        find_soundfont()
    import builtins

    real_import = builtins.__import__

    def no_fluidsynth(name, *a, **k):  # type: ignore[no-untyped-def]
        if name == "fluidsynth":
            raise ImportError("libfluidsynth not found")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_fluidsynth)
    with pytest.raises(RenderError, match="libfluidsynth3"):
        r._fluidsynth()


def test_soundfonts_by_name() -> None:
    from muvi.render import SOUNDFONT_NAMES

    assert find_soundfont("fluidr3") == SOUNDFONT_NAMES["fluidr3"]
    if SOUNDFONT_NAMES["musescore"].is_file():  # make setup installs it
        out = render_score(_score(), options=SynthOptions(soundfont=Path("musescore")), n_samples=SR // 2)
        assert max(float(np.abs(a).max()) for a in out.values()) > 0.01


def test_stems_rendered_to_files_in_chunks_equal_those_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A long take renders into raw files chunk by chunk: the same samples as in memory."""
    import muvi.render as render

    monkeypatch.setattr(render, "CHUNK", 5_000)  # many chunks, none a multiple of FluidSynth's 64
    from muvi.audio import read_all

    files = render.render_stems(_score(), n_samples=SR, store=tmp_path)
    memory = render_score(_score(), n_samples=SR)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{k}.f32" for k in memory)
    for k, a in memory.items():
        assert files[k].n == SR and np.array_equal(read_all(files[k]), a)
