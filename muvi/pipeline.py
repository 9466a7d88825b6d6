"""The main job: a Timeline and options → stems that land on the cuts.

Stages (each timed, each reported through ``progress(stage, fraction)``):

``decode`` frames at 10 fps → ``analysis`` cuts (segment boundaries always) and motion peaks →
``plan`` the beat grid (:mod:`muvi.sync`) → ``encode`` visual tokens → ``sampling`` window by
window (16 bars, 4 bars overlap: each window after the first gets the end of the previous one
as its in-context prompt, the first one the user's prompt; a window where a pitched stem is
silent throughout, or whose bars at a join leave a stem that plays through it silent, is
sampled again with the next seed, up to ``JOIN_TRIES`` times, keeping the best — both judged
on the music as it will be decoded, held to its control curves; ``report.json`` says how
often) → ``notes`` (decode with each stem held near its curve, transpose from
the model's common tonic to the key, snap to the scale) → ``render`` (FluidSynth per stem) →
``write`` (Broadcast-WAV stems + mix, MIDI, beats.json, report.json, roll.png, preview.mp4).

Everything is written to a staging folder and moved into the output folder only when all
succeeded: a failed or cancelled run leaves nothing there. Same seed + same options → the same
notes and the same audio.
"""

from __future__ import annotations


import json
import logging
import math
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from muvi.analysis import Accent, find_accents, motion_curve, thumbnails
from muvi.curves import (CONTROL_CHANNELS, CONTROLS, PICTURE_SLACK, USER_SLACK, decode_following, music_curves, parse_energy, parse_energy_curve,
                         spearman, timeline_controls)
from muvi.mood import choose_key, choose_mood, choose_style, picture_look
from muvi.backend import Backend, TorchBackend
from muvi.errors import Cancelled, InvalidInputError, MuviError
from muvi.flow import guided_velocity, sample
from muvi.metrics import accent_hit_rate, musicality
from muvi.music.keys import Key, snap_to_scale, transpose
from muvi.music.corpus import PITCHED_STEMS, STEMS
from muvi.music.midi import write_midi, write_stem_midis
from muvi.music.plot import plot_score
from muvi.music.score import Score
from muvi.music.styles import STYLES
from muvi.nn.adaptor import grid_positions
from muvi.nn.encoders import load_encoder
from muvi.nn.model import WINDOW_BARS, MuVi
from muvi.prompt import continuation_prompt, load_prompt, prompt_tokens
from muvi.render import LoudnessOptions, SynthOptions, render_score, write_preview, write_stems
from muvi.sync import PlanAccent, accent_report, plan_beats
from muvi.timeline import RationalTime, Segment, Timeline, TimeRange
from muvi.video import check_timeline, decode_timeline

__all__ = ["GenerateOptions", "GenerationResult", "Generator", "window_spans", "STAGES", "ALL_STEMS", "BPM_RANGE", "MAX_CFG", "MAX_STEPS"]

log = logging.getLogger(__name__)
STAGES = ("decode", "analysis", "plan", "encode", "sampling", "notes", "render", "write")
FPS = Fraction(10)
ALL_STEMS = STEMS
BPM_RANGE = (40.0, 240.0)  # a pinned tempo
MAX_CFG = 15.0
MAX_STEPS = 200
JOIN_TRIES = 4  # samples per window at most while a join leaves a playing stem silent for a bar


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


