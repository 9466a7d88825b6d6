"""The picture's look chooses mode, tonic and mood; --key and --mood pin them."""

from __future__ import annotations

import numpy as np

from muvi.mood import choose_key, choose_mood, picture_look


def _frames(rgb: tuple[int, int, int], n: int = 10) -> np.ndarray:
    f = np.empty((n, 32, 32, 3), np.uint8)
    f[:] = rgb
    return f


def test_bright_warm_reads_major_and_dark_cool_reads_minor() -> None:
    warm = picture_look(_frames((230, 170, 110)), motion=np.full(10, 0.01), cuts_per_minute=0)
    cool = picture_look(_frames((40, 50, 80)), motion=np.full(10, 0.01), cuts_per_minute=0)
    assert warm.valence > 0 > cool.valence
    kw, why = choose_key(warm, pinned=None, style_minor_share=0.25)
    kc, _ = choose_key(cool, pinned=None, style_minor_share=0.25)
    assert kw.mode == "major" and kc.mode == "minor" and "valence" in why and "hue" in why


def test_the_tonic_follows_the_footage_not_the_seed() -> None:
    looks = [picture_look(_frames(c), motion=np.zeros(10), cuts_per_minute=0)
             for c in ((200, 80, 80), (80, 200, 80), (80, 80, 200), (200, 200, 80), (80, 200, 200), (200, 80, 200))]
    tonics = {choose_key(lk, pinned=None, style_minor_share=0.3)[0].tonic for lk in looks}
    assert len(tonics) >= 4
    same = picture_look(_frames((200, 80, 80)), motion=np.zeros(10), cuts_per_minute=0)
    assert choose_key(same, pinned=None, style_minor_share=0.3) == choose_key(looks[0], pinned=None, style_minor_share=0.3)
    key, why = choose_key(same, pinned="Eb minor", style_minor_share=0.3)
    assert key.name == "Eb minor" and why == "pinned by --key"


def test_the_mood_follows_arousal_among_the_style_moods() -> None:
    calm = picture_look(_frames((120, 120, 120)), motion=np.zeros(10), cuts_per_minute=0)
    busy = picture_look(_frames((120, 120, 120)), motion=np.full(10, 0.08), cuts_per_minute=30)
    assert choose_mood(calm, style="pop", mode="major", given=None)[0] == "happy"
    assert choose_mood(busy, style="pop", mode="major", given=None)[0] == "playful"
    assert choose_mood(busy, style="rock", mode="minor", given=None)[0] == "tense"
    assert choose_mood(calm, style="rock", mode="minor", given=None)[0] == "dark"
    assert choose_mood(calm, style="pop", mode="major", given="sad") == ("sad", "given by --mood")


def test_auto_style_follows_arousal_among_styles_that_play_every_stem() -> None:
    from muvi.mood import AUTO_STYLES, choose_style

    still = picture_look(_frames((120, 120, 120)), motion=np.zeros(10), cuts_per_minute=0)
    busy = picture_look(_frames((120, 120, 120)), motion=np.full(10, 0.08), cuts_per_minute=40)
    assert choose_style(still, given=None)[0] == AUTO_STYLES[0][1] == "pop"
    assert choose_style(busy, given=None)[0] == "electronic" and "arousal" in choose_style(busy, given=None)[1]
    assert choose_style(busy, given="folk") == ("folk", "given by --style")
    assert not {"ambient", "folk", "cinematic"} & {s for _, s in AUTO_STYLES}
