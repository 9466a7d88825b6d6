"""Training data: music windows from the corpus, synthetic paired video, the user's own pairs.

Every item is deterministic in ``(index, salt)`` so that training is reproducible and resumes
exactly: samplers hand the dataset ``(index, salt)`` pairs, and all randomness of an item
(window offset, video, tags) comes from a generator seeded by them.

- :class:`CorpusWindows`: music-only windows of ``steps`` grid steps starting on bar lines,
  transposed to a common tonic (C major / C minor), as roll tokens with a validity mask
  (short pieces are padded with silence that the loss ignores).
- :class:`PairedWindows`: the same windows with a synthetic video rendered from the music
  (:mod:`muvi.train.synthvideo`), encoded by the visual encoder, and the grid positions that
  align frames to steps.
- :class:`UserPairs`: a folder of videos, each with a MIDI file or a music recording of the
  same name (``clip.mp4`` + ``clip.mid`` / ``clip.wav``): real pairs for fine-tuning.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from muvi.curves import curve_dropout, curve_tokens, music_curves
from muvi.errors import InvalidInputError
from muvi.music.corpus import Corpus
from muvi.music.keys import Key, normalise_key_shift, transpose
from muvi.music.score import Note, Score
from muvi.music.tempo import TempoMap
from muvi.nn.adaptor import grid_positions, mirror_positions
from muvi.nn.encoders import VisualEncoder
from muvi.nn.model import ModelConfig
from muvi.train.synthvideo import render_paired_video
from muvi.train.texture import vary_texture

__all__ = ["split_pieces", "CorpusWindows", "PairedWindows", "PairedCache", "UserPairs", "collate", "item_rng", "mood_for"]

_MOODS = {
    ("pop", "major"): ("happy", "playful"), ("pop", "minor"): ("romantic", "sad"),
    ("rock", "major"): ("epic", "happy"), ("rock", "minor"): ("tense", "dark"),
    ("electronic", "major"): ("happy", "playful"), ("electronic", "minor"): ("tense", "dark"),
    ("hiphop", "major"): ("playful",), ("hiphop", "minor"): ("dark", "tense"),
    ("ambient", "major"): ("calm",), ("ambient", "minor"): ("sad", "calm"),
    ("cinematic", "major"): ("epic",), ("cinematic", "minor"): ("dark", "tense", "epic"),
    ("jazz", "major"): ("romantic", "playful"), ("jazz", "minor"): ("sad", "romantic"),
    ("folk", "major"): ("calm", "happy"), ("folk", "minor"): ("sad",),
    ("chorale", "major"): ("calm",), ("chorale", "minor"): ("sad",),
}


def music_controls(notes: Sequence[Note], steps: int, steps_per_bar: int, *, rng: np.random.Generator | None) -> np.ndarray:
    """The control curves of a training window's own music, per step (steps, CONTROL_CHANNELS),
    dropped at random (``rng``; None: all given)."""
    values = music_curves(notes, n_steps=steps, steps_per_bar=steps_per_bar)
    mask = np.ones_like(values) if rng is None else curve_dropout(len(values), rng)
    return curve_tokens(values, mask, n_steps=steps, steps_per_bar=steps_per_bar)


def curve_rng(*keys: object) -> np.random.Generator:
    """The curve dropout's own generator: drawing from it leaves the item's other draws (video,
    tags) as they were before the curves existed."""
    return item_rng("curves", *keys)


def item_rng(*keys: object) -> np.random.Generator:
    """A generator seeded by a tuple of keys (stable across processes and runs)."""
    digest = hashlib.sha256(repr(keys).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def moods_of(style: str | None, mode: str | None) -> tuple[str, ...]:
    """The mood tags a style is trained with in a mode."""
    return _MOODS.get((style or "", mode or "major"), ())


def mood_for(style: str | None, mode: str | None, rng: np.random.Generator) -> str | None:
    options = moods_of(style, mode)
    return str(rng.choice(options)) if options else None


def split_pieces(corpus: Corpus, *, held_out: float = 0.05, seed: int = 0,
                 allow_non_commercial: bool = False) -> tuple[list[int], list[int]]:
    """(train ids, held-out ids), held out by piece: a piece's side depends only on its name
    and the seed, so windows of one piece never straddle the split."""
    train, test = [], []
    for p in corpus.pieces:
        if p["non_commercial"] and not allow_non_commercial:
            continue
        h = int.from_bytes(hashlib.sha256(f"{seed}:{p['source']}:{p['name']}".encode()).digest()[:8], "little")
        (test if h / 2**64 < held_out else train).append(p["id"])
    return train, test


@dataclass(frozen=True)
class _Window:
    piece: int
    start: int  # grid step


class CorpusWindows(Dataset):
    """Music-only windows (see the module docstring). ``dataset[(index, salt)]`` or ``dataset[index]``."""

    def __init__(self, corpus: Corpus, ids: Sequence[int], config: ModelConfig, *, steps: int = 256,
                 normalise_key: bool = True, tag_dropout: float = 0.15, seed: int = 0) -> None:
        if steps % config.roll.steps_per_bar:
            raise InvalidInputError(f"window of {steps} steps is not a whole number of bars")
        self.corpus, self.config, self.spec = corpus, config, config.roll
        self.steps, self.normalise_key, self.tag_dropout, self.seed = steps, normalise_key, tag_dropout, seed
        # the share of items whose texture is varied by section (muvi.train.texture); the
        # trainer sets it per stage (StageConfig.texture_p)
        self.texture_p = 0.0
        # the share of paired items whose picture is a short take's (short_take): the trainer
        # sets it per stage (StageConfig.short_take_p)
        self.short_take_p = 0.0
        self.windows: list[_Window] = []
        for i in ids:
            p = corpus.pieces[i]
            bar = 4 * p["beats_per_bar"]
            last = max(0, p["steps"] - steps)
            starts = list(range(0, last + 1, max(bar, (steps // 2) // bar * bar))) or [0]
            self.windows += [_Window(i, s) for s in starts]
        if not self.windows:
            raise InvalidInputError("no training windows: the corpus selection is empty")

    def __len__(self) -> int:
        return len(self.windows)

    def subset(self, count: int) -> "CorpusWindows":
        """The same windows thinned to ``count``, evenly spread over the list (so over pieces and
        styles alike); deterministic."""
        import copy

        if not 1 <= count <= len(self.windows):
            raise InvalidInputError(f"a subset of {count} windows of {len(self.windows)}")
        out = copy.copy(self)
        out.windows = [self.windows[int(i)] for i in np.linspace(0, len(self.windows) - 1, count).round()]
        return out

    def window_score(self, index: int) -> Score:
        w = self.windows[index]
        score = self.corpus.score(w.piece)
        notes = [Note(n.start - w.start, n.pitch, min(n.end, w.start + self.steps) - w.start, n.velocity, n.stem)
                 for n in score.notes if w.start <= n.start < w.start + self.steps]
        key = score.key
        if self.normalise_key and key:
            k = Key.parse(key)
            notes = transpose(notes, normalise_key_shift(k))
            key = Key(0, k.mode).name
        tempo = TempoMap.constant(score.tempo.bpm_at(0), beats_per_bar=score.tempo.beats_per_bar)
        n_steps = min(self.steps, score.n_steps - w.start)
        return Score(tuple(notes), tempo, n_steps, score.steps_per_beat, score.programs, key=key, style=score.style)

    def _tags(self, score: Score, rng: np.random.Generator) -> tuple[int, int]:
        style = score.style if rng.random() >= self.tag_dropout else None
        mode = score.key.split()[-1] if score.key else None
        mood = mood_for(score.style, mode, rng) if rng.random() >= 2 * self.tag_dropout else None
        return self.config.style_index(style), self.config.mood_index(mood)

    def item(self, index: int, salt: int = 0) -> tuple[dict[str, torch.Tensor], Score, np.random.Generator]:
        rng = item_rng(self.seed, index, salt)
        score = self.window_score(index)
        if self.texture_p > 0:  # its own generator: the item's other draws stay as they were
            texture_rng = item_rng("texture", self.seed, index, salt)
            if texture_rng.random() < self.texture_p:
                score = vary_texture(score, texture_rng)
        roll = self.spec.encode(score.notes, self.steps)
        valid = np.zeros((self.steps, 1), np.float32)
        valid[: score.n_steps] = 1.0
        style, mood = self._tags(score, rng)
        return {
            "tokens": torch.from_numpy(self.spec.to_tokens(roll).copy()),
            "valid": torch.from_numpy(valid),
            "style": torch.tensor(style),
            "mood": torch.tensor(mood),
            "controls": torch.from_numpy(music_controls(score.notes, self.steps, score.steps_per_bar,
                                                        rng=curve_rng(self.seed, index, salt))),
        }, score, rng

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        index, salt = key if isinstance(key, tuple) else (key, 0)
        return self.item(index, salt)[0]


SHORT_TAKE_BARS = (1, 2, 3, 4)


def short_take(item: dict[str, torch.Tensor], windows: CorpusWindows, index: int, salt: int) -> dict[str, torch.Tensor]:
    """With probability ``windows.short_take_p``, the picture of a short take sampled as a whole
    window, as the pipeline samples one: only the frames of the window's first 1-4 bars, played
    backwards and forwards under the rest of the music (``grid_positions(beyond="mirror")``), and
    only those bars learnt (``valid``; a planned ending's suffix then falls at their end): the
    pipeline keeps no music past a take, and music learnt under the mirrored frames, whose hits
    no longer fall on its drums, taught the model to trust the picture's hits less (all bars
    learnt, 30 % of windows: held-out BHS 63.0 -> 56.7, BCS 90.8 -> 84.7). Untrained, a take of
    a bar or two read as a picture with no cuts and no hits, which the synthetic pairs pair with
    music without drums: the pop drums of 3-5 s real clips fell silent under curves asking for
    them. Its own generator: the item's other draws stay as they were."""
    if windows.short_take_p <= 0:
        return item
    rng = item_rng("short-take", windows.seed, index, salt)
    if rng.random() >= windows.short_take_p:
        return item
    pos = item["positions"].numpy()
    bar = windows.spec.steps_per_bar
    k = int(rng.choice(SHORT_TAKE_BARS)) * bar
    n = int(min(item["patches"].shape[0], max(2, math.ceil(float(pos[min(k, len(pos)) - 1])) + 1)))
    item["patches"] = item["patches"][:n]
    item["positions"] = torch.from_numpy(mirror_positions(pos, n).astype(np.float32))
    item["valid"] = item["valid"].clone()
    item["valid"][k:] = 0.0
    return item


