"""The plugin server's latency and overhead (issue 8).

On a 30 s 1920x1080 30 fps timeline (the first 30 s of the benchmark clip, 6 cuts):

- latency from sending Generate to the first Progress event (target ≤ 100 ms) and to Done;
- the same job through ``Generator.generate`` directly: the server's overhead (target ≤ 5 %);
- throughput with 4 concurrent clients (jobs per minute; one worker runs them in turn).

A real server on loopback (in this process, own threads) and the Python client.

    python benchmarks/server.py [--weights weights/muvi] [--steps 25] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import bench_clip, emit, machine  # noqa: E402
from muvi.pipeline import GenerateOptions, Generator  # noqa: E402
from muvi.timeline import Timeline, TimeRange  # noqa: E402
from plugin_server.client import Client  # noqa: E402
from plugin_server.server import MuviServer, ServerConfig  # noqa: E402
from plugin_server.servicer import Limits  # noqa: E402
from plugin_server.v1 import plugin_pb2 as pb  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--weights", default=str(ROOT / "weights" / "muvi"))
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--repeats", type=int, default=3)  # runs vary ±0.5 s on 2 shared cores
    ap.add_argument("--seconds", type=int, default=30)
    args = ap.parse_args()

    clip = bench_clip()
    rate = clip.rate
    timeline = Timeline.sequential([(clip.path, TimeRange.from_frames(0, args.seconds * rate.num // rate.den, rate))],
                                   rate=rate)
    generator = Generator.from_weights(args.weights)
    options = GenerateOptions(steps=args.steps, seed=0, style="pop", preview=False)
    wire_options = pb.GenerateOptions(steps=args.steps, seed=0, style="pop", preview=False)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        generator.generate(timeline, options, tmp / "warm")  # first-use costs (SoundFont, kernels)
        direct = []
        for i in range(args.repeats):
            t = time.perf_counter()
            generator.generate(timeline, options, tmp / f"direct{i}")
            direct.append(time.perf_counter() - t)

        srv = MuviServer(ServerConfig(weights=Path(args.weights), port=0, token_file=tmp / "token",
                                      output_root=tmp / "out", limits=Limits(max_queue=4)),
                         load=lambda: generator).start()
        try:
            client = Client(f"127.0.0.1:{srv.port}", token_file=tmp / "token")
            client.wait_ready()
            first, done = [], []
            for i in range(args.repeats):
                t = time.perf_counter()
                t_first = None
                for event in client.generate(timeline, options=wire_options, output_name=f"s{i}"):
                    if t_first is None and event.HasField("progress"):
                        t_first = time.perf_counter() - t
                done.append(time.perf_counter() - t)
                first.append(t_first)

            results: dict[int, float] = {}

            def run(i: int) -> None:
                t = time.perf_counter()
                with Client(f"127.0.0.1:{srv.port}", token_file=tmp / "token") as c:
                    list(c.generate(timeline, options=wire_options, output_name=f"c{i}"))
                results[i] = time.perf_counter() - t

            t = time.perf_counter()
            threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            wall4 = time.perf_counter() - t
            client.close()
        finally:
            srv.stop(grace=5)

    d, s = statistics.median(direct), statistics.median(done)
    emit({
        "benchmark": "server",
        "timeline": {"seconds": args.seconds, "size": "1920x1080", "fps": str(rate), "cuts": sum(
            1 for c in clip.cut_frames if c < args.seconds * rate.num // rate.den)},
        "weights": args.weights, "sampler_steps": args.steps, "backend": generator.backend.name,
        "first_progress_ms": {"median": round(1000 * statistics.median(first), 1), "max": round(1000 * max(first), 1),
                              "target": 100},
        "done_s": round(s, 2), "direct_pipeline_s": round(d, 2),
        "runs_s": {"server": [round(v, 2) for v in done], "direct": [round(v, 2) for v in direct]},
        "overhead_pct": round(100 * (s - d) / d, 2), "overhead_target_pct": 5,
        "concurrent_4": {"wall_s": round(wall4, 2), "jobs_per_min": round(4 * 60 / wall4, 2),
                         "latency_s": sorted(round(v, 2) for v in results.values()),
                         "vs_4x_direct_pct": round(100 * (wall4 - 4 * d) / (4 * d), 2)},
        "machine": machine(),
    }, "server")


if __name__ == "__main__":
    main()
