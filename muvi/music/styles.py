"""Style knowledge for the procedural arranger: tempo ranges, progressions, grooves, programs.

Patterns are written one bar of 4/4 at 16th resolution (``x`` hit, ``X`` accent, ``.`` rest).
Progressions are Roman numerals on the key's own scale (in minor: ``III`` = 3 semitones,
``VI`` = 8, ``VII`` = 10; upper case = major triad, lower case = minor, suffixes ``7``,
``maj7``, ``m7``, ``m7b5``, ``sus4``, ``dim``). Every progression is diatonic (the minor
``V`` uses the harmonic-minor leading tone), so arranged pieces stay in key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["StyleSpec", "STYLES", "STYLE_NAMES", "MOODS"]

MOODS = ("happy", "sad", "tense", "calm", "epic", "dark", "playful", "romantic")


@dataclass(frozen=True)
class StyleSpec:
    name: str
    tempo: tuple[int, int]  # BPM range
    minor_share: float  # probability of a minor key
    progressions_major: tuple[str, ...]
    progressions_minor: tuple[str, ...]
    grooves: tuple[dict[str, str], ...]  # drum patterns (one bar, 4/4)
    bass: tuple[str, ...]  # bass rhythm/shape names
    comp: tuple[str, ...]  # chord comping names
    melody_density: tuple[float, float]  # notes per beat range
    programs: dict[str, tuple[int, ...]] = field(default_factory=dict)
    drums_share: float = 1.0  # probability that a piece has drums
    waltz_share: float = 0.0  # probability of 3/4
    swing: bool = False
    harmonic_rhythm: tuple[int, ...] = (1,)  # chords per bar choices
    melody_range: tuple[int, int] = (62, 86)


def _g(**rows: str) -> dict[str, str]:
    return rows


STYLES: dict[str, StyleSpec] = {
    "pop": StyleSpec(
        "pop", (88, 128), 0.25,
        ("I V vi IV", "vi IV I V", "I vi IV V", "IV I V vi", "I IV vi V", "I iii IV V"),
        ("i VI III VII", "i iv VI V", "VI VII i i"),
        (
            _g(kick="x.......x.x.....", snare="....x.......x...", hh_closed="x.x.x.x.x.x.x.x."),
            _g(kick="x..x..x...x.....", snare="....x.......x...", hh_closed="x.x.x.x.x.x.x.x.", clap="............x..."),
            _g(kick="x.......x.......", snare="....x.......x...", hh_closed="xxxxxxxxxxxxxxxx"),
        ),
        ("roots8", "root_fifth", "syncopated"),
        ("straight8", "quarters", "push"),
        (0.8, 1.6),
        {"bass": (33, 34, 38), "chords": (0, 4, 5, 24), "melody": (73, 80, 11, 56)},
        harmonic_rhythm=(1, 1, 2),
    ),
    "rock": StyleSpec(
        "rock", (100, 150), 0.35,
        ("I V IV I", "I IV V IV", "I V IV IV", "I IV I V", "I iii IV I"),
        ("i VII VI VII", "i VI VII i", "i iv VII i"),
        (
            _g(kick="x.......x.x.....", snare="....X.......X...", hh_closed="x.x.x.x.x.x.x.x."),
            _g(kick="x.x.....x.x.....", snare="....X.......X...", ride="x.x.x.x.x.x.x.x."),
            _g(kick="x...x...x...x...", snare="....X.......X...", hh_open="x.x.x.x.x.x.x.x."),
        ),
        ("roots8", "roots8", "root_octave"),
        ("power8", "straight8", "whole"),
        (0.8, 1.8),
        {"bass": (33, 34, 35), "chords": (29, 30, 27), "melody": (29, 30, 81)},
    ),
    "electronic": StyleSpec(
        "electronic", (118, 132), 0.6,
        ("vi IV I V", "I V vi IV", "IV V vi vi"),
        ("i VI VII i", "i iv VI v", "i VI III VII", "i i VI VII"),
        (
            _g(kick="x...x...x...x...", clap="....x.......x...", hh_open="..x...x...x...x.", hh_closed="x.x.x.x.x.x.x.x."),
            _g(kick="x...x...x...x...", snare="....x.......x...", hh_closed=".x.x.x.x.x.x.x.x", perc="..x...x...x..x.."),
            _g(kick="x...x...x...x..x", clap="....x.......x...", hh_closed="xxxxxxxxxxxxxxxx"),
        ),
        ("offbeat", "octave8", "pulse16"),
        ("stabs", "pad", "offbeat_stabs"),
        (1.0, 2.2),
        {"bass": (38, 39, 87), "chords": (81, 89, 90, 50), "melody": (80, 81, 84, 98)},
        harmonic_rhythm=(1,),
    ),
    "hiphop": StyleSpec(
        "hiphop", (80, 98), 0.7,
        ("ii7 V7 Imaj7 vi7", "Imaj7 IVmaj7"),
        ("im7 VImaj7", "im7 ivm7", "i VII VI V", "im7 VII7 VImaj7 V7"),
        (
            _g(kick="x.....x...x.....", snare="....x.......x...", hh_closed="x.x.x.x.x.x.x.x."),
            _g(kick="x..x......x..x..", snare="....x.......x...", hh_closed="x.xxx.x.x.xxx.x."),
            _g(kick="x.........xx....", clap="....x.......x...", hh_closed="x.x.x.x.x.x.x.xx", rim="......x.........")
        ),
        ("long808", "syncopated", "roots_sparse"),
        ("stabs", "pad", "sparse"),
        (0.6, 1.4),
        {"bass": (38, 39, 33), "chords": (4, 5, 0, 11), "melody": (4, 11, 73, 80)},
    ),
    "ambient": StyleSpec(
        "ambient", (60, 86), 0.4,
        ("Imaj7 IVmaj7", "I iii IV I", "vi IV I V", "Imaj7 vi7 IVmaj7 IVmaj7"),
        ("im7 VImaj7", "i VI III VII", "im7 ivm7"),
        (_g(kick="x...............", hh_closed="........x......."), _g(perc="x.....x.....x...", kick="x.......x.......")),
        ("whole", "pedal"),
        ("pad", "whole", "arp_slow"),
        (0.25, 0.6),
        {"bass": (89, 95, 32), "chords": (89, 88, 91, 48), "melody": (88, 92, 75, 10)},
        drums_share=0.35,
        harmonic_rhythm=(1,),
        melody_range=(64, 88),
    ),
    "cinematic": StyleSpec(
        "cinematic", (70, 110), 0.7,
        ("I V vi iii IV I IV V", "I vi IV V", "IV I V vi"),
        ("i VI III VII", "i iv VI V", "i VI iv V", "i i iv V"),
        (
            _g(tom_low="x.....x...x.....", crash="x...............", kick="x.......x......."),
            _g(kick="x..x..x.x..x..x.", tom_high="....x.......x...", tom_low="......x.......x."),
            _g(tom_low="x.x.x.x.x.x.x.x.", snare="....x.......x...", crash="x..............."),
        ),
        ("whole", "pedal", "roots8"),
        ("whole", "pad", "ostinato"),
        (0.4, 1.1),
        {"bass": (43, 42, 32), "chords": (48, 49, 50, 89), "melody": (40, 60, 71, 56)},
        drums_share=0.8,
        harmonic_rhythm=(1, 1, 2),
    ),
    "jazz": StyleSpec(
        "jazz", (110, 190), 0.3,
        ("ii7 V7 Imaj7 Imaj7", "Imaj7 vi7 ii7 V7", "iii7 vi7 ii7 V7", "Imaj7 IVmaj7 iii7 vi7"),
        ("iim7b5 V7 im7 im7", "im7 ivm7 V7 im7"),
        (
            _g(ride="x..xx..xx..xx..x", hh_pedal="....x.......x...", kick="x..............."),
            _g(ride="x..xx..xx..xx..x", hh_pedal="....x.......x...", snare="...........x...."),
        ),
        ("walking",),
        ("charleston", "comp_swing"),
        (1.0, 2.0),
        {"bass": (32, 33), "chords": (0, 4, 26), "melody": (66, 65, 56, 11)},
        swing=True,
        harmonic_rhythm=(1, 2),
        waltz_share=0.1,
    ),
    "folk": StyleSpec(
        "folk", (80, 120), 0.3,
        ("I IV I V", "I V I IV", "I vi IV V", "I IV V I"),
        ("i VII i v", "i iv VII III", "i VI VII i"),
        (
            _g(kick="x.......x.......", snare="....x.......x...", hh_closed="x...x...x...x..."),
            _g(perc="x.x.x.x.x.x.x.x.", kick="x.......x......."),
        ),
        ("root_fifth", "whole"),
        ("arp", "strum", "quarters"),
        (0.8, 1.6),
        {"bass": (32, 43), "chords": (24, 25, 46, 0), "melody": (73, 40, 71, 22)},
        drums_share=0.5,
        waltz_share=0.35,
    ),
}
STYLE_NAMES = tuple(STYLES)

# comping (muvi.music.arranger._Builder.comp) that strikes a chord at most once a bar, and comping
# that breaks the chord into single voices
HELD_COMPING = frozenset({"whole", "pad", "sparse"})
BROKEN_COMPING = frozenset({"arp", "arp_slow", "ostinato"})


def breaks_chords(style: str | None) -> bool:
    """Whether ``style`` plays its busy chord bars as arpeggios rather than the chord struck
    again: every comping of the style that strikes more than once a bar breaks the chord
    (ambient's slow arpeggio, cinematic's ostinato; not folk, which also strums). The decoder
    re-strikes a bar the model under-plays this way (:func:`muvi.curves.follow_curves`)."""
    spec = STYLES.get(style or "")
    busy = [k for k in spec.comp if k not in HELD_COMPING] if spec else []
    return bool(busy) and all(k in BROKEN_COMPING for k in busy)
