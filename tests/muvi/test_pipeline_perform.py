"""The performance and the mix through the whole pipeline: report, MIDI, stems, options."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import mido
import numpy as np
import pytest

from muvi.bwf import read_bwf
from muvi.errors import InvalidInputError
from muvi.media_gen import write_shot_clip
from muvi.mix import integrated_loudness, true_peak_dbtp
from muvi.music.midi import PPQ
from muvi.pipeline import GenerateOptions, Generator
from muvi.timeline import Rate, RationalTime, Segment, Timeline, TimeRange
from tests.muvi.nn.test_model_weights_prompt import tiny_model

R = Rate(25)
STEMS = ("drums", "bass", "chords", "melody")


@pytest.fixture(scope="module")
def timeline(tmp_path_factory: pytest.TempPathFactory) -> Timeline:
    clip = write_shot_clip(tmp_path_factory.mktemp("perf") / "cuts.mp4", shots=[60, 70, 50, 70], rate=R,
                           size=(160, 96)).path
    return Timeline(R, (Segment(clip, TimeRange.from_frames(0, 250, R), RationalTime(0, R)),))


@pytest.fixture(scope="module")
def generator() -> Generator:
    return Generator(tiny_model())


def _opts(**kw: object) -> GenerateOptions:
    return GenerateOptions(**{"style": "hiphop", "seed": 3, "steps": 2, "preview": False, "bpm": 90,
                              "hits": ("4.0",), **kw})  # type: ignore[arg-type]


def _onset_ticks(path: Path) -> list[int]:
    out: list[int] = []
    for track in mido.MidiFile(str(path)).tracks[1:]:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "note_on" and msg.velocity > 0:
                out.append(tick)
    return out


def test_a_take_is_played_mixed_and_mastered(timeline: Timeline, generator: Generator, tmp_path: Path) -> None:
    take = generator.generate(timeline, _opts(), tmp_path / "natural")
    perf = take.report["performance"]
    assert perf["feel"] == "natural" and perf["swing_target"] == pytest.approx(0.58)
    drums = perf["stems"]["drums"]
    assert drums["locked"] >= 1 and abs(drums["mean_offset_ms"] - drums["target_offset_ms"]) < 4.0
    mix = take.report["mix"]
    assert abs(mix["output_lufs"] + 16.0) <= 0.6 and mix["output_true_peak_dbtp"] <= -1.0 + 0.05
    assert all(s["within"] for s in mix["stems"].values()) and mix["compression_db"] <= 4.0
    audio = {k: read_bwf(tmp_path / "natural" / f"{k}.wav").audio for k in (*STEMS, "mix")}
    residual = float(np.max(np.abs(sum(audio[k] for k in STEMS) - audio["mix"])))
    assert 20 * math.log10(residual / float(np.max(np.abs(audio["mix"])))) < -60.0
    assert integrated_loudness(audio["mix"]) == pytest.approx(mix["output_lufs"], abs=0.05)
    assert true_peak_dbtp(audio["mix"]) <= -1.0 + 0.05
    # the MIDI carries the performance: off the 16th grid, and the hit at 4.0 s exactly on it
    ticks = _onset_ticks(tmp_path / "natural" / "stems.mid")
    assert sum(t % (PPQ // 4) != 0 for t in ticks) > len(ticks) // 4
    tempo = take.score.tempo
    hit_tick = round((tempo.beat_at(Fraction(4)) - tempo.beat_at(0)) * PPQ)
    assert hit_tick in ticks


def test_grid_feel_is_the_score_as_written(timeline: Timeline, generator: Generator, tmp_path: Path) -> None:
    take = generator.generate(timeline, _opts(feel="grid", bpm=120), tmp_path / "grid")
    ticks = _onset_ticks(tmp_path / "grid" / "stems.mid")
    assert ticks and all(t % (PPQ // 4) == 0 for t in ticks)  # 120 BPM: beat 0 is time 0
    assert take.report["performance"]["feel"] == "grid"
    assert all(s["ghosts"] == 0 for s in take.report["performance"]["stems"].values())


def test_an_unknown_feel_is_refused_before_any_work() -> None:
    with pytest.raises(InvalidInputError, match="--feel: unknown feel 'sloppy'"):
        GenerateOptions(feel="sloppy")
