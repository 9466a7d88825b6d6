"""Measurements: rhythm against a reference or the picture, and musicality of notes.

Beat Coverage Score and Beat Hit Score (the MuVi paper's BCS/BHS, from the D2M-GAN → LORIS
lineage): both signals are reduced to mono at 22050 Hz; "beats" are librosa onsets
(``librosa.onset.onset_detect(wait=1, delta=0.2, pre_avg=3, post_avg=3, pre_max=3,
post_max=3)``); time is cut into bins of ``1/resolution_hz`` seconds (default 5 Hz, i.e.
0.2 s — a tolerance of up to one bin) and a bin is a beat bin if it holds an onset. With
``G`` the generated beat bins and ``R`` the reference beat bins:

    BCS = 100 · |G| / |R|          (≈100 when the densities match; can exceed 100)
    BHS = 100 · |G ∩ R| / |R|      (share of reference beat bins also hit by the generated music)

Accent hit rate: the share of given accent times (video cuts, motion peaks) that have a music
beat within ``tolerance`` (default one video frame).

Musicality statistics (notes, not audio): in-scale ratio, pitch-class entropy (bits), mean
polyphony, empty-bar ratio and note density per stem, groove consistency (1 − mean Hamming
distance between consecutive bars' onset patterns / steps per bar, as in Yang & Lerch 2020).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Sequence

import numpy as np

from muvi.errors import InvalidInputError
from muvi.music.keys import Key, estimate_key, pitch_class_histogram
from muvi.music.score import Note, Score

__all__ = [
    "BeatScores",
    "onset_times",
    "beat_scores",
    "accent_hits",
    "accent_hit_rate",
    "musicality",
    "frechet_distance",
]

ONSET_SR = 22050


@dataclass(frozen=True)
class BeatScores:
    bcs: float
    bhs: float
    generated_beats: int
    reference_beats: int


def onset_times(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Onset times (s) of (channels, samples) or (samples,) audio, as the BCS/BHS lineage detects them."""
    import librosa

    a = np.asarray(audio, dtype=np.float32)
    y = a.mean(axis=0) if a.ndim == 2 else a
    if sample_rate != ONSET_SR:
        y = librosa.resample(y, orig_sr=sample_rate, target_sr=ONSET_SR)
    if not np.any(y):
        return np.zeros(0)
    return librosa.onset.onset_detect(
        y=y, sr=ONSET_SR, wait=1, delta=0.2, pre_avg=3, post_avg=3, pre_max=3, post_max=3, units="time"
    )


def _bins(times: np.ndarray, duration: float, resolution_hz: float) -> np.ndarray:
    n = max(1, math.ceil(duration * resolution_hz))
    out = np.zeros(n, bool)
    idx = np.floor(np.asarray(times) * resolution_hz).astype(int)
    out[idx[(idx >= 0) & (idx < n)]] = True
    return out


def beat_scores(
    generated: np.ndarray, reference: np.ndarray, sample_rate: int, *, resolution_hz: float = 5.0
) -> BeatScores:
    """BCS and BHS of generated against reference audio (see the module docstring)."""
    if resolution_hz <= 0:
        raise InvalidInputError("resolution must be positive")
    g_len = np.asarray(generated).shape[-1] / sample_rate
    r_len = np.asarray(reference).shape[-1] / sample_rate
    duration = min(g_len, r_len)
    g = _bins(onset_times(generated, sample_rate), duration, resolution_hz)
    r = _bins(onset_times(reference, sample_rate), duration, resolution_hz)
    n_ref = int(r.sum())
    if n_ref == 0:
        return BeatScores(math.nan, math.nan, int(g.sum()), 0)
    return BeatScores(100.0 * g.sum() / n_ref, 100.0 * (g & r).sum() / n_ref, int(g.sum()), n_ref)


def accent_hits(
    accents: Sequence[float | Fraction], beats: Sequence[float | Fraction], *, tolerance: float | Fraction
) -> list[bool]:
    """For each accent, whether a beat lies within ``tolerance`` seconds of it."""
    b = np.sort(np.asarray([float(x) for x in beats]))
    out = []
    for a in accents:
        if not len(b):
            out.append(False)
            continue
        i = np.searchsorted(b, float(a))
        near = min(abs(b[j] - float(a)) for j in (i - 1, i) if 0 <= j < len(b))
        out.append(near <= float(tolerance) + 1e-9)
    return out


def accent_hit_rate(
    accents: Sequence[float | Fraction],
    beats: Sequence[float | Fraction],
    *,
    frame_rate: float | Fraction = 25,
    tolerance: float | Fraction | None = None,
) -> float:
    """Share of accents with a beat within ``tolerance`` (default one frame at ``frame_rate``); NaN with no accents."""
    if not len(accents):
        return math.nan
    tol = tolerance if tolerance is not None else 1 / Fraction(frame_rate)
    hits = accent_hits(accents, beats, tolerance=tol)
    return sum(hits) / len(hits)


