"""A blind comparison of two General MIDI SoundFonts for muvi's stems.

For each style one arranged piece is performed (``--feel natural``), rendered with each
SoundFont under a label drawn at random (A or B), balanced and mastered as `muvi generate`
does, and measured without its name:

- **onsets**: of the notes played, the share whose onset the stem's audio shows within 30 ms,
  and of the onsets the audio shows, the share that are notes (F-measure per stem): whether
  the instruments articulate what the score plays;
- **spectral balance**: the mix's long-term average spectrum in third-octave bands
  (50 Hz–16 kHz), its slope (dB per octave) and how far the bands stray from the fitted line
  (dB, RMS): a smooth, gently falling spectrum is what balanced mixes show;
- **stereo image**: the correlation of the mix's left and right channels (1 is mono) and the
  side-to-mid energy ratio (dB);
- **render time** of the four stems.

A figure puts, for one style, each label's mix spectrogram under the score's performed
onsets (the roll beside the audio) and the two long-term spectra side by side. Only after
every figure and number is written are the labels resolved to file names. The decision rule
is fixed here, before looking: the SoundFont that wins more styles on the mean onset F-measure
is the default unless its spectrum strays more than 1.5 dB further from its line or its
render is more than 1.5× slower.

    .venv/bin/python scripts/compare_soundfonts.py --out report/soundfonts
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from muvi.metrics import onset_times  # noqa: E402
from muvi.mix import LoudnessOptions, master, reverb_sends, template_for  # noqa: E402
from muvi.music.arranger import arrange  # noqa: E402
from muvi.music.perform import perform  # noqa: E402
from muvi.music.styles import STYLES  # noqa: E402
from muvi.render import SynthOptions, render_score  # noqa: E402

SR = 48000
CANDIDATES = {
    "FluidR3_GM": Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
    "MuseScore_General": Path("/usr/share/sounds/sf3/MuseScore_General.sf3"),
}
STEMS = ("drums", "bass", "chords", "melody")
WINDOW = 0.03


def _f_measure(expected: np.ndarray, found: np.ndarray) -> float | None:
    if expected.size == 0:
        return None
    if found.size == 0:
        return 0.0
    hits_e = np.array([np.min(np.abs(found - t)) <= WINDOW for t in expected])
    hits_f = np.array([np.min(np.abs(expected - t)) <= WINDOW for t in found])
    recall, precision = hits_e.mean(), hits_f.mean()
    return float(2 * precision * recall / (precision + recall)) if precision + recall else 0.0


def _ltas(mix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Third-octave band levels (dB) of the mix's long-term average spectrum."""
    from scipy.signal import welch

    f, p = welch(mix.mean(axis=0), fs=SR, nperseg=8192)
    centres = 1000.0 * 2.0 ** (np.arange(-14, 15) / 3.0)  # 62.5 Hz .. 16 kHz
    centres = centres[(centres >= 50) & (centres <= 16000)]
    bands = [p[(f >= c / 2 ** (1 / 6)) & (f < c * 2 ** (1 / 6))].sum() for c in centres]
    return centres, 10 * np.log10(np.maximum(bands, 1e-20))


def _spectral(mix: np.ndarray) -> dict[str, float]:
    centres, level = _ltas(mix)
    octaves = np.log2(centres / 1000.0)
    slope, icpt = np.polyfit(octaves, level, 1)
    stray = float(np.sqrt(np.mean((level - (slope * octaves + icpt)) ** 2)))
    return {"slope_db_per_octave": round(float(slope), 2), "stray_db": round(stray, 2)}


def _stereo(mix: np.ndarray) -> dict[str, float]:
    left, right = mix[0], mix[1]
    corr = float(np.corrcoef(left, right)[0, 1])
    mid, side = (left + right) / 2, (left - right) / 2
    return {"lr_correlation": round(corr, 3),
            "side_to_mid_db": round(float(10 * np.log10(np.mean(side ** 2) / max(np.mean(mid ** 2), 1e-20))), 2)}


