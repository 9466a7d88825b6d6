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
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from muvi.errors import AudioWriteError, InvalidInputError
from muvi.timeline import AUDIO_SAMPLE_RATE

__all__ = [
    "LoudnessOptions", "LoudnessReport", "StemMix", "MixTemplate", "MIX_TEMPLATES", "template_for",
    "integrated_loudness", "true_peak_dbtp", "master", "normalize_loudness", "reverb_sends", "stem_levels",
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
    import pyloudnorm
    from scipy.signal import lfilter

    out = np.atleast_2d(np.asarray(audio, dtype=np.float64))
    for f in (pyloudnorm.IIRfilter(4.0, 1 / math.sqrt(2), 1500.0, sr, "high_shelf"),
              pyloudnorm.IIRfilter(0.0, 0.5, 38.0, sr, "high_pass")):
        out = f.passband_gain * lfilter(f.b, f.a, out, axis=-1)
    return out


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
    """The stems K-weighted once; then the loudness of any stem gains and bus gain curve without
    filtering again. The K-weighting is linear, so static gains commute with it exactly; a bus
    curve that moves over tens of milliseconds commutes with it to a few hundredths of a LU."""

    def __init__(self, stems: Mapping[str, np.ndarray], sr: int) -> None:
        self.k = {name: _k_weighted(a, sr) for name, a in stems.items()}
        self.sr = sr
        self.power = {name: _block_power(k, sr) for name, k in self.k.items()}  # at unit gain

    def weighted(self, gains_db: Mapping[str, float], curve: np.ndarray | None = None) -> np.ndarray:
        """The K-weighted sum of the named stems at these gains (dB), times ``curve``."""
        acc = np.zeros_like(next(iter(self.k.values())))
        for name, db in gains_db.items():
            acc += self.k[name] * 10.0 ** (db / 20.0)
        if curve is not None:
            acc *= curve
        return acc

    def of(self, gains_db: Mapping[str, float], curve: np.ndarray | None = None) -> float:
        """Loudness of the named stems at these gains (dB), summed, times ``curve``."""
        if curve is None and len(gains_db) == 1:  # one stem at a static gain: its blocks scale exactly
            (name, db), = gains_db.items()
            return _power_loudness(self.power[name] * 10.0 ** (db / 10.0))
        acc = self.weighted(gains_db, curve)
        return _gated_loudness(acc, self.sr) if np.any(acc) else -math.inf

    def shares(self, gains_db: Mapping[str, float], curve: np.ndarray | None = None) -> dict[str, float]:
        """Each named stem's level relative to their mix (:func:`stem_levels`), at these gains.
        At static gains a stem's block energies scale exactly, so only the mix is summed."""
        whole = _block_power(self.weighted(gains_db, curve), self.sr)
        if curve is None:
            parts = {name: self.power[name] * 10.0 ** (db / 10.0) for name, db in gains_db.items()}
        else:
            parts = {name: _block_power(self.weighted({name: db}, curve), self.sr) for name, db in gains_db.items()}
        return _power_shares(parts, whole)


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
def _sum(stems: Mapping[str, np.ndarray]) -> np.ndarray:
    """The stems summed in place (one pass, no stacked copy); a non-finite sample in any stem
    shows in the sum (NaN and ±inf propagate), and only then are the stems searched for it."""
    arrays = list(stems.values())
    if not arrays:
        raise AudioWriteError("no stems to mix")
    shape = arrays[0].shape
    for name, a in stems.items():
        if a.shape != shape:
            raise AudioWriteError(f"stem {name!r} has shape {a.shape}, expected {shape} like the others")
    mix = np.array(arrays[0], dtype=np.float64, copy=True)
    for a in arrays[1:]:
        mix += a
    if not np.isfinite(mix).all():
        for name, a in stems.items():
            bad = int(a.size - np.count_nonzero(np.isfinite(a)))
            if bad:
                raise AudioWriteError(f"stem {name!r}: refusing {bad} non-finite samples (NaN/Inf)")
        raise AudioWriteError("the mix overflows (non-finite samples)")
    return mix


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


def _compressor_db(weighted: np.ndarray, loudness: float, sr: int) -> np.ndarray:
    """Per 10 ms block: the gentle bus compressor's gain (dB ≤ 0). Its detector is the mix's
    K-weighted level over 50 ms, on the scale of the integrated loudness, so the threshold
    (:data:`COMPRESSOR_THRESHOLD_LU` over it) means the same for every spectrum."""
    block = sr // 100
    n = weighted.shape[-1] // block * block
    if n == 0 or not math.isfinite(loudness):
        return np.zeros(max(1, weighted.shape[-1] // block + 1))
    power = np.einsum("cn,cn->n", weighted[:, :n], weighted[:, :n]).reshape(-1, block).mean(axis=1)
    power = np.convolve(power, np.full(5, 0.2))[: power.size]  # the last 50 ms
    level = -0.691 + 10.0 * np.log10(np.maximum(power, 1e-12))
    threshold, ratio, knee = loudness + COMPRESSOR_THRESHOLD_LU, 2.0, 6.0
    over = level - threshold
    gr = np.where(over <= -knee / 2, 0.0,
                  np.where(over >= knee / 2, over * (1 - 1 / ratio), (1 - 1 / ratio) * (over + knee / 2) ** 2 / (2 * knee)))
    gr = np.minimum(gr, MAX_COMPRESSION_DB)
    gain = _smooth(-gr, attack=1 - math.exp(-1 / 1.5), release=1 - math.exp(-1 / 25.0))
    return np.append(gain, gain[-1] if gain.size else 0.0)


def _limiter_gain(level: np.ndarray, sr: int) -> np.ndarray:
    """Per 1 ms block: the look-ahead limiter's gain (linear ≤ 1) keeping ``level`` (per sample,
    1.0 = at the ceiling) under 1; it starts falling a block before a peak and recovers over
    ~50 ms."""
    block = max(1, sr // 1000)
    n_blocks = math.ceil(level.size / block)
    peak = np.pad(level, (0, n_blocks * block - level.size)).reshape(n_blocks, block).max(axis=1)
    need = np.minimum(1.0, 1.0 / np.maximum(peak, 1e-12))
    ahead = np.minimum.reduce([need, np.append(need[1:], 1.0), np.insert(need[:-1], 0, 1.0)])
    if ahead.min() >= 1.0:
        return np.ones(n_blocks + 1)
    db = 20.0 * np.log10(ahead)
    smooth = 10.0 ** (np.minimum(_smooth(db, attack=1.0, release=1 - math.exp(-1 / 50.0)), db) / 20.0)
    return np.append(smooth, smooth[-1])


def _per_sample(block_gain: np.ndarray, block: int, n: int) -> np.ndarray:
    """A per-block gain (value at each block's start, one past the end) as a per-sample curve."""
    return np.interp(np.arange(n, dtype=np.float64), np.arange(block_gain.size) * block, block_gain)


def _balance(stems: dict[str, np.ndarray], template: MixTemplate, meter: _Meter) -> dict[str, float]:
    """Gains (dB) that bring each playing stem to its level relative to the mix
    (:func:`stem_levels`); silent stems (under BS.1770's −70 LUFS gate: a reverb's denormal
    hiss is not a part to bring up) are left alone."""
    playing = [k for k in stems if k in template.stems and math.isfinite(meter.of({k: 0.0}))]  # over −70 LUFS
    gains = {k: 0.0 for k in playing}
    for _ in range(BALANCE_PASSES):
        correction = _balance_error(gains, template, meter)
        if not correction:
            break
        gains = {k: gains[k] + correction[k] for k in playing}
    return gains


def _balance_error(gains: Mapping[str, float], template: MixTemplate, meter: _Meter,
                   curve: np.ndarray | None = None) -> dict[str, float]:
    """Per stem, the gain (dB) that removes its error against the template (the shift common to
    all, which no gain removes, taken out); empty when every stem is within 0.2 LU."""
    if not gains:
        return {}
    targets = template.targets(list(gains))
    error = {k: targets[k] - v for k, v in meter.shares(gains, curve).items()}
    common = float(np.mean(list(error.values())))
    if max(abs(e - common) for e in error.values()) < 0.2:
        return {}
    return {k: e - common for k, e in error.items()}


def _bus_gain(mix: np.ndarray, options: LoudnessOptions, meter: _Meter, gains: Mapping[str, float],
              sr: int, stem_peak: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, float]]:
    """The bus's gain curve (per sample) for ``mix`` (the stems at ``gains``, dB) and what it
    did: static gain, compression, limiting. ``stem_peak`` (per sample, the largest stem's) is
    kept under full scale too, where stems partly cancel in the mix."""

    def loudness(curve: np.ndarray | None) -> float:
        return meter.of(gains, curve)

    n = mix.shape[-1]
    ceiling = 10.0 ** (options.ceiling_dbtp / 20.0) * 10.0 ** (-0.3 / 20.0)  # room for what lies between samples
    level = np.abs(mix).max(axis=0) / ceiling
    if stem_peak is not None:
        np.maximum(level, stem_peak / STEM_CEILING, out=level)
    measured = loudness(None)
    static = options.target_lufs - measured if options.target_lufs is not None and math.isfinite(measured) else 0.0
    gain = np.full(n, 10.0 ** (static / 20.0))
    comp_db = np.zeros(1)
    if options.bus and math.isfinite(measured):
        comp_db = _compressor_db(meter.weighted(gains), measured, sr)
        gain *= 10.0 ** (_per_sample(comp_db, sr // 100, n) / 20.0)
    limiter = _limiter_gain(level * gain, sr)
    for _ in range(MAKE_UP_PASSES if options.bus and options.target_lufs is not None else 0):
        made_up = options.target_lufs - loudness(gain * _per_sample(limiter, sr // 1000, n))
        if not math.isfinite(made_up) or abs(made_up) < 0.2:
            break
        gain *= 10.0 ** (made_up / 20.0)  # make-up gain: the target measured after the bus
        static += made_up
        limiter = _limiter_gain(level * gain, sr)
    floor = 10.0 ** (-MAX_LIMITING_DB / 20.0)
    if not options.bus:  # a plain normalisation: the ceiling wins by one static gain
        floor = 1.0
    if limiter.min() < floor:  # the ceiling wins over the target: what the limiter may not do, a static gain does
        static += 20.0 * math.log10(max(limiter.min() / floor, 1e-9))
        gain *= limiter.min() / floor
        limiter = _limiter_gain(level * gain, sr) if floor < 1.0 else np.ones_like(limiter)
    gain *= _per_sample(limiter, max(1, sr // 1000), n)
    return gain, {"measured": measured, "static": static, "compression": float(-comp_db.min()),
                  "limiting": float(-_db(limiter.min()))}


def master(
    stems: Mapping[str, np.ndarray],
    options: LoudnessOptions = LoudnessOptions(),
    *,
    template: MixTemplate | None = None,
    sample_rate: int = AUDIO_SAMPLE_RATE,
) -> tuple[dict[str, np.ndarray], np.ndarray, LoudnessReport]:
    """Place and balance (with a template), then the linked bus; returns (stems, mix, report).
    The mix is the sum of the returned stems."""
    sr = sample_rate
    out = {k: np.array(v, dtype=np.float64, copy=True) for k, v in stems.items()}
    _sum(out)  # shapes and finite samples checked before any work
    for name, a in out.items():
        if template is not None and name in template.stems:
            _place(a, template.stems[name].pan, template.stems[name].width)
    meter = _Meter(out, sr)
    peaks = {k: np.abs(v).max(axis=0) for k, v in out.items()}  # per sample, at unit gain
    gains = _balance(out, template, meter) if template is not None else {}
    gains_all = {k: gains.get(k, 0.0) for k in out}

    def bus() -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
        lin = {k: 10.0 ** (db / 20.0) for k, db in gains_all.items()}
        stem_peak = np.maximum.reduce([peaks[k] * lin[k] for k in out])
        mix = np.zeros_like(next(iter(out.values())))
        for k, v in out.items():
            mix += v * lin[k]
        return (mix, *_bus_gain(mix, options, meter, gains_all, sr, stem_peak))

    mix, gain, did = bus()
    correction = _balance_error(gains, template, meter, gain) if template is not None and gains else {}
    if correction:  # the bus moved the balance (a limited drum hit): corrected once
        gains_all.update({k: gains_all[k] + db for k, db in correction.items()})
        mix, gain, did = bus()
    for k, a in out.items():
        a *= gain * 10.0 ** (gains_all[k] / 20.0)
    mix *= gain
    tp = true_peak_dbtp(mix, sr)
    trim = min(0.0, options.ceiling_dbtp - tp)  # what the look-ahead missed between samples
    stem_peak = max((float(np.max(np.abs(s))) for s in out.values() if s.size), default=0.0)
    trim = min(trim, -0.01 - _db(stem_peak) if stem_peak > 0 else 0.0)  # a stem louder than the mix (phase)
    if trim < 0.0:
        g = 10.0 ** (trim / 20.0)
        for a in out.values():
            a *= g
        mix *= g
    curve = gain * 10.0 ** (trim / 20.0)
    output = meter.of(gains_all, curve)
    limited = options.target_lufs is not None and math.isfinite(output) and output < options.target_lufs - 0.5
    stems_lu = meter.shares(gains_all, curve) if template is not None else {}
    report = LoudnessReport(
        measured_lufs=did["measured"], gain_db=did["static"] + trim, output_lufs=output,
        output_true_peak_dbtp=tp + trim, limited_by_peak=bool(limited), compression_db=did["compression"],
        limiting_db=did["limiting"], stems_lu=stems_lu)
    return out, mix, report


def normalize_loudness(
    stems: Mapping[str, np.ndarray],
    options: LoudnessOptions,
    sample_rate: int = AUDIO_SAMPLE_RATE,
) -> tuple[dict[str, np.ndarray], np.ndarray, LoudnessReport]:
    """One gain for all stems so the mix meets ``options`` (no compressor, no limiter curve)."""
    return master(stems, LoudnessOptions(options.target_lufs, options.ceiling_dbtp, bus=False), sample_rate=sample_rate)
