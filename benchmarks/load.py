"""Load, faults and a soak against a real `muvi serve` process on loopback.

1. **Load**: ``--clients`` threads, each sending ``--jobs`` Generate requests one after
   another (a short clip; the server's default queue of 4 behind the running job). Each job,
   drawn at random: waits for its end (55 %), is cancelled by a Cancel call after a random
   delay (15 %), is dropped by its client mid-stream, a disconnect (15 %), or carries a short
   deadline (15 %). Required: every job ends in Done, CANCELLED, RESOURCE_EXHAUSTED or
   DEADLINE_EXCEEDED (a dropped job: the server cancels it); none is lost (every request gets
   its end, and afterwards the server holds no job); no staging folder is left; every result
   folder is whole; the server is still SERVING.
2. **Soak**: ``--soak`` jobs of ``--soak-seconds`` of a real clip, one after another
   (``--soak 60`` of 60 s: an hour of timeline); the server's resident memory after the first
   job against after each later one.

The kill -9 of a server mid-job and its restart is tested in
``tests/plugin_server/test_server.py`` (a real `muvi serve`).

    python benchmarks/load.py [--clients 16] [--jobs 50] [--soak 60] [--soak-seconds 60]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import emit, machine, rss_mb, start_server  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ENDS = {"DONE", "CANCELLED", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"}


def _job(stub, metadata, request, action: str, rng: random.Random) -> str:  # type: ignore[no-untyped-def]
    import grpc

    from plugin_server.v1 import plugin_pb2 as pb

    timeout = rng.uniform(0.3, 3.0) if action == "deadline" else 600.0
    call = stub.Generate(request, metadata=metadata, timeout=timeout)
    ended = threading.Event()
    actor = None
    if action in ("cancel", "disconnect"):
        delay = rng.uniform(0.0, 2.0)

        def act() -> None:
            if ended.wait(delay):
                return  # it ended before the client acted
            if action == "cancel":
                try:
                    stub.Cancel(pb.CancelRequest(request_id=request.request_id), metadata=metadata, timeout=30)
                except grpc.RpcError:
                    pass  # NOT_FOUND: it had ended already
            else:
                call.cancel()  # the client goes away mid-stream

        actor = threading.Thread(target=act, daemon=True)
        actor.start()
    try:
        for event in call:
            if event.WhichOneof("event") == "done":
                return "DONE"
        return "NO_END"  # a stream that ended without Done or an error: a lost job
    except grpc.RpcError as exc:
        code = exc.code().name
        return "DROPPED" if action == "disconnect" and code == "CANCELLED" else code
    finally:
        ended.set()
        if actor is not None:
            actor.join()


def load(port: int, work: Path, clip: Path, clients: int, jobs: int, seed: int) -> dict:
    import grpc

    from muvi.footage import clip_timeline
    from plugin_server.convert import timeline_to_proto
    from plugin_server.v1 import plugin_pb2 as pb
    from plugin_server.v1 import plugin_pb2_grpc as pb_grpc

    token = (work / "token").read_text().strip()
    metadata = (("authorization", f"Bearer {token}"),)
    timeline = timeline_to_proto(clip_timeline(clip, None))
    outcomes: dict[str, tuple[str, str]] = {}
    lock = threading.Lock()

    def client(c: int) -> None:
        rng = random.Random(seed * 1000 + c)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = pb_grpc.MuviStub(channel)
        for j in range(jobs):
            action = rng.choices(["wait", "cancel", "disconnect", "deadline"], weights=[55, 15, 15, 15])[0]
            name = f"c{c:02d}j{j:02d}"
            request = pb.GenerateRequest(request_id=name, output_name=name, timeline=timeline,
                                         options=pb.GenerateOptions(steps=8, preview=False, seed=j))
            end = _job(stub, metadata, request, action, rng)
            with lock:
                outcomes[name] = (action, end)
        channel.close()

    t = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t
    time.sleep(3.0)  # a dropped or timed-out job the server still runs ends (cancelled) by now
    return {"wall_s": round(wall, 1), "outcomes": outcomes}


def check(work: Path, outcomes: dict[str, tuple[str, str]]) -> dict:
    from muvi.pipeline import STAGING_MARK

    out = work / "out"
    staging = [p.name for p in out.glob(".*") if (p / STAGING_MARK).exists()] if out.exists() else []
    need = {"report.json", "mix.wav", "drums.wav", "stems.mid"}
    results = {p.name: need <= {f.name for f in p.iterdir()} for p in out.iterdir() if p.is_dir() and not
               p.name.startswith(".")} if out.exists() else {}
    ends = Counter(end for _, end in outcomes.values())
    by_action = {a: dict(Counter(e for act, e in outcomes.values() if act == a))
                 for a in ("wait", "cancel", "disconnect", "deadline")}
    done_missing = [n for n, (_, e) in outcomes.items() if e == "DONE" and not results.get(n)]
    return {
        "jobs": len(outcomes), "ends": dict(ends), "by_action": by_action,
        "undocumented_ends": {e: n for e, n in ends.items() if e not in ENDS | {"DROPPED"}},
        "done_without_whole_result": len(done_missing),
        "partial_results": sum(1 for ok in results.values() if not ok),
        "staging_left": len(staging),
    }


def still_held(port: int, work: Path, names: list[str]) -> list[str]:
    """The requests the server still holds (a Cancel that finds them queued or running)."""
    import grpc

    from plugin_server.v1 import plugin_pb2 as pb
    from plugin_server.v1 import plugin_pb2_grpc as pb_grpc

    metadata = (("authorization", f"Bearer {(work / 'token').read_text().strip()}"),)
    held = []
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.MuviStub(channel)
        for name in names:
            try:
                stub.Cancel(pb.CancelRequest(request_id=name), metadata=metadata, timeout=10)
                held.append(name)
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.NOT_FOUND:
                    held.append(name)
    return held


def soak(port: int, pid: int, work: Path, clip: Path, jobs: int, seconds: float) -> dict:
    import shutil

    from muvi.footage import clip_timeline
    from plugin_server.client import Client
    from plugin_server.v1 import plugin_pb2 as pb

    timeline = clip_timeline(clip, seconds)
    rss, times = [], []
    with Client(f"127.0.0.1:{port}", token_file=work / "token") as c:
        for j in range(jobs):
            t = time.perf_counter()
            events = list(c.generate(timeline, options=pb.GenerateOptions(seed=j, preview=False), output_name=f"soak{j}"))
            assert events[-1].WhichOneof("event") == "done", events[-1]
            times.append(time.perf_counter() - t)
            rss.append(round(rss_mb(pid), 1))
            shutil.rmtree(work / "out" / f"soak{j}", ignore_errors=True)
    return {"jobs": jobs, "timeline_s": seconds, "rss_mb_after_job": rss,
            "rss_mb_second_half_growth": round(rss[-1] - rss[len(rss) // 2], 1),
            "rss_first_mb": rss[0], "rss_last_mb": rss[-1], "rss_max_mb": max(rss),
            "growth_mb": round(rss[-1] - rss[0], 1), "job_s_median": round(sorted(times)[len(times) // 2], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--jobs", type=int, default=50)
    ap.add_argument("--soak", type=int, default=60, help="soak jobs (0: none)")
    ap.add_argument("--soak-seconds", type=float, default=60.0)
    ap.add_argument("--clip", type=Path, default=None, help="the load's clip (default: a generated 2 s clip)")
    ap.add_argument("--soak-clip", type=Path, default=Path("data/footage/vtest.avi"))
    ap.add_argument("--weights", type=Path, default=ROOT / "weights" / "muvi")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from muvi.media_gen import write_shot_clip
    from muvi.timeline import Rate

    work = Path(tempfile.mkdtemp(prefix="muvi-load-"))
    clip = args.clip or write_shot_clip(work / "cuts.mp4", shots=[20, 30], rate=Rate(25), size=(160, 96)).path
    proc, port = start_server(work, args.weights)
    try:
        from plugin_server.client import Client

        with Client(f"127.0.0.1:{port}", token_file=work / "token") as c:
            c.wait_ready(timeout=120)
        rss_start = round(rss_mb(proc.pid), 1)
        result = load(port, work, clip, args.clients, args.jobs, args.seed) if args.clients else {"wall_s": 0, "outcomes": {}}
        checked = check(work, result["outcomes"])
        checked["held_after"] = len(still_held(port, work, sorted(result["outcomes"])))
        with Client(f"127.0.0.1:{port}", token_file=work / "token") as c:
            c.wait_ready(timeout=30)
            serving = True
        report = {"bench": "load", "machine": machine(), "clients": args.clients, "jobs_per_client": args.jobs,
                  "wall_s": result["wall_s"], **checked, "serving_after": serving,
                  "rss_mb": {"ready": rss_start, "after_load": round(rss_mb(proc.pid), 1)}}
        if args.soak and args.soak_clip.is_file():
            report["soak"] = soak(port, proc.pid, work, args.soak_clip, args.soak, args.soak_seconds)
        emit(report, "load")
    finally:
        proc.terminate()
        proc.wait(timeout=60)


if __name__ == "__main__":
    main()
