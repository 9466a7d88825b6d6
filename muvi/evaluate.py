"""``muvi eval``: the model against held-out synthetic pairs, with baselines and a CFG sweep.

Held-out windows come from pieces the training split never saw (the split is recomputed from
the checkpoint's own recipe: corpus, seed, held-out share). For each window a synthetic video
is rendered from the reference music, the model generates music for it, and both are compared:

- **BCS / BHS**: generated vs reference audio, both rendered with FluidSynth (see
  :mod:`muvi.metrics` for the exact definition);
- **SIM**: 100 × cosine between the generated music and the video, judged by the *evaluated
  model's* contrastive encoders for every row (baselines included), so rows are comparable;
- **accent hit rate**: share of the video's accents (cuts and motion peaks, found by
  :mod:`muvi.analysis`) with a generated onset within ±1 video frame;
- **musicality**: in-scale ratio, pitch-class entropy, empty-bar ratio per stem, groove
  consistency, density;
- **FD (stand-in)**: Fréchet distance between generated and reference windows on the judge's
  music-encoder embeddings. A stand-in for the paper's FAD/FD, not comparable with them.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from muvi.analysis import find_accents, thumbnails
from muvi.curves import decode_following, music_curves, parse_energy, spearman, timeline_controls
from muvi.fileio import atomic_write_text
from muvi.flow import guidance_conditions, guided_velocity, sample
from muvi.metrics import accent_hit_rate, beat_scores, frechet_distance, musicality
from muvi.music.corpus import STEMS, Corpus
from muvi.mood import choose_key, choose_mood
from muvi.music.keys import Key, pitch_class_histogram
from muvi.music.styles import STYLES, breaks_chords
from muvi.music.plot import plot_score
from muvi.prompt import prompt_tokens
from muvi.music.score import Score
from muvi.nn.adaptor import grid_positions
from muvi.nn.encoders import load_encoder
from muvi.nn.model import MuVi
from muvi.render import SynthOptions, render_score
from muvi.train.data import CorpusWindows, item_rng, split_pieces
from muvi.train.synthvideo import render_paired_video
from muvi.weights import load_checkpoint

__all__ = ["EvalOptions", "HeldOutWindow", "held_out_windows", "generate_for", "calibrate_note_odds", "evaluate",
           "write_report"]

FPS = Fraction(10)


@dataclass(frozen=True)
class EvalOptions:
    windows: int = 48
    sampler_steps: int = 25
    cfg: float | None = None  # None: the checkpoint's default, else 3.0
    cfg_sweep: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0)
    sweep_windows: int | None = None  # None: every window (the table's row is then the sweep's)
    seed: int = 0
    corpus: str | None = None  # default: the corpus in the checkpoint's recipe
    plots: int = 4
    control_windows: int = 12  # style-tag and prompt effect measurements (0: skip)
    calibrate: bool = False  # first set the model's sampling note odds on training windows
    calibrate_windows: int = 48


@dataclass(frozen=True)
class HeldOutWindow:
    score: Score  # reference music, key-normalised
    style: str | None
    frames: np.ndarray  # (Tf, 64, 64, 3) synthetic video
    patches: torch.Tensor  # (Tf, P, D)
    positions: torch.Tensor  # (T,)
    accents: tuple[Fraction, ...]
    name: str
    controls: torch.Tensor  # (T, CONTROL_CHANNELS) the control curves the picture asks for (as the pipeline makes them)
    requested: dict[str, list[float]]  # per bar: the curves within controls (report["requested"] of timeline_controls)
    # what the pipeline reads from the picture (muvi.mood): the mood tag, and the key it asks for
    # in the model's key (the reference's tonic, the look's mode)
    mood: str | None = None
    key_asked: str | None = None

    @property
    def requested_intensity(self) -> list[float]:
        return list(self.requested.get("intensity", []))


def held_out_windows(model: MuVi, recipe: dict[str, Any], options: EvalOptions, *,
                     split: str = "held_out", count: int | None = None) -> list[HeldOutWindow]:
    """``count`` (default ``options.windows``) windows from held-out pieces (``split="train"``:
    from the training pieces instead, for calibration), spread over styles and pieces, each
    with its synthetic video."""
    if split not in ("held_out", "train"):
        raise ValueError(f"split must be 'held_out' or 'train', got {split!r}")
    count = options.windows if count is None else count
    corpus = Corpus(options.corpus or recipe["corpus"])
    train, test = split_pieces(corpus, held_out=recipe.get("held_out", 0.05), seed=recipe.get("seed", 0))
    ids = test if split == "held_out" else train
    if not ids:
        raise ValueError(f"the {split} split is empty: change held_out or use a larger corpus")
    windows = CorpusWindows(corpus, ids, model.config, steps=recipe.get("window_steps", 256), seed=options.seed)
    # within a style, the first window of every piece before any piece's second: as many
    # pieces as the window count allows (neighbouring windows of one piece are alike)
    nth, seen = [], {}  # nth[i]: 0 for a piece's first window, 1 for its second, …
    for w in windows.windows:
        seen[w.piece] = seen.get(w.piece, -1) + 1
        nth.append(seen[w.piece])
    by_style: dict[str, list[int]] = {}
    for i in sorted(range(len(windows)), key=lambda i: (nth[i], i)):
        by_style.setdefault(corpus.pieces[windows.windows[i].piece]["style"], []).append(i)
    order: list[int] = []
    queues = [list(v) for _, v in sorted(by_style.items())]
    while len(order) < min(count, len(windows)) and any(queues):
        for q in queues:  # round robin over styles
            if q and len(order) < count:
                order.append(q.pop(0))
    from muvi.pipeline import picture_reading  # the pipeline imports what this module does

    enc = load_encoder(**{k: v for k, v in model.config.encoder.items() if k not in ("dim", "n_tokens")})
    out = []
    for i in order:
        score = windows.window_score(i)
        rng = item_rng("eval" if split == "held_out" else "calibrate", options.seed, i)
        n_frames = max(2, math.ceil(score.step_time(windows.steps) * FPS))
        clip = render_paired_video(score, rng=rng, fps=FPS, size=64, n_frames=n_frames)
        accents = find_accents(clip.frames, clip.times)
        pos = grid_positions(score.tempo, windows.steps, steps_per_beat=score.steps_per_beat, fps=FPS, n_frames=n_frames)
        piece = corpus.pieces[windows.windows[i].piece]
        patches = enc.encode(clip.frames)[0]
        # read as the pipeline reads a take's picture: cuts, motion, and the look
        cuts, motion, look = picture_reading(thumbnails(clip.frames), accents, seconds=n_frames / FPS)
        bar = score.steps_per_bar
        ctl, rep = timeline_controls(
            model.config.curve_ranges, motion=motion, cuts=list(cuts),
            frame_features=patches[:, 0].numpy(), positions=pos, style=piece["style"], energy=parse_energy(None),
            curve=None, bar=bar, n_bars=windows.steps // bar, bar_time=lambda b: 0.0)
        mood, key_asked = _asked_as_the_pipeline(look, piece["style"], score.key)
        out.append(HeldOutWindow(
            Score(score.notes, score.tempo, windows.steps, score.steps_per_beat, score.programs, score.key, score.style),
            piece["style"], clip.frames, patches, torch.from_numpy(pos),
            tuple(a.time for a in accents), f"{piece['name']}@{windows.windows[i].start}",
            torch.from_numpy(ctl), dict(rep.get("requested", {})), mood, key_asked))
    return out


def _asked_as_the_pipeline(look: Any, style: str, ref_key: str | None) -> tuple[str | None, str | None]:
    """(mood, key asked) as the pipeline would choose them from this look: the look's mode on
    the reference's tonic (the model's common key), and the mood tag for that mode."""
    if style not in STYLES or not ref_key:
        return None, ref_key
    key, _ = choose_key(look, pinned=None, style_minor_share=STYLES[style].minor_share)
    mood, _ = choose_mood(look, style=style, mode=key.mode, given=None)
    return mood, Key(Key.parse(ref_key).tonic, key.mode).name


@torch.no_grad()
def generate_for(model: MuVi, window: HeldOutWindow, *, cfg: float, steps: int, seed: int,
                 style: str | None = "auto", unconditional: bool = False,
                 prompt_steps: int = 0, mood: str | None = "auto") -> tuple[Score, torch.Tensor]:
    """Generate a window of music for the window's video (tokens (T, F) and the decoded score).
    ``prompt_steps`` > 0 gives the reference music's first steps as the in-context prompt;
    ``mood="auto"``: the tag the pipeline would give this picture (:attr:`HeldOutWindow.mood`)."""
    spec = model.config.roll
    n = window.positions.shape[0]
    if style == "auto":
        style = window.style if window.style in model.config.styles else None
    if mood == "auto":
        mood = window.mood if window.mood in model.config.moods else None
    s, m = torch.tensor([model.config.style_index(style)]), torch.tensor([model.config.mood_index(mood)])
    patches, pos = window.patches[None], window.positions[None]
    cond, unc = guidance_conditions(model.condition, patches, pos, s, m, window.controls[None])
    ptok, pmask = prompt_tokens(window.score.notes, spec, n_steps=n, prefix_steps=prompt_steps)
    prompt, mask = torch.from_numpy(ptok)[None], torch.from_numpy(pmask)[None]
    # the unconditional baseline ignores the picture altogether (no control curves either): it
    # samples the null branch alone
    fn = guided_velocity(model.dit.velocity, cond=unc if unconditional else cond, uncond=None if unconditional else unc,
                         scale=cfg, prompt=prompt, prompt_mask=mask)
    noise = torch.randn(1, n, spec.token_dim, generator=torch.Generator().manual_seed(seed))
    tokens = sample(fn, noise, steps=steps, prompt=prompt, prompt_mask=mask)[0]
    # decoded as the pipeline does: each stem held near the curve the picture asks for (none
    # for the unconditional row)
    requested = {} if unconditional else window.requested
    notes, _ = decode_following(model.config.decode_spec, tokens, requested, broken_chords=breaks_chords(window.style))
    ref = window.score
    return Score(tuple(notes), ref.tempo, n, ref.steps_per_beat, ref.programs, ref.key, ref.style), tokens


def _onset_times(score: Score) -> list[Fraction]:
    drums = [n for n in score.notes if n.stem == "drums"]
    return sorted({score.step_time(n.start) for n in (drums or score.notes)})


@torch.no_grad()
def _judge_embeddings(judge: MuVi, tokens: torch.Tensor) -> torch.Tensor:
    return judge.music_encoder(tokens[None])[0]  # (T, E)


@torch.no_grad()
def _sim(judge: MuVi, tokens: torch.Tensor, window: HeldOutWindow) -> float:
    aligned, _ = judge.adaptor(window.patches[None], window.positions[None])
    v = torch.nn.functional.normalize(judge.visual_head(aligned)[0], dim=-1)
    m = torch.nn.functional.normalize(_judge_embeddings(judge, tokens), dim=-1)
    return 100.0 * float((m * v).sum(-1).mean())


def _reference_tokens(spec: Any, window: HeldOutWindow) -> torch.Tensor:
    """The window's reference music as model tokens (T, F)."""
    return torch.from_numpy(spec.to_tokens(spec.encode(window.score.notes, window.positions.shape[0])).copy())


