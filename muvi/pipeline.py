"""The main job: a Timeline and options → stems that land on the cuts, shaped to the edit.

The job is a run of stage functions, each with a typed hand-off, each testable alone; the CLI,
the server (through :class:`Generator`) and the evaluation call the same ones:

1. :func:`decode_stage` — samples at 10 fps, decoded straight into thumbnails and visual
   tokens (no timeline-long array of images) (:class:`Decoded`);
2. :func:`analyse_stage` — cuts (segment boundaries always), motion and the picture's look
   (:class:`Analysis`);
3. :func:`plan_stage` — style, key and mood from the look, the beat grid (:mod:`muvi.sync`),
   with hit points bent onto downbeats, the sections and the ending (:mod:`muvi.shape`)
   (:class:`Plan`);
4. :func:`condition_stage` — the control curves and the tags (:class:`Conditioning`);
5. :meth:`Generator.sample_stage` — window by window (16 bars, 4 bars overlap: each window after
   the first gets the end of the previous one as its in-context prompt, the first one the
   user's prompt, the last one the planned ending as a clean suffix). The report counts the
   bars where a stem that plays through a join falls silent at it, and the pitched stems left
   silent, judged on the music as it will be decoded, held to its control curves (:class:`Sampled`);
6. :func:`notes_stage` — decode with each stem held near its curve, shape to the edit
   (fills, hit accents, the ending), transpose from the model's common tonic to the key, snap
   to the scale (:class:`Music`);
7. :func:`render_stage` — FluidSynth per stem;
8. :func:`write_stage` — Broadcast-WAV stems + mix, MIDI, beats.json, report.json, roll.png,
   preview.mp4.

Everything is written to a staging folder and moved into the output folder only when all
succeeded: a failed or cancelled run leaves nothing there. Same seed + same options → the same
notes and the same audio.
"""

from __future__ import annotations


import json
import logging
import contextlib
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

from muvi.audio import Audio
from muvi.memory import JOB_MMAP_THRESHOLD, keep_memory_flat, return_free_memory
from muvi.analysis import Accent, find_accents, motion_curve
from muvi.curves import (CONTROL_CHANNELS, CONTROLS, HOLD_SLACK, EnergyCurve, decode_following,
                         music_curves, parse_energy, parse_energy_curve, picture_levels, spearman, timeline_controls)
from muvi.mood import Look, choose_key, choose_mood, choose_style, picture_look
from muvi.backend import Backend, TorchBackend
from muvi.errors import AudioWriteError, Cancelled, InvalidInputError, MuviError
from muvi.flow import guidance_conditions, guided_velocity, sample
from muvi.metrics import accent_hit_rate, musicality
from muvi.music.keys import Key, snap_to_scale, transpose
from muvi.music.corpus import PITCHED_STEMS, STEMS
from muvi.music.midi import MidiStart, write_midi, write_stem_midis
from muvi.music.plot import plot_score
from muvi.music.score import Note, Score
from muvi.music.styles import STYLES, breaks_chords
from muvi.music.tempo import TempoMap
from muvi.nn.adaptor import grid_positions
from muvi.nn.encoders import load_encoder
from muvi.nn.model import WINDOW_BARS, MuVi
from muvi.prompt import continuation_prompt, load_prompt, prompt_tokens, with_suffix
from muvi.mix import LoudnessOptions, LoudnessReport, Mastering, plan_master, reverb_sends, template_for
from muvi.music.perform import Performance, check_feel, perform
from muvi.render import AUDIO_SAMPLE_RATE, SynthOptions, render_stems, write_mastered, write_preview
from muvi.shape import (ENDINGS, RELEASE_S, EditShape, Hit, Section, bars_for_ending, cadence_notes, check_hits,
                        check_tail, choose_ending, form_offsets, parse_hit, plan_sections, shape_notes)
from muvi.sync import BeatPlan, PlanAccent, accent_report, beat_hits, fit_hits, loop_tempo, plan_beats
from muvi.timeline import Timeline
from muvi.video import Frames, check_timeline, decode_timeline

__all__ = ["GenerateOptions", "GenerationResult", "Generator", "window_spans", "STAGES", "ALL_STEMS", "BPM_RANGE",
           "MAX_CFG", "MAX_STEPS", "Decoded", "Analysis", "Plan", "Conditioning", "Sampled", "Music",
           "decode_stage", "analyse_stage", "plan_stage", "condition_stage", "notes_stage", "render_stage",
           "write_stage", "staging_folder", "slowest_beat", "STAGING_MARK", "AUDIO_SCRATCH", "remove_stale_staging"]

log = logging.getLogger(__name__)
STAGES = ("decode", "analysis", "plan", "encode", "sampling", "notes", "perform", "render", "mix", "write")
FPS = Fraction(10)
ALL_STEMS = STEMS
BPM_RANGE = (40.0, 240.0)  # a pinned tempo
MAX_CFG = 15.0
MAX_STEPS = 200
LOOP_BEATS = 4  # a loop's last window is sampled into this many beats of the take's start
STAGING_MARK = ".muvi-staging"  # in every staging folder while a result is written
AUDIO_SCRATCH = ".audio"  # in a staging folder: the rendered stems and the mix, raw, while the job runs


@dataclass(frozen=True)
class GenerateOptions:
    style: str | None = None
    mood: str | None = None
    key: str | None = None  # e.g. "A minor"; None: from the picture's look (muvi.mood)
    bpm: float | None = None  # pin the tempo
    meter: int = 4  # beats per bar (3 or 4)
    stems: tuple[str, ...] = ALL_STEMS
    seed: int = 0
    steps: int = 25
    cfg: float | None = None  # None: the checkpoint's default
    sampler: str = "euler"
    prompt: Path | None = None  # MIDI or audio
    loudness_lufs: float | None = -16.0
    preview: bool = True
    window_bars: int = WINDOW_BARS
    overlap_bars: int = 4
    soundfont: Path | None = None
    # control curves (muvi.curves): the picture's level scaled around this (low / medium / high
    # or 0-1), or replaced by a keyframed curve "seconds:level,..." (OTIO markers energy=<level>)
    energy: str | None = None
    energy_curve: str | None = None
    # the edit's shape (muvi.shape): how the take ends, ring-out past the out point, sync
    # points ("12.5" or "12.5:stop", seconds from the timeline start) and section starts the
    # user marks (seconds; OTIO markers named hit / hit:stop / section do the same)
    ending: str = "auto"
    tail: float = 0.0
    hits: tuple[str, ...] = ()
    sections: tuple[float, ...] = ()
    # how the stems are played (muvi.music.perform): grid, tight, natural or loose
    feel: str = "natural"

    def __post_init__(self) -> None:
        if self.style is not None and self.style not in STYLES:
            raise InvalidInputError(f"unknown style {self.style!r}; choose from {', '.join(STYLES)}")
        if self.bpm is not None and not BPM_RANGE[0] <= self.bpm <= BPM_RANGE[1]:
            raise InvalidInputError(f"--bpm must be between {BPM_RANGE[0]:g} and {BPM_RANGE[1]:g}, got {self.bpm}")
        if self.meter not in (3, 4):
            raise InvalidInputError(f"--meter must be 3 or 4, got {self.meter}")
        if self.cfg is not None and not 0.0 <= self.cfg <= MAX_CFG:
            raise InvalidInputError(f"--cfg must be between 0 and {MAX_CFG:g}, got {self.cfg}")
        if not 1 <= self.steps <= MAX_STEPS:
            raise InvalidInputError(f"--steps must be between 1 and {MAX_STEPS}, got {self.steps}")
        bad = [s for s in self.stems if s not in ALL_STEMS]
        if bad or not self.stems:
            raise InvalidInputError(f"--stems must be a subset of {', '.join(ALL_STEMS)}, got {', '.join(self.stems)}")
        if not 0 < self.overlap_bars < self.window_bars:
            raise InvalidInputError("overlap must be shorter than the window")
        if self.key is not None:
            Key.parse(self.key)
        parse_energy(self.energy)
        if self.energy_curve is not None:
            parse_energy_curve(self.energy_curve, duration=math.inf)  # the timeline's bounds are checked per job
        check_feel(self.feel)
        if self.ending not in ENDINGS:
            raise InvalidInputError(f"--ending: unknown ending {self.ending!r}; choose from {', '.join(ENDINGS)}")
        check_tail(self.tail)
        check_hits(self.hit_points(), duration=math.inf, min_gap=slowest_beat(self.style, self.bpm))
        for s in self.sections:
            if not (isinstance(s, (int, float)) and math.isfinite(s) and s >= 0):
                raise InvalidInputError(f"section marker at {s!r}: must be a time in seconds from the timeline start")

    def hit_points(self) -> tuple[Hit, ...]:
        return tuple(parse_hit(h) for h in self.hits)


