"""Drawing a score: one panel per stem, beat and downbeat lines, optional accent markers."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Sequence


from muvi.fileio import atomic_path
from muvi.music.roll import DRUM_CLASSES, drum_class_of
from muvi.music.score import Score

__all__ = ["plot_score"]

_COLORS = {"drums": "#d62728", "bass": "#1f77b4", "chords": "#2ca02c", "melody": "#9467bd"}


def plot_score(
    score: Score,
    path: Path | str,
    *,
    title: str = "",
    accents: Sequence[Fraction | float] = (),
    hits: Sequence[bool] | None = None,
    max_bars: int | None = None,
) -> Path:
    """Write a PNG of the score's stems against beats (x axis in bars).

    ``accents`` are times in seconds (e.g. video cuts) drawn as vertical markers: green where
    ``hits[i]`` is true (a beat landed on it), red otherwise.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection, PatchCollection
    from matplotlib.colors import to_rgb
    from matplotlib.patches import Rectangle

    spb = score.steps_per_beat
    bar = score.steps_per_bar
    n_steps = score.n_steps if max_bars is None else min(score.n_steps, max_bars * bar)
    by_stem = score.by_stem()
    stems = [s for s in ("drums", "bass", "chords", "melody") if s in by_stem] + [
        s for s in by_stem if s not in ("drums", "bass", "chords", "melody")
    ]
    heights = [1.2 if s == "drums" else 2.0 for s in stems] or [1.0]
    width = min(40.0, max(10.0, n_steps / bar * 0.45))
    fig, axes = plt.subplots(len(stems) or 1, 1, figsize=(width, 1.3 * sum(heights) + 1), sharex=True,
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, stem in zip(axes[:, 0], stems):
        notes = [n for n in by_stem[stem] if n.start < n_steps]
        if stem == "drums":
            ys = [drum_class_of(n.pitch) or 0 for n in notes]
            ax.set_yticks(range(len(DRUM_CLASSES)), [d[0] for d in DRUM_CLASSES], fontsize=6)
            ax.set_ylim(-0.5, len(DRUM_CLASSES) - 0.5)
        else:
            ys = [n.pitch for n in notes]
            if ys:
                ax.set_ylim(min(ys) - 2, max(ys) + 2)
        # one collection per panel (hundreds of separate artists made the plot the slowest
        # part of writing a result); a small gap before the end shows re-articulated notes
        rgb = to_rgb(_COLORS.get(stem, "k"))
        ax.add_collection(PatchCollection(
            [Rectangle((n.start / bar, y - 0.4), max(n.end - n.start - 0.25, 0.6) / bar, 0.8) for n, y in zip(notes, ys)],
            facecolors=[(*rgb, 0.35 + 0.65 * n.velocity / 127) for n in notes], linewidths=0))
        beats = range(0, n_steps // spb + 1)
        for down, color, lw in ((False, "0.85", 0.4), (True, "0.45", 0.9)):
            xs = [b * spb / bar for b in beats if score.tempo.is_downbeat(b) == down]
            ax.add_collection(LineCollection([((x, 0), (x, 1)) for x in xs], colors=color, linewidths=lw, zorder=0,
                                             transform=ax.get_xaxis_transform()))
        ax.set_ylabel(stem)
    ax0 = axes[0, 0]
    marks = []
    for i, t in enumerate(accents):
        step = float(score.tempo.beat_at(Fraction(t))) * spb
        if 0 <= step <= n_steps:
            marks.append((step / bar, "#2ca02c" if hits is None or hits[i] else "#d62728"))
    if marks:
        for ax in axes[:, 0]:
            ax.add_collection(LineCollection([((x, 0), (x, 1)) for x, _ in marks], colors=[c for _, c in marks],
                                             linewidths=1.6, alpha=0.8, zorder=3, transform=ax.get_xaxis_transform()))
    axes[-1, 0].set_xlim(0, n_steps / bar)
    axes[-1, 0].set_xlabel("bar")
    bpm = float(score.tempo.bpm_at(0))
    ax0.set_title(title or f"{score.style or ''} {score.key or ''} {bpm:.1f} BPM {score.tempo.beats_per_bar}/4".strip())
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
    return path