def _reference_sim(judge: MuVi, windows: Sequence[HeldOutWindow]) -> dict[str, float]:
    """SIM's scale on these windows: the reference music with its own video, and with the next
    window's video (another piece's music, as long as the window)."""
    toks = [_reference_tokens(judge.config.roll, w) for w in windows]
    matched = [_sim(judge, t, w) for t, w in zip(toks, windows)]
    nxt = list(windows[1:]) + list(windows[:1]) if len(windows) > 1 else []
    mismatched = [_sim(judge, t, w) for t, w in zip(toks, nxt) if t.shape[0] == w.positions.shape[0]]
    return {"matched": float(np.mean(matched)), "mismatched": float(np.mean(mismatched)) if mismatched else math.nan}


def _nanmean(values: Sequence[float]) -> float:
    v = np.asarray(values, np.float64)
    return float(v[~np.isnan(v)].mean()) if np.any(~np.isnan(v)) else math.nan


def _nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


def _score_rows(model: MuVi, judge: MuVi, windows: Sequence[HeldOutWindow], *, cfg: float, steps: int, seed: int,
                unconditional: bool, audio: bool, ref_audio: dict[int, np.ndarray]) -> tuple[dict[str, Any], list[Score]]:
    spec = model.config.roll
    rows: list[dict[str, float]] = []
    gen_emb, ref_emb, scores = [], [], []
    for i, w in enumerate(windows):
        score, tokens = generate_for(model, w, cfg=cfg, steps=steps, seed=seed + i, unconditional=unconditional)
        scores.append(score)
        # in-scale against the key the take is asked to be in (as the pipeline asks: the look's
        # mode); against the reference's key it also counts the look's mode choice
        asked, ref_key = (Key.parse(k) if k else None for k in (w.key_asked or w.score.key, w.score.key))
        mu = musicality(score, key=asked, stems=STEMS)
        mu_ref = musicality(score, key=ref_key, stems=STEMS)
        row = {
            "sim": _sim(judge, tokens, w),
            "accent_hit_rate": accent_hit_rate(w.accents, _onset_times(score), frame_rate=FPS),
            "in_scale_ratio": mu["in_scale_ratio"],
            "in_scale_ratio_ref_key": mu_ref["in_scale_ratio"],
            "mode_as_reference": float(asked is not None and ref_key is not None and asked.mode == ref_key.mode),
            "pitch_class_entropy": mu["pitch_class_entropy"],
            "groove_consistency": mu["groove_consistency"],
            "empty_bar_ratio": float(np.mean([mu["stems"][s]["empty_bar_ratio"] for s in w.score.stems if s in mu["stems"]])),
            "notes_per_bar": sum(v["note_density_per_bar"] for v in mu["stems"].values()),
            "curve_spearman": _nan(spearman(w.requested_intensity, music_curves(
                score.notes, n_steps=score.n_steps, steps_per_bar=score.steps_per_bar)[:, 0])),
        }
        if audio:
            n = int(w.score.duration * 48000)
            gen = sum(render_score(score, options=SynthOptions(reverb=False), n_samples=n,
                                   stems=STEMS).values())
            if i not in ref_audio:
                ref_audio[i] = sum(render_score(w.score, options=SynthOptions(reverb=False), n_samples=n,
                                                stems=STEMS).values())
            bs = beat_scores(gen, ref_audio[i], 48000)
            row.update(bcs=bs.bcs, bhs=bs.bhs, _gen=bs.generated_beats, _ref=bs.reference_beats,
                       _hit=bs.bhs * bs.reference_beats / 100.0 if bs.reference_beats else 0.0)
        rows.append(row)
        gen_emb.append(_judge_embeddings(judge, tokens).mean(0).numpy())
        ref_emb.append(_judge_embeddings(judge, _reference_tokens(spec, w)).mean(0).numpy())
    summary: dict[str, Any] = {k: _nanmean([r[k] for r in rows]) for k in rows[0] if not k.startswith("_")}
    summary["sim_windows"] = [round(r["sim"], 4) for r in rows]  # for margins paired over the same windows
    if "bcs" in summary:  # pooled over windows: a window with few reference onsets would dominate a mean of ratios
        ref = sum(r["_ref"] for r in rows)
        summary["bcs_window_mean"], summary["bhs_window_mean"] = summary["bcs"], summary["bhs"]
        summary["bcs"] = 100.0 * sum(r["_gen"] for r in rows) / ref if ref else math.nan
        summary["bhs"] = 100.0 * sum(r["_hit"] for r in rows) / ref if ref else math.nan
    summary["fd_stand_in"] = frechet_distance(np.stack(gen_emb), np.stack(ref_emb)) if len(rows) >= 2 else math.nan
    return summary, scores


