"""Synthetic paired video: pictures whose events follow a piece of music.

From a score window and its tempo map this renders frames at ``fps`` (default 10, the model
rate) at ``size × size`` (default 64, the ``lowlevel`` encoder's working size) where

- **cuts** fall on bar boundaries, every 1, 2 or 4 bars (a new scene type and palette each shot);
- **motion and flashes** follow the drums: kick, snare, clap and crash onsets push objects,
  jolt the camera and (snare/crash accents) flash the picture, decaying over a few frames;
  pieces without drums use strong-beat onsets of the other stems;
- **camera energy** follows note density (onsets per second around the frame);
- **palette and brightness** follow mode and style (major brighter and warmer, minor darker
  and cooler; each style its own hue family, jittered per shot) and the section dynamics.

Scenes vary so the model learns cues that transfer to footage — cuts, motion, brightness —
not one drawing style: moving shapes, a panned texture, particles, stripes and rings, and
**camera-like shots** (``photos`` given, about half the shots): a real photograph
(:mod:`muvi.train.photos`) filmed with a push-in, a pan, hand-held shake or a whip pan on a
hit, with a cut-out object from another photograph that jumps on the drum hits. A share of the
clips (``camera_p``) is then graded and degraded like a camera's footage
(:func:`camera_pass`): desaturated, brighter or darker by mood (warm and bright in major,
cool and dark in minor), motion blur, sensor noise and an H.264 round trip through PyAV.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Sequence

import numpy as np

from muvi.music.score import Score

__all__ = ["SyntheticClip", "render_paired_video", "SCENES"]

SCENES = ("shapes", "pan", "particles", "stripes", "rings")
_STYLE_HUE = {
    "pop": 0.92, "rock": 0.0, "electronic": 0.52, "hiphop": 0.78, "ambient": 0.42, "cinematic": 0.08,
    "jazz": 0.1, "folk": 0.22, "chorale": 0.13,
}
_HIT_WEIGHT = {36: 0.7, 38: 1.0, 39: 0.9, 49: 1.3, 45: 0.6, 48: 0.6}  # GM drum notes


@dataclass(frozen=True)
class SyntheticClip:
    frames: np.ndarray  # (T, S, S, 3) uint8
    times: tuple[Fraction, ...]  # frame k at k / fps
    cut_frames: tuple[int, ...]  # frames that start a new shot
    hit_frames: tuple[int, ...]  # frames with a strong visual hit
    scenes: tuple[str, ...]  # scene type of each shot


def _frame_of(t: Fraction, fps: Fraction) -> int:
    return int(math.floor(t * fps + Fraction(1, 2)))


def _palette(
    style: str | None, minor: bool, rng: np.random.Generator, shot: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Colours of one shot: the style's hue family, moved well away from the previous shot's
    (a cut must change the picture) and darker/cooler in minor."""
    spread = 0.18 + 0.12 * rng.random()
    hue = (_STYLE_HUE.get(style or "", 0.5) + (0.06 if minor else 0.0) + spread * ((shot % 3) - 1)
           + rng.normal(0, 0.02)) % 1.0
    val = (0.55 if minor else 0.85) * (0.75 if shot % 2 else 1.05) * rng.uniform(0.9, 1.05)
    sat = rng.uniform(0.45, 0.9) if style not in ("ambient", "chorale") else rng.uniform(0.2, 0.45)
    cols = []
    for dh, dv in ((0.0, 1.0), (0.12 * rng.choice([-1, 1]), 0.55), (0.5, 1.0)):
        r, g, b = colorsys.hsv_to_rgb((hue + dh) % 1.0, min(1.0, sat), min(1.0, val * dv))
        cols.append(np.array([r, g, b], np.float32))
    return cols[0], cols[1], cols[2]  # background top, background bottom, foreground