@dataclass(frozen=True)
class GenerationResult:
    out_dir: Path
    files: dict[str, Path]
    score: Score
    report: dict[str, Any] = field(repr=False)


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
    ) -> GenerationResult:
        out_dir = Path(out_dir)
        stage_t: dict[str, float] = {}
        prog = progress or (lambda s, f: None)

        def checkpoint(stage: str) -> None:
            if should_stop is not None and should_stop():
                raise Cancelled(f"cancelled before {stage}")

        t = time.perf_counter()
        check_timeline(timeline)
        self._check_window(options)
        curve = (parse_energy_curve(options.energy_curve, duration=float(timeline.duration.seconds))
                 if options.energy_curve is not None else None)
        checkpoint("decode")
        frames = decode_timeline(timeline, fps=FPS, size=(224, 224), progress=lambda f: prog("decode", f))
        stage_t["decode"] = time.perf_counter() - t

        t = time.perf_counter()
        t0 = timeline.start.seconds
        rel = [ft - t0 for ft in frames.times]
        small = thumbnails(frames.images)  # one 32×32 copy for cuts, motion and energy
        accents = find_accents(small, rel, forced_cuts=frames.cut_indices)
        accents = refine_cut_times(timeline, accents, set(frames.cut_indices), frames.times)
        motion = motion_curve(small, [a.index for a in accents if a.kind == "cut"])
        stage_t["analysis"] = time.perf_counter() - t
        prog("analysis", 1.0)

        t = time.perf_counter()
        duration = timeline.duration.seconds
        cut_idx = [a.index for a in accents if a.kind == "cut"]
        look = picture_look(small, motion=motion, cuts_per_minute=len(cut_idx) / max(1e-6, float(duration) / 60.0))
        style, style_why = choose_style(look, given=options.style)
        plan = plan_beats(
            [PlanAccent(a.time, a.strength, a.kind) for a in accents], duration=duration,
            tolerance=timeline.rate.seconds(1), bpm_range=tuple(float(x) for x in STYLES[style].tempo),
            bpm=options.bpm, beats_per_bar=options.meter,
        )
        tempo = plan.tempo
        stage_t["plan"] = time.perf_counter() - t
        prog("plan", 1.0)

        checkpoint("encode")
        t = time.perf_counter()
        patches = self.encoder.encode(frames.images)[0]  # (Tf, P, D)
        stage_t["encode"] = time.perf_counter() - t

        spec = self.model.config.roll
        spb = spec.steps_per_beat
        bar = spb * options.meter
        n_steps = math.ceil(tempo.beat_at(duration) * spb / bar) * bar
        # a timeline shorter than one model window is still sampled as a whole window (over its
        # picture played backwards and forwards again) and cut to length: the model learnt on
        # whole windows, and a short one comes out sparse (6 bars of 16: bass in 60 % of the
        # bars, chords in 58 %, against 86 % and 100 % on the same videos at full length)
        n_model = max(n_steps, options.window_bars * bar)
        positions = torch.from_numpy(grid_positions(tempo, n_model, steps_per_beat=spb, fps=FPS, n_frames=len(frames),
                                                    beyond="mirror"))
        cfg = options.cfg if options.cfg is not None else float(self.meta.get("recipe", {}).get("default_cfg", 3.0))
        key, key_why = choose_key(look, pinned=options.key, style_minor_share=STYLES[style].minor_share)
        mood, mood_why = choose_mood(look, style=style, mode=key.mode, given=options.mood)
        controls, curves_report = self._controls(motion=motion, cuts=cut_idx, patches=patches, positions=positions,
                                                 tempo=tempo, style=style, options=options, curve=curve, bar=bar,
                                                 n_bars=n_steps // bar)
        style_i = torch.tensor([self.model.config.style_index(style)])
        mood_i = torch.tensor([self.model.config.mood_index(mood)])
        user_prompt = load_prompt(options.prompt, steps_per_beat=spb) if options.prompt else None

        t = time.perf_counter()
        decoder = replace(self.model.config.decode_spec, beats_per_bar=options.meter)
        requested = curves_report.get("requested", {})
        slack = USER_SLACK if curve is not None else PICTURE_SLACK
        tokens, t_cond, joins = self._sample_windows(
            patches, positions, style_i, mood_i, controls, decoder=decoder, requested=requested, slack=slack,
            options=options, cfg=cfg, n_steps=n_model, bar=bar,
            user_prompt=user_prompt, progress=prog, should_stop=should_stop, n_real=n_steps,
        )
        tokens = tokens[:n_steps]
        stage_t["adaptor"] = t_cond
        stage_t["sampling"] = time.perf_counter() - t - t_cond

        t = time.perf_counter()
        decoded, held = decode_following(decoder, tokens, requested, slack=slack)
        notes = [n for n in decoded if n.stem in options.stems]
        curves_report["generated"] = _curve_dict(music_curves(notes, n_steps=n_steps, steps_per_bar=bar))
        curves_report["held_to_curve"] = {**held, "slack": slack}
        curves_report["intensity_spearman"] = spearman(requested.get("intensity", []), curves_report["generated"]["intensity"])
        curves_report["intensity_spearman_model"] = spearman(requested.get("intensity", []), held["model_intensity"])
        shift = key.tonic if key.tonic <= 6 else key.tonic - 12
        notes = snap_to_scale(transpose(notes, shift), key)
        programs = {s: int(STYLES[style].programs[s][0]) for s in PITCHED_STEMS if s in STYLES[style].programs}
        score = Score(tuple(notes), tempo, n_steps, spb, programs, key=key.name, style=style)
        stage_t["notes"] = time.perf_counter() - t
        prog("notes", 1.0)

        checkpoint("render")
        t = time.perf_counter()
        start_sample, n_samples = timeline.sample_range()
        audio = render_score(score, options=SynthOptions(soundfont=options.soundfont), stems=list(options.stems),
                             n_samples=n_samples)
        stage_t["render"] = time.perf_counter() - t
        prog("render", 1.0)

        checkpoint("write")
        t = time.perf_counter()
        beats = tempo.beat_times(duration)
        hits = accent_hit_rate([a.time for a in accents if a.kind == "cut"], beats, frame_rate=timeline.rate.fraction)
        acc_report = accent_report(plan, [PlanAccent(a.time, a.strength, a.kind) for a in accents], timeline.rate.seconds(1))
        report = {
            "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()},
            "style": style, "style_reason": style_why, "key": key.name, "key_reason": key_why, "mood": mood, "mood_reason": mood_why,
            "look": look.to_json(), "curves": curves_report, "cfg": cfg, "seed": options.seed, "backend": self.backend.name,
            "backend_precision": getattr(self.backend, "precision", "fp32"),
            "weights": self.meta.get("loaded_from"), "training_run": self.meta.get("recipe", {}).get("out"), "timeline": {
                "rate": str(timeline.rate), "start_frame": timeline.start.value, "frames": timeline.duration.value,
                "segments": len(timeline.segments), "time_reference_samples": start_sample, "samples": n_samples},
            "tempo": {"bpm": plan.bpm, "changes": len(tempo.changes) - 1, "beats_per_bar": tempo.beats_per_bar},
            "joins": joins,
            "accent_hit_rate_cuts": hits, "accent_hit_rate_all": plan.hit_rate,
            "musicality": musicality(score, key=key, stems=list(options.stems)),
        }
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent if out_dir.parent.exists() else None))
        try:
            files: dict[str, Path] = {}
            stem_files = write_stems(staging, audio, timeline=timeline, loudness=LoudnessOptions(target_lufs=options.loudness_lufs),
                                     description=f"muvi {style} {key.name}",
                                     origination=None)
            files.update({f"{k}.wav": v for k, v in stem_files.stems.items()}, **{"mix.wav": stem_files.mix})
            files["stems.mid"] = write_midi(score, staging / "stems.mid", stems=list(options.stems))
            files.update({f"{k}.mid": v for k, v in write_stem_midis(score, staging, stems=list(options.stems)).items()})
            beats_json = {"tempo_map": tempo.to_json(), "timeline_start_seconds": float(t0),
                          "beats": [float(b) for b in beats], "downbeats": [float(b) for b in tempo.downbeat_times(duration)],
                          "accents": acc_report}
            (staging / "beats.json").write_text(json.dumps(beats_json, indent=1))
            files["beats.json"] = staging / "beats.json"
            files["roll.png"] = plot_score(score, staging / "roll.png", accents=[a.time for a in accents],
                                           hits=list(plan.hits), title=f"{style} {key.name} {plan.bpm:.1f} BPM")
            if options.preview:
                files["preview.mp4"] = write_preview(staging / "preview.mp4", timeline, stem_files.mix_audio)
            stage_t["write"] = time.perf_counter() - t
            report["timings_s"] = {k: round(v, 3) for k, v in stage_t.items()}
            (staging / "report.json").write_text(json.dumps(report, indent=1, default=float))
            files["report.json"] = staging / "report.json"
            out_dir.mkdir(parents=True, exist_ok=True)
            final = {}
            for name, path in files.items():
                dest = out_dir / path.name
                path.replace(dest)
                final[name] = dest
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        prog("write", 1.0)
        return GenerationResult(out_dir, final, score, report)


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

    def _controls(self, *, motion: np.ndarray, cuts: Sequence[int], patches: torch.Tensor, positions: torch.Tensor,
                  tempo: Any, style: str, options: GenerateOptions, curve: Any, bar: int, n_bars: int,
                  ) -> tuple[torch.Tensor, dict[str, Any]]:
        """The control curves per grid step (n_model, CONTROL_CHANNELS) from the picture (or the
        user's curve), mapped onto the style's range, and what report.json says of them."""
        if not self.model.config.controls:
            return torch.zeros(positions.shape[0], CONTROL_CHANNELS), {"source": "none (checkpoint without control curves)"}
        spb = self.model.config.roll.steps_per_beat
        tokens, report = timeline_controls(
            self.model.config.curve_ranges, motion=motion, cuts=cuts, frame_features=patches[:, 0].numpy(),
            positions=positions.numpy(), style=style, energy=parse_energy(options.energy), curve=curve, bar=bar,
            n_bars=n_bars, bar_time=lambda b: float(tempo.time_at(Fraction(2 * b * bar + bar, 2 * spb))))
        return torch.from_numpy(tokens), report

    def _sample_windows(
        self, patches: torch.Tensor, positions: torch.Tensor, style_i: torch.Tensor, mood_i: torch.Tensor,
        controls: torch.Tensor, *, decoder: Any, requested: dict[str, list[float]], slack: float,
        options: GenerateOptions, cfg: float, n_steps: int, bar: int, user_prompt: Score | None,
        progress: Callable[[str, float], None], should_stop: Callable[[], bool] | None, n_real: int | None = None,
    ) -> tuple[np.ndarray, float, dict[str, int]]:
        """Sample the whole roll window by window; each window after the first is prompted with
        the end of the previous one. Returns the tokens (n_steps, F), the time spent in the
        adaptor (conditioning) and what the join check did. Steps from ``n_real`` on are
        padding past the timeline's end: sampled, but not judged by the silent-stem check."""
        n_real = n_steps if n_real is None else n_real
        spec = self.model.config.roll
        win, ov = options.window_bars * bar, options.overlap_bars * bar
        tokens = np.zeros((n_steps, spec.token_dim), np.float32)
        spans = window_spans(n_steps, win, ov)
        prev: np.ndarray | None = None
        t_cond = 0.0
        joins = {"windows": len(spans), "retries": 0, "silent_stem_bars_left": 0, "silent_stems_left": 0}
        for k, (s0, s1) in enumerate(spans):
            n = s1 - s0
            tc = time.perf_counter()
            pos, ctl = positions[s0:s1][None], controls[s0:s1][None]
            cond = self.backend.condition(patches[None], pos, style_i, mood_i, torch.tensor([False]), ctl)
            unc = self.backend.condition(patches[None], pos, style_i, mood_i, torch.tensor([True]), ctl)
            t_cond += time.perf_counter() - tc
            if k == 0 and user_prompt is not None:
                ptok, pmask = prompt_tokens(user_prompt.notes, spec, n_steps=n, prefix_steps=min(n // 2, 4 * bar))
            elif prev is not None:
                ptok, pmask = continuation_prompt(prev, overlap_steps=min(ov, n // 2), n_steps=n)
            else:
                ptok, pmask = np.zeros((n, spec.token_dim), np.float32), np.zeros((n, 1), np.float32)
            prompt, mask = torch.from_numpy(ptok)[None], torch.from_numpy(pmask)[None]
            keep = 0 if k == 0 else int(pmask.sum())

            def step_progress(i: int, total: int, k: int = k) -> None:
                progress("sampling", (k + i / total) / len(spans))

            # a window is sampled again (next seed) while a pitched stem is silent through all
            # of it, or, where it meets another window, a stem that plays through it falls silent
            # for a bar at the join; the best try is kept (a silent stem weighs as all its bars,
            # and of equal tries the first wins). Both are judged on the window decoded as it
            # will be, each stem held to its control curve
            req = {c: v[s0 // bar: s1 // bar] for c, v in requested.items()}
            asked = [s for s in options.stems if max(req.get(f"intensity_{s}", [0.0]) or [0.0]) > 0]
            fn = guided_velocity(self.backend.velocity, cond=cond, uncond=unc, scale=cfg, prompt=prompt, prompt_mask=mask)
            best: tuple[int, int, int, np.ndarray] | None = None
            for attempt in range(JOIN_TRIES):
                gen = torch.Generator().manual_seed(options.seed * 1000 + k + 100_000 * attempt)
                noise = torch.randn(1, n, spec.token_dim, generator=gen)
                out = sample(fn, noise, steps=options.steps, method=options.sampler, prompt=prompt, prompt_mask=mask,
                             progress=step_progress if attempt == 0 else None, should_stop=should_stop)[0].numpy()
                real = out[: max(0, min(n_real, s1) - s0)]  # padding only ever follows a lone window
                counts = _bar_counts(real, decoder, bar=bar, stems=options.stems, requested=req, slack=slack)
                gaps = join_gaps(real, decoder, bar=bar, stems=options.stems, head=keep if k > 0 else None,
                                 tail=k + 1 < len(spans), counts=counts) if len(spans) > 1 else 0
                silent = silent_stems(real, decoder, bar=bar, stems=options.stems, start=keep, counts=counts, asked=asked)
                penalty = gaps + silent * max(1, n // bar)
                if best is None or penalty < best[0]:
                    best = (penalty, gaps, silent, out)
                if penalty == 0:
                    break
                joins["retries"] += attempt + 1 < JOIN_TRIES
            assert best is not None
            joins["silent_stem_bars_left"] += best[1]
            joins["silent_stems_left"] += best[2]
            out = best[3]
            tokens[s0 + keep : s1] = out[keep:]
            prev = out
        return tokens, t_cond, joins

def _curve_dict(curves: np.ndarray) -> dict[str, list[float]]:
    return {c: [round(float(x), 3) for x in curves[:, i]] for i, c in enumerate(CONTROLS)}


def _bar_counts(window: np.ndarray, spec: Any, *, bar: int, stems: Sequence[str],
                requested: dict[str, list[float]] | None = None, slack: float = PICTURE_SLACK) -> dict[str, np.ndarray]:
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


def refine_cut_times(timeline: Timeline, accents: list[Accent], exact: set[int], times: Sequence[Fraction]) -> list[Accent]:
    """Detected cuts are known to the 10 fps sample that first shows the new shot — up to 100 ms
    after the real cut. Each is moved to the exact timeline frame where the picture changes,
    by decoding the few frames between the two samples around it. Cuts at segment boundaries
    (``exact``) are exact already."""
    from muvi.analysis import histogram_distance
    from muvi.video import iter_frames

    rate = timeline.rate
    t0 = timeline.start.seconds
    out = []
    for a in accents:
        if a.kind != "cut" or a.index in exact or a.index == 0:
            out.append(a)
            continue
        lo, hi = times[a.index - 1], times[a.index]  # absolute record seconds
        first, last = rate.frames(lo, "floor"), rate.frames(hi, "floor")
        if last - first < 1:
            out.append(a)
            continue
        try:
            pics = [sf.image for sf in iter_frames(_window(timeline, first, last), fps=rate.fraction, size=(32, 32))]
        except MuviError:
            out.append(a)
            continue
        d = histogram_distance(np.stack(pics))
        k = int(np.argmax(d[1:])) + 1 if len(pics) > 1 else 0
        out.append(Accent(a.index, rate.seconds(first + k) - t0, a.strength, a.kind))
    return out


def _window(timeline: Timeline, first: int, last: int) -> Timeline:
    """The part of ``timeline`` from record frame ``first`` to ``last`` inclusive."""
    segs = []
    for seg in timeline.segments:
        a, b = max(first, seg.record_start.value), min(last + 1, seg.record.end.value)
        if a >= b:
            continue
        offset = RationalTime(a - seg.record_start.value, timeline.rate).rescaled(seg.source.rate)
        dur = RationalTime(b - a, timeline.rate).rescaled(seg.source.rate)
        if dur.value < 1:
            continue
        segs.append(Segment(seg.media, TimeRange(seg.source.start + offset, dur), RationalTime(a, timeline.rate)))
    return Timeline(timeline.rate, tuple(segs))
