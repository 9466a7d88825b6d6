from __future__ import annotations

import numpy as np
import pytest
import torch

from muvi.errors import InvalidInputError
from muvi.music.roll import DRUM_CLASSES, ONSET, SUSTAIN, VELOCITY, RollSpec, StemSpec, drum_class_of
from muvi.music.score import Note

SPEC = RollSpec()


def test_geometry() -> None:
    assert [s.name for s in SPEC.stems] == ["drums", "bass", "chords", "melody"]
    assert SPEC.n_rows == 12 + 33 + 37 + 42 and SPEC.token_dim == 3 * SPEC.n_rows
    assert len(DRUM_CLASSES) == 12 and drum_class_of(36) == 0 and drum_class_of(35) == 0 and drum_class_of(100) is None
    assert SPEC.row_slice("bass") == slice(12, 45)


def test_encode_values_and_layout() -> None:
    roll = SPEC.encode([Note(2, 40, 6, 127, "bass"), Note(0, 38, 1, 64, "drums")], 8)
    assert roll.shape == (8, 3, SPEC.n_rows) and roll.dtype == np.float32
    r = SPEC.row_slice("bass").start + 40 - 28
    assert roll[2, ONSET, r] == 1 and roll[3, ONSET, r] == -1
    assert list(roll[:, SUSTAIN, r]) == [-1, -1, 1, 1, 1, 1, -1, -1]
    assert roll[2, VELOCITY, r] == pytest.approx(1.0)
    d = drum_class_of(38)
    assert roll[0, ONSET, d] == 1 and roll[0, VELOCITY, d] == pytest.approx(2 * 64 / 127 - 1)
    assert set(np.unique(roll[:, :2])) <= {-1.0, 1.0}


def test_round_trip_keeps_on_grid_notes() -> None:
    notes = [
        Note(0, 36, 1, 100, "drums"), Note(4, 42, 5, 70, "drums"), Note(4, 38, 5, 90, "drums"),
        Note(0, 40, 8, 80, "bass"), Note(8, 43, 10, 81, "bass"),
        Note(0, 60, 16, 60, "chords"), Note(0, 64, 16, 60, "chords"), Note(0, 67, 8, 60, "chords"),
        Note(8, 67, 16, 61, "chords"),  # re-articulation right after a note on the same pitch
        Note(2, 72, 3, 100, "melody"), Note(3, 74, 7, 99, "melody"),
    ]
    back = SPEC.decode(SPEC.encode(notes, 16))
    assert back == sorted(notes)


def test_decode_accepts_torch_and_noisy_values() -> None:
    notes = [Note(1, 50, 5, 100, "bass")]
    x = torch.from_numpy(SPEC.encode(notes, 8))
    x[:, :2] = x[:, :2] * 0.8 + 0.05  # noisy planes, still on the right side of 0
    assert SPEC.decode(x) == notes


def test_monophony_strongest_onset_wins_and_new_onset_ends_note() -> None:
    roll = SPEC.empty(8)
    m = SPEC.row_slice("melody").start
    roll[0, ONSET, m + 10] = 0.9
    roll[0, ONSET, m + 12] = 0.5
    roll[0:8, SUSTAIN, m + 10] = 1
    roll[4, ONSET, m + 5] = 1
    roll[4:6, SUSTAIN, m + 5] = 1
    out = SPEC.decode(roll)
    assert [(n.start, n.pitch, n.end) for n in out] == [(0, 65, 4), (4, 60, 6)]


def test_no_stuck_notes_and_orphan_sustain_ignored() -> None:
    spec = RollSpec(max_note_steps=8)
    roll = spec.empty(40)
    c = spec.row_slice("chords").start
    roll[0, ONSET, c] = 1
    roll[:, SUSTAIN, c] = 1  # sustain forever
    roll[:, SUSTAIN, c + 3] = 1  # sustain with no onset
    out = spec.decode(roll)
    assert [(n.start, n.end) for n in out] == [(0, 8)]
    assert all(n.end <= 40 for n in out)


def test_out_of_range_pitches_fold_by_octaves_and_unknown_stems_skip() -> None:
    back = SPEC.decode(SPEC.encode([Note(0, 70, 2, 90, "bass"), Note(0, 60, 2, 90, "vocals")], 4))
    assert [(n.stem, n.pitch) for n in back] == [("bass", 58)]


def test_shape_and_spec_validation() -> None:
    with pytest.raises(InvalidInputError, match="roll must be"):
        SPEC.decode(np.zeros((4, 3, 10)))
    with pytest.raises(InvalidInputError, match="unique"):
        RollSpec(stems=(StemSpec("a", 40, 60), StemSpec("a", 40, 60)))
    with pytest.raises(InvalidInputError, match="octave"):
        StemSpec("tiny", 60, 62)
    assert SPEC.from_tokens(SPEC.to_tokens(SPEC.empty(3))).shape == (3, 3, SPEC.n_rows)