def _events(score: Score, n_frames: int, fps: Fraction) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame hit impulse, flash impulse and onset density (onsets per second around it)."""
    hits = np.zeros(n_frames, np.float32)
    flash = np.zeros(n_frames, np.float32)
    onset_t = np.zeros(n_frames, np.float32)
    drums = [n for n in score.notes if n.stem == "drums" and n.pitch in _HIT_WEIGHT]
    if not drums:  # no drums: strong-beat onsets of the other stems
        spb = score.steps_per_beat
        drums = [n for n in score.notes if n.start % (2 * spb) == 0]
    for n in drums:
        f = _frame_of(score.step_time(n.start), fps)
        if 0 <= f < n_frames:
            w = _HIT_WEIGHT.get(n.pitch, 0.7) * n.velocity / 127
            hits[f] = max(hits[f], w)
            if n.pitch in (38, 39, 49) and n.velocity >= 90:
                flash[f] = max(flash[f], w)
    for n in score.notes:
        f = _frame_of(score.step_time(n.start), fps)
        if 0 <= f < n_frames:
            onset_t[f] += 1
    w = max(1, int(fps))
    density = np.convolve(onset_t, np.ones(w), mode="same") * float(fps) / w
    return hits, flash, density


def render_paired_video(
    score: Score,
    *,
    rng: np.random.Generator,
    fps: Fraction | int = 10,
    size: int = 64,
    n_frames: int | None = None,
    photos: Sequence[Any] = (),
    camera_p: float = 0.0,
) -> SyntheticClip:
    """Frames for the score (time 0 = step 0) with cuts, hits, energy and palette from the music.
    ``photos`` (:class:`muvi.train.photos.Photo`) enable camera-like shots; ``camera_p`` is the
    share of clips given the camera pass."""
    fps = Fraction(fps)
    if n_frames is None:
        n_frames = max(1, math.ceil(score.duration * fps))
    hits, flash, density = _events(score, n_frames, fps)
    energy = np.clip(density / 8.0, 0.0, 1.5)
    minor = (score.key or "").endswith("minor")
    # cuts on bar boundaries, every 1, 2 or 4 bars
    bar = score.steps_per_bar
    cut_frames: list[int] = []
    b = int(rng.choice([1, 2, 2, 4, 4]))
    while b * bar < score.n_steps:
        f = _frame_of(score.step_time(b * bar), fps)
        if 0 < f < n_frames and (not cut_frames or f - cut_frames[-1] >= 3):
            cut_frames.append(f)
        b += int(rng.choice([1, 2, 2, 4, 4]))
    loud = np.ones(n_frames, np.float32)
    for n in score.notes:
        f = _frame_of(score.step_time(n.start), fps)
        if 0 <= f < n_frames:
            loud[f] = max(loud[f] if loud[f] != 1 else 0, n.velocity / 110)
    loud = np.clip(np.convolve(loud, np.ones(20) / 20, mode="same"), 0.6, 1.15)

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    frames = np.empty((n_frames, size, size, 3), np.uint8)
    bounds = [0, *cut_frames, n_frames]
    scenes: list[str] = []
    flash_level = 0.0
    hit_level = 0.0
    for shot, (s0, s1) in enumerate(zip(bounds, bounds[1:])):
        if photos and rng.random() < 0.5:
            scene = "photo"
        else:
            scene = str(rng.choice([x for x in SCENES if not scenes or x != scenes[-1]]))
        scenes.append(scene)
        top, bottom, fg = _palette(score.style, minor, rng, shot)
        grad = (top[None, None, :] * (1 - yy[..., None] / size) + bottom[None, None, :] * (yy[..., None] / size))
        state = _init_photo(photos, size, rng) if scene == "photo" else _init_scene(scene, size, rng)
        for f in range(s0, s1):
            hit_level = max(hit_level * 0.45, float(hits[f]))
            flash_level = max(flash_level * 0.5, float(flash[f]))
            if scene == "photo":
                img = _draw_photo(state, xx, yy, size, float(energy[f]), float(hits[f]), hit_level)
                img = img * (1.0 + 0.3 * flash_level)
            else:
                img = _draw(scene, state, grad, fg, xx, yy, size, float(energy[f]), hit_level, float(hits[f]), rng)
                img = img * loud[f] * (1.0 + 0.5 * flash_level)
            frames[f] = np.clip(img * 255.0, 0, 255).astype(np.uint8)
    if camera_p > 0 and rng.random() < camera_p:
        frames = camera_pass(frames, minor=minor, rng=rng, fps=fps)
    hit_frames = tuple(int(i) for i in np.flatnonzero(hits > 0))
    return SyntheticClip(frames, tuple(Fraction(k) / fps for k in range(n_frames)), tuple(cut_frames), hit_frames,
                         tuple(scenes))


# -- camera-like shots --------------------------------------------------------------------------

MOVES = ("push", "pan", "shake", "whip", "still")


def _init_photo(photos: Sequence[Any], size: int, rng: np.random.Generator) -> dict[str, Any]:
    """A photograph, a camera move and (sometimes) a cut-out object from another photograph."""
    photo = photos[int(rng.integers(len(photos)))].image
    h, w = photo.shape[:2]
    crop = rng.uniform(0.45, 0.85) * min(h, w)  # side of the filmed square, in photo pixels
    st: dict[str, Any] = {
        "img": photo, "crop": crop, "zoom": 1.0, "move": str(rng.choice(MOVES, p=[0.25, 0.25, 0.25, 0.1, 0.15])),
        "c": np.array([rng.uniform(crop / 2, w - crop / 2), rng.uniform(crop / 2, h - crop / 2)]),
        "dir": rng.normal(0, 1, 2), "shake": np.zeros(2), "whip": 0.0,
    }
    st["dir"] /= np.linalg.norm(st["dir"]) + 1e-6
    if rng.random() < 0.5:
        other = photos[int(rng.integers(len(photos)))].image
        r = rng.uniform(0.12, 0.22) * size
        oy, ox = rng.uniform(0, other.shape[0] - 2 * r), rng.uniform(0, other.shape[1] - 2 * r)
        st["obj"] = {"img": other, "r": r, "src": np.array([ox + r, oy + r]), "pos": rng.uniform(r, size - r, 2),
                     "vel": rng.normal(0, 0.4, 2)}
    return st


def _sample(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``img`` (H, W, 3) at float coordinates (clamped at the border)."""
    h, w = img.shape[:2]
    x, y = np.clip(x, 0, w - 1.001), np.clip(y, 0, h - 1.001)
    x0, y0 = x.astype(int), y.astype(int)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    a, b = img[y0, x0], img[y0, x0 + 1]
    c, d = img[y0 + 1, x0], img[y0 + 1, x0 + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def _draw_photo(st: dict[str, Any], xx: np.ndarray, yy: np.ndarray, size: int, energy: float, impulse: float,
                hit: float) -> np.ndarray:
    img, move = st["img"], st["move"]
    h, w = img.shape[:2]
    speed = 0.2 + 0.8 * min(energy, 1.2)
    if move == "push":
        st["zoom"] = max(0.55, st["zoom"] * (1.0 - 0.004 * speed))
    elif move == "pan":
        st["c"] = st["c"] + st["dir"] * speed * 0.8
    elif move == "shake":  # hand-held: a damped random walk, harder on hits
        st["shake"] = 0.85 * st["shake"] + np.random.default_rng(int(1e6 * (st["c"][0] % 1 + hit))).normal(0, 0.6 + 3 * impulse, 2)
    elif move == "whip" and impulse > 0.6 and st["whip"] <= 0:
        st["whip"] = 3.0  # frames of a fast pan
    if st["whip"] > 0:
        st["c"] = st["c"] + st["dir"] * st["crop"] * 0.3
        st["whip"] -= 1
    side = st["crop"] * st["zoom"]
    half = side / 2
    st["c"] = np.array([np.clip(st["c"][0], half, w - half), np.clip(st["c"][1], half, h - half)])
    if st["c"][0] in (half, w - half) or st["c"][1] in (half, h - half):
        st["dir"] = -st["dir"]  # a pan turns round at the photo's edge
    cx, cy = st["c"] + st["shake"]
    frame = _sample(img, cx - half + xx * side / size, cy - half + yy * side / size)
    obj = st.get("obj")
    if obj is not None:  # a cut-out object pushed on the drum hits
        obj["vel"] = obj["vel"] * 0.9 + (np.random.default_rng(int(obj["pos"].sum() * 1000) % 2**32).normal(0, 4.0, 2)
                                         * impulse)
        obj["pos"] = np.clip(obj["pos"] + obj["vel"] * speed, obj["r"], size - obj["r"])
        d2 = (xx - obj["pos"][0]) ** 2 + (yy - obj["pos"][1]) ** 2
        m = d2 < obj["r"] ** 2
        if m.any():
            patch = _sample(obj["img"], obj["src"][0] + xx[m] - obj["pos"][0], obj["src"][1] + yy[m] - obj["pos"][1])
            frame[m] = patch * (1.0 + 0.2 * hit)
    return frame


def camera_pass(frames: np.ndarray, *, minor: bool, rng: np.random.Generator, fps: Fraction) -> np.ndarray:
    """Grade and degrade a clip like camera footage: saturation down, brightness and white
    balance by mood (warm and bright in major, cool and dark in minor), motion blur, sensor
    noise, and (often) an H.264 encode and decode at an ordinary quality."""
    x = frames.astype(np.float32) / 255.0
    luma = (0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2])[..., None]
    x = luma + (x - luma) * rng.uniform(0.15, 0.8)  # real footage is far greyer than synthetic pictures
    gain = rng.uniform(0.55, 0.95) if minor else rng.uniform(0.95, 1.35)
    tint = np.array([1.06, 1.0, 0.92] if not minor else [0.93, 0.98, 1.07], np.float32) ** rng.uniform(0.3, 1.2)
    x = np.clip(x * gain * tint, 0, 1) ** rng.uniform(0.8, 1.25)
    blur = rng.uniform(0.0, 0.6)
    if blur > 0.1:  # a slow shutter: each frame keeps some of the last
        for i in range(1, len(x)):
            x[i] = (1 - blur) * x[i] + blur * x[i - 1]
    x = x + rng.normal(0, rng.uniform(0.003, 0.03), x.shape).astype(np.float32)
    out = np.clip(x * 255.0, 0, 255).astype(np.uint8)
    return h264_round_trip(out, fps=fps, crf=int(rng.integers(20, 34))) if rng.random() < 0.6 else out


