"""Third-party music the corpus is built from, each with its license recorded.

- music21's bundled corpus: Bach chorales (4-part; compositions in the public domain, encodings
  distributed with music21 by permission of the encoders, see ``music21/corpus/license.txt``)
  and, only when asked, the Essen folksong collection (non-commercial permission only: its
  pieces carry ``non_commercial=True``).
- Hydrogen's demo songs (Debian ``hydrogen-data``, GPL-2+ per the package's copyright file):
  drum patterns arranged into songs, parsed from their XML.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

from muvi.errors import MediaError
from muvi.music.midi import Part, assign_stems
from muvi.music.roll import drum_class_of
from muvi.music.score import Note, Score
from muvi.music.tempo import TempoMap

__all__ = ["SourcePiece", "HYDROGEN_SONGS", "read_hydrogen_song", "hydrogen_pieces", "music21_pieces", "LICENSES"]

log = logging.getLogger(__name__)

HYDROGEN_SONGS = Path("/usr/share/hydrogen/data/demo_songs")
LICENSES = {
    "music21-bach": ("public domain composition; encoding distributed with music21 by permission "
                     "(music21/corpus/license.txt)", False),
    "music21-essen": ("Essen folksong collection: permission for non-commercial use only "
                      "(music21/corpus/essenFolksong/license.txt)", True),
    "hydrogen-demo": ("GPL-2+ (Debian hydrogen-data, /usr/share/doc/hydrogen-data/copyright)", False),
}


@dataclass(frozen=True)
class SourcePiece:
    source: str  # key of LICENSES
    name: str
    score: Score
    style: str

    @property
    def license(self) -> str:
        return LICENSES[self.source][0]

    @property
    def non_commercial(self) -> bool:
        return LICENSES[self.source][1]


# -- Hydrogen ----------------------------------------------------------------------------------
_NAME_TO_GM = (
    (r"kick|bass ?drum|bd", 36), (r"snare|sd", 38), (r"rim|stick", 37), (r"clap", 39),
    (r"open", 46), (r"pedal", 44), (r"hat|hh", 42), (r"floor|tom ?low|low ?tom|tom 2", 45),
    (r"tom", 48), (r"crash|splash|cymbal", 49), (r"ride|bell", 51),
    (r"shaker|maraca|conga|clave|cowbell|tamb|bongo|perc", 54),
)


def _gm_note(name: str, midi_out: int | None) -> int | None:
    low = name.lower()
    for pattern, note in _NAME_TO_GM:
        if re.search(pattern, low):
            return note
    return midi_out if midi_out is not None and drum_class_of(midi_out) is not None else None


def read_hydrogen_song(path: Path | str, *, steps_per_beat: int = 4) -> Score:
    """A Hydrogen ``.h2song`` as a drums-only :class:`Score` (48 ticks per beat)."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise MediaError(path, f"not a readable Hydrogen song ({exc})") from exc
    bpm = Fraction(root.findtext("bpm") or "120").limit_denominator(1000)
    instruments = {}
    for inst in root.iter("instrument"):
        iid, name = inst.findtext("id"), inst.findtext("name")
        if iid is None or name is None or inst.find("layer") is None and inst.find("instrumentComponent") is None and inst.find("filename") is None:
            continue
        out = inst.findtext("midiOutNote")
        note = _gm_note(name, int(out) if out and out.lstrip("-").isdigit() else None)
        if note is not None:
            instruments[iid] = note
    patterns: dict[str, tuple[int, list[tuple[int, str, float]]]] = {}
    for pat in root.find("patternList") or []:
        size = int(pat.findtext("size") or 192)
        notes = []
        for n in pat.find("noteList") or []:
            notes.append((int(n.findtext("position") or 0), n.findtext("instrument") or "", float(n.findtext("velocity") or 0.8)))
        patterns[pat.findtext("name") or ""] = (size, notes)
    ticks_per_step = 48 // steps_per_beat
    notes_out: list[Note] = []
    pos = 0  # ticks
    for group in root.find("patternSequence") or []:
        ids = [p.text for p in group if p.text in patterns]
        if not ids:
            continue
        length = max(patterns[i][0] for i in ids)
        for pid in ids:
            for tick, inst, vel in patterns[pid][1]:
                if inst in instruments and tick % ticks_per_step == 0:
                    s = (pos + tick) // ticks_per_step
                    notes_out.append(Note(s, instruments[inst], s + 1, max(1, min(127, round(vel * 127))), "drums"))
        pos += length
    n_steps = pos // ticks_per_step
    return Score(tuple(notes_out), TempoMap.constant(bpm), n_steps, steps_per_beat, {}, style=None)


