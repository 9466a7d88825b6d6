"""The staged trainer: one CPU or many GPUs (PyTorch DDP under ``torchrun``).

Stages, in order (each optional):

1. ``pretrain``: unconditional DiT pre-training on corpus windows (every condition dropped),
   with in-context infilling (a random clean prefix; loss on the rest).
2. ``contrastive``: music encoder + adaptor + visual head on synthetic paired windows, InfoNCE
   with temporal-shift and random-replacement negatives (:mod:`muvi.train.contrastive`).
3. ``conditional``: adaptor + DiT on paired windows with condition dropout (for CFG), style and
   mood tags (themselves dropped at random) and prompts.

Reproducible and resumable: batch ``s`` of stage ``k`` is drawn from a generator seeded by
``(seed, k, s)`` and split across ranks, and every random tensor of the step comes from
``(seed, k, s, rank)``; a checkpoint stores the weights, the optimiser and the position, so a
resumed run continues exactly where it stopped. Distributed: ``torchrun --nproc_per_node N
-m muvi train --config ...``; gloo on CPU, NCCL on GPU; each rank loads its own share of every
batch. On GPU the forward runs under bf16 autocast.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from muvi.errors import InvalidInputError
from muvi.flow import condition_dropout, flow_loss, interpolate, logit_normal_t, random_prompt_mask
from muvi.nn.encoders import load_encoder
from muvi.nn.model import ModelConfig, MuVi
from muvi.nn.presets import preset
from muvi.train.contrastive import ContrastiveOptions, contrastive_loss
from muvi.train.data import CorpusWindows, PairedWindows, UserPairs, collate, split_pieces

__all__ = ["StageConfig", "TrainConfig", "Trainer", "STAGES"]

log = logging.getLogger(__name__)
STAGES = ("pretrain", "contrastive", "conditional")


@dataclass(frozen=True)
class StageConfig:
    name: str
    steps: int
    batch: int = 8  # per rank
    lr: float = 3e-4
    warmup: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    cfg_dropout: float = 0.1  # conditional: share trained unconditionally
    prompt_p: float = 0.3  # share of windows with a clean prompt prefix
    suffix_p: float = 0.0  # share with a clean suffix of 1-8 beats (a planned ending, muvi.shape)
    # conditional: the adaptor's learning rate as a share of ``lr``; below 1 keeps more of what
    # the contrastive stage taught it (the music-aligned features the DiT is meant to start from)
    adaptor_lr_scale: float = 1.0
    # the control-curve projection's learning rate as a multiple of ``lr``: fine-tuning a
    # checkpoint that predates the curves, the zero-initialised projection has to grow from
    # nothing, and Adam moves a weight by about lr per step (600 pretrain steps at 3e-4 left it
    # at a norm of 0.27 against the visual projection's 9.4, and the curves barely followed)
    control_lr_scale: float = 1.0
    # the share of training windows whose texture is varied by section (muvi.train.texture), so
    # the control curves vary within a window as the music does and the DiT learns their shape
    texture_p: float = 0.0
    # the share of paired windows whose picture is a short take's, mirrored under the window as
    # the pipeline samples a take of a few bars (muvi.train.data.short_take)
    short_take_p: float = 0.0
    contrastive: dict[str, Any] = field(default_factory=dict)  # ContrastiveOptions overrides

    def __post_init__(self) -> None:
        if self.name not in STAGES:
            raise InvalidInputError(f"unknown stage {self.name!r}; stages are {', '.join(STAGES)}")
        if self.steps < 0 or self.batch < 1 or self.lr <= 0:
            raise InvalidInputError(f"stage {self.name}: steps ≥ 0, batch ≥ 1 and lr > 0 are required")
        if not 0.0 < self.control_lr_scale <= 100.0:
            raise InvalidInputError(f"stage {self.name}: control_lr_scale must be within (0, 100], got {self.control_lr_scale}")
        for name in ("texture_p", "short_take_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InvalidInputError(f"stage {self.name}: {name} must be within [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.adaptor_lr_scale <= 1.0:
            raise InvalidInputError(f"stage {self.name}: adaptor_lr_scale must be within [0, 1], "
                                    f"got {self.adaptor_lr_scale}")


@dataclass(frozen=True)
class TrainConfig:
    out: str
    stages: tuple[StageConfig, ...]
    seed: int = 0
    preset: str = "tiny"
    aggregation: str = "softmax"
    encoder: dict[str, Any] = field(default_factory=lambda: {"name": "lowlevel", "grid": 4, "size": 64})
    corpus: str = "data/corpus"
    corpus_build: dict[str, Any] | None = None  # build the corpus with these options when missing
    user_data: str | None = None  # a folder of (video, music) pairs for the paired stages
    window_steps: int = 256
    paired_cache: dict[str, Any] | None = None  # {"path": DIR, "variants": 2}: pre-render paired windows
    # camera-like paired videos: {"photos": true, "camera_p": 0.5} (muvi.train.data.PairedWindows)
    camera: dict[str, Any] | None = None
    # paired stages use this many of the training windows, evenly spread (None: all): rendering
    # and encoding a camera-like video costs ~0.36 s a window on one core
    paired_windows: int | None = None
    held_out: float = 0.05
    workers: int = 0
    log_every: int = 10
    checkpoint_every: int = 200
    eval_batches: int = 4
    device: str = "auto"
    init: str | None = None  # start from these weights
    reset: tuple[str, ...] = ()  # parts of ``init`` to start afresh (seeded): adaptor, music_encoder, visual_head

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, out: str | None = None) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInputError(f"unknown training config keys: {', '.join(unknown)}")
        stage_keys = {f.name for f in fields(StageConfig)}
        stages = []
        for s in data.get("stages") or []:
            bad = sorted(set(s) - stage_keys)
            if bad:
                raise InvalidInputError(f"stage {s.get('name')!r}: unknown keys {', '.join(bad)}")
            stages.append(StageConfig(**s))
        if not stages:
            raise InvalidInputError("training config has no stages")
        values = {**data, "stages": tuple(stages), **({"reset": tuple(data["reset"])} if "reset" in data else {})}
        if out is not None:
            values["out"] = out
        if "out" not in values:
            raise InvalidInputError("training config needs 'out' (or --out)")
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: Path | str, *, out: str | None = None) -> "TrainConfig":
        import yaml

        path = Path(path)
        if not path.is_file():
            raise InvalidInputError(f"{path}: training config not found")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise InvalidInputError(f"{path}: not valid YAML ({exc})") from exc
        return cls.from_dict(data, out=out)


class _StepSampler(Sampler[list[tuple[int, int]]]):
    """Batches of (index, salt) for steps [start, stop); this rank's share of each global batch."""

    def __init__(self, n: int, batch: int, *, seed: int, stage: int, start: int, stop: int, rank: int, world: int) -> None:
        self.n, self.batch, self.seed, self.stage, self.start, self.stop = n, batch, seed, stage, start, stop
        self.rank, self.world = rank, world

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start, self.stop):
            rng = np.random.default_rng([self.seed, self.stage, step])
            idx = rng.integers(0, self.n, size=self.batch * self.world)
            mine = idx[self.rank * self.batch : (self.rank + 1) * self.batch]
            yield [(int(i), step) for i in mine]


