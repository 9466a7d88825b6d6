from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from muvi.bwf import read_bwf
from muvi.errors import Cancelled, InvalidInputError, MediaRangeError
from muvi.media_gen import write_shot_clip
from muvi.music.midi import read_midi
from muvi.pipeline import GenerateOptions, Generator, window_frames, window_spans
from muvi.timeline import Rate, RationalTime, Segment, Timeline, TimeRange
from tests.muvi.nn.test_model_weights_prompt import tiny_model

R = Rate(25)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shot_clip(tmp_path_factory.mktemp("pipe") / "cuts.mp4", shots=[50, 60, 45, 70], rate=R,
                           size=(160, 96)).path


@pytest.fixture(scope="module")
def generator() -> Generator:
    return Generator(tiny_model())


def _timeline(clip: Path, start: int = 90000) -> Timeline:
    return Timeline(R, (
        Segment(clip, TimeRange.from_frames(0, 110, R), RationalTime(start, R)),
        Segment(clip, TimeRange.from_frames(110, 115, R), RationalTime(start + 110, R)),
    ))


def test_generate_writes_every_output_frame_exact(clip: Path, generator: Generator, tmp_path: Path) -> None:
    tl = _timeline(clip)
    seen: list[str] = []
    generator.generate(tl, GenerateOptions(style="rock", seed=3, steps=3), tmp_path / "out",
                             progress=lambda s, f: seen.append(s))
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == sorted(["drums.wav", "bass.wav", "chords.wav", "melody.wav", "mix.wav", "stems.mid", "drums.mid",
                            "bass.mid", "chords.mid", "melody.mid", "beats.json", "report.json", "roll.png", "preview.mp4"])
    first, n = tl.sample_range()
    for name in ("drums", "mix"):
        b = read_bwf(tmp_path / "out" / f"{name}.wav")
        assert b.audio.shape == (2, n) and b.bext.time_reference == first == 172_800_000
    beats = json.loads((tmp_path / "out" / "beats.json").read_text())
    cut_rows = [a for a in beats["accents"] if a["kind"] == "cut"]
    assert cut_rows and all(a["hit"] for a in cut_rows)  # every cut on a beat (±1 frame)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["backend"] == "torch-cpu" and report["accent_hit_rate_cuts"] == 1.0
    assert set(report["timings_s"]) >= {"decode", "analysis", "plan", "encode", "sampling", "render", "write"}
    assert {"decode", "sampling", "render", "write"} <= set(seen)
    assert read_midi(tmp_path / "out" / "stems.mid").tempo.beats_per_bar == 4


def test_same_seed_same_music_other_seed_differs(clip: Path, generator: Generator, tmp_path: Path) -> None:
    tl = _timeline(clip)
    opts = GenerateOptions(style="pop", seed=5, steps=2, preview=False, key="D minor")
    a = generator.generate(tl, opts, tmp_path / "a")
    b = generator.generate(tl, opts, tmp_path / "b")
    c = generator.generate(tl, GenerateOptions(style="pop", seed=6, steps=2, preview=False, key="D minor"), tmp_path / "c")
    assert a.score.notes == b.score.notes and a.score.notes != c.score.notes
    assert np.array_equal(read_bwf(tmp_path / "a" / "mix.wav").audio, read_bwf(tmp_path / "b" / "mix.wav").audio)
    assert a.score.key == "D minor"


def test_bad_input_and_cancel_leave_nothing(clip: Path, generator: Generator, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="--bpm"):
        GenerateOptions(bpm=0)
    with pytest.raises(InvalidInputError, match="unknown style"):
        GenerateOptions(style="polka")
    with pytest.raises(InvalidInputError, match="--cfg"):
        GenerateOptions(cfg=-1)
    past = Timeline(R, (Segment(clip, TimeRange.from_frames(200, 100, R), RationalTime(0, R)),))
    with pytest.raises(MediaRangeError):
        generator.generate(past, GenerateOptions(steps=2), tmp_path / "x")
    calls = iter(range(1000))
    with pytest.raises(Cancelled):
        generator.generate(_timeline(clip), GenerateOptions(steps=4), tmp_path / "y", should_stop=lambda: next(calls) > 2)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_silent_stems_counts_pitched_and_asked_for_stems_with_no_note_after_the_prompt() -> None:
    from muvi.music.score import Note
    from muvi.pipeline import silent_stems

    spec = tiny_model().config.decode_spec
    bar, n_bars = 16, 6
    bass = [Note(b * bar, 40, b * bar + 8, stem="bass") for b in range(n_bars)]
    chords = [Note(0, 60, 8, stem="chords")]  # only in the first bar (the prompt below)
    window = spec.to_tokens(spec.encode(bass + chords, n_bars * bar))
    stems = ("drums", "bass", "chords", "melody")
    assert silent_stems(window, spec, bar=bar, stems=stems) == 1  # melody; drums count only when asked for
    assert silent_stems(window, spec, bar=bar, stems=stems, asked=("drums",)) == 2
    assert silent_stems(window, spec, bar=bar, stems=stems, start=2 * bar) == 2  # chords only in the prompt
    assert silent_stems(window, spec, bar=bar, stems=("drums", "bass")) == 0
    assert silent_stems(window, spec, bar=bar, stems=stems, start=5 * bar) == 2  # one bar left: judged
    assert silent_stems(window[: 5 * bar + 8], spec, bar=bar, stems=stems, start=5 * bar) == 0  # no whole bar


