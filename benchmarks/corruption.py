"""The corruption campaign: damaged media through `muvi generate` and through `muvi serve`.

From real clips (``data/footage``: clips that packages ship) and generated ones, ``--files``
damaged files are made, seeded: truncations, byte flips, zeroed holes, damaged headers, wrong
extensions (a clip under another container's name, audio, a picture, text, a clip's bytes
appended to junk), a zero-length file, a raw stream claiming 65536×65536 pictures, a 1-frame
video, a sparse 10-hour raw stream, a FIFO, a symlink loop, a directory named ``.mp4`` and a
missing file. Each goes

- through ``muvi generate`` (the shipped weights; ``--steps 4``, no preview, to keep a
  campaign in minutes), in a forked child with a per-file time limit;
- through a real ``muvi serve`` on loopback (the same weights), as one Generate request with a
  deadline.

Required of every file on both paths: no crash (no traceback, no signal), no hang (the time
limit), a one-line reason for every refusal, and no partial output (a result folder is whole
with its report, or absent; no staging folder left). Prints the outcome counts as JSON.

    python benchmarks/corruption.py [--files 1000] [--timeout 60] [--paths generate,serve]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.common import emit, machine, start_server  # noqa: E402

WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "muvi"
SECONDS = 2.0  # each job scores the file's first seconds (a damaged file: what of them decodes)


# -- the damaged files ---------------------------------------------------------------------------
def _sources(work: Path, footage: Path) -> list[Path]:
    from muvi.media_gen import write_shot_clip
    from muvi.timeline import Rate

    real = sorted(p for p in footage.glob("*") if p.suffix.lower() in (".mp4", ".avi", ".mov", ".mpg"))
    gen = work / "generated"
    gen.mkdir(parents=True, exist_ok=True)
    made = [write_shot_clip(gen / f"shots{i}.mp4", shots=[20, 25, 15], rate=r, size=(160, 96)).path
            for i, r in enumerate((Rate(25), Rate(30000, 1001), Rate(24000, 1001)))]
    return real + made


def _flip(k: int) -> Callable[[bytes, np.random.Generator], bytes]:
    def fn(data: bytes, rng: np.random.Generator) -> bytes:
        arr = np.frombuffer(data, dtype=np.uint8).copy()
        arr[rng.integers(0, arr.size, k)] ^= rng.integers(1, 256, k).astype(np.uint8)
        return arr.tobytes()
    return fn


def _hole(frac: float) -> Callable[[bytes, np.random.Generator], bytes]:
    def fn(data: bytes, rng: np.random.Generator) -> bytes:
        size = max(1, int(len(data) * frac))
        at = int(rng.integers(0, max(1, len(data) - size)))
        return data[:at] + bytes(size) + data[at + size:]
    return fn


def _truncate(data: bytes, rng: np.random.Generator) -> bytes:
    return data[: max(1, int(len(data) * rng.uniform(0.0, 1.0) ** 2))]  # more short files than long


def _junk(n: int, rng: np.random.Generator) -> bytes:
    return rng.integers(0, 256, n).astype(np.uint8).tobytes()


MUTATIONS: dict[str, Callable[[bytes, np.random.Generator], bytes]] = {
    "truncate": _truncate,
    **{f"flip{k}": _flip(k) for k in (1, 10, 100, 200, 1000, 10000)},
    **{f"hole{f}": _hole(f) for f in (0.001, 0.01, 0.05, 0.25)},
    "header_zeroed": lambda d, r: bytes(512) + d[512:],
    "header_random": lambda d, r: _junk(64, r) + d[64:],
    "tail_junk": lambda d, r: d + _junk(4096, r),
    "junk_then_clip": lambda d, r: _junk(4096, r) + d,
    "doubled": lambda d, r: d + d,
}


def _special(work: Path, sources: list[Path]) -> list[tuple[str, Path]]:
    """The files that are not byte damage: odd types, sizes and kinds of path."""
    from muvi.media_gen import write_shot_clip
    from muvi.timeline import Rate

    sp = work / "special"
    sp.mkdir(parents=True, exist_ok=True)
    out: list[tuple[str, Path]] = []

    def add(name: str, path: Path) -> None:
        out.append((name, path))

    (sp / "empty.mp4").write_bytes(b"")
    add("zero_length", sp / "empty.mp4")
    (sp / "huge.y4m").write_bytes(b"YUV4MPEG2 W65536 H65536 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + bytes(4096))
    add("huge_dimensions", sp / "huge.y4m")
    add("one_frame", write_shot_clip(sp / "one.mp4", shots=[1], rate=Rate(25), size=(64, 48)).path)
    ten = sp / "tenhours.y4m"
    with open(ten, "wb") as fh:
        fh.write(b"YUV4MPEG2 W320 H240 F25:1 Ip A1:1 C420jpeg\n")
        fh.truncate(25 * 3600 * 10 * (320 * 240 * 3 // 2 + 6))  # sparse: 10 hours of frames claimed
    add("sparse_10_hours", ten)
    os.mkfifo(sp / "fifo.mp4")
    add("fifo", sp / "fifo.mp4")
    (sp / "loop_a.mp4").symlink_to(sp / "loop_b.mp4")
    (sp / "loop_b.mp4").symlink_to(sp / "loop_a.mp4")
    add("symlink_loop", sp / "loop_a.mp4")
    (sp / "folder.mp4").mkdir()
    add("directory", sp / "folder.mp4")
    add("missing", sp / "missing.mp4")
    wav = sp / "audio.mp4"
    import soundfile

    soundfile.write(str(wav.with_suffix(".wav")), np.zeros((48000, 2)), 48000)
    shutil.copy(wav.with_suffix(".wav"), wav)
    add("audio_as_mp4", wav)
    png = sp / "picture.mp4"
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.imsave(str(png.with_suffix(".png")), np.random.default_rng(0).random((48, 64, 3)))
    shutil.copy(png.with_suffix(".png"), png)
    add("picture_as_mp4", png)
    (sp / "text.mp4").write_text("not a video\n" * 100)
    add("text_as_mp4", sp / "text.mp4")
    for i, src in enumerate(sources[:6]):
        for ext in (".avi", ".mov", ".mkv", ".mp4"):
            if ext != src.suffix.lower():
                dst = sp / f"renamed{i}{ext}"
                shutil.copy(src, dst)
                add(f"wrong_extension{ext}", dst)
                break
    return out


def damaged_files(work: Path, footage: Path, count: int, seed: int) -> list[tuple[str, Path, bool]]:
    """(kind, path, whether the job takes the file's first seconds) for ``count`` files: the
    special ones, then each source damaged in turn, cycling through :data:`MUTATIONS`."""
    rng = np.random.default_rng(seed)
    sources = _sources(work, footage)
    files = [(kind, path, False) for kind, path in _special(work, sources)]
    datas = [src.read_bytes() for src in sources]
    kinds = list(MUTATIONS)
    (work / "damaged").mkdir(parents=True, exist_ok=True)
    i = 0
    while len(files) < count:
        s, kind = i % len(sources), kinds[(i // len(sources)) % len(kinds)]
        src = sources[s]
        path = work / "damaged" / f"{i:04d}_{src.stem}_{kind}{src.suffix}"
        path.write_bytes(MUTATIONS[kind](datas[s], rng))
        files.append((kind, path, True))
        i += 1
    return files


# -- the checks ---------------------------------------------------------------------------------
def _output_state(out: Path) -> str:
    """``absent``, ``whole`` (a report and every stem) or ``partial``; staging folders left count as partial."""
    staging = [p for p in out.parent.glob(f".{out.name}.*")]
    if staging:
        return "partial"
    if not out.exists():
        return "absent"
    need = {"report.json", "mix.wav", "drums.wav", "bass.wav", "chords.wav", "melody.wav", "stems.mid"}
    return "whole" if need <= {p.name for p in out.iterdir()} else "partial"


def _child(argv: list[str], log: str) -> None:  # runs in the forked child
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    from muvi.cli import main

    code = main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def via_generate(path: Path, out: Path, timeout: float, first_seconds: bool) -> dict:
    out.parent.mkdir(parents=True, exist_ok=True)
    log = str(out) + ".log"
    argv = ["generate", f"{path}@0-{SECONDS:g}" if first_seconds else str(path), "--out", str(out), "--weights", str(WEIGHTS), "--steps", "4",
            "--no-preview", "--quiet", "--backend", "torch-cpu"]
    proc = mp.get_context("fork").Process(target=_child, args=(argv, log))
    t = time.perf_counter()
    proc.start()
    proc.join(timeout)
    hung = proc.is_alive()
    if hung:
        proc.kill()
        proc.join()
    text = Path(log).read_text(errors="replace") if Path(log).exists() else ""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("fluidsynth: warning")]
    ok = proc.exitcode == 0 and not hung
    return {"exit": None if hung else proc.exitcode, "hung": hung, "seconds": round(time.perf_counter() - t, 2),
            "traceback": "Traceback" in text, "lines": len(lines) if not ok else 0,
            "reason": lines[-1][:300] if lines and not ok else "", "output": _output_state(out)}


def via_serve(stub, metadata, path: Path, name: str, timeout: float, first_seconds: bool) -> dict:  # type: ignore[no-untyped-def]
    import grpc

    from muvi.errors import MuviError
    from muvi.footage import clip_timeline
    from plugin_server.convert import timeline_to_proto
    from plugin_server.v1 import plugin_pb2 as pb

    t = time.perf_counter()
    try:
        timeline = timeline_to_proto(clip_timeline(path, SECONDS if first_seconds else None))
    except Exception as exc:  # noqa: BLE001 - a client that cannot even probe it sends a guess
        if not isinstance(exc, (MuviError, OSError)):
            probe_crashes.append(f"{path.name}: {type(exc).__name__}: {exc}")
        timeline = pb.Timeline(rate=pb.Rate(num=25, den=1))
        timeline.segments.add(media_path=str(Path(path).absolute()), source_in=0, source_out=50, record_in=0)
        probe_error = str(exc)
    else:
        probe_error = ""
    request = pb.GenerateRequest(timeline=timeline, output_name=name,
                                 options=pb.GenerateOptions(steps=4, preview=False))
    code, message = "OK", ""
    try:
        for _ in stub.Generate(request, metadata=metadata, timeout=timeout):
            pass
    except grpc.RpcError as exc:
        code, message = exc.code().name, exc.details() or ""
    return {"status": code, "seconds": round(time.perf_counter() - t, 2), "lines": len(message.splitlines()),
            "reason": message[:300], "client_probe": probe_error[:200]}


probe_crashes: list[str] = []  # the client-side probe (muvi.probe) failing other than with a MuviError
DOCUMENTED = {"OK", "INVALID_ARGUMENT", "NOT_FOUND", "OUT_OF_RANGE", "RESOURCE_EXHAUSTED"}


def _server(work: Path):  # type: ignore[no-untyped-def]
    """A `muvi serve` process (not threads of this one: the campaign forks a child per file)."""
    import grpc

    from plugin_server.client import Client
    from plugin_server.v1 import plugin_pb2_grpc as pb_grpc

    proc, port = start_server(work, WEIGHTS)
    with Client(f"127.0.0.1:{port}", token_file=work / "token") as c:
        c.wait_ready(timeout=120)
    token = (work / "token").read_text().strip()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    return (proc, port), pb_grpc.MuviStub(channel), (("authorization", f"Bearer {token}"),)


def campaign(files: list[tuple[str, Path, bool]], work: Path, paths: set[str], timeout: float,
             progress: Callable[[str, int], None]) -> dict:
    """Every file through `muvi generate` (forked children: first, while this process has no
    gRPC threads), then through `muvi serve`."""
    rows = [{"kind": kind, "file": path.name} for kind, path, _ in files]
    if "generate" in paths:
        for i, (_, path, first) in enumerate(files):
            out = work / "generated_out" / f"t{i:04d}"
            rows[i]["generate"] = via_generate(path, out, timeout, first)
            shutil.rmtree(out, ignore_errors=True)
            progress("generate", i)
    serving = None
    if "serve" in paths:
        server, stub, metadata = _server(work)
        try:
            for i, (_, path, first) in enumerate(files):
                rows[i]["serve"] = via_serve(stub, metadata, path, f"t{i:04d}", timeout, first)
                rows[i]["serve"]["output"] = _output_state(work / "out" / f"t{i:04d}")
                shutil.rmtree(work / "out" / f"t{i:04d}", ignore_errors=True)
                progress("serve", i)
            serving = _serving(server[1])
        finally:
            server[0].terminate()
            server[0].wait(timeout=60)
    return {"rows": rows, "serving_after": serving}


def _serving(port: int) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status
    return status == health_pb2.HealthCheckResponse.SERVING


def summarise(result: dict) -> dict:
    rows = result["rows"]
    out: dict = {"files": len(rows), "kinds": dict(Counter(r["kind"] for r in rows))}
    if rows and "generate" in rows[0]:
        g = [r["generate"] for r in rows]
        out["generate"] = {
            "exit_codes": dict(Counter(str(x["exit"]) for x in g)), "hung": sum(x["hung"] for x in g),
            "tracebacks": sum(x["traceback"] for x in g),
            "refusals_not_one_line": sum(1 for x in g if x["exit"] not in (0, None) and x["lines"] != 1),
            "partial_outputs": sum(x["output"] == "partial" for x in g),
            "done_without_output": sum(1 for x in g if x["exit"] == 0 and x["output"] != "whole"),
            "max_seconds": max(x["seconds"] for x in g),
        }
    if rows and "serve" in rows[0]:
        s = [r["serve"] for r in rows]
        out["serve"] = {
            "statuses": dict(Counter(x["status"] for x in s)),
            "undocumented": [x for x in s if x["status"] not in DOCUMENTED][:5],
            "refusals_not_one_line": sum(1 for x in s if x["status"] != "OK" and x["lines"] != 1),
            "partial_outputs": sum(x["output"] == "partial" for x in s),
            "done_without_output": sum(1 for x in s if x["status"] == "OK" and x["output"] != "whole"),
            "max_seconds": max(x["seconds"] for x in s),
            "serving_after": result["serving_after"],
        }
    bad = [r for r in rows if _failed(r)]
    out["client_probe_crashes"] = probe_crashes[:5]
    out["failures"] = len(bad) + len(probe_crashes)
    out["failure_examples"] = bad[:8]
    return out


def _failed(row: dict) -> bool:
    g, s = row.get("generate"), row.get("serve")
    if g and (g["hung"] or g["traceback"] or g["output"] == "partial" or (g["exit"] not in (0, None) and g["lines"] != 1)
              or (g["exit"] == 0 and g["output"] != "whole") or (g["exit"] not in (0, 2))):
        return True
    if s and (s["status"] not in DOCUMENTED or s["output"] == "partial" or (s["status"] != "OK" and s["lines"] != 1)
              or (s["status"] == "OK" and s["output"] != "whole")):
        return True
    return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per file and path")
    ap.add_argument("--paths", default="generate,serve")
    ap.add_argument("--footage", type=Path, default=Path("data/footage"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the work folder (printed)")
    args = ap.parse_args()
    paths = set(args.paths.split(","))
    work = Path(tempfile.mkdtemp(prefix="muvi-corruption-"))
    t0 = time.perf_counter()
    try:
        files = damaged_files(work, args.footage, args.files, args.seed)
        made = time.perf_counter() - t0
        result = campaign(files, work, paths, args.timeout,
                          progress=lambda path, i: print(f"{path} {i + 1}/{len(files)}", file=sys.stderr)
                          if (i + 1) % 50 == 0 else None)
        summary = summarise(result)
        emit({"bench": "corruption", "machine": machine(), "seconds": round(time.perf_counter() - t0, 1),
              "making_files_s": round(made, 1), "paths": sorted(paths), "timeout_s": args.timeout, **summary},
             "corruption")
        (Path(__file__).resolve().parent / "results" / "corruption_rows.json").write_text(json.dumps(result["rows"], indent=1))
    finally:
        if args.keep:
            print(f"work folder: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
