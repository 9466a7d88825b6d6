from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from muvi.analysis import detect_cuts, motion_curve, motion_peaks
from muvi.errors import InvalidInputError
from muvi.music.arranger import arrange
from muvi.music.corpus import Corpus, CorpusOptions, build_corpus
from muvi.nn.encoders import LowLevelEncoder
from muvi.nn.model import ModelConfig
from muvi.nn.presets import preset
from muvi.train.contrastive import random_replacement, sequence_similarity, temporal_shift
from muvi.train.data import CorpusWindows, PairedWindows, collate, split_pieces
from muvi.train.synthvideo import render_paired_video
from muvi.train.trainer import TrainConfig, Trainer
from muvi.weights import load_checkpoint

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("corpus")
    build_corpus(d, CorpusOptions(arranged=24, music21=False, hydrogen=False, workers=1), progress=False)
    return d


def _config(out: Path, corpus: Path, **stage_steps: int) -> dict:
    stages = [{"name": n, "steps": s, "batch": 2, "lr": 1e-3, "warmup": 1} for n, s in stage_steps.items()]
    return {"out": str(out), "corpus": str(corpus), "preset": "tiny", "window_steps": 64, "held_out": 0.2,
            "log_every": 1, "checkpoint_every": 2, "eval_batches": 1, "stages": stages}


def test_synthetic_video_events_land_on_the_music() -> None:
    planned = found = tp = peaks = near = 0
    rng = np.random.default_rng(0)
    for style in ("rock", "electronic", "ambient", "jazz"):
        for seed in range(2):
            clip = render_paired_video(arrange(style, seed=seed).score, rng=rng)
            cuts = detect_cuts(clip.frames)
            planned, found, tp = planned + len(clip.cut_frames), found + len(cuts), tp + len(set(cuts) & set(clip.cut_frames))
            events = set(clip.cut_frames) | {h + d for h in clip.hit_frames for d in (-1, 0, 1)}
            assert set(cuts) <= events  # every detected cut is a planned cut or a drum hit
            pk = [i for i, _ in motion_peaks(motion_curve(clip.frames, cuts))]
            peaks += len(pk)
            near += sum(any(abs(p - h) <= 1 for h in clip.hit_frames) for p in pk)
            assert len(set(clip.scenes)) >= 2
    assert tp / planned >= 0.95  # the planned cuts (bar lines) are found
    assert tp / found >= 0.9  # and little else looks like a cut
    assert near / peaks >= 0.7  # motion peaks sit on drum hits (±1 frame)


def test_windows_split_by_piece_and_pair(corpus_dir: Path) -> None:
    c = Corpus(corpus_dir)
    train, test = split_pieces(c, held_out=0.25, seed=1)
    assert train and test and not set(train) & set(test) and sorted(train + test) == list(range(len(c)))
    cfg = ModelConfig(dit=preset("tiny"))
    w = CorpusWindows(c, train, cfg, steps=64)
    item = w[(0, 5)]
    assert item["tokens"].shape == (64, cfg.roll.token_dim) and item["valid"].shape == (64, 1)
    assert torch.equal(item["tokens"], w[(0, 5)]["tokens"])  # deterministic in (index, salt)
    keys = {w.window_score(i).key for i in range(len(w))}
    assert keys <= {"C major", "C minor"}  # normalised to a common tonic
    pw = PairedWindows(w, LowLevelEncoder())
    batch = collate([pw[(i, 0)] for i in range(3)])
    assert batch["patches"].shape[0] == 3 and batch["patches"].shape[2:] == (17, 12)
    assert batch["positions"].shape == (3, 64) and float(batch["positions"].max()) < batch["patches"].shape[1]


def test_paired_cache_serves_what_the_generator_makes(corpus_dir: Path, tmp_path: Path) -> None:
    from muvi.train.data import PairedCache

    c = Corpus(corpus_dir)
    w = CorpusWindows(c, list(range(4)), ModelConfig(dit=preset("tiny")), steps=64)
    pw = PairedWindows(w, LowLevelEncoder())
    cache = PairedCache(pw, tmp_path / "cache", variants=2)
    for index, salt in ((0, 0), (1, 3), (len(w) - 1, 5)):
        video = pw[(index, salt % 2)]  # the cache keeps 2 variants; salt picks one
        b = cache[(index, salt)]
        assert torch.allclose(video["patches"], b["patches"], atol=2e-2)
        assert torch.equal(video["positions"], b["positions"])
        assert torch.equal(pw[(index, salt)]["tokens"], b["tokens"])
    stamp = (tmp_path / "cache" / "patches.npy").stat().st_mtime_ns
    PairedCache(pw, tmp_path / "cache", variants=2)  # matching meta: reused, not rebuilt
    assert (tmp_path / "cache" / "patches.npy").stat().st_mtime_ns == stamp
    parallel = PairedCache(pw, tmp_path / "cache2", variants=2, workers=2)  # forked workers build the same
    assert np.array_equal(np.asarray(parallel.patches), np.asarray(cache.patches))