class PairedWindows(Dataset):
    """Corpus windows with synthetic paired video features (see the module docstring)."""

    def __init__(self, windows: CorpusWindows, encoder: VisualEncoder, *, fps: int = 10, frame_size: int = 64,
                 camera: dict[str, Any] | None = None) -> None:
        """``camera``: ``{"photos": true, "camera_p": 0.5}`` mixes camera-like shots of real
        photographs into the scenes and gives that share of the clips the camera pass
        (:mod:`muvi.train.synthvideo`); None: synthetic scenes only."""
        self.windows, self.encoder, self.fps, self.frame_size = windows, encoder, Fraction(fps), frame_size
        self.camera = dict(camera or {})
        unknown = set(self.camera) - {"photos", "camera_p"}
        if unknown:
            raise InvalidInputError(f"camera: unknown keys {', '.join(sorted(unknown))} (photos, camera_p)")
        if self.camera.get("photos"):
            from muvi.train.photos import load_photos

            self.photos: tuple[Any, ...] = load_photos()
        else:
            self.photos = ()
        self.camera_p = float(self.camera.get("camera_p", 0.0))

    def describe(self) -> dict[str, Any]:
        """What the videos are made of (a paired cache is rebuilt when this changes)."""
        return {"camera": self.camera, "photos": [p.sha256 for p in self.photos]}

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        index, salt = key if isinstance(key, tuple) else (key, 0)
        item, score, rng = self.windows.item(index, salt)
        n_frames = max(2, math.ceil(score.step_time(self.windows.steps) * self.fps))
        clip = render_paired_video(score, rng=rng, fps=self.fps, size=self.frame_size, n_frames=n_frames,
                                   photos=self.photos, camera_p=self.camera_p)
        patches = self.encoder.encode(clip.frames)[0]  # (Tf, P, D)
        pos = grid_positions(score.tempo, self.windows.steps, steps_per_beat=score.steps_per_beat, fps=self.fps,
                             n_frames=n_frames)
        item.update(patches=patches, positions=torch.from_numpy(pos))
        return short_take(item, self.windows, index, salt)