def evaluate(weights: Path | str, out: Path | str, *, baselines: dict[str, Path | str] | None = None,
             options: EvalOptions = EvalOptions(), progress: Any = print) -> dict[str, Any]:
    """Write ``out/eval.json``, ``out/EVAL.md`` and roll plots; returns the report."""
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model, meta = load_checkpoint(weights)
    recipe = meta.get("recipe", {})
    calibration = None
    if options.calibrate:
        calibration = calibrate_note_odds(model, recipe, options, progress=progress)
        model.with_note_odds(calibration["note_odds"])
    windows = held_out_windows(model, recipe, options)
    progress(f"{len(windows)} held-out windows from {len({w.name.split('@')[0] for w in windows})} pieces")
    reference_sim = _reference_sim(model, windows)
    progress(f"reference music SIM: {json.dumps({k: round(v, 2) for k, v in reference_sim.items()})}")
    ref_audio: dict[int, np.ndarray] = {}
    # the CFG sweep first: its pick is the scale the table (and the shipped default) uses
    sweep, sweep_scores = {}, {}
    n_sweep = len(windows) if options.sweep_windows is None else min(options.sweep_windows, len(windows))
    for s in options.cfg_sweep:
        sweep[str(s)], sweep_scores[str(s)] = _score_rows(
            model, model, windows[:n_sweep], cfg=s, steps=options.sampler_steps, seed=options.seed,
            unconditional=False, audio=True, ref_audio=ref_audio)
        progress(f"cfg {s}: {json.dumps(_brief(sweep[str(s)]))}")
    best = _pick_cfg(sweep) if sweep else None
    cfg = options.cfg if options.cfg is not None else best if best is not None else float(recipe.get("default_cfg", 3.0))
    rows: dict[str, Any] = {}
    if str(cfg) in sweep and n_sweep == len(windows):  # the same windows and seeds: the same numbers
        main, scores = sweep[str(cfg)], sweep_scores[str(cfg)]
    else:
        main, scores = _score_rows(model, model, windows, cfg=cfg, steps=options.sampler_steps, seed=options.seed,
                                   unconditional=False, audio=True, ref_audio=ref_audio)
    rows["muvi"] = main
    progress(f"muvi (CFG {cfg}): {json.dumps(_brief(main))}")
    for name, path in (baselines or {}).items():
        base, _ = load_checkpoint(path)
        if base.config.note_weight == model.config.note_weight:  # sampled the same way as the model
            base.with_note_odds(model.config.note_odds)
        uncond = name.startswith("unconditional")
        rows[name], _ = _score_rows(base, model, windows, cfg=cfg, steps=options.sampler_steps, seed=options.seed,
                                    unconditional=uncond, audio=True, ref_audio=ref_audio)
        progress(f"{name}: {json.dumps(_brief(rows[name]))}")
    best = best if best is not None else cfg
    effects = controls(model, windows[: options.control_windows], cfg=cfg, steps=options.sampler_steps,
                       seed=options.seed) if options.control_windows else {}
    if effects:
        progress(f"controls: {json.dumps(effects, default=float)}")
    plots = []
    for i, (w, sc) in enumerate(zip(windows[: options.plots], scores)):
        hits = [any(abs(float(a - t)) <= 0.1 + 1e-9 for t in _onset_times(sc)) for a in w.accents]
        p = plot_score(sc, out / f"roll_{i}_{w.style}.png", title=f"generated for held-out {w.name} ({w.style})",
                       accents=list(w.accents), hits=hits)
        plots.append(p.name)
    report = {
        "weights": str(weights), "cfg": cfg, "sampler_steps": options.sampler_steps, "windows": len(windows),
        "seed": options.seed,
        "held_out_pieces": sorted({w.name.split("@")[0] for w in windows}), "rows": rows, "reference_sim": reference_sim, "cfg_sweep": sweep,
        "recommended_cfg": best, "note_odds": model.config.sampling_note_odds, "calibration": calibration,
        "controls": effects, "plots": plots, "seconds": round(time.perf_counter() - t0, 1),
        "targets": _targets(rows), "sim_margins": sim_margins(rows),
    }
    write_report(out, report)
    return report