def test_short_take_pictures_mirror_the_first_bars_as_the_pipeline_does(corpus_dir: Path, tmp_path: Path) -> None:
    from muvi.nn.adaptor import grid_positions
    from muvi.train.data import PairedCache

    c = Corpus(corpus_dir)
    w = CorpusWindows(c, list(range(4)), ModelConfig(dit=preset("tiny")), steps=64)
    pw = PairedWindows(w, LowLevelEncoder())
    cache = PairedCache(pw, tmp_path / "cache", variants=1)
    whole = [pw[(i, 0)] for i in range(len(w))]
    w.short_take_p = 1.0
    lengths = []
    for i, full in enumerate(whole):
        for item in (pw[(i, 0)], cache[(i, 0)]):
            n = item["patches"].shape[0]
            lengths.append(n / full["patches"].shape[0])
            assert torch.allclose(item["patches"], full["patches"][:n], atol=2e-2)
            assert torch.equal(item["tokens"], full["tokens"])  # the music is the whole window's
            bars = int(item["valid"].sum()) // 16  # of which the take's bars are learnt
            assert 1 <= bars <= 4 and item["valid"][: bars * 16].all() and not item["valid"][bars * 16:].any()
            assert n <= full["patches"].shape[0] * min(1.0, (bars + 0.5) / 4) + 1
            score = w.window_score(i)
            want = grid_positions(score.tempo, 64, steps_per_beat=score.steps_per_beat, fps=10, n_frames=n,
                                  beyond="mirror")
            assert np.allclose(item["positions"].numpy(), want, atol=1e-4)
    assert min(lengths) < 0.5  # a bar or two of a 4-bar window's picture
    w.short_take_p = 0.0
    assert torch.equal(pw[(0, 0)]["positions"], whole[0]["positions"])


def test_user_pairs_from_a_folder(tmp_path: Path) -> None:
    from muvi.media_gen import write_shot_clip
    from muvi.music.midi import write_midi
    from muvi.timeline import Rate
    from muvi.train.data import UserPairs

    piece = arrange("pop", seed=7, form=[("A", 4), ("B", 4)])
    seconds = float(piece.score.duration)
    write_shot_clip(tmp_path / "take1.mp4", shots=[int(seconds * 25) // 2, int(seconds * 25) - int(seconds * 25) // 2],
                    rate=Rate(25), size=(96, 64))
    write_midi(piece.score, tmp_path / "take1.mid")
    (tmp_path / "lonely.mp4").write_bytes((tmp_path / "take1.mp4").read_bytes())  # no music: ignored
    cfg = ModelConfig(dit=preset("tiny"))
    pairs = UserPairs(tmp_path, cfg, LowLevelEncoder(), steps=64)
    assert [v.name for v, _ in pairs.pairs] == ["take1.mp4"] and len(pairs) >= 3
    item = pairs[(1, 0)]
    assert item["tokens"].shape == (64, cfg.roll.token_dim) and item["patches"].shape[1:] == (17, 12)
    assert float(item["positions"].max()) <= item["patches"].shape[0] - 1 and item["valid"].sum() == 64
    with pytest.raises(InvalidInputError, match="no video with a same-named"):
        UserPairs(_empty(tmp_path), cfg, LowLevelEncoder())


def _empty(tmp_path: Path) -> Path:
    d = tmp_path / "empty"
    d.mkdir()
    return d


def test_hard_negatives() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 32, 5)
    ts = temporal_shift(x, generator=g, lo=2, hi=4)
    assert not torch.equal(ts, x) and (ts == -1).any()
    rr = random_replacement(x, generator=g, lo=0.25, hi=0.5)
    changed = (rr != x).any(-1).float().sum(1)
    assert ((changed >= 7) & (changed <= 17)).all()
    m = torch.randn(4, 10, 6)
    s = sequence_similarity(m, m)
    assert torch.allclose(s.diagonal(), torch.ones(4)) and (s.diagonal() >= s.max(1).values - 1e-6).all()


