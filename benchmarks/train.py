"""Training throughput per stage (windows/s) for a preset on this machine, and data generation.

Also measures paired-clip generation (synthetic video render + encoder) in clips per second
per core, and states how many cores keep a GPU busy at a given GPU step rate.

    python benchmarks/train.py [--preset compact] [--batch 8] [--steps 6] [--corpus data/corpus]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.common import emit, machine  # noqa: E402
from muvi.music.corpus import Corpus, CorpusOptions, build_corpus  # noqa: E402
from muvi.nn.encoders import LowLevelEncoder  # noqa: E402
from muvi.nn.model import ModelConfig, MuVi  # noqa: E402
from muvi.nn.presets import preset  # noqa: E402
from muvi.train.data import CorpusWindows, PairedCache, PairedWindows, collate, split_pieces  # noqa: E402
from muvi.train.trainer import StageConfig, _StageLoss  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--preset", default="compact")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--corpus", default=None, help="an existing corpus (default: a small one built now)")
    ap.add_argument("--gpu-steps-per-s", type=float, default=10.0, help="assumed GPU training step rate")
    ap.add_argument("--gpu-batch", type=int, default=64)
    args = ap.parse_args()
    tmp = None
    if args.corpus is None:
        tmp = tempfile.TemporaryDirectory()
        build_corpus(tmp.name, CorpusOptions(arranged=64, music21=False, hydrogen=False, workers=2), progress=False)
    corpus = Corpus(args.corpus or tmp.name)  # type: ignore[union-attr]
    train, _ = split_pieces(corpus, held_out=0.0)
    cfg = ModelConfig(dit=preset(args.preset))
    music = CorpusWindows(corpus, train, cfg, steps=args.window)
    paired = PairedWindows(music, LowLevelEncoder())
    # data generation, one core
    torch.set_num_threads(1)
    t = time.perf_counter()
    n = 24
    items = [paired[(i * 37 % len(paired), i)] for i in range(n)]
    paired_per_core = n / (time.perf_counter() - t)
    t = time.perf_counter()
    _ = [music[(i * 37 % len(music), i)] for i in range(200)]
    music_per_core = 200 / (time.perf_counter() - t)
    frames = sum(x["patches"].shape[0] for x in items) / n
    with tempfile.TemporaryDirectory() as cache_dir:
        small = PairedWindows(CorpusWindows(corpus, train[:8], cfg, steps=args.window), LowLevelEncoder())
        cache = PairedCache(small, cache_dir, variants=2, workers=1)
        t = time.perf_counter()
        _ = [cache[(i % len(cache), i)] for i in range(300)]
        cached_per_core = 300 / (time.perf_counter() - t)
    torch.set_num_threads(os.cpu_count() or 1)
    # training step throughput per stage
    model = MuVi(cfg)
    results = {}
    for name in ("pretrain", "contrastive", "conditional"):
        stage = StageConfig(name=name, steps=args.steps, batch=args.batch)
        loss_mod = _StageLoss(model, stage)
        params = [p for p in model.parameters()]
        opt = torch.optim.AdamW(params, lr=1e-4)
        ds = music if name == "pretrain" else paired
        batches = [collate([ds[(j * 7 + k, k)] for k in range(args.batch)]) for j in range(args.steps + 1)]
        times = []
        for j, batch in enumerate(batches):
            t = time.perf_counter()
            loss, _ = loss_mod(batch, torch.Generator().manual_seed(j))
            opt.zero_grad()
            loss.backward()
            opt.step()
            if j:  # first step warms up
                times.append(time.perf_counter() - t)
        step_s = sum(times) / len(times)
        results[name] = {"step_s": round(step_s, 3), "windows_per_s": round(args.batch / step_s, 2)}
    need = args.gpu_steps_per_s * args.gpu_batch
    emit({
        "benchmark": "train",
        "preset": args.preset, "parameters_M": round(model.n_parameters() / 1e6, 2), "window_steps": args.window,
        "batch": args.batch, "stages_cpu": results,
        "data": {
            "paired_clips_per_s_per_core": round(paired_per_core, 2),
            "music_windows_per_s_per_core": round(music_per_core, 1),
            "frames_per_paired_clip": round(frames, 1),
            "cached_paired_windows_per_s_per_core": round(cached_per_core, 1),
        },
        "gpu_feed": {
            "assumed_gpu_steps_per_s": args.gpu_steps_per_s, "gpu_batch": args.gpu_batch,
            "paired_clips_per_s_needed": need,
            "cores_needed_on_the_fly": round(need / paired_per_core, 1),
            "cores_needed_with_paired_cache": round(need / cached_per_core, 1),
        },
        "machine": machine(),
    }, "train")


if __name__ == "__main__":
    main()