def calibrate_note_odds(model: MuVi, recipe: dict[str, Any], options: EvalOptions = EvalOptions(), *,
                        target_bcs: float = 100.0, probes: int = 5, cfg: float = 1.0,
                        progress: Any = print) -> dict[str, Any]:
    """The sampling note odds k (see :class:`muvi.nn.model.ModelConfig`) at which the music
    generated for *training* windows has as many onsets as the windows' own music (pooled BCS
    = ``target_bcs``), at CFG ``cfg``. BCS rises with k; the search bisects log k over
    [1, 1 + note_weight], starting at the top (no conversion), then interpolates log k between
    the two probes that bracket the target. Never looks at held-out pieces. Leaves the model
    at the chosen k."""
    hi_k = 1.0 + model.config.note_weight
    windows = held_out_windows(model, recipe, options, split="train", count=options.calibrate_windows)
    ref_audio: dict[int, np.ndarray] = {}
    tried: list[tuple[float, float]] = []

    def bcs_at(k: float) -> float:
        model.with_note_odds(k)
        row, _ = _score_rows(model, model, windows, cfg=cfg, steps=options.sampler_steps, seed=options.seed,
                             unconditional=False, audio=True, ref_audio=ref_audio)
        tried.append((k, row["bcs"]))
        progress(f"calibration: note odds {k:.3f} → training-window BCS {row['bcs']:.1f}")
        return row["bcs"]

    lo, hi = (1.0, math.nan), (hi_k, bcs_at(hi_k))
    if hi[1] <= target_bcs:
        k = hi_k  # the weighted estimate does not over-produce: keep it
    else:
        for _ in range(max(0, probes - 1)):
            mid_k = math.sqrt(lo[0] * hi[0])
            mid = (mid_k, bcs_at(mid_k))
            if mid[1] > target_bcs:
                hi = mid
            else:
                lo = mid
        if math.isnan(lo[1]):
            k = lo[0]  # even the smallest probe over-produced: the data's own rate is the floor
        else:  # linear in log k between the bracketing probes
            f = (target_bcs - lo[1]) / (hi[1] - lo[1]) if hi[1] != lo[1] else 0.5
            k = math.exp(math.log(lo[0]) + f * (math.log(hi[0]) - math.log(lo[0])))
    k = round(k, 3)
    model.with_note_odds(k)
    return {"note_odds": k, "target_bcs": target_bcs, "cfg": cfg, "windows": len(windows),
            "pieces": len({w.name.split("@")[0] for w in windows}), "split": "train",
            "probes": [{"note_odds": round(a, 3), "bcs": b} for a, b in tried]}


