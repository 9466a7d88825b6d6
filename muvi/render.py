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
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from muvi.audio import CHUNK, ArrayAudio, Audio, FileAudioWriter, chunk_spans, read_all
from muvi.bwf import BextInfo, BwfWriter, LoudnessFields
from muvi.errors import AudioWriteError, InvalidInputError, RenderError
from muvi.fileio import atomic_path
from muvi.mix import LoudnessOptions, LoudnessReport, Mastering, MixTemplate, plan_master
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
    "render_stems",
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
    mix_audio: Audio = field(repr=False, default_factory=lambda: ArrayAudio(np.zeros((2, 0))))  # the mastered mix


def _check_stem_names(stems: Sequence[str]) -> None:
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
    """Fit, master (:func:`muvi.mix.plan_master`) and write ``<stem>.wav`` for each stem and
    ``mix.wav`` into ``out_dir``.

    Stems are (channels, samples) float arrays starting at the timeline's first frame; each is
    fitted to the timeline's exact sample length. Without a timeline (a plain MIDI render)
    ``time_reference`` and ``n_samples`` (default: the longest stem) are used.
    """
    _check_stem_names(list(stems))
    if timeline is not None:
        start_sample, n = timeline.sample_range(sample_rate)
    else:
        start_sample = time_reference
        n = n_samples if n_samples is not None else max(np.atleast_2d(v).shape[-1] for v in stems.values())
    fitted = {k: ArrayAudio(fit_length(v, n)) for k, v in stems.items()}
    mastering = plan_master(fitted, loudness, template=template, sample_rate=sample_rate)
    return write_mastered(out_dir, mastering, time_reference=start_sample, sample_rate=sample_rate,
                          bit_depth=bit_depth, description=description, origination=origination)


def write_mastered(
    out_dir: Path | str,
    mastering: Mastering,
    *,
    time_reference: int,
    sample_rate: int = AUDIO_SAMPLE_RATE,
    bit_depth: int = 24,
    description: str = "",
    origination: _dt.datetime | None = None,
    mix_store: Path | None = None,
) -> StemFiles:
    """Write the mastered stems and their mix as Broadcast WAVs whose TimeReference is
    ``time_reference`` (the timeline's record start in samples), made and written chunk by
    chunk in one pass (:meth:`muvi.mix.Mastering.chunks`); the mix carries the loudness fields.
    The mix is also kept for the preview: in memory, or with ``mix_store`` (a file) as raw
    float32 there. Either all files are written or, on error, none of them is left behind."""
    names = mastering.names
    _check_stem_names(names)
    report = mastering.report
    fields = LoudnessFields(integrated_lufs=report.output_lufs, true_peak_dbtp=report.output_true_peak_dbtp)
    when = origination or _dt.datetime.now().replace(microsecond=0)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    targets = {**{k: out_dir / f"{k}.wav" for k in names}, "mix": out_dir / "mix.wav"}
    keep = _ArraySink(mastering.n, mastering.channels) if mix_store is None else \
        FileAudioWriter(mix_store, channels=mastering.channels)
    with contextlib.ExitStack() as stack:
        # every file under a temporary name; the renames happen only if all succeed
        writers = {}
        for key, final in targets.items():
            label = "mix" if key == "mix" else f"stem {key}"
            bext = BextInfo(
                description=f"{description} {label}".strip(),
                origination=when,
                time_reference=time_reference,
                loudness=fields if key == "mix" else LoudnessFields(),
                coding_history=f"A=PCM,F={sample_rate},W={bit_depth},T=muvi",
            )
            writers[key] = stack.enter_context(BwfWriter(final, channels=mastering.channels, n_samples=mastering.n,
                                                         sample_rate=sample_rate, bit_depth=bit_depth, bext=bext))
        # the files side by side (the PCM conversion and the writes release the GIL)
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=min(len(writers), os.cpu_count() or 1)))
        for _, _, parts, mix in mastering.chunks(each=pool.map):
            list(pool.map(lambda kv: writers[kv[0]].write(kv[1]), [*parts.items(), ("mix", mix)]))
            keep.append(mix.T)
    return StemFiles(
        stems={k: targets[k] for k in names},
        mix=targets["mix"],
        sample_rate=sample_rate,
        bit_depth=bit_depth,
        time_reference=time_reference,
        n_samples=mastering.n,
        loudness=report,
        mix_audio=keep.close(),
    )