class UserPairs(Dataset):
    """Windows of a user's own (video, music) pairs from one folder."""

    VIDEO = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")

    def __init__(self, folder: Path | str, config: ModelConfig, encoder: VisualEncoder, *, steps: int = 256,
                 fps: int = 10, frame_size: int = 64, seed: int = 0) -> None:
        from muvi.prompt import AUDIO_SUFFIXES, MIDI_SUFFIXES

        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise InvalidInputError(f"{self.folder}: user data folder not found")
        self.config, self.encoder, self.steps, self.fps, self.size, self.seed = config, encoder, steps, Fraction(fps), frame_size, seed
        self.pairs: list[tuple[Path, Path]] = []
        for video in sorted(p for p in self.folder.iterdir() if p.suffix.lower() in self.VIDEO):
            music = next((video.with_suffix(s) for s in (*MIDI_SUFFIXES, *AUDIO_SUFFIXES) if video.with_suffix(s).is_file()), None)
            if music is not None:
                self.pairs.append((video, music))
        if not self.pairs:
            raise InvalidInputError(f"{self.folder}: no video with a same-named MIDI or audio file")
        self._cache: dict[int, tuple[Score, torch.Tensor]] = {}
        self.windows: list[tuple[int, int]] = []
        for i in range(len(self.pairs)):
            score, patches = self._load(i)
            bar = score.steps_per_bar
            last = max(0, score.n_steps - steps)
            self.windows += [(i, s) for s in range(0, last + 1, max(bar, steps // 2))]

    def _load(self, i: int) -> tuple[Score, torch.Tensor]:
        if i not in self._cache:
            from muvi.prompt import load_prompt
            from muvi.timeline import Timeline, TimeRange
            from muvi.video import decode_timeline, probe

            video, music = self.pairs[i]
            info = probe(video)
            tl = Timeline.sequential([(video, TimeRange.from_frames(0, info.rate.frames(info.duration), info.rate))],
                                     rate=info.rate)
            frames = decode_timeline(tl, fps=self.fps, size=(self.size, self.size))
            self._cache[i] = (load_prompt(music), self.encoder.encode(frames.images)[0])
        return self._cache[i]

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        index, _ = key if isinstance(key, tuple) else (key, 0)
        pair, start = self.windows[index]
        score, patches = self._load(pair)
        spec = self.config.roll
        notes = [Note(n.start - start, n.pitch, min(n.end, start + self.steps) - start, n.velocity, n.stem)
                 for n in score.notes if start <= n.start < start + self.steps]
        t0 = score.step_time(start)
        f0 = max(0, min(len(patches) - 1, int(t0 * self.fps)))
        t1 = score.step_time(start + self.steps)
        f1 = max(f0 + 2, min(len(patches), math.ceil(t1 * self.fps) + 1))
        pos = np.asarray([float((score.step_time(start + s) - Fraction(f0) / self.fps) * self.fps) for s in range(self.steps)],
                         np.float32)
        valid = np.zeros((self.steps, 1), np.float32)
        valid[: max(0, min(self.steps, score.n_steps - start))] = 1.0
        return {
            "tokens": torch.from_numpy(spec.to_tokens(spec.encode(notes, self.steps)).copy()),
            "valid": torch.from_numpy(valid),
            "style": torch.tensor(0),
            "mood": torch.tensor(0),
            "controls": torch.from_numpy(music_controls(notes, self.steps, score.steps_per_bar,
                                                        rng=curve_rng("user", self.seed, index, key[1] if isinstance(key, tuple) else 0))),
            "patches": patches[f0:f1],
            "positions": torch.from_numpy(np.clip(pos, 0, f1 - f0 - 1)),
        }


def collate(batch: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack items; frame sequences of different lengths are padded by repeating the last frame."""
    out: dict[str, torch.Tensor] = {}
    for k in batch[0]:
        if k == "patches":
            n = max(b[k].shape[0] for b in batch)
            out[k] = torch.stack([torch.cat([b[k], b[k][-1:].expand(n - b[k].shape[0], *b[k].shape[1:])]) for b in batch])
        else:
            out[k] = torch.stack([b[k] for b in batch])
    return out




_BUILD_SOURCE: Any = None  # the PairedWindows a cache build's forked workers read


def _single_thread() -> None:
    torch.set_num_threads(1)


def _build_item(key: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    # plain arrays back to the parent: torch tensors would travel as shared-memory handles, one
    # per tensor, and thousands of them exhaust the parent's file descriptors
    item = _BUILD_SOURCE[key]
    return item["patches"].numpy().astype(np.float16), item["positions"].numpy()


class PairedCache(Dataset):
    """Pre-rendered paired windows: ``variants`` synthetic videos per corpus window, encoded once.

    Generating video on the fly costs ~0.15 s per window per core, far too slow to feed a GPU;
    the cache is built once (in parallel), kept as memory-mapped ``.npy`` files and then read at
    thousands of windows per second. Item ``(index, salt)`` uses variant ``salt % variants``.
    Files: ``patches.npy`` (all frames, float16), ``offsets.npy``, ``positions.npy`` and a
    ``meta.json`` that must match the windows and encoder or the cache is rebuilt.
    """

    def __init__(self, paired: PairedWindows, root: Path | str, *, variants: int = 2, workers: int = 1,
                 progress: bool = False) -> None:
        import json

        self.paired, self.root, self.variants = paired, Path(root), variants
        meta = {"windows": [(w.piece, w.start) for w in paired.windows.windows], "variants": variants,
                "steps": paired.windows.steps, "seed": paired.windows.seed, "encoder": paired.encoder.describe(),
                "fps": str(paired.fps), "frame_size": paired.frame_size, **({"video": paired.describe()}
                                                                             if paired.camera else {})}
        digest = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()
        meta_path = self.root / "meta.json"
        if not meta_path.is_file() or json.loads(meta_path.read_text()).get("digest") != digest:
            self._build(workers, progress)
            from muvi.fileio import atomic_write_text

            atomic_write_text(meta_path, json.dumps({"digest": digest, "items": len(self)}))
        self.patches = np.load(self.root / "patches.npy", mmap_mode="r")
        self.offsets = np.load(self.root / "offsets.npy")
        self.positions = np.load(self.root / "positions.npy", mmap_mode="r")

    def __len__(self) -> int:
        return len(self.paired)

    def _build(self, workers: int, progress: bool) -> None:
        from concurrent.futures import ProcessPoolExecutor

        from tqdm import tqdm

        from muvi.fileio import atomic_path

        self.root.mkdir(parents=True, exist_ok=True)
        keys = [(i, v) for i in range(len(self.paired)) for v in range(self.variants)]
        chunks, pos = [], []
        if workers > 1:
            import multiprocessing

            # the workers inherit the source by fork instead of receiving it pickled with every
            # chunk of keys (that pickling kept the parent busy and the workers idle)
            global _BUILD_SOURCE
            _BUILD_SOURCE = self.paired
            try:
                with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                         initializer=_single_thread) as pool:
                    it = pool.map(_build_item, keys, chunksize=16)
                    results = list(tqdm(it, total=len(keys), desc="paired cache", disable=not progress))
            finally:
                _BUILD_SOURCE = None
        else:
            _BUILD_SOURCE = self.paired
            try:
                results = [_build_item(k) for k in tqdm(keys, desc="paired cache", disable=not progress)]
            finally:
                _BUILD_SOURCE = None
        for patches, positions in results:
            chunks.append(patches)
            pos.append(positions)
        offsets = np.cumsum([0] + [len(c) for c in chunks]).astype(np.int64)
        for name, arr in (("patches", np.concatenate(chunks)), ("offsets", offsets), ("positions", np.stack(pos))):
            with atomic_path(self.root / f"{name}.npy") as tmp:
                with open(tmp, "wb") as fh:
                    np.save(fh, arr)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        index, salt = key if isinstance(key, tuple) else (key, 0)
        item = self.paired.windows[(index, salt)]
        k = index * self.variants + salt % self.variants
        a, b = int(self.offsets[k]), int(self.offsets[k + 1])
        item["patches"] = torch.from_numpy(np.asarray(self.patches[a:b], dtype=np.float32))
        item["positions"] = torch.from_numpy(np.array(self.positions[k]))
        return short_take(item, self.paired.windows, index, salt)