def controls(model: MuVi, windows: Sequence[HeldOutWindow], *, cfg: float, steps: int, seed: int,
             styles: tuple[str, str] = ("ambient", "rock")) -> dict[str, Any]:
    """Does the style tag, and does a prompt, change the music the right way?

    Style: the same videos with a sparse and a busy style tag — drum and total notes per bar
    should rise from the first to the second, as they do in the corpus. Prompt: the reference
    music's first 4 bars as the prompt — the continuation (the bars after it) should resemble
    the prompt more than an unprompted generation's same bars do, by three statistics: the
    pitch-class histogram's correlation with the prompt's (pitched stems), the distance of the
    per-stem note densities (mean |log(1 + notes per bar) difference| over the four stems) and
    the correlation of the drums' onset positions within the bar (windows whose prompt has
    drums). Keys are normalised in training, so pitch classes alone move little."""
    out: dict[str, Any] = {"windows": len(windows), "styles": list(styles)}
    dens: dict[str, list[tuple[float, float]]] = {s: [] for s in styles}
    stats: dict[str, dict[str, list[float]]] = {k: {"with_prompt": [], "without_prompt": []}
                                                for k in ("pc_correlation", "density_distance", "drum_pattern_correlation")}
    for i, w in enumerate(windows):
        for st in styles:
            sc, _ = generate_for(model, w, cfg=cfg, steps=steps, seed=seed + i, style=st)
            mu = musicality(sc, stems=STEMS)
            dens[st].append((mu["stems"]["drums"]["note_density_per_bar"],
                             sum(v["note_density_per_bar"] for v in mu["stems"].values())))
        bar = w.score.steps_per_beat * 4
        prefix = 4 * bar
        if prefix >= w.positions.shape[0] or not any(n.start < prefix for n in w.score.notes):
            continue
        ref = _prompt_stats(w.score.notes, 0, prefix, bar)
        for p_steps, key in ((prefix, "with_prompt"), (0, "without_prompt")):
            sc, _ = generate_for(model, w, cfg=cfg, steps=steps, seed=seed + i, prompt_steps=p_steps)
            got = _prompt_stats(sc.notes, prefix, w.positions.shape[0], bar)
            stats["pc_correlation"][key].append(_corr(got["pc"], ref["pc"]))
            stats["density_distance"][key].append(float(np.abs(np.log1p(got["density"]) - np.log1p(ref["density"])).mean()))
            if ref["drums"].sum() > 0:
                stats["drum_pattern_correlation"][key].append(_corr(got["drums"], ref["drums"]))
    for st in styles:
        out[f"style_{st}"] = {"drum_notes_per_bar": float(np.mean([d for d, _ in dens[st]])),
                              "notes_per_bar": float(np.mean([t for _, t in dens[st]]))}
    a, b = out[f"style_{styles[0]}"], out[f"style_{styles[1]}"]
    out["style_shift_right_way"] = b["drum_notes_per_bar"] > a["drum_notes_per_bar"] and b["notes_per_bar"] > a["notes_per_bar"]
    prompt: dict[str, Any] = {}
    for k, v in stats.items():
        with_, without = (float(np.mean(v[x])) if v[x] else math.nan for x in ("with_prompt", "without_prompt"))
        closer = with_ < without if k == "density_distance" else with_ > without
        prompt[k] = {"with_prompt": with_, "without_prompt": without, "windows": len(v["with_prompt"]),
                     "right_way": bool(v["with_prompt"]) and bool(closer)}
    out["prompt"] = prompt
    out["prompt_shift_right_way"] = all(p["right_way"] for p in prompt.values())
    return out


