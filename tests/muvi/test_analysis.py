from __future__ import annotations

from fractions import Fraction

import numpy as np

from muvi.analysis import (
    detect_cuts,
    find_accents,
    histogram_distance,
    motion_curve,
    motion_peaks,
    thumbnails,
)


def _shot(colour: tuple[int, int, int], n: int, *, size: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.zeros((n, size, size, 3), np.float32) + np.array(colour, np.float32)
    base += rng.normal(0, 6, (1, size, size, 3))  # texture, the same through the shot
    return np.clip(base, 0, 255).astype(np.uint8)


def test_same_hue_cut_is_a_cut_but_a_flash_is_not() -> None:
    a = _shot((60, 30, 45), 10, seed=1)
    b = _shot((150, 75, 112), 10, seed=2)  # same hue, far brighter: a new shot
    assert detect_cuts(np.concatenate([a, b])) == [10]
    flash = a.copy()
    for k, gain in ((4, 2.2), (5, 1.5), (6, 1.15)):  # a flash that decays over three frames
        flash[k] = np.clip(a[k].astype(np.float32) * gain, 0, 255).astype(np.uint8)
    assert detect_cuts(flash) == []
    cut_with_flash = np.concatenate([a, b])
    cut_with_flash[10] = np.clip(b[0].astype(np.float32) * 1.7, 0, 255).astype(np.uint8)  # crash on the cut
    assert detect_cuts(cut_with_flash) == [10]


def test_fast_motion_is_motion_not_a_cut() -> None:
    frames = _shot((40, 90, 40), 20)
    for i in range(20):
        x = (i * 9) % 48
        frames[i, 20:36, x : x + 16] = (250, 250, 250)
    assert detect_cuts(frames) == []
    m = motion_curve(frames)
    assert m[0] == 0 and m[1:].min() > 0


def test_accents_have_exact_times_and_forced_cuts() -> None:
    a, b = _shot((200, 40, 40), 12, seed=3), _shot((30, 40, 200), 12, seed=4)
    frames = np.concatenate([a, b])
    frames[5, 10:30, 10:30] = 255  # a single jolt of motion in the first shot
    times = [Fraction(k, 10) for k in range(24)]
    acc = find_accents(frames, times, forced_cuts=[18])
    cuts = [x for x in acc if x.kind == "cut"]
    assert [c.index for c in cuts] == [12, 18] and cuts[0].time == Fraction(6, 5) and cuts[0].strength == 1.0
    assert any(x.kind == "motion" and x.index in (5, 6) for x in acc)
    assert thumbnails(frames).shape == (24, 32, 32, 3)
    assert motion_peaks(np.zeros(10)) == []


def _texture(n: int, *, seed: int, shift: float = 0.0, contrast: float = 40.0, speed: int = 0, size: int = 64) -> np.ndarray:
    """A smooth grey street-like picture (one palette), panning ``speed`` pixels per frame."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0 : size + n * speed].astype(np.float32)
    p = rng.uniform(0, 2 * np.pi, 3)
    g = 115 + contrast * np.sin(x / 7 + p[0]) * np.cos(y / 9 + p[1]) + 15 * np.sin((x + y) / 5 + p[2]) + shift
    tile = g[..., None] * np.array([1.0, 0.97, 0.92])
    out = np.stack([tile[:, i * speed : i * speed + size] for i in range(n)])
    return np.clip(out, 0, 255).astype(np.uint8)


def test_cut_between_shots_of_one_palette_during_motion_is_a_cut() -> None:
    a = _texture(14, seed=5, speed=2)  # a panning shot
    b = _texture(14, seed=6, contrast=70.0, speed=1)  # another shot of the same street, more contrast
    frames = np.concatenate([a, b])
    assert detect_cuts(frames) == [14]
    assert 0.1 < histogram_distance(frames)[14] < 0.3  # the colour path alone would miss it
    # both shots panning fast (at the pipeline's 10 fps): the luma change at the cut hardly stands
    # out from the motion, the colour change does
    fast = np.concatenate([_texture(14, seed=5, speed=6), _texture(14, seed=6, contrast=70.0, shift=10.0, speed=6)])
    assert detect_cuts(fast) == [14] and 0.2 < histogram_distance(fast)[14] < 0.3
    # a dropped frame in the pan (two frames' motion at once) is not a cut, nor is the pan itself
    drop = np.concatenate([a[:7], a[8:]])
    assert detect_cuts(drop) == [] and detect_cuts(a) == []
