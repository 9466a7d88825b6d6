"""Balance per style, the linked bus (compressor, limiter) and the loudness target."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from muvi.bwf import read_bwf
from muvi.mix import (
    MAX_COMPRESSION_DB,
    MAX_LIMITING_DB,
    MIX_TEMPLATES,
    LoudnessOptions,
    integrated_loudness,
    master,
    reverb_sends,
    stem_levels,
    template_for,
    true_peak_dbtp,
)
from muvi.music.arranger import arrange
from muvi.music.perform import perform
from muvi.music.styles import STYLES
from muvi.render import SynthOptions, render_score, write_stems

SR = 48000


def _stems(style: str, seconds: float = 16.0) -> dict[str, np.ndarray]:
    score = arrange(style, seed=4).score
    room, sends = reverb_sends(style)
    per = {s: SynthOptions(reverb_room=room, reverb_level=v) for s, v in sends.items()}
    return render_score(score, n_samples=int(seconds * SR), performance=perform(score, seed=1), stem_options=per,
                        stems=["drums", "bass", "chords", "melody"])


def _dynamic(seconds: float = 12.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    n = int(seconds * SR)
    env = np.repeat(rng.choice([0.25] * 8 + [1.0], n // 24000 + 1), 24000)[:n] * 3.0  # loud bursts
    hits = np.zeros(n)
    hits[:: SR // 2] = 0.9
    return {"a": rng.standard_normal((2, n)) * 0.1 * env, "b": np.stack([hits, hits])}


def test_every_style_has_a_template() -> None:
    assert set(MIX_TEMPLATES) == set(STYLES)
    for t in MIX_TEMPLATES.values():
        assert t.stems["bass"].pan == 0.0 and t.stems["drums"].pan == 0.0  # centred
        assert t.stems["bass"].reverb <= 0.2 and t.stems["drums"].reverb <= t.stems["chords"].reverb  # dry
        assert t.stems["chords"].width >= 1.0 > t.stems["bass"].width  # pads wide


@pytest.mark.parametrize("style", sorted(STYLES))
def test_each_stem_sits_in_its_template_range(style: str) -> None:
    stems, mix, rep = master(_stems(style), LoudnessOptions(), template=template_for(style))
    measured = {k: v for k, v in stem_levels(stems, mix).items() if math.isfinite(v)}  # some styles skip drums
    targets = template_for(style).targets(list(measured))
    assert set(measured) >= {"bass", "chords", "melody"}
    spread = [measured[k] - targets[k] for k in measured]
    assert max(spread) - min(spread) < 0.8  # the balance between stems: as the template says
    for name, lu in measured.items():
        assert abs(lu - targets[name]) <= template_for(style).stems[name].tolerance, (name, lu, targets[name])
    assert rep.output_lufs == pytest.approx(-16.0, abs=0.5)
    assert true_peak_dbtp(mix) <= -1.0 + 0.05


def test_bass_with_width_zero_is_mono() -> None:
    stems, _, _ = master(_stems("pop", 8.0), LoudnessOptions(), template=template_for("pop"))
    np.testing.assert_allclose(stems["bass"][0], stems["bass"][1], atol=1e-12)


def test_bus_meets_target_and_ceiling_gently() -> None:
    stems, mix, rep = master(_dynamic(), LoudnessOptions(target_lufs=-14.0, ceiling_dbtp=-1.0))
    assert integrated_loudness(mix) == pytest.approx(-14.0, abs=0.5)
    assert true_peak_dbtp(mix) <= -1.0 + 0.01
    assert 0.0 < rep.compression_db <= MAX_COMPRESSION_DB
    assert rep.limiting_db > 0.0  # the clicks were limited, not the whole mix turned down
    np.testing.assert_allclose(stems["a"] + stems["b"], mix, atol=1e-12)


def test_a_target_beyond_the_limiter_is_given_up_gradually() -> None:
    louder = [integrated_loudness(master(_dynamic(), LoudnessOptions(target_lufs=t))[1]) for t in (-14.0, -12.0, -10.0)]
    assert louder == sorted(louder)  # never quieter for a louder target
    _, mix, rep = master(_dynamic(), LoudnessOptions(target_lufs=-8.0))
    assert rep.limited_by_peak and rep.limiting_db <= MAX_LIMITING_DB + 0.01 and true_peak_dbtp(mix) <= -1.0 + 0.01


def test_written_stems_sum_to_the_mix(tmp_path: Path) -> None:
    files = write_stems(tmp_path, _stems("rock", 10.0), n_samples=10 * SR, template=template_for("rock"))
    mix = read_bwf(files.mix).audio
    total = sum(read_bwf(p).audio for p in files.stems.values())
    residual = float(np.max(np.abs(total - mix)))
    assert 20 * math.log10(residual / float(np.max(np.abs(mix)))) < -60.0
    assert files.loudness.stems_lu and files.loudness.compression_db <= MAX_COMPRESSION_DB


def test_silent_stem_is_left_alone() -> None:
    stems = _stems("folk", 8.0)
    stems["melody"][:] = 0.0
    out, _, rep = master(stems, LoudnessOptions(), template=template_for("folk"))
    assert not np.any(out["melody"]) and rep.stems_lu["melody"] == -math.inf


def test_mastering_in_chunks_equals_mastering_at_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The mix is made chunk by chunk from stems read back from raw files: the chunk size (here
    2400 samples against the default's 10.9 s) changes nothing audible, and the loudness the
    report gives is the written mix's."""
    import muvi.mix as mix
    from muvi.audio import FileAudioWriter

    stems = _stems("pop", 6.0)
    whole_out, whole_mix, whole_rep = master(stems, template=template_for("pop"))
    monkeypatch.setattr(mix, "CHUNK", 2400)
    files = {}
    for k, v in stems.items():
        w = FileAudioWriter(tmp_path / f"{k}.f32", channels=2)
        w.append(v.T)
        files[k] = w.close()
    plan = mix.plan_master(files, template=template_for("pop"))
    assert plan.curve.grid.chunk == 2400
    parts = list(plan.chunks())
    assert len(parts) == -(-6 * SR // 2400)
    chunked = np.concatenate([p[3] for p in parts], axis=1)
    assert np.max(np.abs(chunked - whole_mix)) < 1e-6  # float32 files: the stems' own rounding
    assert abs(plan.report.output_lufs - whole_rep.output_lufs) < 0.01
    assert abs(plan.report.output_lufs - integrated_loudness(chunked)) < 0.01
    assert abs(plan.report.output_true_peak_dbtp - true_peak_dbtp(chunked)) < 0.01
    for k in stems:
        assert np.max(np.abs(np.concatenate([p[2][k] for p in parts], axis=1) - whole_out[k])) < 1e-6