def _take(style: str, soundfont: Path, seconds: float) -> dict:
    score = arrange(style, seed=7).score
    played = perform(score, seed=7)
    room, sends = reverb_sends(style)
    base = SynthOptions(soundfont=soundfont)
    per = {s: SynthOptions(soundfont=soundfont, reverb_room=room, reverb_level=v) for s, v in sends.items()}
    t = time.perf_counter()
    audio = render_score(score, options=base, stems=list(STEMS), n_samples=int(seconds * SR), performance=played,
                         stem_options=per)
    render_s = time.perf_counter() - t
    stems, mix, _ = master(audio, LoudnessOptions(), template=template_for(style))
    onsets = {}
    for stem in STEMS:
        expected = np.array(sorted({float(score.tempo.time_at(p.on)) for p in played.played
                                    if p.stem == stem and float(score.tempo.time_at(p.on)) < seconds - 0.1}))
        onsets[stem] = _f_measure(expected, onset_times(stems[stem], SR))
    return {"render_s": round(render_s, 3), "onset_f": onsets, **_spectral(mix), **_stereo(mix),
            "_mix": mix, "_onsets": [float(score.tempo.time_at(p.on)) for p in played.played]}


def _figure(takes: dict[str, dict], style: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(11, 9), gridspec_kw={"height_ratios": [2, 2, 1.6]})
    for ax, (label, take) in zip(axes, sorted(takes.items())):
        mix = take["_mix"].mean(axis=0)[: 10 * SR]
        ax.specgram(mix, NFFT=2048, Fs=SR, noverlap=1536, cmap="magma", vmin=-140)
        ax.set_ylim(0, 12000)
        ax.vlines([t for t in take["_onsets"] if t < 10], 11000, 12000, color="cyan", lw=0.6)
        ax.set_title(f"{style}, SoundFont {label}: mix spectrogram (first 10 s), performed onsets on top")
        ax.set_ylabel("Hz")
    for label, take in sorted(takes.items()):
        centres, level = _ltas(take["_mix"])
        axes[2].semilogx(centres, level - level.max(), marker="o", label=f"{label}: slope {take['slope_db_per_octave']} "
                         f"dB/oct, stray {take['stray_db']} dB")
    axes[2].set_xlabel("third-octave band (Hz)")
    axes[2].set_ylabel("dB (rel. max)")
    axes[2].legend()
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("report/soundfonts"))
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args(argv)
    missing = [str(p) for p in CANDIDATES.values() if not p.is_file()]
    if missing:
        print(f"missing SoundFont(s): {', '.join(missing)} (make setup installs both)", file=sys.stderr)
        return 2
    names = list(CANDIDATES)
    np.random.default_rng(args.seed).shuffle(names)
    labels = dict(zip("AB", names))  # resolved only at the end
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, dict]] = {}
    for style in STYLES:
        takes = {label: _take(style, CANDIDATES[name], args.seconds) for label, name in labels.items()}
        if style == "pop":
            _figure(takes, style, args.out / "pop_spectrograms.png")
        results[style] = {k: {x: y for x, y in v.items() if not x.startswith("_")} for k, v in takes.items()}
    summary = {}
    for label in "AB":
        f = [np.nanmean([v for v in results[s][label]["onset_f"].values() if v is not None]) for s in STYLES]
        summary[label] = {"mean_onset_f": round(float(np.mean(f)), 3),
                          "styles_won_on_onsets": 0,
                          "mean_stray_db": round(float(np.mean([results[s][label]["stray_db"] for s in STYLES])), 2),
                          "mean_slope_db_per_octave": round(float(np.mean([results[s][label]["slope_db_per_octave"]
                                                                           for s in STYLES])), 2),
                          "mean_lr_correlation": round(float(np.mean([results[s][label]["lr_correlation"] for s in STYLES])), 3),
                          "render_s": round(float(np.sum([results[s][label]["render_s"] for s in STYLES])), 2)}
    for s in STYLES:
        f = {lb: np.nanmean([v for v in results[s][lb]["onset_f"].values() if v is not None]) for lb in "AB"}
        summary[max(f, key=f.get)]["styles_won_on_onsets"] += 1
    first, second = sorted("AB", key=lambda lb: -summary[lb]["styles_won_on_onsets"])
    vetoed = (summary[first]["mean_stray_db"] > summary[second]["mean_stray_db"] + 1.5
              or summary[first]["render_s"] > 1.5 * summary[second]["render_s"])
    chosen = second if vetoed else first
    report = {"per_style": results, "summary": summary, "chosen_label": chosen, "vetoed": vetoed,
              "labels": labels, "chosen": labels[chosen], "seconds": args.seconds}
    (args.out / "comparison.json").write_text(json.dumps(report, indent=1))
    print(json.dumps({"summary": summary, "chosen_label": chosen, "labels": labels, "chosen": labels[chosen]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