def _groove_consistency(notes: Sequence[Note], steps_per_bar: int, n_bars: int) -> float:
    if n_bars < 2 or not notes:
        return math.nan
    grid = np.zeros((n_bars, steps_per_bar), bool)
    for n in notes:
        b, s = divmod(n.start, steps_per_bar)
        if b < n_bars:
            grid[b, s] = True
    d = np.mean(np.sum(grid[1:] != grid[:-1], axis=1)) / steps_per_bar
    return float(1.0 - d)


def musicality(
    score: Score, *, key: Key | None = None, stems: Sequence[str] | None = None, drum_stems: Sequence[str] = ("drums",),
    bars: int | None = None, first_bar: int = 0, played: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Musicality statistics of a score (see the module docstring), over its bars from
    ``first_bar`` to ``bars`` (default: all; a take's pickup bar that lies mostly before its
    first frame is not heard, so it is not judged). Stems without notes get ``empty_bar_ratio``
    1.0 and density 0.

    ``played`` ([first, end) grid steps) is where the music plays freely: a take's steps from
    its first step in the picture to its ending's given suffix. Note density per bar is then
    the onsets in it over its length in bars (a pickup of half a bar counts as half a bar, and
    the cadence's one held chord is not a bar of playing); without it, the onsets over the
    bars."""
    bar = score.steps_per_bar
    n_steps = score.n_steps if bars is None else max(1, min(score.n_steps, bars * bar))
    n_bars = max(1, math.ceil(n_steps / bar))
    if played is not None and not 0 <= played[0] < played[1]:
        raise InvalidInputError(f"played span must be 0 <= first < end, got {played}")
    if not 0 <= first_bar < n_bars:
        raise InvalidInputError(f"first judged bar must lie in 0..{n_bars - 1}, got {first_bar}")
    per_bars = n_bars - first_bar if played is None else (played[1] - played[0]) / bar
    notes = [n for n in score.notes if n.start < n_steps]
    names = list(stems) if stems is not None else sorted({n.stem for n in notes})
    pitched = [n for n in notes if n.stem not in drum_stems]
    if key is None and score.key:
        key = Key.parse(score.key)
    if key is None:
        key = estimate_key(pitched)
    hist = pitch_class_histogram(pitched, drum_stems=drum_stems)
    p = hist / hist.sum() if hist.sum() else hist
    entropy = float(-(p[p > 0] * np.log2(p[p > 0])).sum()) if hist.sum() else math.nan
    sounding = np.zeros(n_steps, int)
    for n in pitched:
        sounding[n.start : min(n.end, n_steps)] += 1
    per_stem: dict[str, dict[str, float]] = {}
    for stem in names:
        sn = [n for n in notes if n.stem == stem]
        covered = np.zeros(n_bars, bool)
        for n in sn:
            covered[n.start // bar : min(n_bars, (max(n.end, n.start + 1) - 1) // bar + 1)] = True
        stem_sounding = np.zeros(n_steps, int)
        for n in sn:
            stem_sounding[n.start : min(n.end, n_steps)] += 1
        active = stem_sounding[stem_sounding > 0]
        per_stem[stem] = {
            "notes": len(sn),
            "note_density_per_bar": (sum(n.start >= first_bar * bar for n in sn) if played is None else
                                     sum(played[0] <= n.start < played[1] for n in sn)) / per_bars,
            "empty_bar_ratio": float(1.0 - covered[first_bar:].mean()),
            "polyphony": float(active.mean()) if active.size else 0.0,
        }
        if stem not in drum_stems and key is not None:
            per_stem[stem]["in_scale_ratio"] = float(np.mean([key.contains(n.pitch) for n in sn])) if sn else math.nan
    drums = [n for n in notes if n.stem in drum_stems] or notes
    active = sounding[sounding > 0]
    return {
        "key": key.name if key else None,
        "bars": n_bars - first_bar,
        "played_bars": None if played is None else round(per_bars, 4),
        "in_scale_ratio": float(np.mean([key.contains(n.pitch) for n in pitched])) if pitched and key else math.nan,
        "pitch_class_entropy": entropy,
        "polyphony": float(active.mean()) if active.size else 0.0,
        "groove_consistency": _groove_consistency(drums, bar, n_bars),
        "stems": per_stem,
    }


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two embedding sets (N, D) and (M, D)."""
    from scipy import linalg

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise InvalidInputError(f"embeddings must be (N, D) with equal D, got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise InvalidInputError("need at least two embeddings per set")
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    s1, s2 = np.atleast_2d(s1), np.atleast_2d(s2)
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.all(np.isfinite(covmean)):
        eps = np.eye(len(s1)) * 1e-6
        covmean = linalg.sqrtm((s1 + eps) @ (s2 + eps))
    covmean = np.real(covmean)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