def hydrogen_pieces(folder: Path = HYDROGEN_SONGS) -> Iterator[SourcePiece]:
    """Every demo song found (none if Hydrogen's data is not installed)."""
    if not folder.is_dir():
        log.warning("Hydrogen demo songs not found at %s (Debian package hydrogen-data)", folder)
        return
    for path in sorted(folder.glob("*.h2song")):
        score = read_hydrogen_song(path)
        if score.notes:
            yield SourcePiece("hydrogen-demo", path.stem, score, "drums")


# -- music21 ---------------------------------------------------------------------------------
def _score_from_music21(stream: object, *, steps_per_beat: int = 4) -> Score | None:
    """Parts of a music21 score as bass/chords/melody by :func:`assign_stems`; exact offsets."""
    import numpy as np

    parts = []
    for part in stream.parts:  # type: ignore[attr-defined]
        notes = []
        for el in part.flatten().notes:
            off, dur = Fraction(el.offset), Fraction(el.duration.quarterLength)
            if dur <= 0:
                continue
            for p in getattr(el, "pitches", ()):
                notes.append((off, off + dur, int(p.midi), int(getattr(el.volume, "velocity", None) or 80)))
        if notes:
            parts.append(notes)
    if not parts:
        return None
    summary = [Part(0, False, float(np.median([n[2] for n in ns])), 1.0) for ns in parts]
    stems = assign_stems(summary)
    out: list[Note] = []
    last = 0
    for stem, ns in zip(stems, parts):
        for a, b, pitch, vel in ns:
            s = round(a * steps_per_beat)
            e = max(s + 1, round(b * steps_per_beat))
            out.append(Note(s, pitch, e, vel, stem))
            last = max(last, e)
    ts = stream.recurse().getElementsByClass("TimeSignature").first()  # type: ignore[attr-defined]
    bpb = 4
    if ts is not None:
        q = Fraction(ts.numerator * 4, ts.denominator)
        bpb = int(q) if q.denominator == 1 and int(q) in (2, 3, 4, 6) else 4
    mm = stream.recurse().getElementsByClass("MetronomeMark").first()  # type: ignore[attr-defined]
    bpm = int(mm.number) if mm is not None and mm.number and 40 <= mm.number <= 200 else 80
    bar = steps_per_beat * bpb
    n_steps = -(-last // bar) * bar
    return Score(tuple(out), TempoMap.constant(bpm, beats_per_bar=bpb), n_steps, steps_per_beat,
                 {"bass": 42, "chords": 48, "melody": 73})


def music21_pieces(*, include_non_commercial: bool = False, limit: int | None = None) -> Iterator[SourcePiece]:
    """Bach chorales (and Essen folk songs if asked) from music21's bundled corpus."""
    try:
        from music21 import corpus
    except ImportError:
        log.warning("music21 is not installed: its corpus is skipped")
        return
    paths = [(p, "music21-bach", "chorale") for p in sorted(corpus.getComposer("bach")) if "bwv" in Path(p).name]
    if include_non_commercial:
        paths += [(p, "music21-essen", "folk") for p in sorted(corpus.getComposer("essenFolksong"))]
    for path, source, style in paths[:limit]:
        yield from _parse_music21(path, source, style)


def _parse_music21(path: object, source: str, style: str) -> Iterator[SourcePiece]:
    from music21 import converter

    try:
        parsed = converter.parse(str(path))
    except Exception as exc:  # music21 raises many types for odd encodings
        log.info("skipping %s: %s", path, exc)
        return
    opus = list(parsed.scores) if hasattr(parsed, "scores") and parsed.__class__.__name__ == "Opus" else [parsed]
    for i, s in enumerate(opus):
        try:
            score = _score_from_music21(s)
        except Exception as exc:
            log.info("skipping %s #%d: %s", path, i, exc)
            continue
        if score is not None and score.notes:
            name = Path(str(path)).stem + (f"#{i}" if len(opus) > 1 else "")
            yield SourcePiece(source, name, score, style)
