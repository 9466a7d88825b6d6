"""From a score to audio stems, and from stems to deliverables: Broadcast-WAV stems, preview MP4.

Rules (DESIGN §3, FIELD-NOTES "Audio deliverables"):

- every stem of one result has exactly the timeline's length in samples and the same start
  (TimeReference = the timeline's record start in samples), so stems sum to the mix;
- the balance, the bus (compressor, limiter) and the loudness target (default −16 LUFS,
  −1 dBTP) are :mod:`muvi.mix`'s: one gain curve for every stem, so no stem clips and the
  stems still sum to the mix;
- files appear complete or not at all: all are written to temporary names first, then renamed.

Synthesis: each stem of a score is rendered by its own FluidSynth instance (one SoundFont,
dynamic sample loading) at 48 kHz float, so stems are exact and separable; its reverb is the
stem's send (a template's, :func:`muvi.mix.reverb_sends`). What is played comes from a
:class:`muvi.music.perform.Performance` (the grid when none is given).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from muvi.bwf import BextInfo, LoudnessFields, write_bwf
from muvi.errors import AudioWriteError, InvalidInputError, RenderError
from muvi.fileio import atomic_path
from muvi.mix import LoudnessOptions, LoudnessReport, MixTemplate, master
from muvi.music.perform import Performance, grid_performance
from muvi.timeline import AUDIO_SAMPLE_RATE, Timeline

__all__ = [
    "fit_length",
    "StemFiles",
    "write_stems",
    "write_mastered",
    "write_preview",
    "mux_audio",
    "SynthOptions",
    "find_soundfont",
    "render_score",
]

log = logging.getLogger(__name__)


def fit_length(audio: np.ndarray, n_samples: int, *, fade_samples: int = 480) -> np.ndarray:
    """Pad with silence or cut to exactly ``n_samples``; a cut end gets a short fade (no click)."""
    a = np.atleast_2d(np.asarray(audio, dtype=np.float64))
    if a.shape[1] >= n_samples:
        out = a[:, :n_samples].copy()
        if a.shape[1] > n_samples and n_samples:
            f = min(fade_samples, n_samples)
            out[:, n_samples - f :] *= np.linspace(1.0, 0.0, f)
        return out
    return np.pad(a, ((0, 0), (0, n_samples - a.shape[1])))


@dataclass(frozen=True)
class StemFiles:
    stems: dict[str, Path]  # stem name -> file
    mix: Path
    sample_rate: int
    bit_depth: int
    time_reference: int  # samples since midnight (the timeline's record start)
    n_samples: int
    loudness: LoudnessReport
    mix_audio: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((2, 0)))  # the normalised mix


def _check_stem_names(stems: Mapping[str, np.ndarray]) -> None:
    if not stems:
        raise AudioWriteError("no stems to write")
    for name in stems:
        if not name or name == "mix" or not name.replace("_", "").replace("-", "").isalnum():
            raise InvalidInputError(f"stem name {name!r} is not allowed (letters, digits, - and _; not 'mix')")


def write_stems(
    out_dir: Path | str,
    stems: Mapping[str, np.ndarray],
    *,
    timeline: Timeline | None = None,
    time_reference: int = 0,
    n_samples: int | None = None,
    loudness: LoudnessOptions = LoudnessOptions(),
    template: MixTemplate | None = None,
    sample_rate: int = AUDIO_SAMPLE_RATE,
    bit_depth: int = 24,
    description: str = "",
    origination: _dt.datetime | None = None,
) -> StemFiles:
    """Fit, master (:func:`muvi.mix.master`) and write ``<stem>.wav`` for each stem and
    ``mix.wav`` into ``out_dir``.

    Stems are (channels, samples) float arrays starting at the timeline's first frame; each is
    fitted to the timeline's exact sample length. Without a timeline (a plain MIDI render)
    ``time_reference`` and ``n_samples`` (default: the longest stem) are used.
    """
    _check_stem_names(stems)
    if timeline is not None:
        start_sample, n = timeline.sample_range(sample_rate)
    else:
        start_sample = time_reference
        n = n_samples if n_samples is not None else max(np.atleast_2d(v).shape[-1] for v in stems.values())
    fitted = {k: fit_length(v, n) for k, v in stems.items()}
    mastered, mix, report = master(fitted, loudness, template=template, sample_rate=sample_rate)
    return write_mastered(out_dir, mastered, mix, report, time_reference=start_sample, sample_rate=sample_rate,
                          bit_depth=bit_depth, description=description, origination=origination)


def write_mastered(
    out_dir: Path | str,
    stems: Mapping[str, np.ndarray],
    mix: np.ndarray,
    report: LoudnessReport,
    *,
    time_reference: int,
    sample_rate: int = AUDIO_SAMPLE_RATE,
    bit_depth: int = 24,
    description: str = "",
    origination: _dt.datetime | None = None,
) -> StemFiles:
    """Write mastered stems and their mix as Broadcast WAVs whose TimeReference is
    ``time_reference`` (the timeline's record start in samples); the mix carries the loudness
    fields. Either all files are written or, on error, none of them is left behind."""
    _check_stem_names(stems)
    fields = LoudnessFields(integrated_lufs=report.output_lufs, true_peak_dbtp=report.output_true_peak_dbtp)
    when = origination or _dt.datetime.now().replace(microsecond=0)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    targets = {**{k: out_dir / f"{k}.wav" for k in stems}, "mix": out_dir / "mix.wav"}
    with contextlib.ExitStack() as stack:
        # stage every file under a temporary name; the renames happen only if all succeed
        for key, final in targets.items():
            tmp = stack.enter_context(atomic_path(final))
            label = "mix" if key == "mix" else f"stem {key}"
            bext = BextInfo(
                description=f"{description} {label}".strip(),
                origination=when,
                time_reference=time_reference,
                loudness=fields if key == "mix" else LoudnessFields(),
                coding_history=f"A=PCM,F={sample_rate},W={bit_depth},T=muvi",
            )
            write_bwf(tmp, mix if key == "mix" else stems[key], sample_rate=sample_rate, bit_depth=bit_depth, bext=bext)
    return StemFiles(
        stems={k: targets[k] for k in stems},
        mix=targets["mix"],
        sample_rate=sample_rate,
        bit_depth=bit_depth,
        time_reference=time_reference,
        n_samples=int(mix.shape[-1]),
        loudness=report,
        mix_audio=mix,
    )


def write_preview(
    path: Path | str,
    timeline: Timeline,
    mix: np.ndarray,
    *,
    height: int = 360,
    sample_rate: int = AUDIO_SAMPLE_RATE,
    crf: int = 28,
) -> Path:
    """Mux the timeline's picture (at its own rate, scaled to ``height``) with ``mix`` as AAC."""
    import av

    from muvi.video import iter_frames, probe

    w0, h0 = probe(timeline.segments[0].media).display_size
    h = max(2, min(height, h0) // 2 * 2)
    w = max(2, round(w0 * h / h0 / 2) * 2)
    audio = np.atleast_2d(np.asarray(mix, dtype=np.float32))
    if audio.shape[0] not in (1, 2):
        raise AudioWriteError(f"preview audio must be mono or stereo, got {audio.shape[0]} channels")
    if not np.all(np.isfinite(audio)):
        raise AudioWriteError("refusing to write non-finite samples to the preview")
    path = Path(path)
    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as out:
            # a quick look for the editor, not a deliverable: fastest encoder settings
            vs = out.add_stream("libx264", rate=timeline.rate.fraction, options={"preset": "ultrafast", "crf": str(crf)})
            vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
            astream = out.add_stream("aac", rate=sample_rate, layout="stereo" if audio.shape[0] == 2 else "mono")
            fps = Fraction(timeline.rate.num, timeline.rate.den)
            # deblocking is skipped in decoding: invisible after scaling a source down to preview size
            for sf in iter_frames(timeline, fps=fps, size=(w, h), fast=h < h0):
                frame = av.VideoFrame.from_ndarray(sf.image, format="rgb24")
                frame.pts = sf.index
                for packet in vs.encode(frame):
                    out.mux(packet)
            for packet in vs.encode():
                out.mux(packet)
            mux_audio(out, astream, np.clip(audio, -1.0, 1.0), sample_rate=sample_rate)
    return path


def mux_audio(out: Any, stream: Any, audio: np.ndarray, *, sample_rate: int = AUDIO_SAMPLE_RATE) -> None:
    """Encode (channels, samples) float audio into an open PyAV output ``stream`` and mux it."""
    import av

    layout = "stereo" if audio.shape[0] == 2 else "mono"
    block = 1024  # AAC frame size
    data = np.ascontiguousarray(audio, dtype=np.float32)
    for start in range(0, data.shape[1], block):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data[:, start : start + block]), format="fltp", layout=layout)
        frame.sample_rate = sample_rate
        frame.pts = start
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)


