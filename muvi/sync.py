"""The beat planner: visual accents → a tempo map whose beats land on them.

1. **Tempo and phase.** For every candidate tempo in the style's range (or the pinned BPM) the
   accents are folded onto one beat period; a sweep over the circle finds the phase where the
   largest accent weight lies within ``tolerance`` (one video frame) of a beat. Cuts weigh more
   than motion peaks; among near-equal scores the tempo nearest the range's centre wins.
2. **Bars.** The downbeat offset that puts the most cut weight on downbeats is chosen (or the
   meter the user pinned).
3. **Gentle tempo changes.** Walking from cut to cut, where the next cut would miss the grid, the
   segment's tempo is bent (by at most ``max_change``, default 8 %) so that it lands exactly on a
   beat — kept only where that lands more accent weight than it loses.

The result is exact (:class:`~muvi.music.tempo.TempoMap`, Fractions): the same map drives the
adaptor's length alignment, the MIDI and the renderer. Beat 0 is at or before the timeline start
(a pickup when the first downbeat comes later).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

import numpy as np

from muvi.errors import InvalidInputError
from muvi.music.tempo import MAX_BPM, MIN_BPM, TempoChange, TempoMap

__all__ = ["PlanAccent", "BeatPlan", "plan_beats", "downbeat_weights", "accent_report", "fit_hits", "HitLanding", "loop_tempo", "beat_hits"]

CUT_WEIGHT = 3.0


@dataclass(frozen=True)
class PlanAccent:
    time: Fraction  # seconds from the music's start
    strength: float  # 0..1
    kind: str = "cut"  # "cut" | "motion"

    @property
    def weight(self) -> float:
        return (CUT_WEIGHT if self.kind == "cut" else 1.0) * max(0.05, float(self.strength))


@dataclass(frozen=True)
class BeatPlan:
    tempo: TempoMap
    bpm: float  # the base tempo
    hits: tuple[bool, ...]  # per accent: a beat within tolerance
    hit_rate: float  # share of accents hit
    weighted_hit_rate: float  # share of accent weight hit
    tempo_changes: int


def _fold_score(times: np.ndarray, weights: np.ndarray, period: float, tol: float) -> tuple[float, float, float]:
    """Best (weight, error, phase) of a beat grid with this period: the accent weight within
    ``tol`` of a beat, the weighted timing error of those accents, and the grid's phase (fitted
    to them)."""
    ph = np.mod(times, period)
    order = np.argsort(ph)
    ph, w = ph[order], weights[order]
    ph2 = np.concatenate([ph, ph + period])  # circular sweep: extend by one period
    w2 = np.concatenate([w, w])
    csum = np.concatenate([[0.0], np.cumsum(w2)])
    right = np.searchsorted(ph2, ph2[: len(ph)] + 2 * tol, side="right")
    gains = csum[right] - csum[np.arange(len(ph))]
    top = float(gains.max())
    best_err, best_phase = math.inf, 0.0
    for i in np.flatnonzero(gains >= top - 1e-9):
        members, mw = ph2[i : right[i]], w2[i : right[i]]
        phase = float(np.average(members, weights=mw))
        err = float(np.sum(mw * np.abs(members - phase)))
        if err < best_err:
            best_err, best_phase = err, phase % period
    return top, best_err, best_phase


def beat_hits(tempo: TempoMap, accents: Sequence[PlanAccent], tol: Fraction) -> list[bool]:
    """Per accent (in the order given): a beat of ``tempo`` lies within ``tol`` of it."""
    out = []
    for a in accents:
        b = tempo.beat_at(a.time)
        near = [tempo.time_at(math.floor(b)), tempo.time_at(math.ceil(b))]
        out.append(min(abs(t - a.time) for t in near) <= tol)
    return out


def downbeat_weights(tempo: TempoMap, accents: Sequence[PlanAccent], tolerance: Fraction) -> list[float]:
    """Per downbeat offset (``TempoMap.downbeat``), the accent weight that would lie on downbeats:
    the accents within ``tolerance`` of a beat, cuts counted double and motion peaks half."""
    out = [0.0] * tempo.beats_per_bar
    for a in accents:
        b = round(tempo.beat_at(a.time))
        if abs(tempo.time_at(b) - a.time) <= tolerance:
            out[b % tempo.beats_per_bar] += a.weight * (2.0 if a.kind == "cut" else 0.5)
    return out


def plan_beats(
    accents: Sequence[PlanAccent],
    *,
    duration: Fraction,
    tolerance: Fraction,
    bpm_range: tuple[float, float] = (70.0, 140.0),
    bpm: float | Fraction | None = None,
    beats_per_bar: int = 4,
    max_change: float = 0.08,
    allow_changes: bool = True,
    resolution: float = 0.05,
) -> BeatPlan:
    """Plan the beat grid for ``accents`` over ``[0, duration)`` seconds (see the module docstring)."""
    if duration <= 0:
        raise InvalidInputError("nothing to plan: the duration is zero")
    if bpm is not None and not (20 <= float(bpm) <= 400):
        raise InvalidInputError(f"BPM must be between 20 and 400, got {bpm}")
    lo, hi = bpm_range
    if not (20 <= lo <= hi <= 400):
        raise InvalidInputError(f"bad tempo range {bpm_range}")
    tol = Fraction(tolerance)
    acc = sorted(accents, key=lambda a: a.time)
    times = np.array([float(a.time) for a in acc])
    weights = np.array([a.weight for a in acc])
    # 1. tempo and phase
    if bpm is not None:
        candidates = [float(bpm)]
    else:
        candidates = list(np.arange(lo, hi + resolution / 2, resolution))
    centre = (lo + hi) / 2
    # ranking: most accent weight on beats, then the smallest timing error, then nearest the centre
    best = (-1.0, 0.0, 0.0, candidates[0], 0.0)
    if len(acc):
        for c in candidates:
            period = 60.0 / c
            score, err, phase = _fold_score(times, weights, period, float(tol))
            key = (round(score, 6), -round(err, 4), -abs(c - centre), c, phase)
            if key[:3] > best[:3]:
                best = key
    base_bpm = Fraction(best[3]).limit_denominator(1000) if bpm is None else Fraction(bpm).limit_denominator(1000)
    period = 60 / base_bpm
    phase = Fraction(best[4]).limit_denominator(48000)
    # beat 0 at or before time 0
    origin = phase - period * math.ceil(phase / period) if phase > 0 else phase
    # 2. bars: the downbeat offset with the most cut weight on downbeats
    tempo = TempoMap((TempoChange(Fraction(0), period),), origin, beats_per_bar, 0)
    db_weight = downbeat_weights(tempo, acc, tol)
    downbeat = int(np.argmax(db_weight)) if any(db_weight) else 0
    tempo = TempoMap(tempo.changes, origin, beats_per_bar, downbeat)
    # 3. gentle tempo changes between cuts
    changes = 0
    if allow_changes and bpm is None and len(acc) > 1:
        options = [(tempo, 0), _bend(tempo, acc, tol, max_change), _through_cuts(tempo, acc, duration, max_change)]
        tempo, changes = max(options, key=lambda o: (round(_weight_hit(o[0], acc, tol), 6), -o[1]))
    hits = beat_hits(tempo, acc, tol)
    total = float(weights.sum()) if len(acc) else 0.0
    return BeatPlan(
        tempo=tempo, bpm=float(base_bpm), hits=tuple(hits),
        hit_rate=(sum(hits) / len(hits)) if hits else math.nan,
        weighted_hit_rate=(float(sum(w for w, h in zip(weights, hits) if h)) / total) if total else math.nan,
        tempo_changes=changes,
    )


def _merge(changes: Sequence[TempoChange]) -> tuple[TempoChange, ...]:
    """Tempo changes in beat order with later ones winning at the same beat and repeats of the
    current tempo dropped."""
    merged: list[TempoChange] = []
    for c in changes:
        if merged and merged[-1].beat == c.beat:
            merged[-1] = c
        elif not merged or merged[-1].seconds_per_beat != c.seconds_per_beat:
            merged.append(c)
    return tuple(merged)


def _weight_hit(tempo: TempoMap, acc: Sequence[PlanAccent], tol: Fraction) -> float:
    return sum(a.weight for a, h in zip(acc, beat_hits(tempo, acc, tol)) if h)


def _whole_beats(span: Fraction, spb: Fraction, max_change: float) -> int | None:
    """The whole number of beats (≥ 1) that fills ``span`` with the smallest tempo change from
    ``spb``, if that change is within ``max_change`` (both neighbours of span/spb are tried: a
    span of 6.5 beats fits 7 beats at −7 % when 6 would need +8 %)."""
    x = span / spb
    best = None
    for n in {math.floor(x), math.ceil(x)}:
        if n >= 1:
            change = abs(float(span / n / spb) - 1)
            if change <= max_change and (best is None or change < best[0]):
                best = (change, n)
    return None if best is None else best[1]


def _bend(tempo: TempoMap, acc: Sequence[PlanAccent], tol: Fraction, max_change: float) -> tuple[TempoMap, int]:
    """Walk the cuts; bend the tempo of a segment so the next cut lands on a beat where it pays."""
    cuts = [a for a in acc if a.kind == "cut"]
    changes = 0
    for a, b in zip(cuts, cuts[1:]):
        hits = beat_hits(tempo, [a, b], tol)
        if not hits[0] or hits[1]:
            continue
        beat_a = round(tempo.beat_at(a.time))
        spb = tempo.seconds_per_beat_at(beat_a)
        n = _whole_beats(b.time - tempo.time_at(beat_a), spb, max_change)
        if n is None:
            continue
        new_spb = (b.time - tempo.time_at(beat_a)) / n
        # either the segment [beat_a, beat_a + n) takes new_spb and the old tempo resumes after
        # it, or the new tempo holds from beat_a on (the edit's pace changed): keep what lands more
        kept = [c for c in tempo.changes if c.beat <= beat_a]
        after = [c for c in tempo.changes if c.beat > beat_a + n]
        variants = [
            kept + [TempoChange(Fraction(beat_a), new_spb), TempoChange(Fraction(beat_a + n), spb)] + after,
            kept + [TempoChange(Fraction(beat_a), new_spb)],
        ]
        current = _weight_hit(tempo, acc, tol)
        best_map, best_w = None, current
        for changes_list in variants:
            try:
                candidate = TempoMap(_merge(changes_list), tempo.origin, tempo.beats_per_bar, tempo.downbeat)
            except InvalidInputError:
                continue
            w = _weight_hit(candidate, acc, tol)
            if w > best_w:
                best_map, best_w = candidate, w
        if best_map is not None:
            tempo = best_map
            changes += 1
    return tempo, changes


def _through_cuts(tempo: TempoMap, acc: Sequence[PlanAccent], duration: Fraction, max_change: float) -> tuple[TempoMap, int]:
    """A map whose beats pass exactly through the cuts: each segment between two cuts gets a
    whole number of beats at a tempo within ``max_change`` of the base; a cut no segment can
    reach that way is skipped and the segment extends to the next cut."""
    cuts = sorted({a.time for a in acc if a.kind == "cut" and 0 <= a.time < duration})
    if len(cuts) < 2:
        return tempo, 0
    base = tempo.changes[0].seconds_per_beat
    b0 = max(0, round(tempo.beat_at(cuts[0])))
    origin = cuts[0] - b0 * base  # shift the grid so the first cut is exactly on beat b0
    if origin > 0:
        origin -= base * (origin // base + 1)
        b0 = round((cuts[0] - origin) / base)
    changes = [TempoChange(Fraction(0), base)]
    beat, anchor = b0, cuts[0]
    for b in cuts[1:]:
        # a cut that no whole number of beats from the anchor reaches within the limit (or one
        # closer than half a beat) is left off the grid; the next segment runs from the anchor
        # to the following cut, so one awkward gap does not cost every later cut
        n = _whole_beats(b - anchor, base, max_change) if round((b - anchor) / base) >= 1 else None
        if n is None:
            continue
        changes.append(TempoChange(Fraction(beat), (b - anchor) / n))
        beat += n
        anchor = b
    changes.append(TempoChange(Fraction(beat), base))
    merged = _merge(changes)
    try:
        out = TempoMap(merged, origin, tempo.beats_per_bar, b0 % tempo.beats_per_bar)
    except InvalidInputError:
        return tempo, 0
    return out, len(merged) - 1


def accent_report(plan: BeatPlan, accents: Sequence[PlanAccent], tol: Fraction) -> list[dict[str, object]]:
    """Per accent: its time, kind, strength, nearest beat, distance, hit and whether it is a downbeat."""
    out = []
    for a, hit in zip(sorted(accents, key=lambda x: x.time), plan.hits):
        b = round(plan.tempo.beat_at(a.time))
        out.append({
            "time": float(a.time), "kind": a.kind, "strength": round(float(a.strength), 3), "beat": b,
            "beat_time": float(plan.tempo.time_at(b)), "error_s": round(float(plan.tempo.time_at(b) - a.time), 4),
            "hit": bool(hit), "downbeat": plan.tempo.is_downbeat(b),
        })
    return out


# -- hit points ------------------------------------------------------------------------------

# a hit may bend the bars before it by this much (cuts: max_change, 8 %): hits are the editor's
# sync points and must land; two hits 1.7 bars apart (a third and two thirds of a 10 s clip at
# 120 BPM) need 20 % over the two bars between them
HIT_MAX_CHANGE = 0.25
HIT_RAMP_BARS = (1, 2, 3, 4)  # how many bars before a hit take up the bend
# shifting the whole grid moves every cut before the first hit off its beat: it counts as a
# 3 % tempo change, so a gentler ramp that keeps them wins over it
SHIFT_COST = 0.03


@dataclass(frozen=True)
class HitLanding:
    time: Fraction  # the hit, seconds from the music's start
    beat: int  # the downbeat it was given
    error: Fraction  # that downbeat's time minus the hit's (0 when it landed exactly)
    landed: bool  # within the tolerance


def fit_hits(tempo: TempoMap, hits: Sequence[Fraction], *, tolerance: Fraction,
             max_change: float = HIT_MAX_CHANGE, shift: bool = True) -> tuple[TempoMap, list[HitLanding]]:
    """Bend ``tempo`` (beat 0 a downbeat, see :meth:`TempoMap.with_downbeat_at_zero`) so each hit
    falls exactly on a downbeat: hits are stronger than cuts. For each hit in time order the
    nearest downbeats are tried, each reached by stretching the 1–4 bars before it to one tempo
    (within ``max_change`` of theirs, and never before the previous hit's downbeat); the first
    hit may instead shift the whole grid (``shift``; a loop's grid must keep its downbeat at the
    start). The least change wins, then the shortest ramp. A hit
    no candidate reaches keeps the nearest downbeat and is reported with its error."""
    if tempo.downbeat != 0:
        raise ValueError("fit_hits needs a map whose beat 0 is a downbeat")
    bpb = tempo.beats_per_bar
    out: list[HitLanding] = []
    floor = 0  # no bend reaches before this beat (the previous hit's downbeat)
    for h in sorted(Fraction(x) for x in hits):
        best: tuple[float, int, TempoMap, int] | None = None
        near = round(tempo.beat_at(h) / bpb) * bpb
        for d in (near - bpb, near, near + bpb):
            if d <= floor and out:
                continue
            for change, ramp, cand in _hit_candidates(tempo, h, d, floor, bpb, max_change, first=shift and not out):
                if best is None or (change, ramp) < best[:2]:
                    best = (change, ramp, cand, d)
        if best is not None:
            tempo, d = best[2], best[3]
        else:
            d = max(0, round(tempo.beat_at(h) / bpb) * bpb)
        err = tempo.time_at(d) - h
        out.append(HitLanding(h, d, err, abs(err) <= tolerance))
        floor = max(floor, d)
    return tempo, out


def _hit_candidates(tempo: TempoMap, h: Fraction, d: int, floor: int, bpb: int, max_change: float,
                    *, first: bool) -> list[tuple[float, int, TempoMap]]:
    """(tempo change, ramp length in bars (0: a shift), map) of each map that puts downbeat
    ``d`` exactly at ``h``."""
    out: list[tuple[float, int, TempoMap]] = []
    if d < 0:
        return out
    if first:  # shift the whole grid: beat 0 must stay at or before the start
        origin = tempo.origin + (h - tempo.time_at(d))
        if origin <= 0:
            out.append((SHIFT_COST, 0, TempoMap(tempo.changes, origin, bpb, 0)))
    for m in HIT_RAMP_BARS:
        a = d - m * bpb
        if a < floor:
            break
        old = (tempo.time_at(d) - tempo.time_at(a)) / (d - a)
        new = (h - tempo.time_at(a)) / (d - a)
        change = abs(float(new / old) - 1)
        if new <= 0 or change > max_change:
            continue
        kept = [c for c in tempo.changes if c.beat <= a]
        after = [c for c in tempo.changes if c.beat > d]
        resume = TempoChange(Fraction(d), tempo.seconds_per_beat_at(d))
        try:
            out.append((change, m, TempoMap(_merge(kept + [TempoChange(Fraction(a), new), resume] + after),
                                            tempo.origin, bpb, 0)))
        except InvalidInputError:
            continue
    return out


def loop_tempo(bpm: float, duration: Fraction, *, beats_per_bar: int, bpm_range: tuple[float, float]) -> TempoMap:
    """A constant tempo near ``bpm`` that fills ``duration`` with whole bars, beat 0 at the
    start: a loop's end meets its start on a downbeat (the cuts give way to that)."""
    lo, hi = bpm_range
    bar_s = 60.0 * beats_per_bar / bpm
    n = max(1, round(float(duration) / bar_s))
    choices = [k for k in range(max(1, n - 3), n + 4)]

    def bpm_of(k: int) -> Fraction:
        return Fraction(60 * beats_per_bar * k) / Fraction(duration)

    inside = [k for k in choices if lo <= float(bpm_of(k)) <= hi]
    k = min(inside or choices, key=lambda k: abs(float(bpm_of(k)) - bpm))
    if not MIN_BPM <= bpm_of(k) <= MAX_BPM:
        raise InvalidInputError(f"a loop of {float(duration):.3f} s has no whole number of bars at a playable tempo")
    return TempoMap((TempoChange(Fraction(0), 1 / (bpm_of(k) / 60)),), Fraction(0), beats_per_bar, 0)
