"""How closely the DiT follows the control curves by itself, before any curve-held decoding.

On held-out synthetic windows it samples each window twice and prints, as JSON, the mean
Spearman ρ between the per-bar intensity asked for and the intensity of the raw sample (the
roll's onset share, :func:`muvi.curves.onset_share`), and after decoding with the curve holding:

- ``teacher``: the curves of the window's own reference music (what training shows the model),
  the picture dropped — does the DiT follow a curve at all;
- ``picture``: the curves the pipeline makes from the window's video, with the picture (CFG).

    python benchmarks/curve_following.py [--weights weights/muvi] [--windows 16] [--guide both|cond] [--slack S]

``--guide cond`` (the default, what the pipeline does: :func:`muvi.flow.guidance_conditions`)
gives the curves to the conditional branch only, so guidance also amplifies the curves' effect;
``both`` gives them to both branches, as the pipeline did before.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.common import emit, machine  # noqa: E402


def _teacher(window, spec):  # type: ignore[no-untyped-def]
    from muvi.curves import curve_tokens, music_curves

    s = window.score
    vals = music_curves(s.notes, n_steps=s.n_steps, steps_per_bar=s.steps_per_bar)
    ctl = curve_tokens(vals, np.ones_like(vals), n_steps=s.n_steps, steps_per_bar=s.steps_per_bar)
    names = ("intensity", "intensity_drums", "intensity_bass", "intensity_chords", "intensity_melody")
    return torch.from_numpy(ctl), {k: [float(v) for v in vals[:, i]] for i, k in enumerate(names)}


@torch.no_grad()
def _take(model, window, controls, requested, *, picture: bool, cfg: float, guide: str, seed: int,  # type: ignore[no-untyped-def]
          slack: float):
    from muvi.curves import decode_following, music_curves, onset_share, spearman
    from muvi.flow import guided_velocity, sample

    spec = model.config.roll
    n = window.positions.shape[0]
    s = torch.tensor([model.config.style_index(window.style if window.style in model.config.styles else None)])
    m = torch.tensor([0])
    patches, pos, ctl = window.patches[None], window.positions[None], controls[None]
    cond = model.condition(patches, pos, s, m, torch.tensor([not picture]), ctl)
    unc = model.condition(patches, pos, s, m, torch.tensor([True]), ctl if guide == "both" else torch.zeros_like(ctl))
    zeros = torch.zeros(1, n, spec.token_dim)
    mask = torch.zeros(1, n, 1)
    fn = guided_velocity(model.dit.velocity, cond=cond, uncond=unc, scale=cfg, prompt=zeros, prompt_mask=mask)
    noise = torch.randn(1, n, spec.token_dim, generator=torch.Generator().manual_seed(seed))
    tokens = sample(fn, noise, steps=25, prompt=zeros, prompt_mask=mask)[0]
    want = requested["intensity"]
    raw = onset_share(spec.from_tokens(tokens), spec)
    notes, _ = decode_following(model.config.decode_spec, tokens, requested, slack=slack)
    held = music_curves(notes, n_steps=n, steps_per_bar=spec.steps_per_bar)[:, 0]
    return spearman(want, raw), spearman(want, held), float(np.mean(raw))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default="weights/muvi")
    ap.add_argument("--windows", type=int, default=16)
    ap.add_argument("--cfg", type=float, default=None)
    ap.add_argument("--guide", choices=("both", "cond"), default="cond")
    ap.add_argument("--slack", type=float, default=None, help="the curve holding's slack (default: the pipeline's)")
    args = ap.parse_args()

    from muvi.curves import HOLD_SLACK
    from muvi.evaluate import EvalOptions, held_out_windows
    from muvi.weights import load_checkpoint

    model, meta = load_checkpoint(args.weights)
    recipe = meta.get("recipe", {})
    model.eval()
    cfg = args.cfg if args.cfg is not None else float(recipe.get("default_cfg", 3.0))
    slack = args.slack or HOLD_SLACK
    windows = held_out_windows(model, recipe, EvalOptions(windows=args.windows))
    rows: dict[str, list[tuple]] = {"teacher": [], "picture": []}
    for i, w in enumerate(windows):
        ctl, req = _teacher(w, model.config.roll)
        rows["teacher"].append(_take(model, w, ctl, req, picture=False, cfg=cfg, guide=args.guide, seed=i, slack=slack))
        rows["picture"].append(_take(model, w, w.controls, w.requested, picture=True, cfg=cfg, guide=args.guide,
                                     seed=i, slack=slack))

    def summary(r: list[tuple]) -> dict[str, float]:
        col = lambda k: [x[k] for x in r if x[k] is not None]  # noqa: E731
        return {"rho_model": round(float(np.mean(col(0))), 3), "rho_held": round(float(np.mean(col(1))), 3),
                "onset_share": round(float(np.mean(col(2))), 3), "windows": len(col(0))}

    emit({"benchmark": "curve_following", "weights": args.weights, "cfg": cfg, "guide": args.guide, "slack": slack,
          **{k: summary(v) for k, v in rows.items()}, "machine": machine()}, f"curve_following_{args.guide}")


if __name__ == "__main__":
    main()