# -- synthesis (FluidSynth) ----------------------------------------------------------------
SOUNDFONT_CANDIDATES = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",  # Debian fluid-soundfont-gm (MIT): the default (README, SoundFont)
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/soundfonts/default.sf2",
)
# the SoundFonts `make setup` installs, by the names --soundfont takes besides a path
SOUNDFONT_NAMES = {
    "fluidr3": Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),  # fluid-soundfont-gm (MIT)
    "musescore": Path("/usr/share/sounds/sf3/MuseScore_General.sf3"),  # musescore-general-soundfont (MIT)
}
DRUM_MIDI_CHANNEL = 9


@dataclass(frozen=True)
class SynthOptions:
    """How stems are synthesised. ``soundfont=None`` finds a General MIDI SoundFont
    (``$MUVI_SOUNDFONT``, then Debian's fluid-soundfont-gm)."""

    soundfont: Path | None = None
    sample_rate: int = AUDIO_SAMPLE_RATE
    reverb: bool = True
    reverb_room: float = 0.5
    reverb_level: float = 0.4
    chorus: bool = False
    chorus_level: float = 1.2
    gain: float = 0.5
    tail_seconds: float = 2.0  # rendered after the last note-off (release, reverb)

    def __post_init__(self) -> None:
        if not (0.0 <= self.reverb_room <= 1.0 and 0.0 <= self.reverb_level <= 1.0):
            raise InvalidInputError("reverb room and level must be in 0..1")
        if not 0.0 < self.gain <= 5.0:
            raise InvalidInputError(f"synth gain must be in (0, 5], got {self.gain}")
        if self.sample_rate not in (22050, 44100, 48000, 96000):
            raise InvalidInputError(f"unsupported sample rate {self.sample_rate}")


