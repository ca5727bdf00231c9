"""Keys and chords: the modes' scales, the progressions and cadences each mode draws from, and chords
spelled from roman numerals (sevenths, ninths, suspensions, and the chord-scale a melody steps on).

Numerals are relative to the major scale on the tonic: aeolian's i bVI bIII bVII is the minor
key's i VI III VII. Nothing here depends on an emotion."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

SCALES = {  # semitones above the tonic, brightest first
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "ionian": (0, 2, 4, 5, 7, 9, 11),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "aeolian": (0, 2, 3, 5, 7, 8, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
}

# Per mode: main (A) and contrasting (B) progressions, one chord per bar; the seed picks a variant.
PROGRESSIONS = {
    "lydian": {"A": ("I II vi V", "I II iii II"), "B": ("iii II I V", "vi II iii V")},
    "ionian": {"A": ("I vi IV V", "I V vi IV", "I IV ii V"), "B": ("vi IV I V", "IV I ii V")},
    "mixolydian": {"A": ("I bVII IV I", "I v bVII IV"), "B": ("IV bVII I v", "vi IV bVII I")},
    "dorian": {"A": ("i IV bVII IV", "i ii bIII IV"), "B": ("bIII IV v i", "bVII IV i v")},
    "aeolian": {"A": ("i iv V i", "i bVI iv V"), "B": ("iv i bVI V", "bVI iv i v")},
    "phrygian": {"A": ("i bII bvii i", "i bII bIII bII"), "B": ("iv bVI bII i", "bVI bvii i bII")},
}
# Tonic-and-dominant progressions without the relative minor's chords (vi, iii): a major key
# takes them with probability v, so the brightest pieces sound the most major.
BRIGHT_PROGRESSIONS = {"A": ("I IV V I", "I V IV I"), "B": ("IV V I V", "IV I V I")}
# Phrases in the relative key (numerals over the home tonic): a major key's phrases turn to its
# relative minor (vi, with its own dominant III), a minor key's to its relative major (bIII).
# Their share of a piece is the other mode's share of the emotion (`relative_share`), so a
# neutral piece spends half its time in each and the mode is heard shading, not switching.
RELATIVE_PROGRESSIONS = {
    "ionian": {"A": ("vi ii III vi", "vi IV III vi"), "B": ("ii vi III vi", "IV ii III vi")},
    "aeolian": {"A": ("bIII bVI bVII bIII", "bIII iv bVII bIII"), "B": ("bVI bVII bIII bIII", "iv bVII bIII bVI")},
}
# Per mode: (pre-dominant, dominant) before the final tonic.
CADENCES = {
    "lydian": ("II", "V"),
    "ionian": ("IV", "V"),
    "mixolydian": ("IV", "bVII"),
    "dorian": ("IV", "V"),
    "aeolian": ("iv", "V"),
    "phrygian": ("iv", "bII"),
}
# A chord and its counterpart in the parallel mode (major <-> natural minor, same degree).
PARALLEL = {"I": "i", "ii": "ii°", "iii": "bIII", "IV": "iv", "V": "v", "vi": "bVI", "vii°": "bVII",
            "i": "I", "ii°": "ii", "bIII": "iii", "iv": "IV", "v": "V", "bVI": "vi", "bVII": "bVII"}

_MAJOR = SCALES["ionian"]
_NUMERALS = ("I", "II", "III", "IV", "V", "VI", "VII")
_TRIADS = {"major": (0, 4, 7), "minor": (0, 3, 7), "diminished": (0, 3, 6)}
_NUMERAL_RE = re.compile(r"([b#]?)(VII|VI|V|IV|III|II|I)(°?)", re.IGNORECASE)


@dataclass(frozen=True)
class Chord:
    """A chord as a roman numeral over the tonic: root and intervals in semitones."""

    name: str
    root: int  # semitones above the tonic, 0..11
    intervals: tuple[int, ...]  # above the root, ascending, starting with 0

    @property
    def tones(self) -> tuple[int, ...]:
        """Pitch classes relative to the tonic, root first."""
        return tuple((self.root + i) % 12 for i in self.intervals)

    @property
    def fifth(self) -> int:
        return next((i for i in self.intervals if i in (6, 7, 8)), 7)


def parse_numeral(numeral: str) -> Chord:
    """`bVII` -> major triad on the flat seventh; case gives the quality, `°` diminishes."""
    match = _NUMERAL_RE.fullmatch(numeral)
    if not match:
        raise ValueError(f"not a roman numeral chord: {numeral!r}")
    accidental, degree, dim = match.groups()
    root = _MAJOR[_NUMERALS.index(degree.upper())] + {"b": -1, "#": 1, "": 0}[accidental]
    quality = "diminished" if dim else ("major" if degree.isupper() else "minor")
    return Chord(numeral, root % 12, _TRIADS[quality])


def tonic_chord(mode: str) -> Chord:
    return parse_numeral("I" if 4 in SCALES[mode] else "i")


def with_seventh(chord: Chord, scale: Sequence[int]) -> Chord:
    """Add the mode's own seventh (a dominant seventh on V)."""
    if len(chord.intervals) != 3:
        return chord
    if chord.intervals == _TRIADS["major"] and chord.root == 7:
        seventh = 10
    else:
        options = (9, 10) if chord.intervals == _TRIADS["diminished"] else (10, 11)
        seventh = next((s for s in options if (chord.root + s) % 12 in scale), options[-1])
    suffix = {11: "maj7", 10: "ø7" if chord.intervals == _TRIADS["diminished"] else "7", 9: "°7"}
    return Chord(chord.name.rstrip("°") + suffix[seventh], chord.root, chord.intervals + (seventh,))


def with_ninth(chord: Chord, scale: Sequence[int]) -> Chord:
    """Add the mode's ninth above a seventh chord: the rub of a second inside the chord, the
    darkest colour the harmony uses (minor ninth chords when sad)."""
    if len(chord.intervals) != 4:
        return chord
    ninth = 14 if (chord.root + 2) % 12 in scale else 13
    return Chord(chord.name + ("add9" if ninth == 14 else "b9"), chord.root, chord.intervals + (ninth,))


def suspended(chord: Chord, scale: Sequence[int]) -> Chord:
    """Replace the third by the diatonic fourth (or second): open, unresolved colour."""
    if chord.intervals not in (_TRIADS["major"], _TRIADS["minor"]):
        return chord
    for sus, name in ((5, "sus4"), (2, "sus2")):
        if (chord.root + sus) % 12 in scale:
            return Chord(chord.name + name, chord.root, (0, sus, 7))
    return chord


def leading_tone_diminished() -> Chord:
    """vii°7: the darkest dominant, borrowed from harmonic minor."""
    return Chord("vii°7", 11, (0, 3, 6, 9))


def chord_scale(scale: Sequence[int], chord: Chord) -> tuple[int, ...]:
    """The mode's scale with chord tones swapped in for their clashing neighbours (V in minor
    raises the seventh degree), so melody steps never rub against the harmony."""
    pcs = list(scale)
    for tone in chord.tones:
        if tone in pcs:
            continue
        for neighbour in ((tone - 1) % 12, (tone + 1) % 12):  # a raised tone displaces the lower
            if neighbour in pcs and neighbour not in chord.tones and neighbour not in (0, 7):
                pcs[pcs.index(neighbour)] = tone  # never the tonic or the fifth
                break
    return tuple(sorted(pcs))
