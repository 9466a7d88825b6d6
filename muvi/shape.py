"""The edit's shape: endings, hit points and sections.

An editor asks for music for a selection, so the music must be finished at its length, land the
sync points the editor marks, and change where the picture changes. The plan stage decides
these (:class:`EditShape`), the sampler takes part, and the notes stage makes them exact:

- **Endings** (``ring``, ``button``, ``fade``, ``loop``, ``none``; ``auto`` picks ``fade`` for
  ambient and ``ring`` elsewhere). Ring, button and fade end on a cadence: the beat before the
  final event holds the dominant with a drum fill, then the tonic sounds on the last downbeat
  at or before the out point (ring: held until just before it, or into ``--tail``; fade: the
  same, softer, the last bars' velocities falling; button: a short stab exactly on the last
  beat, kick and crash under it). The cadence is written into the last window as a clean
  *suffix*, the way the in-context prompt is a clean prefix, so the model samples the bars
  before it leading into it (it was trained with such suffixes, ``StageConfig.suffix_p``). A
  loop gets the take's own first beat as that suffix, on a grid of whole bars that ends
  exactly at the out point, so the last bar leads into the first.
- **Hit points** land on downbeats (the planner bends the bars before them, :func:`muvi.sync.fit_hits`),
  each with kick and crash, the sounding notes re-attacked; a ``stop`` hit silences the beat
  before it first.
- **Sections** start where the picture's energy or cut rate changes a lot for a while (or at an
  OTIO ``section`` marker), on a downbeat; each gets a drum fill before it, its start is asked
  to be novel through the novelty curve, and long timelines get a form (intro, build, peak,
  outro) through the energy curve.

Pitches here are in the model's key (tonic C): the notes stage transposes them with the rest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any, Sequence

import numpy as np

from muvi.errors import InvalidInputError
from muvi.music.score import Note
from muvi.music.tempo import TempoMap
from muvi.sync import CUT_WEIGHT, PlanAccent, downbeat_weights

__all__ = ["ENDINGS", "MAX_TAIL", "Hit", "parse_hit", "check_hits", "choose_ending", "bars_for_ending", "Section", "plan_sections",
           "form_offsets", "EditShape", "cadence_notes", "shape_notes", "FILL_BEATS"]

ENDINGS = ("auto", "ring", "button", "fade", "loop", "none")
MAX_TAIL = 30.0  # seconds of ring-out past the out point at most
RELEASE_S = 0.35  # a ringing chord ends this long before the out point, so its release fits
FILL_BEATS = 1  # the drum fill before a section or the final downbeat
KICK, SNARE, TOM_LOW, TOM_HIGH, CRASH = 36, 38, 45, 48, 49
ACCENT_VELOCITY = 118


# -- hit points ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Hit:
    time: Fraction  # seconds from the timeline start
    stop: bool = False  # silence for the beat before it

    def text(self) -> str:
        return f"{float(self.time):g}" + (":stop" if self.stop else "")


def parse_hit(text: str, *, field: str = "--hit") -> Hit:
    """``"12.5"`` or ``"12.5:stop"`` → a :class:`Hit`."""
    raw = str(text).strip()
    secs, _, kind = raw.partition(":")
    try:
        t = Fraction(secs.strip())
    except (ValueError, ZeroDivisionError):
        raise InvalidInputError(f"{field}: bad hit {raw!r} (write SECONDS or SECONDS:stop, e.g. 12.5:stop)") from None
    if kind.strip().lower() not in ("", "stop"):
        raise InvalidInputError(f"{field}: bad hit {raw!r}: the only kind is 'stop' (SECONDS:stop)")
    return Hit(t, stop=kind.strip().lower() == "stop")


def check_hits(hits: Sequence[Hit], *, duration: float, min_gap: float, field: str = "--hit") -> tuple[Hit, ...]:
    """Hits sorted by time; one outside the timeline (0 … ``duration`` s) or closer than
    ``min_gap`` seconds (one beat at the slowest tempo allowed) to the previous is refused."""
    out = sorted(hits, key=lambda h: h.time)
    for h in out:
        if not 0 <= float(h.time) <= duration:
            raise InvalidInputError(f"{field}: hit {h.text()} lies outside the timeline (0-{duration:.3f} s)")
    for a, b in zip(out, out[1:]):
        if float(b.time - a.time) < min_gap:
            raise InvalidInputError(f"{field}: hits {a.text()} and {b.text()} are {float(b.time - a.time):.3f} s apart, "
                                    f"closer than one beat at the slowest tempo allowed ({min_gap:.3f} s)")
    return tuple(out)


# -- endings -----------------------------------------------------------------------------------

def choose_ending(ending: str, style: str) -> tuple[str, str]:
    """(ending, why): ``auto`` is ``fade`` for ambient (music that has no final hit), else ``ring``."""
    if ending not in ENDINGS:
        raise InvalidInputError(f"unknown ending {ending!r}; choose from {', '.join(ENDINGS)}")
    if ending != "auto":
        return ending, "asked for"
    return ("fade", "auto: ambient fades out") if style == "ambient" else ("ring", "auto: ends on the tonic, ringing")


ENDING_WEIGHT = 2.0 * CUT_WEIGHT  # the ending's tonic downbeat weighs as one full cut on a downbeat


def bars_for_ending(tempo: TempoMap, duration: Fraction, *, ending: str, tail: float,
                    accents: Sequence[PlanAccent] = (), tolerance: Fraction = Fraction(0)) -> tuple[TempoMap, str]:
    """(tempo, why): bar lines numbered so that the ending's tonic can land near the out point.
    The final downbeat is the last downbeat with a beat left to ring in, so with the bar lines
    the cuts chose it may fall almost a bar and a beat before the out point: in a 4.5 s take,
    half the take one ringing chord. The last beat with room to ring becomes a downbeat when that
    weighs more (:data:`ENDING_WEIGHT`) than the accent weight it moves off downbeats
    (:func:`muvi.sync.downbeat_weights`), and always in a take too short to hold a downbeat
    after its first beat. The beats stay where they are, so cuts stay on them."""
    if ending not in ("ring", "fade"):
        return tempo, ""
    room = 0 if tail > 0 else 1
    first = math.ceil(tempo.beat_at(0))
    last = math.floor(tempo.beat_at(duration) - room - Fraction(1, 1000))
    if last < first or tempo.is_downbeat(last):
        return tempo, ""
    moved = replace(tempo, downbeat=last % tempo.beats_per_bar)
    if not any(tempo.is_downbeat(b) for b in range(first + 1, last + 1)):
        return moved, "; shorter than a bar: its bar lines are moved so that its last beat with room to ring is a downbeat"
    weights = downbeat_weights(tempo, accents, tolerance)
    if weights[moved.downbeat] + ENDING_WEIGHT <= weights[tempo.downbeat]:
        return tempo, ""
    return moved, "; its bar lines are moved so that the tonic lands on its last beat with room to ring"


def check_tail(tail: float, *, field: str = "--tail") -> float:
    if not (0.0 <= float(tail) <= MAX_TAIL) or tail != tail:
        raise InvalidInputError(f"{field} must be between 0 and {MAX_TAIL:g} seconds, got {tail}")
    return float(tail)


# -- sections ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Section:
    start_bar: int
    label: str  # intro, verse, build, chorus, peak, outro
    reason: str  # picture energy change, cut rate change, marker, form

    def to_json(self, bar_time: Any) -> dict[str, Any]:
        return {"start_bar": self.start_bar, "start_seconds": round(float(bar_time(self.start_bar)), 4),
                "label": self.label, "reason": self.reason}


SECTION_MIN_BARS = 4  # a section lasts at least this long, and a change must hold this long
ENERGY_JUMP = 0.3  # mean energy level (0-1 ranks) before and after a boundary differ by this
CUT_JUMP = 0.75  # or the cut rate by this many cuts per bar
FORM_BARS = 32  # a long timeline gets a section at least this often (at its biggest picture change)


def plan_sections(energy: np.ndarray, cuts_per_bar: np.ndarray, *, n_bars: int,
                  marker_bars: Sequence[int] = ()) -> list[Section]:
    """Sections of a timeline of ``n_bars`` bars from its per-bar picture energy level (ranks in
    0–1) and cut counts: a boundary where the mean over the next ``SECTION_MIN_BARS`` bars
    differs from the previous ones by ``ENERGY_JUMP`` (or ``CUT_JUMP`` cuts a bar), the largest
    first, at least ``SECTION_MIN_BARS`` apart; OTIO ``section`` markers always; then, on long
    timelines, the biggest change in every stretch longer than ``FORM_BARS``. Labelled by energy."""
    e = np.asarray(energy, np.float64)[:n_bars]
    c = np.asarray(cuts_per_bar, np.float64)[:n_bars]
    w = SECTION_MIN_BARS
    jump = np.zeros(n_bars)
    reason: dict[int, str] = {}
    for b in range(w, n_bars - w + 1):
        de = abs(e[b:b + w].mean() - e[b - w:b].mean()) / ENERGY_JUMP
        dc = abs(c[b:b + w].mean() - c[b - w:b].mean()) / CUT_JUMP
        jump[b] = max(de, dc)
        reason[b] = "picture energy change" if de >= dc else "cut rate change"
    starts: dict[int, str] = {0: "start"}
    for b in sorted({int(m) for m in marker_bars if 0 < int(m) < n_bars}):
        starts[b] = "marker"

    def free(b: int) -> bool:
        return all(abs(b - s) >= w or (starts[s] == "marker" and s == b) for s in starts)

    for b in np.argsort(-jump, kind="stable"):
        if jump[b] >= 1.0 and free(int(b)):
            starts[int(b)] = reason[int(b)]
    # a long stretch without a change still gets a form: split it at its biggest change
    changed = True
    while changed:
        changed = False
        edges = sorted(starts) + [n_bars]
        for a, z in zip(edges, edges[1:]):
            if z - a > FORM_BARS:
                inner = [b for b in range(a + w, z - w + 1) if free(b)]
                if inner:
                    b = max(inner, key=lambda x: (jump[x], -abs(x - (a + z) / 2)))
                    starts[b] = "form"
                    changed = True
    bounds = sorted(starts)
    return _label([(b, starts[b]) for b in bounds], e, n_bars)


def _label(starts: list[tuple[int, str]], energy: np.ndarray, n_bars: int) -> list[Section]:
    """intro and outro at the ends (three sections or more); the most energetic section between
    them is the peak (on a tie, the one nearest two thirds of the way through, where a form
    usually peaks); a section followed by a clearly livelier one is a build; the others are a
    chorus when lively, a verse when calm."""
    edges = [b for b, _ in starts] + [n_bars]
    means = [float(energy[a:z].mean()) if z > a else 0.5 for a, z in zip(edges, edges[1:])]
    n = len(starts)
    middle = range(1, n - 1) if n >= 3 else range(n)
    peak = max(middle, key=lambda i: (round(means[i], 2), -abs(i - 2 * (n - 1) / 3))) if n else 0
    out = []
    for i, (b, why) in enumerate(starts):
        if n >= 3 and i == 0:
            label = "intro"
        elif n >= 3 and i == n - 1:
            label = "outro"
        elif i == peak and n >= 2:
            label = "peak"
        elif i + 1 < n and means[i + 1] - means[i] >= 0.15:
            label = "build"
        else:
            label = "chorus" if means[i] >= 0.6 else "verse"
        out.append(Section(b, label, why))
    return out


FORM_SHIFT = {"intro": -0.15, "build": 0.0, "peak": 0.12, "chorus": 0.06, "verse": -0.04, "outro": -0.15}


def form_offsets(sections: Sequence[Section], n_bars: int) -> np.ndarray:
    """(n_bars,) shifts of the energy level per bar that give the sections their shape: an intro
    and outro lower, the peak higher, a build rising to the next section."""
    out = np.zeros(n_bars)
    edges = [s.start_bar for s in sections] + [n_bars]
    for s, z in zip(sections, edges[1:]):
        a = s.start_bar
        if s.label == "build" and z > a:
            out[a:z] = np.linspace(-0.1, 0.1, z - a)
        else:
            out[a:z] = FORM_SHIFT.get(s.label, 0.0)
    return out


# -- the plan ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class EditShape:
    """What the plan decided about the edit's shape, in grid steps of the roll."""

    ending: str  # ring, button, fade, loop, none
    ending_reason: str
    out_step: Fraction  # the out point (the timeline's end) on the grid
    final_step: int | None  # the final event: the last downbeat (ring, fade) or beat (button)
    release_step: int  # pitched notes end by here (the out point, less the release; + tail)
    tail_seconds: float = 0.0
    hits: tuple[tuple[int, bool], ...] = ()  # (grid step, stop) of each landed hit
    sections: tuple[Section, ...] = ()
    fade_from_step: int | None = None
    steps_per_beat: int = 4
    steps_per_bar: int = 16
    hit_report: tuple[dict[str, Any], ...] = field(default=())
    first_step: int = 0  # the first step in the picture

    @property
    def pickup_start(self) -> int | None:
        """Where the beat before the final event begins, within the picture (None: no ending,
        or less than half a beat of it in the picture: the final event stands alone)."""
        if self.final_step is None:
            return None
        start = max(self.final_step - FILL_BEATS * self.steps_per_beat, self.first_step)
        return start if self.final_step - start >= max(1, self.steps_per_beat // 2) else None

    @property
    def fill_steps(self) -> list[int]:
        """First step of each drum fill: the beat before each section after the first, and
        before the final event."""
        fill = FILL_BEATS * self.steps_per_beat
        out = [s.start_bar * self.steps_per_bar - fill for s in self.sections[1:]]
        if self.pickup_start is not None:
            out.append(self.pickup_start)
        return sorted({s for s in out if s >= 0})

    @property
    def suffix_start(self) -> int | None:
        """Where the ending's clean suffix begins (None: no suffix)."""
        if self.final_step is None:
            return None
        return self.final_step if self.pickup_start is None else self.pickup_start


def cadence_notes(shape: EditShape, *, mode: str, stems: Sequence[str], drums: bool, n_steps: int) -> list[Note]:
    """The ending's notes (tonic C): the dominant and a drum fill in the beat before the final
    event, then the tonic on it — held to the release point (ring, fade) or a short stab (button)."""
    if shape.final_step is None:
        return []
    f = shape.final_step
    pre = shape.pickup_start is not None  # a beat before the final event (in the picture) holds the dominant
    fill = shape.pickup_start if pre else f
    third = 3 if mode == "minor" else 4
    soft = shape.ending == "fade"
    end = f + 2 if shape.ending == "button" else max(f + 1, min(n_steps, shape.release_step))
    v_main, v_pre = (70, 60) if soft else (104, 92)
    chords = {"dominant": (55, 59 if mode != "minor" else 58, 62), "tonic": (60, 60 + third, 67)}
    half = fill + max(1, (f - fill) // 2)
    out: list[Note] = []
    if "bass" in stems:
        out += ([Note(fill, 43, f, v_pre, "bass")] if pre else []) + [Note(f, 36, end, v_main, "bass")]
    if "chords" in stems:
        out += [Note(fill, p, f, v_pre, "chords") for p in chords["dominant"]] if pre else []
        out += [Note(f, p, end, v_main, "chords") for p in chords["tonic"]]
    if "melody" in stems:
        if pre:
            out += [Note(fill, 74, half, v_pre, "melody")] + ([Note(half, 71, f, v_pre, "melody")] if half < f else [])
        out += [Note(f, 72, end, v_main, "melody")]
    if drums and "drums" in stems:
        out += drum_fill(fill, f, soft=soft)
        out += [Note(f, KICK, f + 1, ACCENT_VELOCITY, "drums"), Note(f, CRASH, f + 1, ACCENT_VELOCITY, "drums")]
    return [n for n in out if n.start < n_steps and n.end > n.start]


def drum_fill(start: int, end: int, *, soft: bool = False) -> list[Note]:
    """Snare and toms on every step of [start, end), rising in velocity, falling in pitch."""
    n = end - start
    out = []
    for i in range(n):
        pitch = SNARE if i < n // 2 else (TOM_HIGH if i < 3 * n // 4 else TOM_LOW)
        vel = int(round((50 if soft else 70) + (30 if soft else 45) * i / max(1, n - 1)))
        out.append(Note(start + i, pitch, start + i + 1, vel, "drums"))
    return out


# -- the notes ----------------------------------------------------------------------------------

def shape_notes(notes: Sequence[Note], shape: EditShape, *, stems: Sequence[str], drums: bool) -> tuple[list[Note], dict[str, Any]]:
    """The decoded notes made exact to the shape: section fills, hit accents and stops, the
    ending (nothing after the final event, pitched notes ended by the release point, the fade's
    velocities falling), and for every ending but ``none``, no note past the out point."""
    out = list(notes)
    spb = shape.steps_per_beat
    section_fills = [s for s in shape.fill_steps if s != shape.pickup_start]
    if drums and "drums" in stems:
        for s in section_fills:
            out = _fill_before(out, s, s + FILL_BEATS * spb)
    for step, stop in shape.hits:
        out = _accent(out, step, stop=stop, spb=spb, drums=drums and "drums" in stems)
    if shape.ending != "none":
        out = _end(out, shape)
    return sorted(out), {"fills": len(section_fills) + (shape.pickup_start is not None and drums and "drums" in stems),
                         "hits": len(shape.hits)}


def _fill_before(notes: list[Note], start: int, end: int) -> list[Note]:
    kept = [n for n in notes if not (n.stem == "drums" and start <= n.start < end)]
    kept += drum_fill(start, end)
    kept += [Note(end, CRASH, end + 1, ACCENT_VELOCITY - 8, "drums")]
    return kept


def _accent(notes: list[Note], step: int, *, stop: bool, spb: int, drums: bool) -> list[Note]:
    """Kick and crash on ``step``; pitched notes sounding through it re-attacked there; for a
    stop, nothing starts or sounds in the beat before it."""
    out: list[Note] = []
    quiet = step - spb
    for n in notes:
        through = n.stem != "drums" and n.start < step < n.end  # sounds on past the hit: re-attacked there
        again = [Note(step, n.pitch, n.end, min(127, n.velocity + 16), n.stem)] if through else []
        if stop and quiet <= n.start < step:
            out += again
        elif stop and n.start < quiet < n.end:
            out += [replace(n, end=quiet)] + again
        elif through:
            out += [replace(n, end=step)] + again
        else:
            out.append(replace(n, velocity=min(127, n.velocity + 16)) if n.start == step else n)
    if drums:
        have = {(n.start, n.pitch) for n in out if n.stem == "drums"}
        out += [Note(step, p, step + 1, ACCENT_VELOCITY, "drums") for p in (KICK, CRASH) if (step, p) not in have]
    return out


def _end(notes: list[Note], shape: EditShape) -> list[Note]:
    last = shape.final_step
    limit = shape.release_step
    out = []
    for n in notes:
        if last is not None and n.start > last:
            continue
        if n.start >= math.floor(shape.out_step) and shape.tail_seconds == 0:
            continue
        if n.stem != "drums" and n.end > limit:
            if n.start >= limit:
                continue
            n = replace(n, end=limit)
        if shape.fade_from_step is not None and n.start >= shape.fade_from_step and last is not None:
            frac = (n.start - shape.fade_from_step) / max(1, last - shape.fade_from_step)
            n = replace(n, velocity=max(1, int(round(n.velocity * (1.0 - 0.6 * min(1.0, frac))))))
        out.append(n)
    return out