def test_one_step_per_stage_trains_only_that_stage(corpus_dir: Path, tmp_path: Path) -> None:
    cfg = TrainConfig.from_dict(_config(tmp_path / "run", corpus_dir, pretrain=1, contrastive=1, conditional=1))
    trainer = Trainer(cfg, progress=False)
    final = trainer.run()
    model, meta = load_checkpoint(final)
    assert meta["data_manifest_sha256"] and meta["recipe"]["preset"] == "tiny"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert [s["stage"] for s in summary] == ["pretrain", "contrastive", "conditional"]
    assert all(np.isfinite(s["final_loss"]) for s in summary)
    rows = (tmp_path / "run" / "train_log.csv").read_text().splitlines()
    assert rows[0].startswith("stage,step,loss") and len(rows) == 4
    assert any((tmp_path / "run" / "tb").iterdir())
    for stage in ("pretrain", "contrastive", "conditional"):  # per-stage weights for baselines
        assert (tmp_path / "run" / "stages" / stage / "config.json").is_file()


def test_resume_continues_exactly(corpus_dir: Path, tmp_path: Path) -> None:
    straight = Trainer(TrainConfig.from_dict(_config(tmp_path / "a", corpus_dir, pretrain=4, conditional=2)),
                       progress=False).run()
    cfg = TrainConfig.from_dict(_config(tmp_path / "b", corpus_dir, pretrain=4, conditional=2))
    assert Trainer(cfg, progress=False).run(stop_after=3) is None  # interrupted inside pretrain
    state = torch.load(tmp_path / "b" / "checkpoints" / "last" / "trainer_state.pt", weights_only=False)
    assert (state["stage"], state["step"]) == (0, 3) and state["optimizer"] is not None
    resumed = Trainer(cfg, progress=False).run()
    rows = [r.split(",")[:2] for r in (tmp_path / "b" / "train_log.csv").read_text().splitlines()[1:]]
    assert rows == [["pretrain", str(i)] for i in range(4)] + [["conditional", "0"], ["conditional", "1"]]
    a, _ = load_checkpoint(straight)
    b, _ = load_checkpoint(resumed)
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(x, y, atol=1e-6), k


def test_continue_from_a_finished_run_trains_the_added_stage_as_the_whole_recipe_would(
        corpus_dir: Path, tmp_path: Path) -> None:
    straight = Trainer(TrainConfig.from_dict(_config(tmp_path / "a", corpus_dir, pretrain=2, conditional=2)),
                       progress=False).run()
    shipped = Trainer(TrainConfig.from_dict(_config(tmp_path / "b", corpus_dir, pretrain=2)), progress=False).run()
    more = TrainConfig.from_dict(_config(tmp_path / "c", corpus_dir, pretrain=2, conditional=2))
    trainer = Trainer(more, progress=False)
    assert trainer.continue_from(shipped) == 1
    assert Trainer(more, progress=False).continue_from(shipped) == 1  # begun: the run resumes as it is
    continued = trainer.run()
    rows = [r.split(",")[:2] for r in (tmp_path / "c" / "train_log.csv").read_text().splitlines()[1:]]
    assert rows == [["conditional", "0"], ["conditional", "1"]]
    assert json.loads((tmp_path / "c" / "continued_from.json").read_text())["stages"] == 1
    a, _ = load_checkpoint(straight)
    b, _ = load_checkpoint(continued)
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(x, y, atol=1e-6), k
    other = _config(tmp_path / "d", corpus_dir, pretrain=3, conditional=2)
    with pytest.raises(InvalidInputError, match="stage 1 \\(pretrain\\) differs"):
        Trainer(TrainConfig.from_dict(other), progress=False).continue_from(shipped)
    with pytest.raises(InvalidInputError, match="nothing to continue with"):
        Trainer(TrainConfig.from_dict(_config(tmp_path / "e", corpus_dir, pretrain=2)), progress=False).continue_from(shipped)
    with pytest.raises(InvalidInputError, match="seed"):
        Trainer(TrainConfig.from_dict({**_config(tmp_path / "f", corpus_dir, pretrain=2, conditional=1), "seed": 1}),
                progress=False).continue_from(shipped)