def test_a_silent_stem_is_reported_and_each_window_sampled_once(
        clip: Path, generator: Generator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import muvi.pipeline as pipeline

    seeds: list[int] = []
    real_randn = torch.randn

    def randn(*args, **kwargs):  # type: ignore[no-untyped-def]
        seeds.append(kwargs["generator"].initial_seed())
        return real_randn(*args, **kwargs)

    monkeypatch.setattr(pipeline.torch, "randn", randn)
    monkeypatch.setattr(pipeline, "silent_stems", lambda *a, **k: 1)  # a model that leaves a stem silent
    opts = GenerateOptions(style="pop", seed=1, steps=2, preview=False, cfg=1.5)
    report = generator.generate(_timeline(clip), opts, tmp_path / "a").report
    assert seeds == [1000]  # one window, sampled once with the seed's noise
    assert report["joins"] == {"windows": 1, "silent_stem_bars_left": 0, "silent_stems_left": 1}
    assert report["cfg"] == 1.5


def test_join_gaps_counts_silent_bars_of_playing_stems_at_joins() -> None:
    from muvi.music.score import Note
    from muvi.pipeline import join_gaps

    spec = tiny_model().config.decode_spec
    bar, n_bars = 16, 8
    bass = [Note(b * bar, 40, b * bar + 8, stem="bass") for b in range(n_bars) if b not in (4, 7)]
    melody = [Note(2 * bar, 72, 2 * bar + 4, stem="melody")]  # plays in one bar: not a gap elsewhere
    window = spec.to_tokens(spec.encode(bass + melody, n_bars * bar))
    stems = ("drums", "bass", "chords", "melody")
    # head after a 4-bar prompt checks bars 4 and 5; the tail checks bars 6 and 7
    assert join_gaps(window, spec, bar=bar, stems=stems, head=4 * bar, tail=False) == 1
    assert join_gaps(window, spec, bar=bar, stems=stems, head=4 * bar, tail=True) == 2
    assert join_gaps(window, spec, bar=bar, stems=stems, head=None, tail=False) == 0
    assert join_gaps(window, spec, bar=bar, stems=("melody",), head=4 * bar, tail=True) == 0


def test_window_spans_cover_the_roll_with_prompted_overlaps() -> None:
    # 60 s at 120 BPM (480 steps) in 16-bar windows overlapping by 4 bars
    assert window_spans(480, 256, 64) == [(0, 256), (192, 448), (384, 480)]
    assert window_spans(256, 256, 64) == [(0, 256)]  # exactly one window: no second one for the overlap
    assert window_spans(40, 256, 64) == [(0, 40)]
    for n in (1, 100, 257, 999):
        spans = window_spans(n, 128, 32)
        assert spans[0][0] == 0 and spans[-1][1] == n and all(b - a <= 128 for a, b in spans)
        assert all(s1 - a == 32 for (_, s1), (a, _) in zip(spans, spans[1:]))  # each later one overlaps by 32


def test_the_picture_drives_the_control_curves_and_the_user_can_replace_them(tmp_path: Path) -> None:
    """A model with curve ranges gets per-bar curves from the picture (report.json records them)
    or from --energy-curve; the key comes from the look, with its reason."""
    from dataclasses import replace

    import numpy as np

    from muvi.curves import N_CONTROLS, CurveRanges
    from muvi.media_gen import write_shot_clip
    from muvi.pipeline import GenerateOptions, Generator
    from muvi.timeline import Rate, Timeline, TimeRange
    from tests.muvi.nn.test_model_weights_prompt import tiny_model

    model = tiny_model()
    q = np.linspace(0.1, 0.9, 21)[:, None].repeat(N_CONTROLS, 1)
    model.config = replace(model.config, control_ranges=CurveRanges(
        {"none": {"quantiles": q, "presence": np.ones(N_CONTROLS)}}).to_json())
    clip = write_shot_clip(tmp_path / "c.mp4", shots=[60, 60, 60], rate=Rate(25)).path
    tl = Timeline.sequential([(clip, TimeRange.from_frames(0, 180, Rate(25)))], rate=Rate(25))
    gen = Generator(model)
    take = gen.generate(tl, GenerateOptions(steps=2, preview=False, bpm=120), tmp_path / "auto")
    auto = take.report  # 7.2 s at 120 BPM: 3.6 bars, and the bar before the first frame (beat 0 a downbeat)
    assert auto["curves"]["source"] == "picture" and len(auto["curves"]["requested"]["intensity"]) == 5
    assert take.score.n_steps == 5 * 16
    # curve following is judged from the first bar mostly in the picture (the bar before the first
    # frame begins 3.2 beats before it) to the bar where the planned ending's cadence begins
    start = auto["shape"]["sections"][0]["start_seconds"]
    assert start == pytest.approx(-1.6) and auto["curves"]["spearman_bars"] == [1, 3]
    assert "hue" in auto["key_reason"] and auto["key"].split()[-1] in ("major", "minor")
    keyed = gen.generate(tl, GenerateOptions(steps=2, preview=False, bpm=120, energy_curve="0:0,7.2:1"), tmp_path / "k")
    req = keyed.report["curves"]["requested"]["intensity"]
    assert keyed.report["curves"]["source"] == "energy curve" and req == sorted(req) and req[0] < req[-1]
    assert set(keyed.report["curves"]["generated"]) >= {"intensity", "intensity_drums", "novelty"}
    with pytest.raises(InvalidInputError, match="outside the timeline"):
        gen.generate(tl, GenerateOptions(steps=2, preview=False, energy_curve="0:0.1,8:0.5"), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_cuts_land_on_their_exact_frame_from_the_decode_pass(tmp_path: Path) -> None:
    """The frames between two samples around a cut are kept in the decode pass: the cut is put
    on its exact frame with no second decode, the same frame the re-decode finds."""
    from muvi.analysis import find_accents, thumbnails
    from muvi.media_gen import write_shot_clip
    from muvi.pipeline import refine_cut_times
    from muvi.timeline import Rate, Timeline, TimeRange
    from muvi.video import decode_timeline

    rate = Rate(30000, 1001)
    shots = [37, 41, 29, 44]
    clip = write_shot_clip(tmp_path / "cuts.mp4", shots=shots, rate=rate, size=(160, 96)).path
    tl = Timeline.sequential([(clip, TimeRange.from_frames(0, sum(shots), rate))], rate=rate)
    frames = decode_timeline(tl, fps=10, size=(224, 224))
    accents = find_accents(thumbnails(frames.images), list(frames.times), forced_cuts=frames.cut_indices)
    cuts = [a for a in accents if a.kind == "cut"]
    assert len(cuts) == 3 and all(a.index in frames.between for a in cuts)
    kept = refine_cut_times(tl, accents, set(frames.cut_indices), frames.times, frames.between)
    again = refine_cut_times(tl, accents, set(frames.cut_indices), frames.times)  # decoding again
    want = [rate.seconds(f) for f in (37, 78, 107)]
    assert [a.time for a in kept if a.kind == "cut"] == want == [a.time for a in again if a.kind == "cut"]


def test_a_window_is_conditioned_on_its_own_frames_only() -> None:
    """The adaptor gets the frames a window's positions fall among (its cost is the window's,
    not the timeline's); where those are all the frames, the conditioning is unchanged."""
    model = tiny_model().eval()
    torch.manual_seed(0)
    patches = torch.randn(300, 3, model.adaptor.norm.normalized_shape[0])  # (Tf, P, D)
    pos = torch.linspace(120.5, 180.25, 64)
    sub, shifted = window_frames(patches, pos)
    assert sub.shape[0] == 62 and torch.equal(sub, patches[120:182]) and torch.allclose(shifted + 120, pos)
    whole, at_end = window_frames(patches, torch.tensor([0.0, 150.0, 299.0]))
    assert whole.shape[0] == 300 and torch.equal(at_end, torch.tensor([0.0, 150.0, 299.0]))
    with torch.no_grad():
        a, _ = model.adaptor(patches[None, :100], torch.linspace(0, 99, 32)[None])
        b, _ = model.adaptor(*[x[None] for x in window_frames(patches[:100], torch.linspace(0, 99, 32))])
    assert torch.equal(a, b)