def write_preview(
    path: Path | str,
    timeline: Timeline,
    mix: Audio | np.ndarray,
    *,
    height: int = 360,
    sample_rate: int = AUDIO_SAMPLE_RATE,
    crf: int = 28,
    n_samples: int | None = None,
) -> Path:
    """Mux the timeline's picture (at its own rate, scaled to ``height``) with ``mix`` (its
    first ``n_samples``; an array or an :class:`muvi.audio.Audio` source, read in chunks) as AAC."""
    import av

    from muvi.video import iter_frames, probe

    w0, h0 = probe(timeline.segments[0].media).display_size
    h = max(2, min(height, h0) // 2 * 2)
    w = max(2, round(w0 * h / h0 / 2) * 2)
    audio = mix if hasattr(mix, "read") else ArrayAudio(np.asarray(mix, dtype=np.float32))
    if audio.channels not in (1, 2):
        raise AudioWriteError(f"preview audio must be mono or stereo, got {audio.channels} channels")
    path = Path(path)
    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as out:
            # a quick look for the editor, not a deliverable: fastest encoder settings
            vs = out.add_stream("libx264", rate=timeline.rate.fraction, options={"preset": "ultrafast", "crf": str(crf)})
            vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
            astream = out.add_stream("aac", rate=sample_rate, layout="stereo" if audio.channels == 2 else "mono")
            fps = Fraction(timeline.rate.num, timeline.rate.den)
            # deblocking is skipped in decoding: invisible after scaling a source down to preview size
            for sf in iter_frames(timeline, fps=fps, size=(w, h), fast=h < h0):
                frame = av.VideoFrame.from_ndarray(sf.image, format="rgb24")
                frame.pts = sf.index
                for packet in vs.encode(frame):
                    out.mux(packet)
            for packet in vs.encode():
                out.mux(packet)
            mux_audio(out, astream, audio, sample_rate=sample_rate, n_samples=n_samples)
    return path


def mux_audio(out: Any, stream: Any, audio: Audio | np.ndarray, *, sample_rate: int = AUDIO_SAMPLE_RATE,
              n_samples: int | None = None) -> None:
    """Encode (channels, samples) float audio (an array or an :class:`muvi.audio.Audio`
    source, its first ``n_samples``) into an open PyAV output ``stream`` and mux it."""
    import av

    src = audio if hasattr(audio, "read") else ArrayAudio(np.asarray(audio))
    layout = "stereo" if src.channels == 2 else "mono"
    block = 1024  # AAC frame size
    n = src.n if n_samples is None else min(src.n, n_samples)
    for a, b in chunk_spans(n, CHUNK // block * block):
        data = np.ascontiguousarray(np.clip(src.read(a, b), -1.0, 1.0), dtype=np.float32)
        if not np.all(np.isfinite(data)):
            raise AudioWriteError("refusing to write non-finite samples to the preview")
        for start in range(0, data.shape[1], block):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data[:, start: start + block]), format="fltp",
                                               layout=layout)
            frame.sample_rate = sample_rate
            frame.pts = a + start
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


class _ArraySink:
    """Rendered frames into one preallocated (n, channels) float32 array."""

    def __init__(self, n: int, channels: int = 2) -> None:
        self.buf, self.pos = np.zeros((n, channels), np.float32), 0

    def append(self, frames: np.ndarray) -> None:
        self.buf[self.pos: self.pos + len(frames)] = frames
        self.pos += len(frames)

    def close(self) -> Audio:
        return ArrayAudio(self.buf.T)