def test_adaptor_lr_scale_zero_keeps_the_contrastive_adaptor(corpus_dir: Path, tmp_path: Path) -> None:
    base = Trainer(TrainConfig.from_dict(_config(tmp_path / "c", corpus_dir, contrastive=1)), progress=False).run()
    cfg = _config(tmp_path / "d", corpus_dir, conditional=2)
    cfg["init"] = str(base)
    cfg["stages"][0]["adaptor_lr_scale"] = 0.0
    tuned = Trainer(TrainConfig.from_dict(cfg), progress=False).run()
    a, _ = load_checkpoint(base)
    b, _ = load_checkpoint(tuned)
    for (k, x), y in zip(a.adaptor.state_dict().items(), b.adaptor.state_dict().values()):
        assert torch.equal(x, y), k  # frozen
    assert any(not torch.equal(x, y) for x, y in zip(a.dit.state_dict().values(), b.dit.state_dict().values()))
    for bad in (-0.1, 1.5):
        with pytest.raises(InvalidInputError, match="adaptor_lr_scale must be within"):
            TrainConfig.from_dict({"out": "x", "stages": [{"name": "conditional", "steps": 1, "adaptor_lr_scale": bad}]})


def test_bad_config(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="unknown training config keys: learning_rate"):
        TrainConfig.from_dict({"out": "x", "learning_rate": 1, "stages": [{"name": "pretrain", "steps": 1}]})
    with pytest.raises(InvalidInputError, match="unknown stage"):
        TrainConfig.from_dict({"out": "x", "stages": [{"name": "finetune", "steps": 1}]})
    with pytest.raises(InvalidInputError, match="not found"):
        TrainConfig.from_yaml(tmp_path / "none.yaml")


@pytest.mark.slow
def test_torchrun_two_cpu_processes_keep_identical_weights(corpus_dir: Path, tmp_path: Path) -> None:
    cfg = _config(tmp_path / "ddp", corpus_dir, pretrain=3, contrastive=2, conditional=2)
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
         "--master_port", "29533", "-m", "muvi", "train", "--config", str(path), "--quiet"],
        capture_output=True, text=True, env=env, timeout=600, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rep = json.loads((tmp_path / "ddp" / "replicas.json").read_text())
    assert rep["world_size"] == 2 and rep["checksums"][0] == rep["checksums"][1]
    assert (tmp_path / "ddp" / "final" / "config.json").is_file()


def test_eval_writes_a_report_on_held_out_pieces(corpus_dir: Path, tmp_path: Path) -> None:
    from muvi.evaluate import EvalOptions, evaluate, held_out_windows

    cfg = TrainConfig.from_dict(_config(tmp_path / "run", corpus_dir, pretrain=1, contrastive=1, conditional=1))
    final = Trainer(cfg, progress=False).run()
    model, meta = load_checkpoint(final)
    train, test = split_pieces(Corpus(corpus_dir), held_out=0.2, seed=0)
    opts = EvalOptions(windows=2, sampler_steps=2, cfg_sweep=(1.0, 3.0), sweep_windows=1, plots=1, control_windows=1,
                       calibrate=True, calibrate_windows=2)
    windows = held_out_windows(model, meta["recipe"], opts)
    names = {Corpus(corpus_dir).pieces[i]["name"] for i in test}
    assert windows and all(w.name.split("@")[0] in names for w in windows)  # only held-out pieces
    cal = held_out_windows(model, meta["recipe"], opts, split="train", count=3)
    train_names = {Corpus(corpus_dir).pieces[i]["name"] for i in train}
    assert len(cal) == 3 and all(w.name.split("@")[0] in train_names for w in cal)  # calibration: training pieces
    assert len({w.name.split("@")[0] for w in cal}) == min(3, len(train))  # one window per piece first
    with pytest.raises(ValueError, match="split"):
        held_out_windows(model, meta["recipe"], opts, split="test")
    report = evaluate(final, tmp_path / "report", baselines={"unconditional": final}, options=opts, progress=lambda m: None)
    assert set(report["rows"]) == {"muvi", "unconditional"} and set(report["cfg_sweep"]) == {"1.0", "3.0"}
    row = report["rows"]["muvi"]
    for k in ("bcs", "bhs", "sim", "accent_hit_rate", "in_scale_ratio", "empty_bar_ratio", "fd_stand_in",
              "bcs_window_mean", "bhs_window_mean"):
        assert k in row
    assert report["cfg"] == report["recommended_cfg"]  # the table is at the sweep's pick
    assert report["seed"] == 0  # the draw of windows and noise is recorded
    md = (tmp_path / "report" / "EVAL.md").read_text()
    assert f"CFG {report['cfg']} (the sweep's pick)" in md
    assert "stand-in" in md and "| muvi |" in md and report["recommended_cfg"] in (1.0, 3.0)
    ref = report["reference_sim"]  # SIM's scale: the reference music with its own video and another's
    assert -100 <= ref["matched"] <= 100 and -100 <= ref["mismatched"] <= 100 and "SIM's scale" in md
    assert (tmp_path / "report" / report["plots"][0]).is_file()
    margin = report["sim_margins"]["unconditional"]  # paired over the same windows
    assert margin["windows"] == report["windows"] == len(row["sim_windows"])
    assert margin["mean"] == pytest.approx(row["sim"] - report["rows"]["unconditional"]["sim"], abs=1e-3)
    assert "paired over the same windows" in md
    cal = report["calibration"]  # the note odds were searched on training windows, and used for every row
    assert cal["split"] == "train" and cal["windows"] == 2 and 1 <= len(cal["probes"]) <= 5
    assert cal["probes"][0]["note_odds"] == 9.0 and 1.0 <= report["note_odds"] == cal["note_odds"] <= 9.0
    assert "calibrated on 2 windows" in md
    c = report["controls"]
    assert c["windows"] == 1 and set(c["prompt"]) == {"pc_correlation", "density_distance", "drum_pattern_correlation"}
    assert all(set(p) >= {"with_prompt", "without_prompt", "right_way"} for p in c["prompt"].values())
    assert c["prompt_shift_right_way"] == all(p["right_way"] for p in c["prompt"].values())
    assert isinstance(c["style_shift_right_way"], bool) and "## Controls" in md