def find_soundfont(path: Path | str | None = None) -> Path:
    """The SoundFont to use, or :class:`RenderError` saying how to get one."""
    import os

    if path is not None:
        p = SOUNDFONT_NAMES.get(str(path).lower(), Path(path))
        if not p.is_file():
            raise RenderError(f"SoundFont not found: {p}" + (" (make setup installs it)" if str(path).lower()
                                                              in SOUNDFONT_NAMES else ""))
        return p
    env = os.environ.get("MUVI_SOUNDFONT")
    for cand in ([env] if env else []) + list(SOUNDFONT_CANDIDATES):
        if cand and Path(cand).is_file():
            return Path(cand)
    raise RenderError(
        "no General MIDI SoundFont found: install Debian's 'fluid-soundfont-gm' "
        "(apt-get install fluid-soundfont-gm), set MUVI_SOUNDFONT, or pass --soundfont FILE"
    )


def _fluidsynth() -> Any:
    try:
        import fluidsynth  # pyfluidsynth; needs the libfluidsynth shared library
    except ImportError as exc:
        raise RenderError(
            f"FluidSynth is not available ({exc}): install Debian's 'libfluidsynth3' and the "
            "'pyfluidsynth' Python package"
        ) from exc
    import ctypes

    fn = fluidsynth._fl.fluid_synth_write_float
    fn.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                   ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fluidsynth


FLUID_BLOCK = 64  # FluidSynth renders (and applies events) in blocks of this many samples