def h264_round_trip(frames: np.ndarray, *, fps: Fraction, crf: int = 26) -> np.ndarray:
    """Encode frames with libx264 (in memory, PyAV) and decode them again."""
    import io

    import av

    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": str(crf)})
        vs.height, vs.width = frames.shape[1:3]
        vs.pix_fmt = "yuv420p"
        for img in frames:
            for packet in vs.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
    buf.seek(0)
    with av.open(buf) as inp:
        decoded = [f.to_ndarray(format="rgb24") for f in inp.decode(video=0)]
    return np.stack(decoded[: len(frames)]) if len(decoded) >= len(frames) else frames


def _init_scene(scene: str, size: int, rng: np.random.Generator) -> dict[str, object]:
    if scene == "shapes":
        k = int(rng.integers(2, 5))
        return {"pos": rng.uniform(10, size - 10, (k, 2)), "vel": rng.normal(0, 0.8, (k, 2)),
                "r": rng.uniform(4, 10, k)}
    if scene == "pan":
        tex = rng.random((size * 2, size * 2)).astype(np.float32)
        for _ in range(2):  # smooth a little: blobs, not pixel noise
            tex = (tex + np.roll(tex, 1, 0) + np.roll(tex, 1, 1) + np.roll(tex, -1, 0) + np.roll(tex, -1, 1)) / 5
        return {"tex": (tex - tex.min()) / (np.ptp(tex) + 1e-6), "off": np.zeros(2), "dir": rng.normal(0, 1, 2)}
    if scene == "particles":
        n = int(rng.integers(25, 60))
        return {"pos": rng.uniform(0, size, (n, 2)), "vel": rng.normal(0, 0.6, (n, 2))}
    if scene == "stripes":
        return {"theta": rng.uniform(0, math.pi), "freq": rng.uniform(0.15, 0.5), "phase": 0.0}
    return {"cx": rng.uniform(20, size - 20), "cy": rng.uniform(20, size - 20), "freq": rng.uniform(0.2, 0.6), "phase": 0.0}


