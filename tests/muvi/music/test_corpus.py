from __future__ import annotations

import json
from pathlib import Path

import pytest

from muvi.errors import InvalidInputError
from muvi.music.corpus import Corpus, CorpusOptions, build_corpus
from muvi.music.sources import HYDROGEN_SONGS, read_hydrogen_song

SMALL = CorpusOptions(seed=3, arranged=16, music21=True, music21_limit=3, hydrogen=False, shard_size=7, workers=2)


def test_build_is_deterministic_and_complete(tmp_path: Path) -> None:
    m1 = build_corpus(tmp_path / "a", SMALL, progress=False)
    m2 = build_corpus(tmp_path / "b", SMALL, progress=False)
    a = sorted((tmp_path / "a" / "shards").iterdir())
    b = sorted((tmp_path / "b" / "shards").iterdir())
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert (tmp_path / "a" / "manifest.json").read_bytes() == (tmp_path / "b" / "manifest.json").read_bytes()
    assert m1 == m2
    s = m1["summary"]
    assert s["pieces"] == 16 + 3 and s["sources"] == {"arranger": 16, "music21-bach": 3}
    assert set(s["styles"]) >= {"pop", "rock", "electronic", "hiphop", "ambient", "cinematic", "jazz", "folk", "chorale"}
    assert s["hours"] > 0 and s["bars_per_stem"]["melody"] > 0
    for p in m1["pieces"]:
        assert p["license"] and isinstance(p["non_commercial"], bool)
        assert p["key"] and p["bars"] > 0 and p["stems_present"]
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["sources"]["music21-bach"]["non_commercial"] is False


def test_corpus_reads_back_scores(tmp_path: Path) -> None:
    build_corpus(tmp_path, SMALL, progress=False)
    c = Corpus(tmp_path)
    c.verify()
    assert len(c) == 19
    arranged = next(i for i, p in enumerate(c.pieces) if p["source"] == "arranger")
    sc = c.score(arranged)
    assert sc.style == c.pieces[arranged]["style"] and len(sc.notes) > 50 and sc.n_steps == c.pieces[arranged]["steps"]
    assert c.chords(arranged) and all(0 <= r < 12 for _, r, _ in c.chords(arranged))
    (tmp_path / "shards" / c.pieces[0]["shard"]).write_bytes(b"broken")
    with pytest.raises(InvalidInputError, match="corrupt"):
        c.verify()
    with pytest.raises(InvalidInputError, match="no manifest"):
        Corpus(tmp_path / "nothing")


@pytest.mark.skipif(not HYDROGEN_SONGS.is_dir(), reason="Debian hydrogen-data not installed")
def test_hydrogen_songs_parse_to_drums() -> None:
    sc = read_hydrogen_song(HYDROGEN_SONGS / "GM_kit_demo1.h2song")
    assert sc.stems == ("drums",) and sc.tempo.bpm_at(0) == 115 and sc.n_steps == 11 * 16
    kicks = [n for n in sc.notes if n.pitch == 36]
    assert kicks and kicks[0].start == 0


@pytest.mark.skipif(not HYDROGEN_SONGS.is_dir(), reason="Debian hydrogen-data not installed")
def test_hydrogen_song_round_trips_through_the_roll_and_midi(tmp_path: Path) -> None:
    from muvi.music.midi import read_midi, write_midi
    from muvi.music.roll import DRUM_CLASSES, RollSpec, drum_class_of

    sc = read_hydrogen_song(HYDROGEN_SONGS / "tutorial_georgyporgy.h2song")
    spec = RollSpec()
    back = spec.decode(spec.encode(sc.notes, sc.n_steps))
    # drums come back as their class's GM note: compare (step, class) pairs, one per cell
    cells = {(n.start, drum_class_of(n.pitch)) for n in sc.notes}
    assert {(n.start, drum_class_of(n.pitch)) for n in back} == cells and len(cells) > 1500
    assert all(n.pitch == DRUM_CLASSES[drum_class_of(n.pitch)][1] for n in back)
    again = read_midi(write_midi(sc.with_notes(back), tmp_path / "g.mid"))
    assert {(n.start, n.pitch) for n in again.notes} == {(n.start, n.pitch) for n in back}
