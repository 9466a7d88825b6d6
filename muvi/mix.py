"""From rendered stems to a balanced, mastered mix, and the loudness measures it is held to.

Stages of :func:`master` (DESIGN §3, FIELD-NOTES "Audio deliverables"):

1. **balance** (:data:`MIX_TEMPLATES`, one per style): each stem's stereo width and position,
   then its gain, so that its loudness relative to the mix is the template's (drums and bass
   centred and dry, pads wide, the melody forward). The reverb send is applied earlier, in the
   synthesiser (:func:`reverb_sends`), because every stem has its own FluidSynth instance.
2. **bus**: one gain curve computed on the mix — the gain towards the loudness target, a gentle
   compressor (2:1 above a threshold a few dB over the mix's loudness, at most
   :data:`MAX_COMPRESSION_DB` of gain reduction, 15 ms attack, 250 ms release), and a
   look-ahead peak limiter at the true-peak ceiling. The same curve multiplies every stem, so
   the stems still sum to the mix (linked, not per stem).
3. **measured**: BS.1770-4 integrated loudness (pyloudnorm's K-weighting; each stem filtered
   once, :class:`_Meter`), true peak (4× oversampled) and each stem's loudness relative to the
   mix, against the template's ranges.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from muvi.audio import CHUNK, ArrayAudio, Audio, chunk_spans
from muvi.errors import AudioWriteError, InvalidInputError
from muvi.timeline import AUDIO_SAMPLE_RATE

__all__ = [
    "LoudnessOptions", "LoudnessReport", "StemMix", "MixTemplate", "MIX_TEMPLATES", "template_for",
    "integrated_loudness", "true_peak_dbtp", "master", "plan_master", "Mastering", "BusCurve", "normalize_loudness",
    "reverb_sends", "stem_levels",
]

MAX_COMPRESSION_DB = 4.0
COMPRESSOR_THRESHOLD_LU = 5.0  # over the mix's integrated loudness
MAX_LIMITING_DB = 6.0
MAKE_UP_PASSES = 2
BALANCE_PASSES = 4
STEM_CEILING = 10.0 ** (-0.1 / 20.0)  # a stem's sample peak (stems partly cancel in the mix)  # beyond this the target is given up for the ceiling (reported)


@dataclass(frozen=True)
class LoudnessOptions:
    """Loudness target: integrated LUFS and a true-peak ceiling in dBTP; ``None`` disables the
    target (the mix keeps its level and is only kept under the ceiling). ``bus`` turns the
    compressor and limiter on (off: one gain, as a plain normalisation)."""

    target_lufs: float | None = -16.0
    ceiling_dbtp: float = -1.0
    bus: bool = True

    def __post_init__(self) -> None:
        if self.target_lufs is not None and not (-70.0 <= self.target_lufs <= 0.0):
            raise InvalidInputError(f"loudness target must be between -70 and 0 LUFS, got {self.target_lufs}")
        if not (-20.0 <= self.ceiling_dbtp <= 0.0):
            raise InvalidInputError(f"true-peak ceiling must be between -20 and 0 dBTP, got {self.ceiling_dbtp}")


@dataclass(frozen=True)
class LoudnessReport:
    measured_lufs: float  # of the balanced mix before the bus (-inf for silence)
    gain_db: float  # the static part of the bus gain
    output_lufs: float
    output_true_peak_dbtp: float
    limited_by_peak: bool  # the target was not reached because of the ceiling
    compression_db: float = 0.0  # the compressor's largest gain reduction
    limiting_db: float = 0.0  # the limiter's largest gain reduction
    stems_lu: Mapping[str, float] = field(default_factory=dict)  # each stem's loudness relative to the mix

    def to_json(self) -> dict[str, Any]:
        return {"measured_lufs": _r(self.measured_lufs), "gain_db": _r(self.gain_db), "output_lufs": _r(self.output_lufs),
                "output_true_peak_dbtp": _r(self.output_true_peak_dbtp), "limited_by_peak": self.limited_by_peak,
                "compression_db": _r(self.compression_db), "limiting_db": _r(self.limiting_db),
                "stems_lu": {k: _r(v) for k, v in self.stems_lu.items()}}


def _r(x: float) -> float | None:
    return round(float(x), 2) if math.isfinite(x) else None


# -- templates ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class StemMix:
    """One stem in a template: ``level_lu`` its loudness relative to the mix when all four
    stems play (LU), ``pan`` −1 (left) .. 1, ``width`` 0 (mono) .. 1 (as rendered) .. 1.5,
    ``reverb`` the send (FluidSynth reverb level). The level is :func:`stem_levels`'s; the
    range a stem must fall in is ± ``tolerance`` (what correlated stems, a kick on the bass
    note, move it by)."""

    level_lu: float
    pan: float = 0.0
    width: float = 1.0
    reverb: float = 0.3
    tolerance: float = 1.5


@dataclass(frozen=True)
class MixTemplate:
    room: float  # the reverb's room size
    stems: Mapping[str, StemMix]

    def targets(self, present: list[str]) -> dict[str, float]:
        """Each present stem's loudness relative to the mix of the present stems (LU), if the
        stems were uncorrelated: the template's balance, re-referenced to what plays."""
        levels = {s: self.stems[s].level_lu for s in present if s in self.stems}
        total = 10.0 * math.log10(sum(10.0 ** (v / 10.0) for v in levels.values())) if levels else 0.0
        return {s: v - total for s, v in levels.items()}


