from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile

from muvi.bwf import BextInfo, LoudnessFields, read_bwf, write_bwf
from muvi.errors import AudioWriteError, InvalidInputError
from muvi.mix import LoudnessOptions, integrated_loudness, normalize_loudness, true_peak_dbtp
from muvi.render import fit_length, write_preview, write_stems
from muvi.timeline import Rate, RationalTime, Segment, Timeline, TimeRange
from muvi.video import probe
from tests.conftest import R2398, R2997, Media

SR = 48000


def _noise(n: int, level: float = 0.1, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((2, n)) * level


# -- Broadcast WAV -----------------------------------------------------------------------
def test_bwf_round_trip_is_within_half_an_lsb(tmp_path: Path) -> None:
    audio = np.clip(_noise(12345, 0.3), -1, 0.999)
    when = dt.datetime(2026, 5, 4, 13, 14, 15)
    bext = BextInfo(
        description="drums",
        originator_reference="req-1",
        origination=when,
        time_reference=(5 << 32) + 123,  # needs the high word
        loudness=LoudnessFields(integrated_lufs=-16.0, true_peak_dbtp=-1.5),
        coding_history="A=PCM,F=48000,W=24",
    )
    path = write_bwf(tmp_path / "x.wav", audio, bext=bext)
    back = read_bwf(path)
    assert back.sample_rate == SR and back.bit_depth == 24 and back.audio.shape == audio.shape
    assert np.max(np.abs(back.audio - audio)) <= 0.5 / 2**23 + 1e-12
    assert back.bext is not None
    assert back.bext.time_reference == (5 << 32) + 123
    assert (back.bext.description, back.bext.originator, back.bext.originator_reference) == ("drums", "muvi", "req-1")
    assert back.bext.origination == when
    assert back.bext.loudness.integrated_lufs == -16.0 and back.bext.loudness.true_peak_dbtp == -1.5
    assert back.bext.loudness.loudness_range_lu is None
    assert back.bext.coding_history == "A=PCM,F=48000,W=24\r\n"


def test_bwf_is_readable_by_standard_tools(tmp_path: Path) -> None:
    audio = _noise(4801, 0.2)
    path = write_bwf(tmp_path / "s.wav", audio, bext=BextInfo(description="bass", time_reference=172_972_800))
    info = soundfile.info(str(path))
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (SR, 2, 4801, "PCM_24")
    data, _ = soundfile.read(str(path), always_2d=True)
    assert np.max(np.abs(data.T - audio)) < 1e-6
    with av.open(str(path)) as c:  # FFmpeg reads the bext chunk
        assert c.metadata["time_reference"] == "172972800"
        assert c.metadata["comment"] == "bass"
        assert c.streams.audio[0].codec_context.name == "pcm_s24le"


def test_bwf_refuses_non_finite_and_leaves_existing_file(tmp_path: Path) -> None:
    path = write_bwf(tmp_path / "keep.wav", _noise(100))
    before = path.read_bytes()
    bad = _noise(100)
    bad[1, 7] = np.nan
    with pytest.raises(AudioWriteError, match="non-finite"):
        write_bwf(path, bad)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.wav"]  # no temp file left
    with pytest.raises(AudioWriteError, match="bit depth"):
        write_bwf(tmp_path / "b.wav", _noise(10), bit_depth=20)


def test_bwf_16_bit_and_mono(tmp_path: Path) -> None:
    mono = np.linspace(-0.5, 0.5, 1001)
    back = read_bwf(write_bwf(tmp_path / "m.wav", mono, bit_depth=16))
    assert back.audio.shape == (1, 1001) and back.bit_depth == 16
    assert np.max(np.abs(back.audio[0] - mono)) <= 0.5 / 2**15 + 1e-12


# -- loudness ----------------------------------------------------------------------------
def test_normalisation_meets_the_target() -> None:
    stems = {"a": _noise(SR * 5, 0.05, 1), "b": _noise(SR * 5, 0.02, 2)}
    out, mix, rep = normalize_loudness(stems, LoudnessOptions(target_lufs=-23.0))
    assert abs(integrated_loudness(mix) - (-23.0)) < 0.05
    assert not rep.limited_by_peak and rep.output_true_peak_dbtp <= -1.0
    np.testing.assert_allclose(out["a"] + out["b"], mix)


def test_true_peak_ceiling_wins_over_the_target() -> None:
    # sparse clicks: low loudness, high peaks
    x = np.zeros((2, SR * 3))
    x[:, ::SR // 4] = 0.5
    out, mix, rep = normalize_loudness({"clicks": x}, LoudnessOptions(target_lufs=-10.0, ceiling_dbtp=-1.0))
    assert rep.limited_by_peak
    assert true_peak_dbtp(mix) <= -1.0 + 0.01
    assert integrated_loudness(mix) < -10.0


def test_true_peak_sees_intersample_peaks() -> None:
    n = np.arange(SR)
    # a sine at fs/4 sampled at 45 degrees: samples at 0.707, true peak 1.0
    x = np.sin(2 * np.pi * (SR / 4) * n / SR + np.pi / 4)[None, :]
    ramp = np.ones(SR)
    ramp[:2000], ramp[-2000:] = np.linspace(0, 1, 2000), np.linspace(1, 0, 2000)  # no edge ringing
    x = x * ramp
    assert np.max(np.abs(x)) == pytest.approx(math.sqrt(0.5), abs=1e-9)
    assert true_peak_dbtp(x) == pytest.approx(0.0, abs=0.05)


def test_loudness_options_validated() -> None:
    with pytest.raises(InvalidInputError, match="loudness target"):
        LoudnessOptions(target_lufs=5.0)
    with pytest.raises(InvalidInputError, match="ceiling"):
        LoudnessOptions(ceiling_dbtp=3.0)


# -- stem sets ---------------------------------------------------------------------------
@pytest.mark.parametrize("rate,start,frames", [(R2398, 86400, 240), (R2997, 107893, 301), (Rate(25), 0, 250)])
def test_stems_are_sample_exact_and_equal(tmp_path: Path, rate: Rate, start: int, frames: int) -> None:
    tl = Timeline(rate, (Segment(Path("v.mp4"), TimeRange.from_frames(0, frames, rate), RationalTime(start, rate)),))
    first, n = tl.sample_range()
    assert first == math.floor(start * SR * rate.den / rate.num)
    assert n == math.floor((start + frames) * SR * rate.den / rate.num) - first
    # stems of different raw lengths (synth tails) are fitted to the timeline exactly
    stems = {"drums": _noise(n + 3000, 0.05, 1), "bass": _noise(n - 500, 0.05, 2), "melody": _noise(n, 0.02, 3)}
    files = write_stems(tmp_path, stems, timeline=tl, description="take 1")
    assert files.n_samples == n and files.time_reference == first
    reads = {k: read_bwf(p) for k, p in {**files.stems, "mix": files.mix}.items()}
    for name, b in reads.items():
        assert b.audio.shape == (2, n), name
        assert b.bext is not None and b.bext.time_reference == first
        assert b.sample_rate == SR and b.bit_depth == 24
    total = sum(reads[k].audio for k in stems)
    assert np.max(np.abs(total - reads["mix"].audio)) <= 2.0 / 2**23  # three roundings
    assert reads["mix"].bext is not None and reads["mix"].bext.loudness.integrated_lufs == pytest.approx(-16.0, abs=0.01)
    assert abs(integrated_loudness(reads["mix"].audio) + 16.0) < 0.1


def test_failed_stem_write_leaves_nothing(tmp_path: Path) -> None:
    tl = Timeline.sequential([("v.mp4", TimeRange.from_frames(0, 25, Rate(25)))], rate=Rate(25))
    n = tl.sample_range()[1]
    bad = _noise(n)
    bad[0, 5] = np.inf
    with pytest.raises(AudioWriteError):
        write_stems(tmp_path / "out", {"drums": _noise(n), "bass": bad}, timeline=tl)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    with pytest.raises(AudioWriteError, match="shape"):
        write_stems(tmp_path / "out", {"a": _noise(n), "b": _noise(n)[:1]}, timeline=tl)
    with pytest.raises(InvalidInputError, match="not allowed"):
        write_stems(tmp_path / "out", {"../evil": _noise(n)}, timeline=tl)


def test_fit_length_pads_and_fades() -> None:
    x = np.ones((2, 1000))
    assert fit_length(x, 1200)[:, 1000:].sum() == 0
    cut = fit_length(x, 900)
    assert cut.shape == (2, 900) and cut[0, -1] == 0.0 and cut[0, 0] == 1.0


# -- preview -----------------------------------------------------------------------------
def test_preview_muxes_timeline_picture_with_the_mix(media: Media, tmp_path: Path) -> None:
    clip = media.shots(R2398)
    tl = Timeline.sequential([(clip.path, TimeRange.from_frames(0, 48, R2398))], rate=R2398, start=100)
    n = tl.sample_range()[1]
    path = write_preview(tmp_path / "preview.mp4", tl, _noise(n, 0.1))
    info = probe(path)
    assert info.rate == R2398 and info.frame_count == 48 and info.codec == "h264"
    assert info.display_size == (160, 96)
    assert len(info.audio) == 1 and info.audio[0].sample_rate == SR and info.audio[0].channels == 2
    assert abs(info.duration - R2398.seconds(48)) < 0.05


def test_a_bwf_written_in_chunks_appears_whole_or_not_at_all(tmp_path: Path) -> None:
    from muvi.bwf import BwfWriter

    a = _noise(10_000)
    with BwfWriter(tmp_path / "s.wav", channels=2, n_samples=10_000) as w:
        for start in range(0, 10_000, 3_000):
            w.write(a[:, start: start + 3_000])
    assert np.max(np.abs(read_bwf(tmp_path / "s.wav").audio - a)) < 1e-6
    with pytest.raises(AudioWriteError, match="6000 of the 10000"):
        with BwfWriter(tmp_path / "short.wav", channels=2, n_samples=10_000) as w:
            w.write(a[:, :6000])
    with pytest.raises(AudioWriteError, match="more than the 10000"):
        with BwfWriter(tmp_path / "long.wav", channels=2, n_samples=10_000) as w:
            w.write(a)
            w.write(a[:, :1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.wav"]  # no partial file under any name
