"""The picture's look → a mood tag, the mode and the tonic (when the user pins neither).

The model composes in a common tonic (training pieces are transposed to C), so the key the
listener hears is chosen here and the notes are transposed to it. Neither is left to the seed:

- **mode** from the picture's *valence*: bright, warm and colourful pictures read as major;
  dark, cool and grey ones as minor (the synthetic training pairs were drawn the same way:
  minor darker and cooler, :mod:`muvi.train.synthvideo`);
- **mood tag** (when ``--mood`` is not given) from valence and *arousal* (motion energy and cut
  rate), among the moods the style was trained with in that mode (:func:`muvi.train.data.mood_for`'s
  table);
- **tonic** from the picture's dominant hue, laid on the circle of fifths (hue turns once
  around the colour wheel as the tonic turns once around the fifths), moved up to two fifths
  sharper for a brighter picture and flatter for a darker one (real footage's hues crowd
  around skin and lamp-light orange); footage of another colour or light gets another key,
  and the same footage always the same one.

Every choice comes with its reason, for ``report.json``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from muvi.music.keys import Key

__all__ = ["Look", "picture_look", "choose_key", "choose_mood", "choose_style", "AUTO_STYLES"]

# the styles ``auto`` chooses from, by the picture's arousal (calmest first): all four stems play
# in every bar of their corpus pieces. Ambient and folk play drums in a third and a half of their
# bars, so calm footage left to them came out with a silent drum track (7 of 16 real clips); the
# shipped model's cinematic takes of still pictures came out sparse (bass and chords at
# 0.01-0.3x the style's corpus median; people walking: bass empty in 71 % of the bars), where
# pop takes of the same calm clips played every stem in every bar
AUTO_STYLES = ((0.4, "pop"), (0.65, "rock"), (1.01, "electronic"))

# reference points of the valence score (from the real clips muvi was tried on: luma 0.2-0.6,
# saturation 0.05-0.5, warmth (R - B) -0.1..+0.1)
_LUMA_MID, _LUMA_SPAN = 0.42, 0.12
_SAT_MID, _SAT_SPAN = 0.2, 0.15
_WARM_SPAN = 0.06
_AROUSAL_MID = 0.5


@dataclass(frozen=True)
class Look:
    luma: float  # mean brightness 0..1
    saturation: float  # mean HSV saturation 0..1
    warmth: float  # mean (R − B), -1..1
    hue: float  # dominant hue in degrees (saturation-weighted mean of the colour wheel)
    arousal: float  # motion and cuts, 0..1
    valence: float  # bright, warm, colourful > 0; dark, cool, grey < 0

    def to_json(self) -> dict[str, float]:
        return {k: round(float(v), 4) for k, v in self.__dict__.items()}


LOOK_CHUNK = 2048  # frames per pass: an hour of samples needs no timeline-long float copies


def picture_look(frames: np.ndarray, *, motion: np.ndarray, cuts_per_minute: float) -> Look:
    """The look of sampled frames (T, H, W, 3) uint8 (any size; 32×32 thumbnails are ideal),
    its colour statistics summed :data:`LOOK_CHUNK` frames at a time."""
    sums = sum((_colour_sums(frames[a: a + LOOK_CHUNK]) for a in range(0, len(frames), LOOK_CHUNK)),
               np.zeros(5, np.float64))
    luma, warmth, hx, hy, s = (float(v) for v in sums / max(1, int(np.prod(frames.shape[:3]))))
    hue = math.degrees(math.atan2(hy, hx)) % 360.0  # hue as a vector on the colour wheel, weighted by saturation
    valence = ((luma - _LUMA_MID) / _LUMA_SPAN + warmth / _WARM_SPAN + (s - _SAT_MID) / _SAT_SPAN) / 3.0
    m = float(np.mean(motion)) if len(motion) else 0.0
    arousal = float(np.clip(0.5 * min(1.0, m / 0.04) + 0.5 * min(1.0, cuts_per_minute / 20.0), 0.0, 1.0))
    return Look(luma, s, warmth, hue, arousal, float(valence))


def _colour_sums(frames: np.ndarray) -> np.ndarray:
    """Sums over every pixel of luma, warmth (R − B), the saturation-weighted colour-wheel
    vector (x, y) and saturation, in 0..1 units."""
    x = np.asarray(frames, np.float32) / 255.0
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    mx, mn = x.max(axis=-1), x.min(axis=-1)
    sat = (mx - mn) / (mx + 1e-4)
    return np.array([(0.299 * r + 0.587 * g + 0.114 * b).sum(dtype=np.float64), (r - b).sum(dtype=np.float64),
                     ((r - 0.5 * (g + b)) * sat).sum(dtype=np.float64), (0.866 * (g - b) * sat).sum(dtype=np.float64),
                     sat.sum(dtype=np.float64)])


_FIFTHS = [(7 * i) % 12 for i in range(12)]  # C G D A E B F# C# G# D# A# F


def choose_key(look: Look, *, pinned: str | None, style_minor_share: float) -> tuple[Key, str]:
    """The key and why. ``pinned`` (``--key``) wins; else mode from valence (the style's own
    leaning shifts the boundary: a style mostly in minor needs a brighter picture for major)
    and tonic from the hue."""
    if pinned:
        return Key.parse(pinned), "pinned by --key"
    bias = (style_minor_share - 0.3) * 1.0
    minor = look.valence < bias
    bright = float(np.clip((look.luma - _LUMA_MID) / _LUMA_SPAN, -1.0, 1.0))
    tonic = _FIFTHS[int(round(look.hue / 30.0 + 2.0 * bright)) % 12]
    key = Key(tonic, "minor" if minor else "major")
    mood_word = "dark, cool or grey" if minor else "bright, warm or colourful"
    why = (f"{key.mode}: the picture reads {mood_word} (valence {look.valence:+.2f} against {bias:+.2f} for this style; "
           f"luma {look.luma:.2f}, saturation {look.saturation:.2f}, warmth {look.warmth:+.3f}); "
           f"tonic {key.name.split()[0]}: dominant hue {look.hue:.0f} deg on the circle of fifths, "
           f"{abs(2 * bright):.1f} fifths {'sharper' if bright >= 0 else 'flatter'} for its brightness")
    return key, why


def choose_style(look: Look, *, given: str | None) -> tuple[str, str]:
    """The style and why: the user's, else by the picture's arousal (:data:`AUTO_STYLES`)."""
    if given:
        return given, "given by --style"
    style = next(s for top, s in AUTO_STYLES if look.arousal < top)
    return style, f"{style}: arousal {look.arousal:.2f} (motion and cuts) on the auto ladder " + \
        ", ".join(f"<{top:g} {s}" for top, s in AUTO_STYLES[:-1]) + f", else {AUTO_STYLES[-1][1]}"


def choose_mood(look: Look, *, style: str, mode: str, given: str | None) -> tuple[str | None, str]:
    """The mood tag and why: the user's, else the calmer or livelier of the moods the style
    was trained with in this mode, by the picture's arousal."""
    if given:
        return given, "given by --mood"
    from muvi.train.data import moods_of

    options = moods_of(style, mode)
    if not options:
        return None, f"no trained mood for {style} in {mode}"
    lively = ("happy", "playful", "epic", "tense")
    ranked = sorted(options, key=lambda m: (m in lively, m))  # calm ones first
    pick = ranked[-1] if look.arousal >= _AROUSAL_MID else ranked[0]
    return pick, f"{pick}: {style} in {mode}, arousal {look.arousal:.2f} ({'lively' if look.arousal >= _AROUSAL_MID else 'calm'})"