def _prompt_stats(notes: Sequence[Any], lo: int, hi: int, bar: int) -> dict[str, np.ndarray]:
    """Steps [lo, hi): per-stem notes per bar, pitch-class histogram of the pitched stems and
    the drums' onset counts per position in the bar."""
    part = [n for n in notes if lo <= n.start < hi]
    drums = np.zeros(bar)
    for n in part:
        if n.stem == "drums":
            drums[(n.start - lo) % bar] += 1
    return {"density": np.array([sum(n.stem == s for n in part) for s in STEMS], float) * bar / max(1, hi - lo),
            "pc": pitch_class_histogram([n for n in part if n.stem != "drums"]), "drums": drums}


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation, 0 where either side is constant (e.g. silent)."""
    return float(np.corrcoef(a, b)[0, 1]) if np.std(a) > 0 and np.std(b) > 0 else 0.0


def _pick_cfg(sweep: dict[str, dict[str, float]]) -> float:
    """The scale that meets the most quality-and-sync targets (BHS ≥ 60, BCS 90–110, in-scale
    ≥ 0.95, empty bars ≤ 5 %), then the best sync ((BHS + 100·accent hit) / 2), then the lowest."""
    def met(r: dict[str, float]) -> int:
        return sum((r.get("bhs", 0) >= 60, 90 <= r.get("bcs", 0) <= 110, r["in_scale_ratio"] >= 0.95,
                    r["empty_bar_ratio"] <= 0.05))

    return float(max(sweep, key=lambda s: (met(sweep[s]), (sweep[s].get("bhs", 0) + 100 * sweep[s]["accent_hit_rate"]) / 2,
                                           -float(s))))


def _brief(row: dict[str, Any]) -> dict[str, float]:
    """A row's measures, rounded, for the progress lines (not its per-window lists)."""
    return {k: round(v, 3) for k, v in row.items() if isinstance(v, float)}