class _StageLoss(nn.Module):
    """The loss of one stage as a module (what DDP wraps)."""

    def __init__(self, model: MuVi, stage: StageConfig) -> None:
        super().__init__()
        self.model, self.stage = model, stage
        self.copts = ContrastiveOptions(**stage.contrastive)

    def forward(self, batch: dict[str, torch.Tensor], gen: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        m, s = self.model, self.stage
        if s.name == "contrastive":
            return contrastive_loss(m, batch, self.copts, generator=gen)
        tokens, valid = batch["tokens"], batch["valid"]
        b, t, _ = tokens.shape
        dev = tokens.device
        noise = torch.randn(tokens.shape, generator=gen).to(dev)
        tt = logit_normal_t(b, generator=gen).to(dev)
        bar = m.config.roll.steps_per_bar
        pmask = random_prompt_mask(b, t, p=s.prompt_p, quantum=bar, suffix_p=s.suffix_p,
                                   suffix_quantum=m.config.roll.steps_per_beat,
                                   ends=valid[..., 0].sum(dim=1).long().cpu(), generator=gen).to(dev)
        if s.name == "pretrain":
            w = m.config.dit.width
            cond = m.dit.prepare(torch.zeros(b, t, w, device=dev), torch.zeros(b, w, device=dev), batch["style"],
                                 batch["mood"], torch.ones(b, dtype=torch.bool, device=dev), batch["controls"])
        else:
            drop = condition_dropout(b, s.cfg_dropout, generator=gen).to(dev)
            cond = m.condition(batch["patches"], batch["positions"], batch["style"], batch["mood"], drop,
                               batch["controls"])
        x_t = interpolate(tokens, noise, tt)
        x1 = m.dit.predict_clean(x_t, tt, cond[0], cond[1], tokens, pmask)
        loss = flow_loss(x1, tokens, valid * (1.0 - pmask), note_weight=m.config.note_weight)
        return loss, {}


class _LazyData(dict):
    """The stage datasets; entries given as factories are made on first use."""

    def __init__(self, ready: dict[str, Dataset], **factories: Callable[[], Dataset]) -> None:
        super().__init__(ready)
        self._factories = factories

    def __missing__(self, key: str) -> Dataset:
        if key not in self._factories:
            raise KeyError(key)
        self[key] = value = self._factories.pop(key)()
        return value


def _trainable(model: MuVi, stage: str) -> list[nn.Module]:
    return {"pretrain": [model.dit], "contrastive": [model.adaptor, model.music_encoder, model.visual_head],
            "conditional": [model.adaptor, model.dit]}[stage]


class Trainer:
    def __init__(self, config: TrainConfig, *, progress: bool = True) -> None:
        self.config = config
        self.progress = progress
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        want = config.device
        if want == "auto":
            want = "cuda" if torch.cuda.is_available() else "cpu"
        if want == "cuda":
            torch.cuda.set_device(local)
            self.device = torch.device("cuda", local)
        else:
            self.device = torch.device(want)
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.out = Path(config.out)
        self.main = self.rank == 0
        torch.manual_seed(config.seed)

    # -- setup ------------------------------------------------------------------------------
    def _barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def _corpus(self) -> Any:
        from muvi.music.corpus import Corpus, CorpusOptions, build_corpus

        root = Path(self.config.corpus)
        if not (root / "manifest.json").is_file():
            if self.config.corpus_build is None:
                raise InvalidInputError(f"{root}: no corpus (build it with 'muvi corpus build --out {root}')")
            if self.main:
                build_corpus(root, CorpusOptions(**self.config.corpus_build), progress=self.progress)
            self._barrier()
        return Corpus(root)

    def _model(self) -> MuVi:
        if self.config.init:
            from muvi.weights import load_checkpoint

            model, _ = load_checkpoint(self.config.init)
            model = model if model.config.controls else model.with_controls()
            for part in self.config.reset:  # e.g. a baseline whose adaptor never saw contrastive training
                if part not in ("adaptor", "music_encoder", "visual_head"):
                    raise InvalidInputError(f"reset: unknown part {part!r} (adaptor, music_encoder, visual_head)")
                torch.manual_seed(self.config.seed)
                getattr(model, part).load_state_dict(getattr(MuVi(model.config), part).state_dict())
            return model
        enc = load_encoder(**self.config.encoder)
        mc = ModelConfig(dit=preset(self.config.preset), aggregation=self.config.aggregation, encoder=enc.describe())
        torch.manual_seed(self.config.seed)
        return MuVi(mc)

    def _datasets(self, model: MuVi) -> dict[str, Dataset]:
        corpus = self._corpus()
        self.manifest_sha = self._manifest_sha()
        train, test = split_pieces(corpus, held_out=self.config.held_out, seed=self.config.seed)
        # each style's range of the control curves over the training split: what the picture's
        # levels are mapped onto at inference (saved in every checkpoint's config)
        from muvi.curves import corpus_curve_ranges

        model.config = replace(model.config, control_ranges=corpus_curve_ranges(corpus, train).to_json())
        enc = load_encoder(**{k: v for k, v in model.config.encoder.items() if k not in ("dim", "n_tokens")})
        steps = self.config.window_steps
        music = CorpusWindows(corpus, train, model.config, steps=steps, seed=self.config.seed)
        music_eval = CorpusWindows(corpus, test or train[:1], model.config, steps=steps, seed=self.config.seed + 1)
        paired_music = music
        if self.config.paired_windows is not None and self.config.paired_windows < len(music):
            paired_music = music.subset(self.config.paired_windows)
        on_the_fly = PairedWindows(paired_music, enc, camera=self.config.camera)
        self._training_windows = (music, paired_music)  # what a stage's texture_p applies to

        def paired() -> Dataset:
            # Built only when a paired stage starts: pre-training never waits for the cache.
            ds: Dataset = on_the_fly
            if self.config.paired_cache:
                from muvi.train.data import PairedCache

                opts = dict(self.config.paired_cache)
                path = Path(opts.pop("path"))
                if self.main:  # one rank builds, the others wait and map the files
                    PairedCache(on_the_fly, path, workers=max(1, self.config.workers), progress=self.progress, **opts)
                self._barrier()
                ds = PairedCache(on_the_fly, path, **opts)
            if self.config.user_data:
                from torch.utils.data import ConcatDataset

                ds = ConcatDataset([ds, UserPairs(self.config.user_data, model.config, enc, steps=steps)])
            return ds

        return _LazyData({"music": music, "music_eval": music_eval, "paired_eval": PairedWindows(music_eval, enc)},
                         paired=paired)

    # -- checkpoints ------------------------------------------------------------------------
    def _save(self, model: MuVi, opt: torch.optim.Optimizer | None, stage: int, step: int) -> None:
        if not self.main:
            return
        from muvi.fileio import atomic_path
        from muvi.weights import save_checkpoint

        ck = self.out / "checkpoints" / "last"
        save_checkpoint(ck, model, recipe=self._recipe(), data_manifest_sha256=self.manifest_sha)
        with atomic_path(ck / "trainer_state.pt") as tmp:
            torch.save({"stage": stage, "step": step, "optimizer": opt.state_dict() if opt is not None else None}, tmp)

    def _stage_folder(self, si: int) -> str:
        """A stage's folder under ``stages/``: its name, or ``<name>-<index>`` for a name that an
        earlier stage of the recipe already has (a recipe continued by more stages)."""
        name = self.config.stages[si].name
        return name if all(s.name != name for s in self.config.stages[:si]) else f"{name}-{si}"

    def _resume(self, model: MuVi) -> dict[str, Any] | None:
        ck = self.out / "checkpoints" / "last"
        if not (ck / "trainer_state.pt").is_file():
            return None
        from muvi.weights import load_checkpoint

        loaded, _ = load_checkpoint(ck)
        model.load_state_dict(loaded.state_dict())
        state = torch.load(ck / "trainer_state.pt", map_location="cpu", weights_only=False)
        if self.main:
            log.warning("resuming from %s: stage %d, step %d", ck, state["stage"], state["step"])
        return state

    def continue_from(self, checkpoint: Path | str) -> int:
        """Make this run start where a finished run ended (``checkpoint``: its final weights, e.g.
        the shipped model): that run's recipe must be this recipe's first stages, with the same
        seed, initial weights and data, so the stages after them run exactly as they would have
        in the original run (a fresh optimiser, batches seeded by the stage's index). Records the
        checkpoint and its training in ``continued_from.json``; returns the stage the run starts at."""
        from muvi.weights import load_checkpoint, save_checkpoint

        record = self.out / "continued_from.json"
        if (self.out / "checkpoints" / "last" / "trainer_state.pt").is_file():
            begun = json.loads(record.read_text()) if record.is_file() else {}
            if begun.get("checkpoint") == str(checkpoint):
                return int(begun["stages"])  # begun already: the run resumes
            raise InvalidInputError(f"{self.out} already holds another run; run it without --continue-from to resume it")
        model, meta = load_checkpoint(checkpoint)
        done = self._matching_stages(Path(checkpoint), meta.get("recipe", {}))
        sha = self._manifest_sha()
        if sha != meta.get("data_manifest_sha256"):
            raise InvalidInputError(f"{checkpoint} was trained on another corpus than {self.config.corpus} "
                                    "(build it with the recipe's corpus_build first)")
        if self.main:
            ck = self.out / "checkpoints" / "last"
            save_checkpoint(ck, model, recipe=self._recipe(), data_manifest_sha256=sha)
            torch.save({"stage": done, "step": 0, "optimizer": None}, ck / "trainer_state.pt")
            record.write_text(json.dumps(
                {"checkpoint": str(checkpoint), "stages": done, "trained": meta.get("recipe", {}).get("trained")}, indent=1))
        self._barrier()
        return done

    def _manifest_sha(self) -> str | None:
        """The sha256 of the corpus manifest (what a checkpoint records as its data); None without one."""
        manifest = Path(self.config.corpus) / "manifest.json"
        return hashlib.sha256(manifest.read_bytes()).hexdigest() if manifest.is_file() else None

    def _matching_stages(self, checkpoint: Path, recipe: dict[str, Any]) -> int:
        """How many of this recipe's stages ``recipe`` (a checkpoint's) ran; refuses a recipe that
        is not a beginning of this one."""
        ours = json.loads(json.dumps(self._recipe()))
        for key in ("seed", "init", "reset", "preset", "aggregation", "encoder", "corpus", "window_steps", "held_out",
                    "camera", "paired_windows"):
            if recipe.get(key) != ours.get(key):
                raise InvalidInputError(f"{checkpoint}: its recipe's {key} ({recipe.get(key)!r}) is not this "
                                        f"recipe's ({ours.get(key)!r})")
        theirs = recipe.get("stages") or []
        if not 0 < len(theirs) < len(ours["stages"]):
            raise InvalidInputError(f"{checkpoint}: {len(theirs)} stages trained; this recipe has "
                                    f"{len(ours['stages'])}, so there is nothing to continue with")
        for i, (a, b) in enumerate(zip(theirs, ours["stages"])):
            if {**b, **a} != b:  # fields added since are at their defaults in ``b``
                raise InvalidInputError(f"{checkpoint}: stage {i + 1} ({a.get('name')}) differs from this "
                                        "recipe's; only a recipe continued by further stages can go on from it")
        return len(theirs)

    def _recipe(self) -> dict[str, Any]:
        d = asdict(self.config)
        d["world_size"] = self.world
        d["torch"] = torch.__version__
        return d

    # -- training ---------------------------------------------------------------------------
    def run(self, *, stop_after: int | None = None) -> Path | None:
        """Train every stage (resuming if a checkpoint exists); returns the final checkpoint
        folder, or ``None`` when ``stop_after`` steps were trained first (the run is then saved
        where it stopped and the next call resumes it)."""
        self._budget = stop_after
        model = self._model().to(self.device)
        data = self._datasets(model)
        self.out.mkdir(parents=True, exist_ok=True)
        state = self._resume(model)
        model.to(self.device)
        summaries = []
        for si, stage in enumerate(self.config.stages):
            if state is not None and si < state["stage"]:
                continue
            start = state["step"] if state is not None and si == state["stage"] else 0
            opt_state = state["optimizer"] if state is not None and si == state["stage"] else None
            summaries.append(self._stage(model, data, si, stage, start, opt_state))
            state = None
            if self._budget is not None and self._budget <= 0 and summaries[-1].get("stopped"):
                return None
        self._check_replicas(model)
        final = self.out / "final"
        if self.main:
            from muvi.weights import save_checkpoint

            save_checkpoint(final, model, recipe=self._recipe(), data_manifest_sha256=self.manifest_sha)
            (self.out / "summary.json").write_text(json.dumps(summaries, indent=2))
        self._barrier()
        return final

    def _stage(self, model: MuVi, data: dict[str, Dataset], si: int, stage: StageConfig, start: int,
               opt_state: dict[str, Any] | None) -> dict[str, Any]:
        from tqdm import tqdm

        for p in model.parameters():
            p.requires_grad_(False)
        groups: list[tuple[list[nn.Parameter], float]] = []  # (parameters, share of the stage's lr)
        control = {id(p) for p in model.dit.control_proj.parameters()}
        for mod in _trainable(model, stage.name):
            scale = stage.adaptor_lr_scale if mod is model.adaptor and stage.name == "conditional" else 1.0
            if scale == 0:
                continue  # frozen
            own = [p for p in mod.parameters() if id(p) not in control or stage.control_lr_scale == 1.0]
            if groups and groups[-1][1] == scale:  # one group per scale: checkpoints of one group still resume
                groups[-1][0].extend(own)
            else:
                groups.append((own, scale))
            if mod is model.dit and stage.control_lr_scale != 1.0:
                groups.append((list(mod.control_proj.parameters()), stage.control_lr_scale))
        params = [p for ps, _ in groups for p in ps]
        for p in params:
            p.requires_grad_(True)
        module: nn.Module = _StageLoss(model, stage)
        if self.world > 1:
            module = nn.parallel.DistributedDataParallel(
                module, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True)
        opt = torch.optim.AdamW([{"params": ps, "scale": scale} for ps, scale in groups], lr=stage.lr,
                                weight_decay=stage.weight_decay)
        if opt_state is not None:
            opt.load_state_dict(opt_state)

        def lr_at(step: int) -> float:
            if step < stage.warmup:
                return stage.lr * (step + 1) / stage.warmup
            frac = (step - stage.warmup) / max(1, stage.steps - stage.warmup)
            return stage.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))

        dataset = data["music" if stage.name == "pretrain" else "paired"]
        for windows in self._training_windows:  # after the paired cache is built: its videos are of the music as written
            windows.texture_p, windows.short_take_p = stage.texture_p, stage.short_take_p
        loader = DataLoader(
            dataset, collate_fn=collate, num_workers=self.config.workers,
            batch_sampler=_StepSampler(len(dataset), stage.batch, seed=self.config.seed, stage=si, start=start,
                                       stop=stage.steps, rank=self.rank, world=self.world),
        )
        writer = self._writer()
        csv_path = self.out / "train_log.csv"
        new_csv = not csv_path.exists()
        fh = open(csv_path, "a", newline="") if self.main else None
        out_csv = csv.writer(fh) if fh else None
        if out_csv is not None and new_csv:
            out_csv.writerow(["stage", "step", "loss", "lr", "sim", "seconds", "windows_per_s"])
        bar = tqdm(total=stage.steps, initial=start, desc=f"{stage.name}", disable=not (self.main and self.progress))
        t0, losses, windows = time.perf_counter(), [], 0
        metrics: dict[str, float] = {}
        model.train()
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda" else _null()
        stopped = False
        for step, batch in zip(range(start, stage.steps), loader):
            batch = {k: v.to(self.device) for k, v in batch.items()}
            gen = torch.Generator().manual_seed(int.from_bytes(
                hashlib.sha256(f"{self.config.seed}:{si}:{step}:{self.rank}".encode()).digest()[:8], "little"))
            for g in opt.param_groups:
                g["lr"] = lr_at(step) * g["scale"]
            with autocast:
                loss, metrics = module(batch, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, stage.grad_clip)
            opt.step()
            losses.append(float(loss.detach()))
            windows += stage.batch * self.world
            bar.update(1)
            if self.main and (step % self.config.log_every == 0 or step == stage.steps - 1):
                el = time.perf_counter() - t0
                bar.set_postfix(loss=f"{losses[-1]:.4f}", **({"sim": f"{metrics['sim']:.1f}"} if "sim" in metrics else {}))
                if out_csv is not None:
                    out_csv.writerow([stage.name, step, f"{losses[-1]:.6f}", f"{lr_at(step):.3e}",
                                      f"{metrics.get('sim', float('nan')):.3f}", f"{el:.2f}", f"{windows / el:.2f}"])
                    fh.flush()  # type: ignore[union-attr]
                if writer is not None:
                    writer.add_scalar(f"{stage.name}/loss", losses[-1], step)
                    for k, v in metrics.items():
                        writer.add_scalar(f"{stage.name}/{k}", v, step)
            if self._budget is not None:
                self._budget -= 1
            if step + 1 < stage.steps and (self._budget == 0 or (step + 1) % self.config.checkpoint_every == 0):
                self._save(model, opt, si, step + 1)
                self._barrier()
                if self._budget == 0:
                    stopped = True
                    break
        bar.close()
        if fh:
            fh.close()
        elapsed = time.perf_counter() - t0
        if stopped:
            if self.main:
                print(f"[{stage.name}] stopped after {len(losses)} steps at step {step + 1}; run again to resume")
            return {"stage": stage.name, "stopped": True, "at_step": step + 1}
        self._save(model, None, si + 1, 0)  # stage done: the next one starts fresh
        if self.main:  # keep each stage's weights (baselines for `muvi eval`)
            from muvi.weights import save_checkpoint

            save_checkpoint(self.out / "stages" / self._stage_folder(si), model, recipe=self._recipe(),
                            data_manifest_sha256=self.manifest_sha)
        self._barrier()
        summary = {"stage": stage.name, "steps": stage.steps, "trained_steps": len(losses),
                   "final_loss": float(np.mean(losses[-max(1, len(losses) // 10):])) if losses else None,
                   "seconds": round(elapsed, 1), "windows_per_s": round(windows / elapsed, 2) if elapsed > 0 else None,
                   **self._evaluate(model, data, si, stage)}
        if self.main:
            print(f"[{stage.name}] " + ", ".join(f"{k}={v}" for k, v in summary.items() if k != "stage"))
        if writer is not None:
            writer.close()
        return summary

    @torch.no_grad()
    def _evaluate(self, model: MuVi, data: dict[str, Dataset], si: int, stage: StageConfig) -> dict[str, float]:
        """Held-out loss (and SIM for the contrastive stage) on a few fixed batches."""
        if self.config.eval_batches <= 0:
            return {}
        model.eval()
        ds = data["music_eval" if stage.name == "pretrain" else "paired_eval"]
        module = _StageLoss(model, replace(stage, cfg_dropout=0.0, prompt_p=0.0))
        losses, sims = [], []
        for b in range(self.config.eval_batches):
            idx = [((b * stage.batch + i) % len(ds), 0) for i in range(min(stage.batch, len(ds)))]
            batch = {k: v.to(self.device) for k, v in collate([ds[i] for i in idx]).items()}
            loss, metrics = module(batch, torch.Generator().manual_seed(1000 + b))
            losses.append(float(loss.detach()))
            if "sim" in metrics:
                sims.append(metrics["sim"])
        model.train()
        out = {"eval_loss": round(float(np.mean(losses)), 5)}
        if sims:
            out["eval_sim"] = round(float(np.mean(sims)), 2)
        return out

    def _check_replicas(self, model: MuVi) -> None:
        """Every rank must hold the same weights after training (DDP keeps them in step);
        the checksums are written to ``replicas.json`` and a divergence is an error."""
        flat = torch.cat([p.detach().double().flatten().cpu() for p in model.parameters()])
        mine = torch.tensor([float(flat.sum()), float((flat * flat).sum())], dtype=torch.float64)
        if self.world > 1:
            all_sums = [torch.zeros(2, dtype=torch.float64) for _ in range(self.world)]
            dist.all_gather(all_sums, mine)
        else:
            all_sums = [mine]
        sums = [s.tolist() for s in all_sums]
        if self.main:
            (self.out / "replicas.json").write_text(json.dumps({"world_size": self.world, "checksums": sums}))
        if any(s != sums[0] for s in sums):
            raise RuntimeError(f"DDP replicas diverged: weight checksums {sums}")

    def _writer(self) -> Any:
        if not self.main:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional at run time
            log.warning("tensorboard not installed: CSV log only")
            return None
        return SummaryWriter(str(self.out / "tb"))


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