def test_sim_margins_are_paired_over_the_same_windows() -> None:
    from muvi.evaluate import sim_margins

    rows = {"muvi": {"sim_windows": [30.0, 20.0, 10.0]}, "no-contrastive": {"sim_windows": [29.0, 19.0, 10.0]},
            "other-windows": {"sim_windows": [1.0, 2.0]}}
    m = sim_margins(rows)
    assert set(m) == {"no-contrastive"}  # a row over other windows cannot be paired
    assert m["no-contrastive"]["mean"] == pytest.approx(2 / 3) and m["no-contrastive"]["se"] == pytest.approx(1 / 3)


def test_eval_caption_says_where_the_cfg_scale_came_from_and_which_draw_it_is() -> None:
    from muvi.evaluate import _cfg_source, _draw

    assert _cfg_source({"cfg_sweep": {"1.0": {}}, "cfg": 1.0, "recommended_cfg": 1.0}) == "the sweep's pick"
    assert _cfg_source({"cfg_sweep": {"1.0": {}}, "cfg": 3.0, "recommended_cfg": 1.0}) == "given; the sweep picks 1.0"
    assert _cfg_source({"cfg_sweep": {}, "cfg": 1.5, "recommended_cfg": 1.5}) == "given; no CFG sweep"
    assert _draw({"seed": 0}) == _draw({}) == ""  # the usual draw (and reports from before the seed was recorded)
    assert _draw({"seed": 2}).startswith(" (draw 2: other windows")


def test_texture_variation_thins_by_the_metre_and_holds_chords_through() -> None:
    import numpy as np

    from muvi.curves import music_curves
    from muvi.music.score import Note, Score
    from muvi.music.tempo import TempoMap
    from muvi.train.texture import metric_level, vary_texture

    assert [metric_level(s, steps_per_bar=16, steps_per_beat=4) for s in (0, 4, 2, 1)] == [3, 2, 1, 0]
    notes = [Note(s, 36 + (s % 4 == 0) * 2, s + 1, 90, "drums") for s in range(256)]
    notes += [Note(s, 60, s + 2, 80, "chords") for s in range(0, 256, 2)]
    score = Score(tuple(notes), TempoMap.constant(120), 256, 4)
    spreads = []
    for seed in range(8):
        out = vary_texture(score, np.random.default_rng(seed))
        assert set(out.notes) - set(score.notes) <= {n for n in out.notes if n.stem == "chords"}  # only held chords change
        curves = music_curves(out.notes, n_steps=256, steps_per_bar=16)
        spreads.append(np.ptp(curves[:, 1]))
        # a dropped chord re-attack is held: the chords sound wherever they still play
        chords = sorted(n for n in out.notes if n.stem == "chords")
        assert all(n.end - n.start >= 2 for n in chords)
    flat = music_curves(score.notes, n_steps=256, steps_per_bar=16)
    assert np.ptp(flat[:, 1]) == 0 and np.mean(spreads) > 0.3  # the drums' intensity now varies by section