def sim_margins(rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per baseline: the main row's SIM minus the baseline's, paired over the same windows
    (mean and its standard error), so a margin can be told from the windows' noise."""
    m = np.asarray(rows["muvi"].get("sim_windows", []), np.float64)
    out = {}
    for name, row in rows.items():
        b = np.asarray(row.get("sim_windows", []), np.float64)
        if name == "muvi" or len(b) != len(m) or len(m) < 2:
            continue
        d = m - b
        out[name] = {"mean": float(d.mean()), "se": float(d.std(ddof=1) / math.sqrt(len(d))), "windows": len(d)}
    return out


BASELINE_KINDS = ("unconditional", "no-contrastive")  # SIM must beat one of each (baseline names start so)


def _targets(rows: dict[str, dict[str, float]]) -> dict[str, bool]:
    """The issue's targets for the main row; SIM's needs a baseline of each kind (a missing one
    is not met: it was not measured)."""
    m = rows["muvi"]
    others = [r["sim"] for k, r in rows.items() if k != "muvi"]
    every_kind = all(any(k.startswith(kind) for k in rows if k != "muvi") for kind in BASELINE_KINDS)
    return {
        "bhs_at_least_60": m.get("bhs", 0) >= 60,
        "bcs_90_to_110": 90 <= m.get("bcs", 0) <= 110,
        "in_scale_at_least_0.95": m["in_scale_ratio"] >= 0.95,
        "empty_bars_at_most_5pct": m["empty_bar_ratio"] <= 0.05,
        "sim_above_baselines": every_kind and all(m["sim"] > s for s in others),
    }


def _draw(r: dict[str, Any]) -> str:
    """The window draw, named when it is not the default one (seed 0: the report's usual windows)."""
    seed = r.get("seed", 0)
    return f" (draw {seed}: other windows of the held-out pieces, and other noise, than the default draw 0)" if seed else ""


def _cfg_source(r: dict[str, Any]) -> str:
    """Where the report's CFG scale came from, for its table's caption."""
    if not r["cfg_sweep"]:
        return "given; no CFG sweep"
    if r["cfg"] == r["recommended_cfg"]:
        return "the sweep's pick"
    return f"given; the sweep picks {r['recommended_cfg']}"


def write_report(out: Path, report: dict[str, Any]) -> None:
    """``out/eval.json`` and ``out/EVAL.md`` (with the real-footage sections when the report has them)."""
    atomic_write_text(out / "eval.json", json.dumps(report, indent=2, default=float))
    atomic_write_text(out / "EVAL.md", _markdown(report))


def _markdown(r: dict[str, Any]) -> str:
    if not r.get("rows"):  # the real-footage suite alone (muvi eval --footage-only)
        return "\n".join(["# muvi evaluation"] + _footage_markdown(r)) + "\n"
    return _synthetic_markdown(r)


def _footage_markdown(r: dict[str, Any]) -> list[str]:
    """The real-footage sections, where the report has them."""
    from muvi.footage import footage_markdown, footage_styles_markdown

    return ((footage_markdown(r["footage"]) if r.get("footage") else [])
            + (footage_styles_markdown(r["footage_styles"]) if r.get("footage_styles") else []))


def _synthetic_markdown(r: dict[str, Any]) -> str:
    cols = ["fd_stand_in", "bcs", "bhs", "sim", "accent_hit_rate", "in_scale_ratio", "in_scale_ratio_ref_key",
            "empty_bar_ratio", "pitch_class_entropy", "groove_consistency", "curve_spearman"]
    head = ("| model | FD* | BCS | BHS | SIM | accent hit | in-scale | in-scale (ref. key) | empty bars | PC entropy "
            "| groove | curve ρ |")
    how = _cfg_source(r)
    agree = 100 * next(iter(r["rows"].values()), {}).get("mode_as_reference", math.nan)
    lines = [
        "# muvi evaluation", "",
        f"Held-out synthetic pairs: {r['windows']} windows of pieces the training split never saw{_draw(r)}; "
        f"CFG {r['cfg']} ({how}), {r['sampler_steps']} Euler steps. FD* is a Fréchet distance on the "
        "model's music-encoder embeddings — a stand-in, not the paper's FAD/FD. SIM is judged by the evaluated "
        "model's encoders for every row. BCS and BHS are pooled over the windows (all generated or hit onsets "
        "over all reference onsets); eval.json also has the mean of per-window ratios (bcs_window_mean), which "
        "a window with few reference onsets dominates.", "",
    ]
    cal = r.get("calibration")
    odds = f"Sampling note odds {r.get('note_odds', float('nan')):g} for every row"
    if cal:
        probes = ", ".join(f"{p['note_odds']:g} → {p['bcs']:.1f}" for p in cal["probes"])
        odds += (f", calibrated on {cal['windows']} windows of {cal['pieces']} *training* pieces so that the "
                 f"generated music has as many onsets as theirs (BCS {cal['target_bcs']:g} at CFG {cal['cfg']:g}; "
                 f"probes k → BCS: {probes})")
    lines += [odds + "."]
    ref = r.get("reference_sim")
    if ref:
        lines += ["", f"SIM's scale with this judge: the held-out reference music scores {ref['matched']:.1f} with its own "
                  f"video and {ref['mismatched']:.1f} with another window's video."]
    lines += ["", "curve ρ: Spearman correlation, per window, between the per-bar intensity the picture's control "
              "curve asks for and the generated music's (windows with a flat requested curve are left out); the "
              "unconditional row gets no curves.", "",
              "Each window is conditioned as the pipeline conditions a take: the mood tag and the key's mode that "
              "the picture's look reads as (`muvi.mood`). in-scale: pitched notes in the key asked for, as sampled "
              "(before the pipeline's snap to the scale); in-scale (ref. key): against the reference's own key, "
              f"which also counts where the look's mode differs from the reference's (it agrees in {agree:.0f} % "
              "of the windows).", "", head, "|" + "---|" * 12]
    for name, row in r["rows"].items():
        lines.append(f"| {name} | " + " | ".join(f"{row.get(c, float('nan')):.3f}" for c in cols) + " |")
    margins = r.get("sim_margins") or {}
    if margins:
        lines += ["", "SIM, muvi minus each baseline, paired over the same windows (mean ± standard error): "
                  + "; ".join(f"{k} {v['mean']:+.2f} ± {v['se']:.2f}" for k, v in margins.items()) + "."]
    if r["cfg_sweep"]:
        lines += ["", f"## CFG sweep (recommended: {r['recommended_cfg']})", "", "| CFG | " + " | ".join(cols) + " |",
                  "|" + "---|" * (len(cols) + 1)]
        for s, row in r["cfg_sweep"].items():
            lines.append(f"| {s} | " + " | ".join(f"{row.get(c, float('nan')):.3f}" for c in cols) + " |")
    c = r.get("controls") or {}
    if c:
        s0, s1 = c["styles"]
        lines += ["", f"## Controls ({c['windows']} windows)", "",
                  f"- style tag {s0} → {s1}: drum notes per bar {c[f'style_{s0}']['drum_notes_per_bar']:.2f} → "
                  f"{c[f'style_{s1}']['drum_notes_per_bar']:.2f}, all notes per bar {c[f'style_{s0}']['notes_per_bar']:.2f} → "
                  f"{c[f'style_{s1}']['notes_per_bar']:.2f} ({'shifts the right way' if c['style_shift_right_way'] else 'does NOT shift the right way'})",
                  "- prompt (the reference's first 4 bars), the continuation against the prompt, without → with:"]
        for k, p in c["prompt"].items():
            better = "lower" if k == "density_distance" else "higher"
            lines.append(f"  - {k.replace('_', ' ')} ({better} is closer, {p['windows']} windows): "
                         f"{p['without_prompt']:.2f} → {p['with_prompt']:.2f} "
                         f"({'shifts the right way' if p['right_way'] else 'does NOT shift the right way'})")
    lines += ["", "## Targets", ""] + [f"- {k}: {'met' if v else 'NOT met'}" for k, v in r["targets"].items()]
    lines += _footage_markdown(r)
    lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in r["plots"]]
    return "\n".join(lines) + "\n"