def _block(pos: int) -> int:
    return max(0, (pos + FLUID_BLOCK // 2) // FLUID_BLOCK * FLUID_BLOCK)


def _render_stem(
    fs: Any, soundfont: Path, played: Sequence[Any], *, program: int, drums: bool, times: Callable[[Fraction], int],
    n_samples: int, options: SynthOptions,
) -> np.ndarray:
    synth = fs.Synth(gain=options.gain, samplerate=float(options.sample_rate))
    try:
        synth.setting("synth.dynamic-sample-loading", 1)
        synth.setting("synth.reverb.active", int(options.reverb))
        synth.setting("synth.chorus.active", int(options.chorus))
        sfid = synth.sfload(str(soundfont))
        if sfid < 0:
            raise RenderError(f"FluidSynth cannot load the SoundFont {soundfont}")
        ch = DRUM_MIDI_CHANNEL if drums else 0
        if synth.program_select(ch, sfid, 128 if drums else 0, 0 if drums else int(program)) != 0:
            raise RenderError(f"SoundFont {soundfont.name} has no {'drum kit' if drums else f'program {program}'}")
        if options.reverb:
            synth.set_reverb(roomsize=options.reverb_room, level=options.reverb_level)
        if options.chorus:
            synth.set_chorus(level=options.chorus_level)
        events: list[tuple[int, int, int, int]] = []
        for p in played:
            on = times(p.on)
            if on < 0 or on >= n_samples:
                continue
            # FluidSynth applies an event at the start of its next 64-sample block: issued at the
            # block boundary nearest its sample, a note starts within ±32 samples (0.67 ms) of
            # its time instead of up to 64 late
            on_q = _block(on)
            events.append((on_q, 1, p.pitch, p.velocity))
            events.append((max(on_q + FLUID_BLOCK, _block(times(p.off))), 0, p.pitch, 0))
        events.sort()
        buf = np.zeros((n_samples, 2), np.float32)
        write = fs._fl.fluid_synth_write_float
        cursor = 0
        for pos, kind, pitch, vel in events:
            pos = min(pos, n_samples)
            if pos > cursor:
                view = buf[cursor:pos]
                write(synth.synth, pos - cursor, view.ctypes.data, 0, 2, view.ctypes.data, 1, 2)
                cursor = pos
            if kind:
                synth.noteon(ch, pitch, vel)
            else:
                synth.noteoff(ch, pitch)
        if cursor < n_samples:
            view = buf[cursor:]
            write(synth.synth, n_samples - cursor, view.ctypes.data, 0, 2, view.ctypes.data, 1, 2)
        return buf.T.astype(np.float64)
    finally:
        synth.delete()


def render_score(
    score: Any,
    *,
    options: SynthOptions = SynthOptions(),
    stems: Sequence[str] | None = None,
    n_samples: int | None = None,
    default_programs: Mapping[str, int] | None = None,
    performance: Performance | None = None,
    stem_options: Mapping[str, SynthOptions] | None = None,
) -> dict[str, np.ndarray]:
    """Synthesise each stem of a :class:`muvi.music.score.Score` separately with FluidSynth.

    ``performance`` (:mod:`muvi.music.perform`) says when and how hard each note is played;
    without it the score is played as written, on the grid. Returns ``{stem: (2, N)
    float64}``, all the same length: ``n_samples`` if given, else up to the last note-off plus
    ``options.tail_seconds``; ``stem_options`` override ``options`` per stem (reverb sends).
    Sample 0 is the music's start (time 0 of the tempo map); a note
    played at beat ``b`` starts at ``floor(score.tempo.time_at(b) * sr)``. Stems render in
    parallel (FluidSynth runs outside the GIL). The drums stem uses the SoundFont's
    percussion bank.
    """
    import os
    from concurrent.futures import ThreadPoolExecutor

    fs = _fluidsynth()
    soundfont = find_soundfont(options.soundfont)
    sr = options.sample_rate
    names = list(stems) if stems is not None else list(score.stems)
    by_stem = (performance or grid_performance(score)).by_stem()

    def times(beat: Fraction) -> int:
        return math.floor(score.tempo.time_at(beat) * sr)

    if n_samples is None:
        last = max((times(p.off) for notes in by_stem.values() for p in notes), default=0)
        n_samples = max(1, last + int(options.tail_seconds * sr))
    programs = {**(default_programs or {}), **dict(score.programs)}
    with ThreadPoolExecutor(max_workers=max(1, min(len(names), os.cpu_count() or 1))) as pool:
        futures = {
            name: pool.submit(
                _render_stem, fs, soundfont, by_stem.get(name, []), program=int(programs.get(name, 0)),
                drums=name == "drums", times=times, n_samples=n_samples,
                options=(stem_options or {}).get(name, options),
            )
            for name in names
        }
        return {name: f.result() for name, f in futures.items()}
