"""How the stems are played and mixed, one take per style on a real clip.

For each style, `muvi generate` (the shipped weights, ``--feel natural``) scores the same real
clip; then, from the files it wrote:

- the timing of what was played against the style's feel (report.json ``performance``:
  mean offset and spread per stem, swing ratio, ghost notes), next to the targets;
- each stem's level relative to the mix (``muvi.mix.stem_levels``: K-weighted energy over the
  mix's gated blocks), measured on the WAVs, against the template's range;
- the mix's integrated loudness and true peak, measured on ``mix.wav``;
- the residual of the four stems summed against ``mix.wav`` (dB relative to the mix's peak);
- a figure per style: the mix's spectrogram over the per-stem short-term loudness (3 s).

Separately, the render time of 60 s of four stems, as played (``--feel natural``) and as
written (``grid``), the SoundFont loaded once first.

    python benchmarks/mix.py [--clip data/footage/tree.avi] [--out report/mix]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.common import emit, machine  # noqa: E402
from muvi.bwf import read_bwf  # noqa: E402
from muvi.mix import integrated_loudness, stem_levels, template_for, true_peak_dbtp  # noqa: E402
from muvi.music.perform import perform  # noqa: E402
from muvi.music.styles import STYLE_NAMES  # noqa: E402
from muvi.render import render_score  # noqa: E402

SR = 48000
STEMS = ("drums", "bass", "chords", "melody")


def _short_term(audio: np.ndarray, seconds: float = 3.0, hop: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    n, h = int(seconds * SR), int(hop * SR)
    starts = np.arange(0, max(1, audio.shape[1] - n + 1), h)
    return starts / SR + seconds / 2, np.array([integrated_loudness(audio[:, s:s + n]) for s in starts])


def _figure(style: str, mix: np.ndarray, stems: dict[str, np.ndarray], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(2, 1, figsize=(11, 6), sharex=True)
    a.specgram(mix.mean(axis=0), NFFT=2048, Fs=SR, noverlap=1024, cmap="magma", vmin=-140)
    a.set_ylim(0, 12000)
    a.set_ylabel("Hz")
    a.set_title(f"{style}: mix spectrogram; below, short-term loudness (3 s) of the mix and each stem")
    for name, audio in [("mix", mix), *stems.items()]:
        t, lufs = _short_term(audio)
        b.plot(t, np.where(np.isfinite(lufs), lufs, np.nan), lw=2.2 if name == "mix" else 1.2, label=name)
    b.set_ylabel("LUFS")
    b.set_xlabel("s")
    b.legend(ncol=5, fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=70)
    plt.close(fig)


def take(generator, clip: Path, style: str, out: Path) -> dict:  # type: ignore[no-untyped-def]
    from muvi.footage import clip_timeline
    from muvi.pipeline import GenerateOptions

    folder = out / "takes" / style
    res = generator.generate(clip_timeline(clip, None), GenerateOptions(style=style, preview=False), folder)
    r = res.report
    files = {k: read_bwf(folder / f"{k}.wav").audio for k in (*STEMS, "mix")}
    mix = files.pop("mix")
    ref = integrated_loudness(mix)
    template = template_for(style)
    rel = stem_levels(files, mix)
    playing = [k for k, v in rel.items() if math.isfinite(v)]
    targets = template.targets(playing)
    residual = float(np.max(np.abs(sum(files.values()) - mix)))
    _figure(style, mix, files, out / f"{style}.png")
    perf = r["performance"]["stems"]
    return {
        "timing": {k: {x: v[x] for x in ("mean_offset_ms", "target_offset_ms", "sd_ms", "target_sd_ms", "swing_ratio",
                                         "ghosts")} for k, v in perf.items()},
        "swing_target": r["performance"]["swing_target"],
        "stem_lu": {k: round(rel[k], 2) for k in playing},
        "target_lu": {k: round(targets[k], 2) for k in playing},
        "stems_within_range": sum(abs(rel[k] - targets[k]) <= template.stems[k].tolerance for k in playing),
        "stems_playing": len(playing),
        "balance_spread_lu": round(max(rel[k] - targets[k] for k in playing) - min(rel[k] - targets[k] for k in playing), 2),
        "mix_lufs": round(ref, 2), "mix_dbtp": round(true_peak_dbtp(mix), 2),
        "compression_db": r["mix"]["compression_db"], "limiting_db": r["mix"]["limiting_db"],
        "residual_db": round(20 * math.log10(residual / float(np.max(np.abs(mix)))), 1) if residual else -math.inf,
        "render_s": r["timings_s"]["render"], "write_s": r["timings_s"]["write"],
    }


def render_times() -> dict:
    from benchmarks.render import sixty_seconds

    piece = sixty_seconds("pop", 1)
    render_score(piece.score, n_samples=SR)  # the SoundFont into the page cache
    out = {}
    for feel in ("grid", "natural"):
        t0 = time.perf_counter()
        played = perform(piece.score, feel=feel, seed=1)
        t1 = time.perf_counter()
        best = min(_timed(lambda: render_score(piece.score, n_samples=60 * SR, performance=played)) for _ in range(3))
        out[feel] = {"perform_s": round(t1 - t0, 3), "render_60s_s": round(best, 3)}
    return out


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clip", type=Path, default=Path("data/footage/tree.avi"))
    ap.add_argument("--weights", type=Path, default=Path("weights/muvi"))
    ap.add_argument("--out", type=Path, default=Path("report/mix"))
    args = ap.parse_args()
    if not args.clip.is_file():
        raise SystemExit(f"{args.clip}: no such clip (muvi eval --footage data/footage --fetch-footage fetches it)")
    from muvi.pipeline import Generator

    generator = Generator.from_weights(args.weights)
    args.out.mkdir(parents=True, exist_ok=True)
    styles = {s: take(generator, args.clip, s, args.out) for s in STYLE_NAMES}
    summary = {
        "stems_within_template_range": f"{sum(v['stems_within_range'] for v in styles.values())}/"
                                       f"{sum(v['stems_playing'] for v in styles.values())}",
        "max_balance_spread_lu": max(v["balance_spread_lu"] for v in styles.values()),
        "mix_lufs_range": [min(v["mix_lufs"] for v in styles.values()), max(v["mix_lufs"] for v in styles.values())],
        "max_mix_dbtp": max(v["mix_dbtp"] for v in styles.values()),
        "max_residual_db": max(v["residual_db"] for v in styles.values()),
    }
    result = {"bench": "mix", "machine": machine(), "clip": str(args.clip), "summary": summary,
              "render": render_times(), "styles": styles}
    (args.out / "mix.json").write_text(json.dumps(result, indent=1))
    emit(result, "mix")


if __name__ == "__main__":
    main()
