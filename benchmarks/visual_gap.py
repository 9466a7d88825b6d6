"""How far real footage lies from the training pictures, as the adaptor sees them.

For the ``lowlevel`` encoder's frame token (saturation, luma, motion) it prints, as JSON, the
percentile of the real clips' median among training frames — synthetic scenes only (the
training videos before camera-like pairs) and the camera-like mix — both raw and after the
adaptor's per-clip robust normalisation (:func:`muvi.nn.adaptor.robust_normalise`). 50 means
the real median sits in the middle of what the model saw; 0 or 100, outside it.

    python benchmarks/visual_gap.py --footage data/footage [--windows 24]
"""

from __future__ import annotations

import argparse
import sys
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.common import emit, machine  # noqa: E402

FEATURES = {"saturation": 5, "luma": 3, "motion": 9}  # columns of the lowlevel token (muvi.nn.encoders)


def _training_tokens(windows: int, camera: bool) -> list[torch.Tensor]:
    from muvi.music.corpus import Corpus
    from muvi.nn.encoders import LowLevelEncoder
    from muvi.nn.model import ModelConfig
    from muvi.train.data import CorpusWindows, item_rng, split_pieces
    from muvi.train.photos import load_photos
    from muvi.train.synthvideo import render_paired_video

    corpus = Corpus("data/corpus")
    train, _ = split_pieces(corpus, held_out=0.05, seed=0)
    cw = CorpusWindows(corpus, train, ModelConfig())
    enc, photos = LowLevelEncoder(), load_photos() if camera else ()
    out = []
    for i in np.linspace(0, len(cw) - 1, windows).astype(int):
        score = cw.window_score(int(i))
        clip = render_paired_video(score, rng=item_rng("gap", int(i)), fps=10, size=64, n_frames=150, photos=photos,
                                   camera_p=0.5 if camera else 0.0)
        out.append(enc.encode(clip.frames)[0])
    return out


def _real_tokens(folder: Path) -> list[torch.Tensor]:
    from muvi.footage import clip_timeline, footage_clips
    from muvi.nn.encoders import LowLevelEncoder
    from muvi.video import decode_timeline

    enc = LowLevelEncoder()
    return [enc.encode(decode_timeline(clip_timeline(p, secs or 30.0), fps=Fraction(10), size=(224, 224)).images)[0]
            for p, secs in footage_clips(folder)]


def _percentiles(train: list[torch.Tensor], real: list[torch.Tensor], *, normalise: bool) -> dict[str, float]:
    from muvi.nn.adaptor import robust_normalise

    def frame_tokens(clips: list[torch.Tensor]) -> list[np.ndarray]:
        return [(robust_normalise(c[None])[0] if normalise else c)[:, 0].numpy() for c in clips]

    tr = np.concatenate(frame_tokens(train))
    out = {}
    for name, col in FEATURES.items():
        med = float(np.median(np.concatenate([c[:, col] for c in frame_tokens(real)])))
        out[name] = round(100.0 * float((tr[:, col] < med).mean()), 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--footage", type=Path, default=Path("data/footage"))
    ap.add_argument("--windows", type=int, default=24)
    args = ap.parse_args()
    real = _real_tokens(args.footage)
    result = {"benchmark": "visual_gap", "real_clips": len(real), "training_windows": args.windows}
    for label, camera in (("synthetic", False), ("camera_mix", True)):
        train = _training_tokens(args.windows, camera)
        result[label] = {"raw": _percentiles(train, real, normalise=False),
                         "normalised": _percentiles(train, real, normalise=True)}
    emit(result | {"machine": machine()}, "visual_gap")


if __name__ == "__main__":
    main()
