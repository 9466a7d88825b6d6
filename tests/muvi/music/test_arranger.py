from __future__ import annotations

import pytest

from muvi.errors import InvalidInputError
from muvi.metrics import musicality
from muvi.music.arranger import arrange, parse_chord
from muvi.music.keys import Key, estimate_key
from muvi.music.roll import RollSpec
from muvi.music.styles import STYLE_NAMES, STYLES


@pytest.mark.parametrize("style", STYLE_NAMES)
def test_every_style_is_in_key_and_full(style: str) -> None:
    for seed in range(3):
        p = arrange(style, seed=seed)
        m = musicality(p.score, stems=list(p.stems_present))
        assert m["in_scale_ratio"] == 1.0
        assert estimate_key(p.score.notes) in (p.key, None) or estimate_key(p.score.notes).tonic in {
            (p.key.tonic + d) % 12 for d in (0, 3, 9, 5, 7)
        }
        assert {"bass", "chords", "melody"} <= set(p.stems_present)
        for stem in ("bass", "chords"):
            assert m["stems"][stem]["empty_bar_ratio"] == 0.0, (style, seed, stem)
        assert p.score.n_steps == sum(b for _, _, b in p.sections) * p.beats_per_bar * 4
        assert STYLES[style].tempo[0] <= p.bpm <= STYLES[style].tempo[1]
        # everything fits the roll the model generates, with no out-of-range folding needed
        spec = RollSpec()
        for n in p.score.notes:
            st = spec.stem(n.stem)
            assert st.row_of(n.pitch) is not None
            if not st.drums:
                assert st.low <= n.pitch <= st.high, (style, n)


def test_pieces_vary_and_are_reproducible() -> None:
    a, b, a2 = arrange("pop", seed=1), arrange("pop", seed=2), arrange("pop", seed=1)
    assert a.score.notes == a2.score.notes
    assert a.score.notes != b.score.notes
    progressions = {tuple(c[1] for c in arrange("rock", seed=s).chords[:4]) for s in range(12)}
    assert len(progressions) >= 6


def test_drums_have_fills_and_crashes_at_section_changes() -> None:
    p = arrange("rock", seed=3, form=[("A", 4), ("B", 4)])
    bar = 16
    drums = [n for n in p.score.notes if n.stem == "drums"]
    crash_bars = {n.start // bar for n in drums if n.pitch == 49 and n.start % bar == 0}
    assert 4 in crash_bars  # section B starts with a crash
    fill = [n for n in drums if 3 * bar + 8 <= n.start < 4 * bar and n.pitch in (38, 45, 48)]
    assert len(fill) >= 2  # the bar before B ends with a fill


def test_jazz_swings_and_walks() -> None:
    p = arrange("jazz", seed=4, beats_per_bar=4)
    offbeats = [n.start % 4 for n in p.score.notes if n.stem == "melody" and n.start % 2 == 0 and n.start % 4]
    assert not offbeats  # off-beat eighths are swung to the last 16th
    intro_steps = sum(b for name, _, b in p.sections if name == "intro") * 16  # intros may hold the root
    bass = [n for n in p.score.notes if n.stem == "bass" and n.start >= intro_steps]
    assert bass and all(n.length == 4 for n in bass) and len({n.pitch for n in bass}) > 5


def test_waltz_and_bad_style() -> None:
    p = arrange("folk", seed=0, beats_per_bar=3)
    assert p.score.tempo.beats_per_bar == 3 and p.score.steps_per_bar == 12
    with pytest.raises(InvalidInputError, match="unknown style"):
        arrange("polka", seed=0)
    assert parse_chord("V7", Key(0)).pitch_classes == (7, 11, 2, 5)
    assert parse_chord("iim7b5", Key(0, "minor")).pitch_classes == (2, 5, 8, 0)
    assert parse_chord("VII", Key(9, "minor")).root == 7