def _t(room: float, drums: tuple, bass: tuple, chords: tuple, melody: tuple) -> MixTemplate:
    return MixTemplate(room, {name: StemMix(*args) for name, args in
                              zip(("drums", "bass", "chords", "melody"), (drums, bass, chords, melody))})


# (level LU, pan, width, reverb): drums and bass centred and dry, pads wide, the melody forward
MIX_TEMPLATES: dict[str, MixTemplate] = {
    "pop": _t(0.5, (-5.0, 0.0, 0.8, 0.12), (-7.0, 0.0, 0.0, 0.05), (-8.5, 0.0, 1.3, 0.35), (-5.5, 0.1, 0.5, 0.3)),
    "rock": _t(0.45, (-4.5, 0.0, 0.9, 0.15), (-7.0, 0.0, 0.0, 0.05), (-6.5, -0.1, 1.4, 0.2), (-7.5, 0.15, 0.6, 0.25)),
    "electronic": _t(0.6, (-4.0, 0.0, 0.7, 0.08), (-6.0, 0.0, 0.0, 0.03), (-8.5, 0.0, 1.5, 0.4), (-7.5, 0.1, 0.8, 0.35)),
    "hiphop": _t(0.4, (-3.5, 0.0, 0.7, 0.08), (-5.5, 0.0, 0.0, 0.03), (-10.0, 0.0, 1.3, 0.3), (-8.5, 0.1, 0.6, 0.25)),
    "ambient": _t(0.85, (-10.0, 0.0, 0.8, 0.3), (-8.0, 0.0, 0.2, 0.2), (-4.5, 0.0, 1.5, 0.7), (-5.0, 0.1, 1.0, 0.6)),
    "cinematic": _t(0.8, (-7.0, 0.0, 1.0, 0.3), (-7.5, 0.0, 0.2, 0.15), (-4.5, 0.0, 1.5, 0.6), (-6.0, 0.05, 0.8, 0.5)),
    "jazz": _t(0.55, (-7.5, 0.0, 1.0, 0.2), (-5.5, 0.0, 0.0, 0.1), (-7.5, -0.2, 1.0, 0.3), (-5.0, 0.2, 0.5, 0.3)),
    "folk": _t(0.5, (-9.0, 0.0, 0.9, 0.2), (-7.5, 0.0, 0.0, 0.1), (-5.0, -0.1, 1.3, 0.3), (-5.0, 0.1, 0.5, 0.3)),
}


def template_for(style: str | None) -> MixTemplate | None:
    return MIX_TEMPLATES.get(style or "")


def reverb_sends(style: str | None) -> tuple[float | None, dict[str, float]]:
    """The style's reverb room size and each stem's send, for the synthesiser (no template:
    ``(None, {})``, the synthesiser's defaults)."""
    t = template_for(style)
    return (None, {}) if t is None else (t.room, {k: v.reverb for k, v in t.stems.items()})


# -- loudness (BS.1770-4) ----------------------------------------------------------------------
def _k_weighted(audio: np.ndarray, sr: int) -> np.ndarray:
    """The K-weighted signal (pyloudnorm's two filters: the head's high shelf, the RLB high-pass)."""
    out = np.atleast_2d(np.asarray(audio, dtype=np.float64))
    return _KWeighting(sr, out.shape[0])(out)


def _block_power(k: np.ndarray, sr: int) -> np.ndarray:
    """Mean square of a K-weighted (channels, samples) signal, summed over channels, in 400 ms
    blocks every 100 ms (BS.1770-4, as pyloudnorm)."""
    n = k.shape[-1]
    if n < int(0.4 * sr) + 1:
        return np.zeros(0)
    csum = np.concatenate([[0.0], np.cumsum(np.einsum("cn,cn->n", k, k))])
    count = int(round((n / sr - 0.4) / 0.1)) + 1
    j = np.arange(count)
    lo, hi = (0.4 * (j * 0.25) * sr).astype(int), np.minimum((0.4 * (j * 0.25 + 1) * sr).astype(int), n)
    return (csum[hi] - csum[lo]) / (0.4 * sr)