def _render_stem(
    fs: Any, soundfont: Path, played: Sequence[Any], *, program: int, drums: bool, times: Callable[[Fraction], int],
    n_samples: int, options: SynthOptions, sink: Any,
) -> Audio:
    """One stem through its own FluidSynth instance into ``sink`` (``append`` (k, 2) float32
    frames, ``close`` → :class:`muvi.audio.Audio`), :data:`muvi.audio.CHUNK` samples at a time."""
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
        out = _Synthesis(fs, synth, sink, min(CHUNK, max(1, n_samples)))
        for pos, kind, pitch, vel in events:
            out.until(min(pos, n_samples))
            if kind:
                synth.noteon(ch, pitch, vel)
            else:
                synth.noteoff(ch, pitch)
        out.until(n_samples)
        out.flush()
        return sink.close()
    finally:
        synth.delete()


class _Synthesis:
    """A synth's output rendered into a chunk buffer and handed to the sink whenever it is full."""

    def __init__(self, fs: Any, synth: Any, sink: Any, chunk: int) -> None:
        self.write, self.synth, self.sink = fs._fl.fluid_synth_write_float, synth, sink
        self.buf = np.zeros((chunk, 2), np.float32)
        self.fill = self.cursor = 0

    def until(self, pos: int) -> None:
        while self.cursor < pos:
            k = min(pos - self.cursor, len(self.buf) - self.fill)
            view = self.buf[self.fill: self.fill + k]
            view[:] = 0.0
            self.write(self.synth.synth, k, view.ctypes.data, 0, 2, view.ctypes.data, 1, 2)
            self.fill += k
            self.cursor += k
            if self.fill == len(self.buf):
                self.flush()

    def flush(self) -> None:
        if self.fill:
            self.sink.append(self.buf[: self.fill])
            self.fill = 0


def render_stems(
    score: Any,
    *,
    options: SynthOptions = SynthOptions(),
    stems: Sequence[str] | None = None,
    n_samples: int | None = None,
    default_programs: Mapping[str, int] | None = None,
    performance: Performance | None = None,
    stem_options: Mapping[str, SynthOptions] | None = None,
    store: Path | None = None,
) -> dict[str, Audio]:
    """Synthesise each stem of a :class:`muvi.music.score.Score` separately with FluidSynth,
    as :class:`muvi.audio.Audio` sources: in memory, or with ``store`` (a folder) as raw
    float32 files there, written chunk by chunk (a take of any length, in bounded memory).

    ``performance`` (:mod:`muvi.music.perform`) says when and how hard each note is played;
    without it the score is played as written, on the grid. All stems have the same length:
    ``n_samples`` if given, else up to the last note-off plus ``options.tail_seconds``;
    ``stem_options`` override ``options`` per stem (reverb sends). Sample 0 is the music's
    start (time 0 of the tempo map); a note played at beat ``b`` starts at
    ``floor(score.tempo.time_at(b) * sr)``. Stems render in parallel (FluidSynth runs outside
    the GIL). The drums stem uses the SoundFont's percussion bank.
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

    def sink(name: str) -> Any:
        return _ArraySink(n_samples) if store is None else FileAudioWriter(Path(store) / f"{name}.f32", channels=2)

    with ThreadPoolExecutor(max_workers=max(1, min(len(names), os.cpu_count() or 1))) as pool:
        futures = {
            name: pool.submit(
                _render_stem, fs, soundfont, by_stem.get(name, []), program=int(programs.get(name, 0)),
                drums=name == "drums", times=times, n_samples=n_samples,
                options=(stem_options or {}).get(name, options), sink=sink(name),
            )
            for name in names
        }
        return {name: f.result() for name, f in futures.items()}


def render_score(score: Any, **kwargs: Any) -> dict[str, np.ndarray]:
    """:func:`render_stems` held in memory: ``{stem: (2, N) float64}``."""
    return {name: read_all(audio) for name, audio in render_stems(score, **kwargs).items()}