def _draw(scene: str, st: dict, grad: np.ndarray, fg: np.ndarray, xx: np.ndarray, yy: np.ndarray, size: int,
          energy: float, hit: float, impulse: float, rng: np.random.Generator) -> np.ndarray:
    img = grad.copy()
    speed = 0.15 + 0.8 * energy  # continuous motion stays calm; hits stand out
    if scene == "shapes":
        pos, vel, r = st["pos"], st["vel"], st["r"]
        pos += vel * speed + (rng.normal(0, 9.0, pos.shape) * impulse if impulse else 0)
        for i in range(2):
            out = (pos[:, i] < 4) | (pos[:, i] > size - 4)
            vel[out, i] *= -1
        np.clip(pos, 4, size - 4, out=pos)
        for (px, py), rad in zip(pos, r * (1 + 0.5 * hit)):
            m = (xx - px) ** 2 + (yy - py) ** 2 < rad * rad
            img[m] = fg
    elif scene == "pan":
        st["off"] = st["off"] + st["dir"] * speed + (rng.normal(0, 12.0, 2) * impulse if impulse else 0)
        ox, oy = (int(st["off"][0]) % size), (int(st["off"][1]) % size)
        tex = st["tex"][oy : oy + size, ox : ox + size]
        img = img * (0.5 + 0.5 * tex[..., None]) + fg * 0.35 * tex[..., None]
    elif scene == "particles":
        pos, vel = st["pos"], st["vel"]
        centre = np.array([size / 2, size / 2])
        burst = (pos - centre) / size * 14.0 * impulse
        pos += vel * speed * 2 + burst
        pos %= size
        ij = pos.astype(int)
        for dy in (0, 1):
            for dx in (0, 1):
                img[(ij[:, 1] + dy) % size, (ij[:, 0] + dx) % size] = fg
    elif scene == "stripes":
        st["phase"] = st["phase"] + 0.3 * speed + (math.pi * 0.75 * min(1.0, impulse) if impulse else 0)
        v = np.sin((xx * math.cos(st["theta"]) + yy * math.sin(st["theta"])) * st["freq"] * (1 + 0.3 * hit) + st["phase"])
        img = img * (0.55 + 0.45 * (v[..., None] > 0)) + fg * 0.3 * (v[..., None] > 0)
    else:  # rings
        st["phase"] = st["phase"] + 0.4 * speed + (math.pi * 0.75 * min(1.0, impulse) if impulse else 0)
        rad = np.sqrt((xx - st["cx"]) ** 2 + (yy - st["cy"]) ** 2)
        v = np.sin(rad * st["freq"] - st["phase"])
        img = img * (0.6 + 0.4 * (v[..., None] > 0)) + fg * 0.25 * (v[..., None] > 0)
    return img