def slowest_beat(style: str | None, bpm: float | None) -> float:
    """Seconds of one beat at the slowest tempo a take may have: the pinned one, else the lowest
    of the style's range (of every style's, when the style is left to the picture)."""
    if bpm is not None:
        return 60.0 / bpm
    lo = STYLES[style].tempo[0] if style is not None else min(s.tempo[0] for s in STYLES.values())
    return 60.0 / lo


@dataclass(frozen=True)
class GenerationResult:
    out_dir: Path
    files: dict[str, Path]
    score: Score
    report: dict[str, Any] = field(repr=False)


# -- the stages' hand-offs -------------------------------------------------------------------

@dataclass(frozen=True)
class Decoded:
    timeline: Timeline
    frames: Frames
    curve: EnergyCurve | None  # the user's keyframed energy, checked against the timeline
    hits: tuple[Hit, ...]  # the user's hit points, checked against the timeline


@dataclass(frozen=True)
class Analysis:
    small: np.ndarray  # (T, 32, 32, 3) thumbnails of the sampled frames
    accents: tuple[Accent, ...]
    motion: np.ndarray  # (T,)
    cuts: tuple[int, ...]  # sample index of each cut
    look: Look


@dataclass(frozen=True)
class Plan:
    style: str
    key: Key
    mood: str | None
    reasons: dict[str, str]  # style, key, mood, ending: why
    beats: BeatPlan  # the grid as planned for the accents
    tempo: TempoMap  # the grid played: beat 0 a downbeat, hits on downbeats (a loop: whole bars)
    steps_per_beat: int
    bar: int  # grid steps per bar
    n_steps: int  # whole bars covering the timeline
    n_model: int  # steps sampled: at least one window; a loop's wrap-around beyond n_steps
    positions: torch.Tensor  # (n_model,) fractional sampled frame of each grid step
    shape: EditShape
    drums: bool  # the style plays drums (the curves ask for them)
    accents: tuple[PlanAccent, ...]  # the picture's accents, in time order
    accent_hits: tuple[bool, ...]  # per accent: a beat of the grid as played lies within a frame of it

    def bar_time(self, b: int) -> float:
        return float(self.tempo.time_at(Fraction(b * self.bar, self.steps_per_beat)))

    @property
    def take_bars(self) -> tuple[int, int]:
        """The bars the take is judged on, [first, end): those lying mostly in the picture. The
        last of the bars covering the timeline can hold only a sliver of it, where a ring
        ending's chord has already been released; a pickup bar can begin well before the first
        frame (the bar lines are numbered for the ending), and what it plays there is not heard."""
        end = max(1, math.floor(Fraction(self.shape.out_step) / self.bar + Fraction(1, 2)))
        first = math.ceil(Fraction(self.shape.first_step) / self.bar - Fraction(1, 2))
        return max(0, min(first, end - 1)), end

    @property
    def played(self) -> tuple[int, int] | None:
        """The steps where the take plays freely (:func:`muvi.metrics.musicality`): from the first
        in the picture to the ending's given suffix (no ending: the out point); None when that
        is under a beat."""
        end = self.shape.suffix_start if self.shape.suffix_start is not None else math.floor(self.shape.out_step)
        first = max(0, self.shape.first_step)
        return (first, end) if end - first >= self.steps_per_beat else None

    @property
    def curve_bars(self) -> int | None:
        """How many bars from the start the control curves govern: those before the bar where
        the planned ending begins (its cadence and fill are given, not held to a curve); None
        when there is no planned ending."""
        start = self.shape.suffix_start
        return None if start is None else max(0, start // self.bar)


@dataclass(frozen=True)
class Conditioning:
    patches: torch.Tensor  # (Tf, P, D) visual tokens
    controls: torch.Tensor  # (n_model, CONTROL_CHANNELS)
    requested: dict[str, list[float]]  # per bar: the curves the decoding holds the stems to
    slack: float
    curves: dict[str, Any]  # what report.json says of the curves
    style: torch.Tensor
    mood: torch.Tensor
    cfg: float
    decoder: Any  # the model's decode spec in the take's meter


@dataclass(frozen=True)
class Sampled:
    tokens: np.ndarray  # (n_steps, F)
    joins: dict[str, Any]
    adaptor_seconds: float


@dataclass(frozen=True)
class Music:
    score: Score
    curves: dict[str, Any]
    shape: dict[str, Any]
    performance: Performance | None = None  # how the score is played (perform_stage)
    in_scale_sampled: float | None = None  # share of pitched notes the model sampled in the key (before the snap)


# -- the stages --------------------------------------------------------------------------------

class PictureFeatures:
    """The decode pass's reducer (:class:`muvi.video.FrameReducer`): per sample, the visual
    encoder's tokens, chunk by chunk, so no timeline-long array of images is ever held (the
    decode pass keeps the 32×32 thumbnails for cuts, motion and the look itself). The encoder also sees the last
    :attr:`CONTEXT` samples before each chunk (the low-level encoder's motion features difference
    consecutive frames, and its motion change differences those), so the tokens are those of an
    encode of the whole timeline at once."""

    CONTEXT = 2

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder
        self._tail: np.ndarray | None = None

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        x = images if self._tail is None else np.concatenate([self._tail, images])
        ctx = len(x) - len(images)
        with torch.inference_mode():
            patches = self.encoder.encode(x)[0][ctx:].numpy()
        self._tail = x[-self.CONTEXT:].copy()
        return_free_memory()  # the chunk's decoded frames: glibc would keep ~70 MB per minute of timeline
        return {"patches": patches}


def decode_stage(timeline: Timeline, options: GenerateOptions, encoder: Any, *,
                 progress: Callable[[float], None] | None = None) -> Decoded:
    """The options checked against the timeline (before any work), then its samples at 10 fps,
    decoded straight into thumbnails and visual tokens (:class:`PictureFeatures`)."""
    check_timeline(timeline)
    duration = float(timeline.duration.seconds)
    curve = parse_energy_curve(options.energy_curve, duration=duration) if options.energy_curve is not None else None
    hits = check_hits(options.hit_points(), duration=duration, min_gap=slowest_beat(options.style, options.bpm))
    for s in options.sections:
        if s > duration:
            raise InvalidInputError(f"section marker at {s:g} s lies outside the timeline (0-{duration:.3f} s)")
    frames = decode_timeline(timeline, fps=FPS, size=(224, 224), progress=progress, reduce=PictureFeatures(encoder))
    return Decoded(timeline, frames, curve, hits)


def analyse_stage(decoded: Decoded) -> Analysis:
    """Cuts (exact to the frame), motion and the picture's look."""
    timeline, frames = decoded.timeline, decoded.frames
    t0 = timeline.start.seconds
    small = frames.features["small"]  # one 32×32 copy for cuts, motion and the look
    accents = find_accents(small, [ft - t0 for ft in frames.times], forced_cuts=frames.cut_indices)
    accents = refine_cut_times(timeline, accents, set(frames.cut_indices), frames.times, frames.between)
    cuts, motion, look = picture_reading(small, accents, seconds=float(timeline.duration.seconds))
    return Analysis(small, tuple(accents), motion, cuts, look)


def picture_reading(small: np.ndarray, accents: Sequence[Accent], *, seconds: float,
                    ) -> tuple[tuple[int, ...], np.ndarray, Look]:
    """Cut indices, motion and the look of the 32×32 samples, given their accents (also what
    the evaluation reads a held-out window's picture with, to condition it as the pipeline does)."""
    cuts = tuple(a.index for a in accents if a.kind == "cut")
    motion = motion_curve(small, list(cuts))
    look = picture_look(small, motion=motion, cuts_per_minute=len(cuts) / max(1e-6, seconds / 60.0))
    return cuts, motion, look


def plan_stage(decoded: Decoded, analysis: Analysis, options: GenerateOptions, *, steps_per_beat: int,
               drums_asked: Callable[[str], bool] = lambda style: True) -> Plan:
    """Style, key and mood from the look; the beat grid; hits on downbeats; sections; the ending."""
    timeline = decoded.timeline
    duration = timeline.duration.seconds
    tol = timeline.rate.seconds(1)
    style, style_why = choose_style(analysis.look, given=options.style)
    bpm_range = tuple(float(x) for x in STYLES[style].tempo)
    accents = [PlanAccent(a.time, a.strength, a.kind) for a in analysis.accents]
    beats = plan_beats(accents, duration=duration,
                       tolerance=tol, bpm_range=bpm_range, bpm=options.bpm, beats_per_bar=options.meter)
    ending, ending_why = choose_ending(options.ending, style)
    anchors = [h.time for h in decoded.hits]
    if ending == "loop":  # whole bars from the first frame to the out point, which stays a downbeat
        tempo = loop_tempo(beats.bpm, duration, beats_per_bar=options.meter, bpm_range=bpm_range)
        anchors = sorted(anchors + [duration])
    else:
        tempo, phase_why = bars_for_ending(beats.tempo, duration, ending=ending, tail=options.tail, accents=accents,
                                           tolerance=tol) \
            if not anchors else (beats.tempo, "")  # hits place the downbeats themselves
        tempo, ending_why = tempo.with_downbeat_at_zero(), ending_why + phase_why
    tempo, landings = fit_hits(tempo, anchors, tolerance=tol, shift=ending != "loop")
    key, key_why = choose_key(analysis.look, pinned=options.key, style_minor_share=STYLES[style].minor_share)
    mood, mood_why = choose_mood(analysis.look, style=style, mode=key.mode, given=options.mood)
    spb, bar = steps_per_beat, steps_per_beat * options.meter
    out_step = tempo.beat_at(duration) * spb
    n_steps = max(bar, math.ceil(out_step / bar) * bar)
    n_model = max(n_steps + (LOOP_BEATS * spb if ending == "loop" else 0), options.window_bars * bar)
    positions = torch.from_numpy(grid_positions(tempo, n_model, steps_per_beat=spb, fps=FPS,
                                                n_frames=len(decoded.frames), beyond="mirror"))
    n_bars = n_steps // bar
    levels, _, raw = picture_levels(motion=analysis.motion, cuts=list(analysis.cuts),
                                    features=analysis.small.reshape(len(analysis.small), -1, 3).mean(axis=1),
                                    positions=positions.numpy(), steps_per_bar=bar, take_bars=n_bars)
    marker_bars = [round(tempo.beat_at(Fraction(s)) * spb / bar) for s in options.sections]
    sections = plan_sections(levels, raw["cuts"], n_bars=n_bars, marker_bars=marker_bars)
    landed = {lnd.time: lnd for lnd in landings}
    hits = [(landed[h.time], h) for h in decoded.hits]
    shape = _edit_shape(ending, ending_why, tempo=tempo, duration=duration, tail=options.tail, spb=spb, bar=bar,
                        hits=hits, sections=sections, rate=timeline.rate)
    accents = tuple(sorted((PlanAccent(a.time, a.strength, a.kind) for a in analysis.accents), key=lambda a: a.time))
    return Plan(style, key, mood, {"style": style_why, "key": key_why, "mood": mood_why, "ending": ending_why},
                beats, tempo, spb, bar, n_steps, n_model, positions, shape, drums_asked(style), accents,
                tuple(beat_hits(tempo, accents, tol)))


def _edit_shape(ending: str, why: str, *, tempo: TempoMap, duration: Fraction, tail: float, spb: int, bar: int,
                hits: Sequence[tuple[Any, Hit]], sections: Sequence[Section], rate: Any) -> EditShape:
    out_step = tempo.beat_at(duration) * spb
    first = math.ceil(tempo.beat_at(0) * spb)  # the first step in the picture
    final: int | None = None
    if ending in ("ring", "fade"):  # the last downbeat with a beat to ring in (any, with a tail)
        room = 0 if tail > 0 else spb
        final = math.floor((out_step - room - Fraction(1, 1000)) / bar) * bar
        if final < first:  # no beat in the picture leaves a beat to ring in (bars_for_ending found none)
            final, why = _sting(first, bar=bar, out_step=out_step, why=why)
    elif ending == "button":  # the last beat with room for the stab
        final = math.floor((out_step - 2) / spb) * spb
        if final < first + spb:  # not even a beat of music before it
            final, why = _sting(first, bar=bar, out_step=out_step, why=why)
    if ending in ("ring", "fade", "button"):
        release = math.floor(tempo.beat_at(duration + Fraction(tail) - Fraction(RELEASE_S).limit_denominator(1000)) * spb)
        release = max(release, (final or 0) + 1)
    elif ending == "loop":
        release = math.floor(out_step)
    else:
        release = 1 << 30
    fade_from = None
    if ending == "fade" and final is not None:
        fade_from = max(0, final - (4 if float(duration) > 60 else 2) * bar)
    hit_steps, report = [], []
    for landing, h in hits:
        step = landing.beat * spb if landing.landed else round(tempo.beat_at(h.time) * spb)
        hit_steps.append((int(step), h.stop))
        report.append({"time": float(h.time), "stop": h.stop, "bar": int(landing.beat // (bar // spb)),
                       "grid_time": float(tempo.time_at(Fraction(step, spb))), "landed": landing.landed,
                       "error_s": round(float(landing.error), 4),
                       "error_frames": round(float(landing.error / rate.seconds(1)), 2)})
    return EditShape(ending, why, out_step, final, release, float(tail), tuple(hit_steps), tuple(sections),
                     fade_from, spb, bar, tuple(report), first_step=first)


def _sting(first: int, *, bar: int, out_step: Fraction, why: str) -> tuple[int | None, str]:
    """A take too short for an ending's beat to ring in is one sting: the tonic from its first
    frame (a downbeat), every stem, ringing to the out point; else (its first step is no
    downbeat) it stops at the out point."""
    if first % bar == 0 and first < out_step:
        return first, why + "; too short for a beat to ring in: one sting, the tonic from the first frame to the out point"
    return None, why + "; too short for an ending (no beat with a beat after it): it stops at the out point"


def condition_stage(model: MuVi, decoded: Decoded, analysis: Analysis, plan: Plan,
                    options: GenerateOptions, *, default_cfg: float) -> Conditioning:
    """Visual tokens, the control curves (the picture's or the user's, shaped by the sections
    and the ending) and the tags."""
    patches = torch.from_numpy(decoded.frames.features["patches"])  # (Tf, P, D), encoded in the decode pass
    cfg = options.cfg if options.cfg is not None else default_cfg
    controls, report = _controls(model, analysis=analysis, patches=patches, plan=plan, options=options,
                                 curve=decoded.curve)
    requested = dict(report.get("requested", {}))
    if plan.shape.suffix_start is not None:  # the planned ending is given, not held to a curve
        first = -(-plan.shape.suffix_start // plan.bar)  # the bars wholly in it (in its first, the steps before it are)
        requested = {c: [0.0 if b >= first else v for b, v in enumerate(vals)] for c, vals in requested.items()}
    decoder = replace(model.config.decode_spec, beats_per_bar=options.meter)
    return Conditioning(patches, controls, requested, HOLD_SLACK,
                        report, torch.tensor([model.config.style_index(plan.style)]),
                        torch.tensor([model.config.mood_index(plan.mood)]), cfg, decoder)


def window_frames(patches: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The frames a window's grid positions fall among, and the positions into them: the
    adaptor sees one window's picture at a time, as in training, where each sample's visual
    tokens were normalised and pooled over its own window. Conditioning costs the window's
    length, not the timeline's (over the whole timeline, a 60-minute take spent 108 s in the
    adaptor and went past the engines' 12,000-frame profile); the picture's level across the
    timeline reaches the model through the control curves, rank-normalised over all of it."""
    n = patches.shape[0]
    lo = int(min(max(float(positions.min()), 0.0), n - 1))
    hi = int(min(max(float(positions.max()), 0.0), n - 1)) + 2
    return patches[lo:hi], positions - lo


def _controls(model: MuVi, *, analysis: Analysis, patches: torch.Tensor, plan: Plan, options: GenerateOptions,
              curve: EnergyCurve | None) -> tuple[torch.Tensor, dict[str, Any]]:
    """The control curves per grid step (n_model, CONTROL_CHANNELS) and what report.json says of them."""
    if not model.config.controls:
        return torch.zeros(plan.n_model, CONTROL_CHANNELS), {"source": "none (checkpoint without control curves)"}
    n_bars = plan.n_steps // plan.bar
    shift = np.zeros(plan.n_model // plan.bar + 1)
    shift[:n_bars] = form_offsets(plan.shape.sections, n_bars)
    if plan.shape.fade_from_step is not None and plan.shape.final_step is not None:
        a, z = plan.shape.fade_from_step // plan.bar, max(plan.shape.final_step // plan.bar, 1)
        shift[a:z] -= np.linspace(0.0, 0.3, max(1, z - a))
    tokens, report = timeline_controls(
        model.config.curve_ranges, motion=analysis.motion, cuts=list(analysis.cuts),
        frame_features=patches[:, 0].numpy(), positions=plan.positions.numpy(), style=plan.style,
        energy=parse_energy(options.energy), curve=curve, bar=plan.bar, n_bars=n_bars,
        bar_time=lambda b: float(plan.tempo.time_at(Fraction(2 * b * plan.bar + plan.bar, 2 * plan.steps_per_beat))),
        level_shift=shift, novel_bars=[s.start_bar for s in plan.shape.sections[1:]])
    return torch.from_numpy(tokens), report


def notes_stage(plan: Plan, cond: Conditioning, sampled: Sampled, options: GenerateOptions) -> Music:
    """Tokens → notes held to their curves, shaped to the edit, in the key."""
    decoded, held = decode_following(cond.decoder, sampled.tokens, cond.requested, slack=cond.slack,
                                     span=(0, plan.shape.suffix_start), broken_chords=breaks_chords(plan.style))
    notes = [n for n in decoded if n.stem in options.stems]
    notes, shape_report = shape_notes(notes, plan.shape, stems=options.stems, drums=plan.drums)
    curves = dict(cond.curves)
    requested = curves.get("requested", {})
    curves["generated"] = _curve_dict(music_curves(notes, n_steps=plan.n_steps, steps_per_bar=plan.bar))
    curves["held_to_curve"] = {**held, "slack": cond.slack}
    # curve following over the bars the curves govern (not the planned ending's) that are heard:
    # from the first bar mostly in the picture (a pickup bar that begins 3 beats before the first
    # frame is not; counting it had flattered the real-footage mean rho, 0.75 against 0.65)
    want = requested.get("intensity", [])
    first, k = plan.take_bars[0], len(want) if plan.curve_bars is None else min(plan.curve_bars, len(want))
    curves["spearman_bars"] = [first, max(first, k)]
    curves["intensity_spearman"] = spearman(want[first:k], curves["generated"]["intensity"][first:k])
    curves["intensity_spearman_model"] = spearman(want[first:k], held["model_intensity"][first:k])
    key = plan.key
    shift = key.tonic if key.tonic <= 6 else key.tonic - 12
    notes = transpose(notes, shift)
    pitched = [n for n in notes if n.stem != "drums"]
    in_scale = sum(key.contains(n.pitch) for n in pitched) / len(pitched) if pitched else None
    notes = snap_to_scale(notes, key)
    programs = {s: int(STYLES[plan.style].programs[s][0]) for s in PITCHED_STEMS if s in STYLES[plan.style].programs}
    score = Score(tuple(notes), plan.tempo, plan.n_steps, plan.steps_per_beat, programs, key=key.name, style=plan.style)
    return Music(score, curves, {**shape_report, **_ending_report(score, plan)}, in_scale_sampled=in_scale)


def _ending_report(score: Score, plan: Plan) -> dict[str, Any]:
    """How the take ends, measured on its notes: the last downbeat's tonic, notes cut off."""
    shape, key = plan.shape, plan.key
    out_s = float(plan.tempo.time_at(shape.out_step / plan.steps_per_beat))
    pitched = [n for n in score.notes if n.stem != "drums"]
    last_on = max((n.start for n in pitched), default=None)
    tonic_end = last_on is not None and last_on % plan.bar == 0 and any(
        n.start == last_on and n.pitch % 12 == key.tonic for n in pitched)
    cut = sum(1 for n in pitched if float(score.step_time(n.end)) > out_s + shape.tail_seconds + 1e-6)
    return {"ending": shape.ending, "ending_reason": shape.ending_reason, "tail_seconds": shape.tail_seconds,
            "final_step": shape.final_step, "ends_on_tonic_downbeat": bool(tonic_end),
            "last_pitched_onset_s": None if last_on is None else round(float(score.step_time(last_on)), 4),
            "pitched_notes_past_end": cut,
            "sections": [s.to_json(plan.bar_time) for s in shape.sections], "hit_points": list(shape.hit_report)}


def perform_stage(music: Music, plan: Plan, options: GenerateOptions) -> Music:
    """The score played with the style's feel: the hits, the accents on beats and the ending's
    final event stay on the grid; no ghost note in a stop's silence or after the final event;
    the dynamics follow the intensity the picture asked for."""
    shape, spb = plan.shape, plan.steps_per_beat
    locked = {step for step, _ in shape.hits}
    locked |= {round(plan.tempo.beat_at(a.time) * spb) for a, hit in zip(plan.accents, plan.accent_hits) if hit}
    quiet = [(step - spb, step + 1) for step, stop in shape.hits if stop]
    if shape.final_step is not None:
        locked.add(shape.final_step)
        quiet.append((shape.final_step - plan.bar // 2, plan.n_steps))
    intensity = music.curves.get("requested", {}).get("intensity") or music.curves["generated"]["intensity"]
    played = perform(music.score, feel=options.feel, seed=options.seed, locked_steps=locked, quiet_steps=quiet,
                     intensity=intensity)
    return replace(music, performance=played)


def render_stage(music: Music, timeline: Timeline, plan: Plan, options: GenerateOptions, *,
                 store: Path) -> dict[str, Audio]:
    """Each stem through FluidSynth as performed, with its reverb send, from the first frame to
    the out point (+ the tail), into raw files in ``store`` (the job's staging folder): a take
    of any length in bounded memory."""
    _, n_samples = timeline.sample_range()
    n = n_samples + round(plan.shape.tail_seconds * AUDIO_SAMPLE_RATE)
    base = SynthOptions(soundfont=options.soundfont)
    room, sends = reverb_sends(plan.style)
    per_stem = {s: replace(base, reverb_room=room, reverb_level=level) for s, level in sends.items()}
    return render_stems(music.score, options=base, stems=list(options.stems), n_samples=n,
                        performance=music.performance, stem_options=per_stem, store=store)


@dataclass(frozen=True)
class Mixed:
    mastering: Mastering  # the stems balanced and mastered (made as they are written), each the take's length

    @property
    def loudness(self) -> LoudnessReport:
        return self.mastering.report


def mix_stage(audio: dict[str, Audio], timeline: Timeline, plan: Plan, options: GenerateOptions) -> Mixed:
    """The stems (each the take's length: the timeline's, + the tail) balanced by the style's
    template and mastered together (:func:`muvi.mix.plan_master`)."""
    _, n_samples = timeline.sample_range()
    n_audio = n_samples + round(plan.shape.tail_seconds * AUDIO_SAMPLE_RATE)
    for name, a in audio.items():
        if a.n != n_audio:
            raise AudioWriteError(f"stem {name!r} rendered {a.n} samples, not the take's {n_audio}")
    return Mixed(plan_master(audio, LoudnessOptions(target_lufs=options.loudness_lufs), template=template_for(plan.style)))


@contextlib.contextmanager
def staging_folder(out_dir: Path) -> Iterator[Path]:
    """A hidden folder beside ``out_dir`` where a job's files are made (and its rendered audio
    kept while it is mixed), marked for :func:`remove_stale_staging`. It is removed at the end,
    and the parents made for it too when the job did not finish: a failed or cancelled job
    leaves nothing behind. :func:`write_stage` moves a finished result out of it."""
    made = [p for p in reversed(out_dir.absolute().parents) if not p.exists()]
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))  # beside it: one rename
    done = False
    try:
        (staging / STAGING_MARK).touch()  # a server restarted after a crash removes what carries it
        (staging / AUDIO_SCRATCH).mkdir()
        yield staging
        done = True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        for p in reversed(made) if not done else ():
            try:
                p.rmdir()
            except OSError:
                break


def write_stage(out_dir: Path, staging: Path, *, timeline: Timeline, options: GenerateOptions, plan: Plan,
                music: Music, mixed: Mixed, report: dict[str, Any],
                timings: dict[str, float]) -> tuple[dict[str, Path], dict[str, Any]]:
    """Every file made in ``staging`` (:func:`staging_folder`), then moved into ``out_dir`` only
    when all are written. Returns the files and the report as written (JSON types)."""
    t = time.perf_counter()
    score, tempo = music.score, plan.tempo
    duration = timeline.duration.seconds
    start_sample, n_samples = timeline.sample_range()
    files: dict[str, Path] = {}
    n_audio = mixed.mastering.n
    stem_files = write_mastered(staging, mixed.mastering, time_reference=start_sample,
                                description=f"muvi {plan.style} {plan.key.name}",
                                mix_store=staging / AUDIO_SCRATCH / "mix.f32")
    files.update({f"{k}.wav": v for k, v in stem_files.stems.items()}, **{"mix.wav": stem_files.mix})
    midi_start = MidiStart.of(timeline)
    played = music.performance
    files["stems.mid"] = write_midi(score, staging / "stems.mid", stems=list(options.stems), start=midi_start,
                                    performance=played)
    files.update({f"{k}.mid": v for k, v in write_stem_midis(score, staging, stems=list(options.stems),
                                                            start=midi_start, performance=played).items()})
    beats_json = {"tempo_map": tempo.to_json(), "timeline_start_seconds": float(timeline.start.seconds),
                  "beats": [float(b) for b in tempo.beat_times(duration)],
                  "downbeats": [float(b) for b in tempo.downbeat_times(duration)],
                  "accents": accent_report(replace(plan.beats, tempo=tempo, hits=plan.accent_hits), plan.accents,
                                           timeline.rate.seconds(1)),
                  "sections": music.shape["sections"], "hit_points": music.shape["hit_points"],
                  "ending": {k: music.shape[k] for k in ("ending", "final_step", "tail_seconds")}}
    (staging / "beats.json").write_text(json.dumps(beats_json, indent=1))
    files["beats.json"] = staging / "beats.json"
    files["roll.png"] = plot_score(score, staging / "roll.png", accents=[a.time for a in plan.accents],
                                   hits=list(plan.accent_hits),
                                   title=f"{plan.style} {plan.key.name} {plan.beats.bpm:.1f} BPM, {plan.shape.ending}")
    if options.preview:
        files["preview.mp4"] = write_preview(staging / "preview.mp4", timeline, stem_files.mix_audio,
                                             n_samples=n_samples)
    timings["write"] = time.perf_counter() - t
    report = {**report, "audio": {"samples": n_audio, "seconds": round(n_audio / AUDIO_SAMPLE_RATE, 4),
                                  "tail_seconds": plan.shape.tail_seconds},
              "mix": _mix_report(stem_files.loudness, plan.style, list(options.stems)),
              "timings_s": {k: round(v, 3) for k, v in timings.items()}}
    report_text = json.dumps(report, indent=1, default=float)
    (staging / "report.json").write_text(report_text)
    files["report.json"] = staging / "report.json"
    final = {name: out_dir / path.name for name, path in files.items()}
    shutil.rmtree(staging / AUDIO_SCRATCH)  # the rendered audio is not part of the result
    if not out_dir.exists():  # one rename: the folder appears whole or not at all
        (staging / STAGING_MARK).unlink()
        os.replace(staging, out_dir)
    else:  # a folder the caller keeps (results replaced in place): file by file
        for name, path in files.items():
            path.replace(final[name])
    return final, json.loads(report_text)


def _mix_report(loudness: LoudnessReport, style: str, stems: list[str]) -> dict[str, Any]:
    """The bus's figures and each stem's loudness against its template range."""
    out = loudness.to_json()
    template = template_for(style)
    if template is not None:
        playing = [s for s, v in loudness.stems_lu.items() if math.isfinite(v)]
        targets = template.targets(playing)
        out["stems"] = {s: {"lu": out["stems_lu"].get(s), "target_lu": round(targets[s], 2),
                            "tolerance_lu": template.stems[s].tolerance,
                            "within": abs(loudness.stems_lu[s] - targets[s]) <= template.stems[s].tolerance}
                        for s in playing}
    return out


def _report(decoded: Decoded, options: GenerateOptions, analysis: Analysis, plan: Plan, cond: Conditioning,
            sampled: Sampled, music: Music, *, backend: Backend, meta: dict[str, Any]) -> dict[str, Any]:
    timeline = decoded.timeline
    start_sample, n_samples = timeline.sample_range()
    tempo, duration = plan.tempo, timeline.duration.seconds
    flags, judged = plan.accent_hits, plan.take_bars
    cut_flags = [f for a, f in zip(plan.accents, flags) if a.kind == "cut"]
    return {
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()},
        "style": plan.style, "style_reason": plan.reasons["style"], "key": plan.key.name,
        "key_reason": plan.reasons["key"], "mood": plan.mood, "mood_reason": plan.reasons["mood"],
        "look": analysis.look.to_json(), "curves": music.curves, "cfg": cond.cfg, "seed": options.seed,
        "backend": backend.name, "backend_precision": getattr(backend, "precision", "fp32"),
        "weights": meta.get("loaded_from"), "training_run": meta.get("recipe", {}).get("out"), "timeline": {
            "rate": str(timeline.rate), "start_frame": timeline.start.value, "frames": timeline.duration.value,
            "segments": len(timeline.segments), "time_reference_samples": start_sample, "samples": n_samples},
        "tempo": {"bpm": plan.beats.bpm, "changes": len(tempo.changes) - 1, "beats_per_bar": tempo.beats_per_bar},
        "joins": sampled.joins, "shape": music.shape, "sections": music.shape["sections"],
        "damaged_video_s": [list(r) for r in decoded.frames.damaged],
        "hit_points": music.shape["hit_points"],
        "accent_hit_rate_cuts": accent_hit_rate([a.time for a in analysis.accents if a.kind == "cut"],
                                                tempo.beat_times(duration), frame_rate=timeline.rate.fraction),
        "accent_hit_rate_all": (sum(flags) / len(flags)) if flags else math.nan,
        "cuts_on_beats": f"{sum(cut_flags)}/{len(cut_flags)}",
        "musicality": {**musicality(music.score, key=plan.key, stems=list(options.stems), bars=judged[1],
                                    first_bar=judged[0], played=plan.played),
                       "in_scale_ratio_sampled": music.in_scale_sampled},
        "performance": music.performance.stats(music.score) if music.performance is not None else None,
    }


def window_spans(n_steps: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """The [start, end) grid steps of each window the pipeline samples for ``n_steps`` steps:
    windows of ``window`` steps, each after the first overlapping the previous by ``overlap``
    (its prompt); the last one may be shorter."""
    starts = list(range(0, max(1, n_steps - overlap), window - overlap)) or [0]
    return [(s0, min(n_steps, s0 + window)) for s0 in starts]


class Generator:
    """Generates music for timelines with one model on one backend."""

    def __init__(self, model: MuVi, *, backend: Backend | None = None, meta: dict[str, Any] | None = None) -> None:
        self.model = model.eval()
        self.backend = backend or TorchBackend(model)
        self.meta = meta or {}
        enc_cfg = {k: v for k, v in model.config.encoder.items() if k not in ("dim", "n_tokens")}
        self.encoder = load_encoder(**enc_cfg)

    @classmethod
    def from_weights(cls, weights: Path | str, *, backend: Backend | None = None, device: str = "cpu") -> "Generator":
        from muvi.weights import load_checkpoint

        model, meta = load_checkpoint(weights, device=device)
        return cls(model, backend=backend or TorchBackend(model, device), meta=meta)

    def generate(
        self,
        timeline: Timeline,
        options: GenerateOptions,
        out_dir: Path | str,
        *,
        progress: Callable[[str, float], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> GenerationResult:
        """Run the stages; ``progress(stage, fraction)`` as they go, ``warn(message)`` for what
        the user should know but did not stop the job (damaged frames concealed)."""
        out_dir = Path(out_dir)
        timings: dict[str, float] = {}
        prog = progress or (lambda s, f: None)

        def stage(name: str, fn: Callable[[], Any], *, timed: str | None = None) -> Any:
            if should_stop is not None and should_stop():
                raise Cancelled(f"cancelled before {name}")
            t = time.perf_counter()
            out = fn()
            return_free_memory()  # a stage's temporaries: glibc would keep their pages for the next
            timings[timed or name] = timings.get(timed or name, 0.0) + time.perf_counter() - t
            prog(name, 1.0)
            return out

        keep_memory_flat(JOB_MMAP_THRESHOLD)  # timeline-long arrays in their own mappings (muvi.memory)
        self._check_window(options)
        decoded = stage("decode", lambda: decode_stage(timeline, options, self.encoder,
                                                          progress=lambda f: prog("decode", f)))
        if decoded.frames.damaged and warn is not None:
            warn("damaged video concealed (the last good frame repeated) at "
                 + ", ".join(f"{a:.3f}-{b:.3f} s" for a, b in decoded.frames.damaged[:6]))
        analysis = stage("analysis", lambda: analyse_stage(decoded))
        plan = stage("plan", lambda: plan_stage(decoded, analysis, options, steps_per_beat=self.model.config.roll.steps_per_beat,
                                                drums_asked=self._drums_asked))
        default_cfg = float(self.meta.get("recipe", {}).get("default_cfg", 3.0))
        cond = stage("encode", lambda: condition_stage(self.model, decoded, analysis, plan, options,
                                                       default_cfg=default_cfg))
        sampled = stage("sampling", lambda: self.sample_stage(plan, cond, options, progress=prog, should_stop=should_stop))
        timings["adaptor"] = sampled.adaptor_seconds
        timings["sampling"] -= sampled.adaptor_seconds
        music = stage("notes", lambda: notes_stage(plan, cond, sampled, options))
        music = stage("perform", lambda: perform_stage(music, plan, options))
        with staging_folder(out_dir) as staging:
            audio = stage("render", lambda: render_stage(music, timeline, plan, options, store=staging / AUDIO_SCRATCH))
            mixed = stage("mix", lambda: mix_stage(audio, timeline, plan, options))
            report = _report(decoded, options, analysis, plan, cond, sampled, music, backend=self.backend, meta=self.meta)
            files, written = stage("write", lambda: write_stage(out_dir, staging, timeline=timeline, options=options,
                                                                plan=plan, music=music, mixed=mixed, report=report,
                                                                timings=timings))
        return GenerationResult(out_dir, files, music.score, written)

    def _drums_asked(self, style: str) -> bool:
        """Whether the style plays drums at all: its corpus range of the drums' curve."""
        ranges = self.model.config.curve_ranges
        if ranges is None:
            return True
        q = ranges.values(style, np.array([0.5]))[0]
        return bool(q[0, CONTROLS.index("intensity_drums")] > 0)

    def _check_window(self, options: GenerateOptions) -> None:
        """Refuse, before any work, a window longer than the backend takes in one call (the
        engines are built and verified for the model's window, ``ModelConfig.window_steps``)."""
        win = options.window_bars * options.meter * self.model.config.roll.steps_per_beat
        limit = int(getattr(self.backend, "max_steps", self.model.config.dit.max_steps))
        if win > limit:
            raise InvalidInputError(
                f"a window of {options.window_bars} bars of {options.meter}/4 is {win} grid steps, but the "
                f"{self.backend.name} backend takes at most {limit} per call; use a shorter window"
                + (" or a torch backend" if not self.backend.name.startswith("torch") else ""))

    def sample_stage(self, plan: Plan, cond: Conditioning, options: GenerateOptions, *,
                     progress: Callable[[str, float], None] | None = None,
                     should_stop: Callable[[], bool] | None = None) -> Sampled:
        """The whole roll window by window (see the module docstring). The last window is
        sampled into the planned ending (a clean suffix); a loop's into the take's first beats,
        and its wrap-around is judged by the join check."""
        prog = progress or (lambda s, f: None)
        bar = plan.bar
        user_prompt = load_prompt(options.prompt, steps_per_beat=plan.steps_per_beat) if options.prompt else None
        suffix = self._ending_suffix(plan, options)
        tokens, t_cond, joins = self._sample_windows(cond, options, plan=plan, user_prompt=user_prompt,
                                                     suffix=suffix, progress=prog, should_stop=should_stop)
        if plan.shape.ending == "loop":
            if len(window_spans(plan.n_model, options.window_bars * bar, options.overlap_bars * bar)) == 1:
                # one window: its own start is known only now; sample it again into it
                tokens, t2, _ = self._sample_windows(cond, options, plan=plan, user_prompt=None, suffix=None,
                                                        progress=prog, should_stop=should_stop, loop_from=tokens)
                t_cond += t2
            joins["wrap_silent_stem_bars"] = wrap_gaps(tokens[: plan.n_steps], cond.decoder, bar=bar,
                                                       stems=options.stems, requested=cond.requested,
                                                       slack=cond.slack)
        return Sampled(tokens[: plan.n_steps], joins, t_cond)

    @staticmethod
    def _judge_window(out: np.ndarray, cond: Conditioning, options: GenerateOptions, *, plan: Plan,
                      span: tuple[int, int], keep: int, joins_after: bool, lone: bool) -> tuple[int, int]:
        """What report.json says of a sampled window, judged as it will be decoded, each stem held
        to its control curve: the bars where a stem that plays through a join with another window
        falls silent at it (a loop's wrap-around: :func:`wrap_gaps`, once for the take), and the
        pitched stems the curves ask for that stay silent through all of it. (A window used to be
        sampled again with the next seed while either happened; once the curves held every stem,
        no take of the real-footage suite, its repeats at other seeds or the 60-minute timeline
        needed it, and it was removed.)"""
        s0, s1 = span
        bar, n_real = plan.bar, plan.n_steps
        req = {ch: v[s0 // bar: s1 // bar] for ch, v in cond.requested.items()}
        asked = [s for s in options.stems if max(req.get(f"intensity_{s}", [0.0]) or [0.0]) > 0]
        real = out[: max(0, min(n_real, s1) - s0)]  # padding only ever follows a lone window
        counts = _bar_counts(real, cond.decoder, bar=bar, stems=options.stems, requested=req, slack=cond.slack)
        gaps = 0 if lone else join_gaps(real, cond.decoder, bar=bar, stems=options.stems, head=keep if s0 > 0 else None,
                                        tail=joins_after, counts=counts)
        silent = silent_stems(real, cond.decoder, bar=bar, stems=options.stems, start=keep, counts=counts, asked=asked)
        return gaps, silent

    def _ending_suffix(self, plan: Plan, options: GenerateOptions) -> np.ndarray | None:
        """(n_steps - suffix_start, F) tokens of the planned cadence (to the end of the bar that
        holds the out point: a short timeline's padding past it stays free), or None."""
        start = plan.shape.suffix_start
        if start is None:
            return None
        spec = self.model.config.roll
        notes = cadence_notes(plan.shape, mode=plan.key.mode, stems=options.stems, drums=plan.drums,
                              n_steps=plan.n_model)
        rel = [Note(n.start - start, n.pitch, n.end - start, n.velocity, n.stem) for n in notes if n.start >= start]
        return spec.to_tokens(spec.encode(rel, plan.n_steps - start)).astype(np.float32)

    def _sample_windows(
        self, cond: Conditioning, options: GenerateOptions, *, plan: Plan, user_prompt: Score | None,
        suffix: np.ndarray | None, progress: Callable[[str, float], None], should_stop: Callable[[], bool] | None,
        loop_from: np.ndarray | None = None,
    ) -> tuple[np.ndarray, float, dict[str, Any]]:
        """Sample the whole roll window by window; each window after the first is prompted with
        the end of the previous one, the last one with ``suffix`` from ``plan.shape.suffix_start``
        (a loop: with the take's first beats after its end; ``loop_from``: a one-window loop's
        first take, whose start both opens and follows the new one). Returns the tokens
        (n_model, F), the time spent in the adaptor and what the join check did. Steps from
        ``plan.n_steps`` on are past the timeline's end: sampled, but not judged."""
        spec, bar, n_steps, n_real = self.model.config.roll, plan.bar, plan.n_model, plan.n_steps
        win, ov = options.window_bars * bar, options.overlap_bars * bar
        tokens = np.zeros((n_steps, spec.token_dim), np.float32)
        spans = window_spans(n_steps, win, ov)
        prev: np.ndarray | None = None
        t_cond = 0.0
        joins: dict[str, Any] = {"windows": len(spans), "silent_stem_bars_left": 0, "silent_stems_left": 0}
        loop = plan.shape.ending == "loop"
        for k, (s0, s1) in enumerate(spans):
            n = s1 - s0
            tc = time.perf_counter()
            patches, pos = window_frames(cond.patches, plan.positions[s0:s1])
            c, unc = guidance_conditions(self.backend.condition, patches[None], pos[None], cond.style, cond.mood,
                                         cond.controls[s0:s1][None])
            t_cond += time.perf_counter() - tc
            if loop_from is not None:
                ptok = np.zeros((n, spec.token_dim), np.float32)
                head = min(LOOP_BEATS * plan.steps_per_beat, n_real)
                ptok[:head] = loop_from[:head]
                pmask = np.zeros((n, 1), np.float32)
                pmask[:head] = 1.0
            elif k == 0 and user_prompt is not None:
                ptok, pmask = prompt_tokens(user_prompt.notes, spec, n_steps=n, prefix_steps=min(n // 2, 4 * bar))
            elif prev is not None:
                ptok, pmask = continuation_prompt(prev, overlap_steps=min(ov, n // 2), n_steps=n)
            else:
                ptok, pmask = np.zeros((n, spec.token_dim), np.float32), np.zeros((n, 1), np.float32)
            keep = 0 if k == 0 and loop_from is None else int(pmask[: n // 2].sum())
            last = k == len(spans) - 1
            if last and loop and (k > 0 or loop_from is not None):
                source = tokens if loop_from is None else loop_from
                wrap = source[np.arange(min(s1 - max(s0, n_real), LOOP_BEATS * plan.steps_per_beat)) % n_real]
                ptok, pmask = with_suffix(ptok, pmask, wrap, start=max(s0, n_real) - s0)
            elif last and suffix is not None and plan.shape.suffix_start is not None:
                start = max(plan.shape.suffix_start, s0 + keep) - s0
                part = suffix[start + s0 - plan.shape.suffix_start:][: n - start]
                ptok, pmask = with_suffix(ptok, pmask, part, start=start)
            prompt, mask = torch.from_numpy(ptok)[None], torch.from_numpy(pmask)[None]

            def step_progress(i: int, total: int, k: int = k) -> None:
                progress("sampling", (k + i / total) / len(spans))

            fn = guided_velocity(self.backend.velocity, cond=c, uncond=unc, scale=cond.cfg, prompt=prompt, prompt_mask=mask)
            gen = torch.Generator().manual_seed(options.seed * 1000 + k + 7 * (loop_from is not None))
            noise = torch.randn(1, n, spec.token_dim, generator=gen)
            out = sample(fn, noise, steps=options.steps, method=options.sampler, prompt=prompt, prompt_mask=mask,
                         progress=step_progress, should_stop=should_stop)[0].numpy()
            tokens[s0:s1] = out  # its prompt regions are the prompt exactly
            gaps, silent = self._judge_window(out, cond, options, plan=plan, span=(s0, s1), keep=keep,
                                              joins_after=k + 1 < len(spans), lone=len(spans) == 1)
            joins["silent_stem_bars_left"] += gaps
            joins["silent_stems_left"] += silent
            prev = out
        return tokens, t_cond, joins


def _curve_dict(curves: np.ndarray) -> dict[str, list[float]]:
    return {c: [round(float(x), 3) for x in curves[:, i]] for i, c in enumerate(CONTROLS)}


def _bar_counts(window: np.ndarray, spec: Any, *, bar: int, stems: Sequence[str],
                requested: dict[str, list[float]] | None = None, slack: float = HOLD_SLACK) -> dict[str, np.ndarray]:
    """Notes starting in each whole bar of the window, per stem, decoded as the pipeline decodes
    (each stem held to its ``requested`` curve, :func:`muvi.curves.decode_following`)."""
    n_bars = window.shape[0] // bar
    counts: dict[str, np.ndarray] = {s: np.zeros(n_bars, int) for s in stems}
    for note in decode_following(spec, window, requested or {}, slack=slack)[0]:
        b = note.start // bar
        if note.stem in counts and b < n_bars:
            counts[note.stem][b] += 1
    return counts


def silent_stems(window: np.ndarray, spec: Any, *, bar: int, stems: Sequence[str], start: int = 0,
                 counts: dict[str, np.ndarray] | None = None, asked: Sequence[str] = ()) -> int:
    """Stems among ``stems`` with no note in the bars the window writes (from step ``start``,
    after its prompt): the pitched ones (bass, chords, melody: every style of the corpus has all
    three in over 99 % of its pieces) and those the control curves ask for (``asked``: drums,
    when the style plays them at all — a delivered drum track that stays silent is a failed
    take). A window without one whole bar is not judged. ``counts``: the window's
    :func:`_bar_counts` for ``stems``, when the caller has them."""
    first = -(-start // bar)
    if window.shape[0] // bar - first < 1:
        return 0
    counts = counts if counts is not None else _bar_counts(window, spec, bar=bar, stems=stems)
    return sum(int(counts[s][first:].sum() == 0) for s in stems if s in PITCHED_STEMS or s in asked)


def wrap_gaps(tokens: np.ndarray, spec: Any, *, bar: int, stems: Sequence[str],
              requested: dict[str, list[float]] | None = None, slack: float = HOLD_SLACK) -> int:
    """A loop's join check at its wrap-around: silent stem-bars in its last two and first two
    bars, of the stems that play in at least half of its bars, decoded as the take is (held to
    its ``requested`` curves)."""
    n_bars = tokens.shape[0] // bar
    if n_bars < 2:
        return 0
    counts = _bar_counts(tokens[: n_bars * bar], spec, bar=bar, stems=stems, requested=requested, slack=slack)
    check = {0, 1, n_bars - 2, n_bars - 1}
    return sum(int(c[b] == 0) for c in counts.values() if (c > 0).mean() >= 0.5 for b in check)


def join_gaps(window: np.ndarray, spec: Any, *, bar: int, stems: Sequence[str], head: int | None,
              tail: bool, counts: dict[str, np.ndarray] | None = None) -> int:
    """Silent stem-bars where a window meets its neighbours: the first two bars it writes after
    the prompt (``head``: the prompt's length in steps) and, when another window follows, its
    last two bars (they become that window's prompt). Only stems that play in at least half of
    the window's bars count — a stem the music leaves out is not a gap."""
    n_bars = window.shape[0] // bar
    if n_bars < 2:
        return 0
    counts = counts if counts is not None else _bar_counts(window, spec, bar=bar, stems=stems)
    check: set[int] = set()
    if head is not None:
        first = head // bar
        check |= {b for b in (first, first + 1) if b < n_bars}
    if tail:
        check |= {n_bars - 2, n_bars - 1}
    return sum(int(c[b] == 0) for c in counts.values() if (c > 0).mean() >= 0.5 for b in check)


def refine_cut_times(timeline: Timeline, accents: list[Accent], exact: set[int], times: Sequence[Fraction],
                     between: Mapping[int, tuple[tuple[Fraction, ...], np.ndarray]] | None = None) -> list[Accent]:
    """Detected cuts are known to the 10 fps sample that first shows the new shot — up to 100 ms
    after the real cut. Each is moved to the exact timeline frame where the picture changes:
    among the frames the decode pass kept between the two samples around it (``between``,
    :attr:`muvi.video.Frames.between`), else by decoding those few frames again. Cuts at
    segment boundaries (``exact``) are exact already."""
    from muvi.analysis import histogram_distance
    from muvi.video import iter_frames

    rate = timeline.rate
    t0 = timeline.start.seconds
    out = []
    for a in accents:
        if a.kind != "cut" or a.index in exact or a.index == 0:
            out.append(a)
            continue
        if between and a.index in between:
            at, thumbs = between[a.index]
            k = int(np.argmax(histogram_distance(thumbs)[1:])) + 1 if len(at) > 1 else 0
            out.append(Accent(a.index, rate.seconds(rate.frames(at[k], "round")) - t0, a.strength, a.kind))
            continue
        lo, hi = times[a.index - 1], times[a.index]  # absolute record seconds
        first, last = rate.frames(lo, "floor"), rate.frames(hi, "floor")
        if last - first < 1:
            out.append(a)
            continue
        try:
            pics = [sf.image for sf in iter_frames(timeline.between(first, last + 1), fps=rate.fraction, size=(32, 32))]
        except MuviError:
            out.append(a)
            continue
        d = histogram_distance(np.stack(pics))
        k = int(np.argmax(d[1:])) + 1 if len(pics) > 1 else 0
        out.append(Accent(a.index, rate.seconds(first + k) - t0, a.strength, a.kind))
    return out


def remove_stale_staging(root: Path) -> list[Path]:
    """Remove the staging folders a killed job left in ``root`` (hidden folders that carry
    :data:`STAGING_MARK`); returns them. Call it only when no job can be writing there."""
    gone = []
    for p in sorted(root.iterdir()) if root.is_dir() else []:
        if p.is_dir() and p.name.startswith(".") and (p / STAGING_MARK).is_file():
            shutil.rmtree(p, ignore_errors=True)
            gone.append(p)
    return gone