def _gate(power: np.ndarray) -> np.ndarray:
    """The blocks that count: over −70 LUFS and within 10 LU of the mean of those."""
    with np.errstate(divide="ignore"):
        loud = -0.691 + 10.0 * np.log10(power)
    keep = loud >= -70.0
    if not keep.any():
        return keep
    rel = -0.691 + 10.0 * math.log10(float(power[keep].mean())) - 10.0
    return keep & (loud >= rel)


def _power_loudness(power: np.ndarray) -> float:
    """Integrated loudness from block powers: the gated blocks' mean."""
    mask = _gate(power) if power.size else power.astype(bool)
    return -0.691 + 10.0 * math.log10(float(power[mask].mean())) if mask.any() else -math.inf


def _gated_loudness(k: np.ndarray, sr: int) -> float:
    """Integrated loudness of a K-weighted signal."""
    return _power_loudness(_block_power(k, sr))


def _power_shares(parts: Mapping[str, np.ndarray], whole: np.ndarray) -> dict[str, float]:
    """Each part's block energy against the whole's, over the whole's gated blocks (LU); a part
    under −70 LUFS throughout is silent (−inf)."""
    mask = _gate(whole) if whole.size else whole.astype(bool)
    total = float(whole[mask].sum()) if mask.any() else 0.0
    out = {}
    for name, blocks in parts.items():
        audible = blocks.size and _gate(blocks).any()
        own = float(blocks[mask].sum()) if total > 0 and audible else 0.0
        out[name] = 10.0 * math.log10(own / total) if own > 0 else -math.inf
    return out


def _shares(parts: Mapping[str, np.ndarray], whole: np.ndarray, sr: int) -> dict[str, float]:
    """Each K-weighted part's energy against the whole's, over the whole's gated blocks (LU)."""
    return _power_shares({k: _block_power(v, sr) for k, v in parts.items()}, _block_power(whole, sr))


def integrated_loudness(audio: np.ndarray, sample_rate: int = AUDIO_SAMPLE_RATE) -> float:
    """BS.1770-4 integrated loudness (LUFS) of (channels, samples) audio; −inf if too short or silent."""
    a = np.atleast_2d(np.asarray(audio, dtype=np.float64))
    if not np.any(a):
        return -math.inf
    return _gated_loudness(_k_weighted(a, sample_rate), sample_rate)


class _Meter:
    """Loudness of any stem gains and bus gain curve from one pass over the stems: per 10 ms
    block, the K-weighted energy products of every pair of stems (a Gram matrix). The
    K-weighting is linear, so the mix's energy at static gains ``g`` is exactly ``gᵀ G g`` per
    block; a bus curve (which moves over tens of milliseconds) is applied as its mean square per
    block, which commutes with the filtering to a few hundredths of a LU. Nothing of the length
    of the audio is kept."""

    def __init__(self, names: list[str], gram: np.ndarray, n: int, sr: int) -> None:
        self.names, self.gram, self.n, self.sr = names, gram, n, sr

    def _g(self, gains_db: Mapping[str, float]) -> np.ndarray:
        return np.array([10.0 ** (gains_db[k] / 20.0) if k in gains_db else 0.0 for k in self.names])

    def energies(self, gains_db: Mapping[str, float], curve_sq: np.ndarray | None = None) -> np.ndarray:
        """(blocks,) the K-weighted energy of the named stems' sum per 10 ms block."""
        g = self._g(gains_db)
        e = np.einsum("i,bij,j->b", g, self.gram, g)
        return e if curve_sq is None else e * curve_sq

    def _stem(self, name: str, db: float, curve_sq: np.ndarray | None) -> np.ndarray:
        i = self.names.index(name)
        e = self.gram[:, i, i] * 10.0 ** (db / 10.0)
        return e if curve_sq is None else e * curve_sq

    def blocks(self, energies: np.ndarray) -> np.ndarray:
        """BS.1770's 400 ms gating blocks every 100 ms (mean square, channels summed)."""
        n, sr = self.n, self.sr
        if n < int(0.4 * sr) + 1:
            return np.zeros(0)
        count = int(round((n / sr - 0.4) / 0.1)) + 1
        csum = np.concatenate([[0.0], np.cumsum(energies)])
        lo = 10 * np.arange(count)
        return (csum[np.minimum(lo + 40, energies.size)] - csum[np.minimum(lo, energies.size)]) / (0.4 * sr)

    def of(self, gains_db: Mapping[str, float], curve_sq: np.ndarray | None = None) -> float:
        """Loudness (LUFS) of the named stems at these gains (dB), summed, through the curve."""
        return _power_loudness(self.blocks(self.energies(gains_db, curve_sq)))

    def shares(self, gains_db: Mapping[str, float], curve_sq: np.ndarray | None = None) -> dict[str, float]:
        """Each named stem's level relative to their mix (:func:`stem_levels`), at these gains."""
        whole = self.blocks(self.energies(gains_db, curve_sq))
        return _power_shares({k: self.blocks(self._stem(k, db, curve_sq)) for k, db in gains_db.items()}, whole)


