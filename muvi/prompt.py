"""In-context music prompts: a MIDI file or an audio recording becomes a clean roll prefix.

The DiT was trained to infill: a prefix of the roll is given clean (as extra input channels
with a mask) and only the rest is generated. At inference the user's prompt fills that prefix;
the same mechanism carries a long piece across windows (the end of one window is the prefix of
the next, :func:`continuation_prompt`).

Audio is transcribed with basic-pitch's bundled ONNX model (no TensorFlow, nothing
downloaded); its tempo and first beat come from librosa's beat tracker, and notes are
quantised to the 16th grid on that beat. Low notes go to bass, the rest to melody (or chords
when the recording is polyphonic); a recording yields no drums.
"""

from __future__ import annotations

import logging
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np

from muvi.errors import InvalidInputError, MediaError
from muvi.music.midi import read_midi
from muvi.music.roll import RollSpec
from muvi.music.score import Note, Score
from muvi.music.tempo import TempoMap

__all__ = ["AUDIO_SUFFIXES", "MIDI_SUFFIXES", "load_prompt", "transcribe_audio", "prompt_tokens", "continuation_prompt", "with_suffix"]

log = logging.getLogger(__name__)
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".aif", ".aiff")
MIDI_SUFFIXES = (".mid", ".midi")


def transcribe_audio(path: Path | str, *, steps_per_beat: int = 4) -> Score:
    """Audio → :class:`Score` on a beat grid (basic-pitch ONNX + librosa beat tracking)."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from basic_pitch import FilenameSuffix, build_icassp_2022_model_path
            from basic_pitch.inference import Model, predict
    except ImportError as exc:
        raise InvalidInputError(
            f"audio prompts need basic-pitch (pip install --no-deps basic-pitch; see README): {exc}"
        ) from exc
    import librosa

    try:
        y, sr = librosa.load(str(path), sr=22050, mono=True)
    except Exception as exc:
        raise MediaError(path, f"not a readable audio file ({exc})") from exc
    if y.size < sr // 2 or not np.any(y):
        raise MediaError(path, "audio prompt is shorter than half a second or silent")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Model(build_icassp_2022_model_path(FilenameSuffix.onnx))
        _, _, events = predict(str(path), model)
    tempo, beats = librosa.beat.beat_track(y=y, sr=sr, units="time")
    bpm = float(np.atleast_1d(tempo)[0]) or 120.0
    bpm = min(200.0, max(50.0, bpm))
    raw = [(float(s), float(e), int(p), float(a)) for s, e, p, a, *_ in events]
    if not raw:
        raise MediaError(path, "no notes could be transcribed from the audio prompt")
    bpm_f = Fraction(bpm).limit_denominator(100)
    beat = 60 / bpm_f
    origin = Fraction(float(beats[0])).limit_denominator(10000) if len(beats) else Fraction(0)
    first_note = Fraction(min(s for s, _, _, _ in raw)).limit_denominator(10000)
    if first_note < origin - beat / 8:  # notes before the first tracked beat: move the grid back whole beats
        origin -= beat * int(-(-(origin - first_note - beat / 8) // beat))
    tmap = TempoMap.constant(bpm_f, origin=origin)
    poly = _mean_polyphony(raw)
    notes = []
    for s, e, pitch, amp in raw:
        st = round(tmap.beat_at(Fraction(s).limit_denominator(10000)) * steps_per_beat)
        en = max(st + 1, round(tmap.beat_at(Fraction(e).limit_denominator(10000)) * steps_per_beat))
        if st < 0:
            continue
        stem = "bass" if pitch < 48 else ("chords" if poly >= 1.5 else "melody")
        notes.append(Note(st, pitch, en, int(np.clip(round(40 + 87 * amp), 1, 127)), stem))
    last = max(n.end for n in notes) if notes else 0
    bar = steps_per_beat * tmap.beats_per_bar
    return Score(tuple(notes), tmap, -(-last // bar) * bar, steps_per_beat)


def _mean_polyphony(raw: list[tuple[float, float, int, float]]) -> float:
    total = sum(e - s for s, e, _, _ in raw)
    span = max(e for _, e, _, _ in raw) - min(s for s, _, _, _ in raw)
    return total / span if span > 0 else 1.0


def load_prompt(path: Path | str, *, steps_per_beat: int = 4) -> Score:
    """A prompt file (MIDI or audio) as a :class:`Score`."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in MIDI_SUFFIXES:
        return read_midi(path, steps_per_beat=steps_per_beat)
    if suffix in AUDIO_SUFFIXES:
        return transcribe_audio(path, steps_per_beat=steps_per_beat)
    raise InvalidInputError(
        f"{path}: a prompt must be MIDI ({', '.join(MIDI_SUFFIXES)}) or audio ({', '.join(AUDIO_SUFFIXES)})"
    )


def prompt_tokens(
    notes: list[Note] | tuple[Note, ...], spec: RollSpec, *, n_steps: int, prefix_steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Clean prefix tokens (n_steps, F) (zero after the prefix) and mask (n_steps, 1).

    Notes are cut at the prefix end; the prefix is at most half the window.
    """
    if not 0 <= prefix_steps <= n_steps:
        raise InvalidInputError(f"prompt prefix {prefix_steps} outside the window of {n_steps} steps")
    cut = [Note(n.start, n.pitch, min(n.end, prefix_steps), n.velocity, n.stem) for n in notes if n.start < prefix_steps]
    tokens = spec.to_tokens(spec.encode(cut, n_steps)).copy()
    mask = np.zeros((n_steps, 1), np.float32)
    mask[:prefix_steps] = 1.0
    tokens[prefix_steps:] = 0.0
    return tokens.astype(np.float32), mask


def continuation_prompt(previous: np.ndarray, *, overlap_steps: int, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The last ``overlap_steps`` of a generated window (tokens (T, F)) as the prefix of the next."""
    if overlap_steps > previous.shape[0] or overlap_steps > n_steps:
        raise InvalidInputError("overlap longer than the windows")
    tokens = np.zeros((n_steps, previous.shape[1]), np.float32)
    tokens[:overlap_steps] = previous[previous.shape[0] - overlap_steps :]
    mask = np.zeros((n_steps, 1), np.float32)
    mask[:overlap_steps] = 1.0
    return tokens, mask


def with_suffix(tokens: np.ndarray, mask: np.ndarray, suffix: np.ndarray, *, start: int) -> tuple[np.ndarray, np.ndarray]:
    """A window's prompt (tokens (T, F), mask (T, 1)) with ``suffix`` (tokens (L, F)) given
    clean over steps ``[start, start + L)``: an ending planned before sampling
    (:mod:`muvi.shape`), or, for a loop, the take's own start. It ends the timeline's music;
    steps after it (a short timeline's padding) stay free and are cut afterwards."""
    if not 0 <= start <= tokens.shape[0] or start + suffix.shape[0] > tokens.shape[0] or suffix.shape[1:] != tokens.shape[1:]:
        raise InvalidInputError(f"a suffix of {suffix.shape[0]} steps from step {start} does not fit a window of "
                                f"{tokens.shape[0]}")
    tokens, mask = tokens.copy(), mask.copy()
    tokens[start:start + suffix.shape[0]] = suffix
    mask[start:start + suffix.shape[0]] = 1.0
    return tokens, mask