def true_peak_dbtp(audio: np.ndarray, sample_rate: int = AUDIO_SAMPLE_RATE) -> float:
    """True peak in dBTP: the peak of the signal oversampled to ≥ 192 kHz (BS.1770-4 annex 2)."""
    from scipy.signal import resample_poly

    a = np.atleast_2d(np.asarray(audio, dtype=np.float64))
    if a.size == 0:
        return -math.inf
    factor = max(1, math.ceil(192000 / sample_rate))
    peak = float(np.max(np.abs(a)))
    if factor > 1:
        peak = max(peak, float(np.max(np.abs(resample_poly(a, factor, 1, axis=-1)))))
    return _db(peak)


def _db(x: float) -> float:
    return 20.0 * math.log10(x) if x > 0 else -math.inf


def stem_levels(stems: Mapping[str, np.ndarray], mix: np.ndarray, sample_rate: int = AUDIO_SAMPLE_RATE) -> dict[str, float]:
    """Each stem's level relative to the mix (LU): its K-weighted energy against the mix's, over
    the blocks the mix's loudness counts (−inf for a silent stem). Unlike the stem's own
    integrated loudness, which gates on the stem's loud blocks, a stem that plays in bursts
    counts for its share of the mix; uncorrelated stems' levels sum (as powers) to the mix."""
    parts = {k: _k_weighted(v, sample_rate) for k, v in stems.items()}
    return _shares(parts, _k_weighted(mix, sample_rate), sample_rate)


# -- the stages --------------------------------------------------------------------------------
def _place(audio: np.ndarray, pan: float, width: float) -> np.ndarray:
    """Stereo width (mid/side) and a constant-power position, in place on a (2, N) array."""
    if audio.shape[0] != 2 or (pan == 0.0 and width == 1.0):
        return audio
    side = (audio[0] - audio[1]) * (0.5 * width)
    audio[0] += audio[1]
    audio[0] *= 0.5  # mid
    audio[1] = audio[0] - side
    audio[0] += side
    theta = (pan + 1.0) * math.pi / 4.0
    audio[0] *= math.sqrt(2.0) * math.cos(theta)
    audio[1] *= math.sqrt(2.0) * math.sin(theta)
    return audio


def _smooth(target_db: np.ndarray, *, attack: float, release: float) -> np.ndarray:
    """One-pole smoothing of a per-block gain in dB: falls with ``attack``, recovers with
    ``release`` (coefficients per block)."""
    out = np.empty_like(target_db)
    g = 0.0
    for i, t in enumerate(target_db.tolist()):
        g += (t - g) * (attack if t < g else release)
        out[i] = g
    return out


def _compressor_db(power: np.ndarray, loudness: float) -> np.ndarray:
    """Per 10 ms block: the gentle bus compressor's gain (dB ≤ 0), from the mix's K-weighted
    mean square per whole 10 ms block (``power``). Its detector is that level over 50 ms, on
    the scale of the integrated loudness, so the threshold (:data:`COMPRESSOR_THRESHOLD_LU` over
    it) means the same for every spectrum. One value per block start, one past the end."""
    if power.size == 0 or not math.isfinite(loudness):
        return np.zeros(power.size + 1)
    power = np.convolve(power, np.full(5, 0.2))[: power.size]  # the last 50 ms
    level = -0.691 + 10.0 * np.log10(np.maximum(power, 1e-12))
    threshold, ratio, knee = loudness + COMPRESSOR_THRESHOLD_LU, 2.0, 6.0
    over = level - threshold
    gr = np.where(over <= -knee / 2, 0.0,
                  np.where(over >= knee / 2, over * (1 - 1 / ratio), (1 - 1 / ratio) * (over + knee / 2) ** 2 / (2 * knee)))
    gr = np.minimum(gr, MAX_COMPRESSION_DB)
    gain = _smooth(-gr, attack=1 - math.exp(-1 / 1.5), release=1 - math.exp(-1 / 25.0))
    return np.append(gain, gain[-1])


def _limiter_gain(peak: np.ndarray) -> np.ndarray:
    """Per 1 ms block: the look-ahead limiter's gain (linear ≤ 1) keeping each block's ``peak``
    (1.0 = at the ceiling) under 1; it starts falling a block before a peak and recovers over
    ~50 ms. One value per block start, one past the end."""
    need = np.minimum(1.0, 1.0 / np.maximum(peak, 1e-12))
    ahead = np.minimum.reduce([need, np.append(need[1:], 1.0), np.insert(need[:-1], 0, 1.0)])
    if ahead.size == 0 or ahead.min() >= 1.0:
        return np.ones(peak.size + 1)
    db = 20.0 * np.log10(ahead)
    smooth = 10.0 ** (np.minimum(_smooth(db, attack=1.0, release=1 - math.exp(-1 / 50.0)), db) / 20.0)
    return np.append(smooth, smooth[-1])


@dataclass(frozen=True)
class _Grid:
    """The blocks the bus works in: 10 ms (meter, compressor) and 1 ms (peaks, limiter); a
    chunk of the audio is a whole number of both."""

    sr: int
    n: int

    @property
    def sub(self) -> int:
        return max(1, self.sr // 100)

    @property
    def ms(self) -> int:
        return max(1, self.sr // 1000)

    @property
    def chunk(self) -> int:
        step = math.lcm(self.sub, self.ms)
        return max(step, CHUNK // step * step)

    @property
    def n_sub(self) -> int:
        return -(-self.n // self.sub)

    @property
    def n_ms(self) -> int:
        return -(-self.n // self.ms)


def _block_max(x: np.ndarray, block: int) -> np.ndarray:
    """(k,) → per block of ``block`` samples, the largest value (a last partial block too)."""
    nb = -(-x.size // block)
    return np.pad(x, (0, nb * block - x.size)).reshape(nb, block).max(axis=1)


@dataclass(frozen=True)
class BusCurve:
    """The bus's gain, the same for every stem: a static gain, the compressor's per 10 ms
    block (dB) and the limiter's per 1 ms block, each given at its blocks' starts (one past the
    end) and interpolated between them, sample by sample, as the audio is written."""

    grid: _Grid
    static_db: float = 0.0
    comp_db: np.ndarray | None = None
    limiter: np.ndarray | None = None

    def at(self, a: int, b: int) -> np.ndarray:
        """(b - a,) the gain of samples ``[a, b)``."""
        return self.at_points(np.arange(a, b, dtype=np.float64))

    def ms_points(self) -> np.ndarray:
        """(n_ms + 1,) the gain at every 1 ms block start."""
        return self.at_points(np.arange(self.grid.n_ms + 1, dtype=np.float64) * self.grid.ms)

    def at_points(self, s: np.ndarray) -> np.ndarray:
        """The gain at samples ``s`` (interpolated between the blocks' points)."""
        g = np.full(s.size, 10.0 ** (self.static_db / 20.0))
        if self.comp_db is not None:
            g *= 10.0 ** (np.interp(s, np.arange(self.comp_db.size) * self.grid.sub, self.comp_db) / 20.0)
        if self.limiter is not None:
            g *= np.interp(s, np.arange(self.limiter.size) * self.grid.ms, self.limiter)
        return g

    def block_max(self) -> np.ndarray:
        """(n_ms,) the largest gain within each 1 ms block (the gain is monotone between
        points: at one of its two ends)."""
        p = self.ms_points()
        return np.maximum(p[:-1], p[1:])

    def sub_sq(self) -> np.ndarray:
        """(n_sub,) the gain's mean square over each 10 ms block (from its 1 ms points)."""
        g = self.grid
        p = self.ms_points()[:-1]
        idx = np.minimum((np.arange(p.size) * g.ms) // g.sub, g.n_sub - 1)
        return np.bincount(idx, p * p, minlength=g.n_sub) / np.maximum(np.bincount(idx, minlength=g.n_sub), 1)

    def scaled(self, db: float) -> "BusCurve":
        return replace(self, static_db=self.static_db + db)


class _KWeighting:
    """pyloudnorm's two K-weighting filters (the head's high shelf, the RLB high-pass), run on
    consecutive chunks with their state carried: the same as filtering the whole signal."""

    def __init__(self, sr: int, channels: int) -> None:
        import pyloudnorm

        self.filters = [pyloudnorm.IIRfilter(4.0, 1 / math.sqrt(2), 1500.0, sr, "high_shelf"),
                        pyloudnorm.IIRfilter(0.0, 0.5, 38.0, sr, "high_pass")]
        self.state = [np.zeros((channels, max(len(f.a), len(f.b)) - 1)) for f in self.filters]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        from scipy.signal import lfilter

        for i, f in enumerate(self.filters):
            y, self.state[i] = lfilter(f.b, f.a, x, axis=-1, zi=self.state[i])
            x = f.passband_gain * y
        return x


class _Stems:
    """The stems as placed by the template (width and position), read chunk by chunk."""

    def __init__(self, sources: Mapping[str, Audio], template: MixTemplate | None) -> None:
        if not sources:
            raise AudioWriteError("no stems to mix")
        self.sources = dict(sources)
        self.names = list(sources)
        first = next(iter(sources.values()))
        for name, src in sources.items():
            if (src.channels, src.n) != (first.channels, first.n):
                raise AudioWriteError(f"stem {name!r} has shape {(src.channels, src.n)}, expected "
                                      f"{(first.channels, first.n)} like the others")
        self.channels, self.n = first.channels, first.n
        self.place = {k: (template.stems[k].pan, template.stems[k].width) if template is not None
                      and k in template.stems else (0.0, 1.0) for k in sources}

    def read(self, name: str, a: int, b: int) -> np.ndarray:
        x = self.sources[name].read(max(0, a), min(self.n, b))
        if a < 0 or b > self.n:  # beyond the ends: silence (a filter's margin)
            x = np.pad(x, ((0, 0), (max(0, -a), max(0, b - self.n))))
        return _place(np.array(x, dtype=np.float64, copy=True), *self.place[name])

    def mastered(self, lin: Mapping[str, float], a: int, b: int, curve: "BusCurve | None" = None, *,
                 each: Callable[..., Iterator[Any]] = map) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Samples ``[a, b)`` of each stem at its linear gain (through the bus ``curve``) and
        their sum; ``each`` maps over the stems (an executor's ``map`` makes them side by side)."""
        g = 1.0 if curve is None else curve.at(a, b)
        parts = dict(zip(self.names, each(lambda k: self.read(k, a, b) * (lin[k] * g), self.names)))
        mix = np.zeros((self.channels, b - a))
        for v in parts.values():
            mix += v
        return parts, mix


def _lin(gains_db: Mapping[str, float]) -> dict[str, float]:
    return {k: 10.0 ** (db / 20.0) for k, db in gains_db.items()}


def _sub_energies(k: np.ndarray, sub: int) -> np.ndarray:
    """(…, channels, n) K-weighted samples → (…, blocks, 10 ms blocks of ``sub``) padded with
    silence, for per-block energy products."""
    n = k.shape[-1]
    nb = -(-n // sub)
    pad = [(0, 0)] * (k.ndim - 1) + [(0, nb * sub - n)]
    return np.pad(k, pad).reshape(*k.shape[:-1], nb, sub)


def _analyse(stems: _Stems, grid: _Grid, each: Callable[..., Iterator[Any]] = map) -> tuple[_Meter, np.ndarray]:
    """One pass: the meter's Gram matrices and each stem's sample peak per 1 ms block (placed,
    at unit gain); a non-finite sample is refused, naming its stem."""
    names, S = stems.names, len(stems.names)
    gram = np.zeros((grid.n_sub, S, S))
    peaks = np.zeros((grid.n_ms, S), np.float32)
    kw = {k: _KWeighting(grid.sr, stems.channels) for k in names}

    def stem(i: int, a: int, b: int) -> np.ndarray:
        k = names[i]
        x = stems.read(k, a, b)
        bad = int(x.size - np.count_nonzero(np.isfinite(x)))
        if bad:
            raise AudioWriteError(f"stem {k!r}: refusing {bad} non-finite samples (NaN/Inf)")
        peaks[a // grid.ms: a // grid.ms + -(-(b - a) // grid.ms), i] = _block_max(np.abs(x).max(axis=0), grid.ms)
        return kw[k](x)

    for a, b in chunk_spans(stems.n, grid.chunk):
        ks = list(each(lambda i: stem(i, a, b), range(S)))  # each stem keeps its own filter state
        k_all = _sub_energies(np.stack(ks), grid.sub)
        gram[a // grid.sub: a // grid.sub + k_all.shape[2]] = np.einsum("icbs,jcbs->bij", k_all, k_all)
    return _Meter(names, gram, stems.n, grid.sr), peaks


def _balance(stems: _Stems, template: MixTemplate, meter: _Meter) -> dict[str, float]:
    """Gains (dB) that bring each playing stem to its level relative to the mix
    (:func:`stem_levels`); silent stems (under BS.1770's −70 LUFS gate: a reverb's denormal
    hiss is not a part to bring up) are left alone."""
    playing = [k for k in stems.names if k in template.stems and math.isfinite(meter.of({k: 0.0}))]  # over −70 LUFS
    gains = {k: 0.0 for k in playing}
    for _ in range(BALANCE_PASSES):
        correction = _balance_error(gains, template, meter)
        if not correction:
            break
        gains = {k: gains[k] + correction[k] for k in playing}
    return gains


def _balance_error(gains: Mapping[str, float], template: MixTemplate, meter: _Meter,
                   curve_sq: np.ndarray | None = None) -> dict[str, float]:
    """Per stem, the gain (dB) that removes its error against the template (the shift common to
    all, which no gain removes, taken out); empty when every stem is within 0.2 LU."""
    if not gains:
        return {}
    targets = template.targets(list(gains))
    error = {k: targets[k] - v for k, v in meter.shares(gains, curve_sq).items()}
    common = float(np.mean(list(error.values())))
    if max(abs(e - common) for e in error.values()) < 0.2:
        return {}
    return {k: e - common for k, e in error.items()}


def _bus(stems: _Stems, grid: _Grid, options: LoudnessOptions, meter: _Meter, peaks: np.ndarray,
         gains: Mapping[str, float], each: Callable[..., Iterator[Any]] = map) -> tuple[BusCurve, dict[str, float]]:
    """The bus's gain curve for the stems at ``gains`` (dB) and what it did: static gain,
    compression, limiting. The limiter sees the mix's sample peaks (one pass over the stems)
    and the largest stem's too (kept under full scale, where stems partly cancel in the mix)."""
    lin = _lin(gains)
    mix_peak = np.zeros(grid.n_ms)
    for a, b in chunk_spans(stems.n, grid.chunk):
        m = a // grid.ms
        mix_peak[m: m + -(-(b - a) // grid.ms)] = _block_max(np.abs(stems.mastered(lin, a, b, each=each)[1]).max(axis=0), grid.ms)
    ceiling = 10.0 ** (options.ceiling_dbtp / 20.0) * 10.0 ** (-0.3 / 20.0)  # room for what lies between samples
    stem_peak = (peaks * np.array([lin[k] for k in stems.names], np.float32)).max(axis=1)
    level = np.maximum(mix_peak / ceiling, stem_peak / STEM_CEILING)
    measured = meter.of(gains)
    static = options.target_lufs - measured if options.target_lufs is not None and math.isfinite(measured) else 0.0
    curve = BusCurve(grid, static)
    comp = np.zeros(1)
    if options.bus and math.isfinite(measured):
        full = stems.n // grid.sub
        comp = _compressor_db(meter.energies(gains)[:full] / grid.sub, measured)
        curve = replace(curve, comp_db=comp)

    def limited(c: BusCurve) -> BusCurve:
        return replace(c, limiter=_limiter_gain(level * c.block_max()))

    out = limited(curve)
    for _ in range(MAKE_UP_PASSES if options.bus and options.target_lufs is not None else 0):
        made_up = options.target_lufs - meter.of(gains, out.sub_sq())
        if not math.isfinite(made_up) or abs(made_up) < 0.2:
            break
        curve = curve.scaled(made_up)  # make-up gain: the target measured after the bus
        out = limited(curve)
    floor = 10.0 ** (-MAX_LIMITING_DB / 20.0) if options.bus else 1.0  # off: a plain normalisation
    lim = out.limiter if out.limiter is not None else np.ones(1)
    if lim.min() < floor:  # the ceiling wins over the target: what the limiter may not do, a static gain does
        curve = curve.scaled(20.0 * math.log10(max(lim.min() / floor, 1e-9)))
        out = limited(curve) if floor < 1.0 else replace(curve, limiter=None)
    lim = out.limiter if out.limiter is not None else np.ones(1)
    return out, {"measured": measured, "static": curve.static_db, "compression": float(-comp.min()),
                 "limiting": float(-_db(float(lim.min())))}


TRUE_PEAK_MARGIN = 64  # samples read either side of a chunk for the oversampling filter


def _final_measures(stems: _Stems, grid: _Grid, lin: Mapping[str, float], curve: BusCurve,
                    meter: _Meter, each: Callable[..., Iterator[Any]] = map) -> tuple[float, float, float]:
    """(true peak of the mix in dBTP, the largest stem's sample peak (linear), the mix's
    integrated loudness) through the bus, measured on the mix itself: one pass, the mix
    K-weighted and oversampled to ≥ 192 kHz chunk by chunk (with a margin either side)."""
    from scipy.signal import resample_poly

    factor = max(1, math.ceil(192000 / grid.sr))
    peak, stem_peak = 0.0, 0.0
    m = TRUE_PEAK_MARGIN
    kw = _KWeighting(grid.sr, stems.channels)
    energies = np.zeros(grid.n_sub)
    for a, b in chunk_spans(stems.n, grid.chunk):
        parts, mix = stems.mastered(lin, a - m, b + m, curve, each=each)  # silence beyond the ends
        stem_peak = max([stem_peak] + [float(np.abs(x[:, m: m + b - a]).max(initial=0.0)) for x in parts.values()])
        peak = max(peak, float(np.abs(mix[:, m: m + b - a]).max(initial=0.0)))
        if factor > 1:
            up = resample_poly(mix, factor, 1, axis=-1)[:, m * factor: (m + b - a) * factor]
            peak = max(peak, float(np.abs(up).max(initial=0.0)))
        k = _sub_energies(kw(mix[:, m: m + b - a]), grid.sub)
        energies[a // grid.sub: a // grid.sub + k.shape[1]] = np.einsum("cbs,cbs->b", k, k)
    return _db(peak), stem_peak, _power_loudness(meter.blocks(energies))


@dataclass(frozen=True)
class Mastering:
    """What :func:`plan_master` decided: each stem's placement and gain and the bus curve. The
    mastered audio is made on demand, chunk by chunk (:meth:`chunks`), so a take of any length
    is written without holding it; the mix is the sum of the stems."""

    stems: _Stems
    gains_db: dict[str, float]
    curve: BusCurve
    report: LoudnessReport

    @property
    def names(self) -> list[str]:
        return self.stems.names

    @property
    def channels(self) -> int:
        return self.stems.channels

    @property
    def n(self) -> int:
        return self.stems.n

    def chunks(self, chunk: int | None = None, *, each: Callable[..., Iterator[Any]] = map,
               ) -> Iterator[tuple[int, int, dict[str, np.ndarray], np.ndarray]]:
        """(a, b, {stem: (channels, b - a)}, mix) for consecutive spans of the take (``each``:
        see :meth:`_Stems.mastered`)."""
        lin = _lin(self.gains_db)
        for a, b in chunk_spans(self.n, chunk or self.curve.grid.chunk):
            yield (a, b, *self.stems.mastered(lin, a, b, self.curve, each=each))


def plan_master(
    stems: Mapping[str, Audio],
    options: LoudnessOptions = LoudnessOptions(),
    *,
    template: MixTemplate | None = None,
    sample_rate: int = AUDIO_SAMPLE_RATE,
) -> Mastering:
    """Place and balance (with a template), then the linked bus, over stems of any length read
    chunk by chunk: a pass for the meter and the stems' peaks, one per bus for the mix's peaks,
    one for the true peak. Only per-block measures are kept (tens of MB for an hour)."""
    placed = _Stems(stems, template)
    grid = _Grid(sample_rate, placed.n)
    # each pass reads the stems side by side (NumPy, SciPy's filters and file reads release the GIL)
    with ThreadPoolExecutor(max_workers=min(len(placed.names), os.cpu_count() or 1)) as pool:
        meter, peaks = _analyse(placed, grid, pool.map)
        gains = _balance(placed, template, meter) if template is not None else {}
        gains_all = {k: gains.get(k, 0.0) for k in placed.names}
        curve, did = _bus(placed, grid, options, meter, peaks, gains_all, pool.map)
        correction = _balance_error(gains, template, meter, curve.sub_sq()) if template is not None and gains else {}
        if correction:  # the bus moved the balance (a limited drum hit): corrected once
            gains_all.update({k: gains_all[k] + db for k, db in correction.items()})
            curve, did = _bus(placed, grid, options, meter, peaks, gains_all, pool.map)
        lin = _lin(gains_all)
        tp, stem_peak, loudness = _final_measures(placed, grid, lin, curve, meter, pool.map)
    trim = min(0.0, options.ceiling_dbtp - tp)  # what the look-ahead missed between samples
    trim = min(trim, -0.01 - _db(stem_peak) if stem_peak > 0 else 0.0)  # a stem louder than the mix (phase)
    curve = curve.scaled(trim)
    sq = curve.sub_sq()
    output = loudness + trim  # measured on the mix as written (a static trim shifts it exactly)
    limited = options.target_lufs is not None and math.isfinite(output) and output < options.target_lufs - 0.5
    report = LoudnessReport(
        measured_lufs=did["measured"], gain_db=did["static"] + trim, output_lufs=output,
        output_true_peak_dbtp=tp + trim, limited_by_peak=bool(limited), compression_db=did["compression"],
        limiting_db=did["limiting"], stems_lu=meter.shares(gains_all, sq) if template is not None else {})
    return Mastering(placed, gains_all, curve, report)


def master(
    stems: Mapping[str, np.ndarray],
    options: LoudnessOptions = LoudnessOptions(),
    *,
    template: MixTemplate | None = None,
    sample_rate: int = AUDIO_SAMPLE_RATE,
) -> tuple[dict[str, np.ndarray], np.ndarray, LoudnessReport]:
    """:func:`plan_master` on stems held in memory, made whole: (stems, mix, report). The mix
    is the sum of the returned stems."""
    m = plan_master({k: ArrayAudio(np.asarray(v, dtype=np.float64)) for k, v in stems.items()}, options,
                    template=template, sample_rate=sample_rate)
    out = {k: np.zeros((m.channels, m.n)) for k in m.names}
    mix = np.zeros((m.channels, m.n))
    for a, b, parts, chunk_mix in m.chunks():
        for k, v in parts.items():
            out[k][:, a:b] = v
        mix[:, a:b] = chunk_mix
    return out, mix, m.report


def normalize_loudness(
    stems: Mapping[str, np.ndarray],
    options: LoudnessOptions,
    sample_rate: int = AUDIO_SAMPLE_RATE,
) -> tuple[dict[str, np.ndarray], np.ndarray, LoudnessReport]:
    """One gain for all stems so the mix meets ``options`` (no compressor, no limiter curve)."""
    return master(stems, LoudnessOptions(options.target_lufs, options.ceiling_dbtp, bus=False), sample_rate=sample_rate)
