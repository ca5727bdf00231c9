"""The embedded default composer: an emotion becomes a multi-instrument piece built from music theory.

No weights and no global randomness: every choice comes from `random.Random` streams derived from
`options.seed`, so the same seed and emotion give the same MIDI, byte for byte.

How a point (valence v, arousal a, both in [-1, 1]) becomes music (`plan_for` is the code). Every
cue moves continuously, so adjacent points sound adjacent (issue 14; `bench/emotion.py` measures it):

    what             driven by  mapping
    mode             v          home key major for v >= 0, minor below; the other mode's share,
                                minor_share = 0.5 - 0.6 v (0.02 at v = .8, 0.98 at v = -.8), shades
                                it: phrases turn to the relative key (vi in major, bIII in minor)
                                with 1.4 x that share, and chords are borrowed from the parallel
                                mode with 0.5 x it; the brightest major pieces favour I-IV-V
    harmony colour   v          dissonance d = clip(.5 - .6 v, 0, 1): sevenths (suspensions in a
                                major key) with probability d, ninths on top and a tonic add9 at
                                the close when d > .5, chromatic passing tones and bass approaches
    register         v          melody centred on MIDI 67 + 7 v, string pads on 53 + 4 v
    contour          v          each phrase follows a blend of a rising arch (peak at 60 %) and a
                                falling line, weighted (1 + v) / 2
    tempo            a          110 + 50 a BPM (60 .. 160)
    density          a          every part's notes per second geometric between its ends at a = -1
                                and +1 (MELODY_RATE, BASS_RATE, GUITAR_RATE, STRINGS_RATE,
                                DRUM_RATE): each 0.4 of arousal multiplies it by 1.5-1.7
    velocity         a          centre 68 + 32 a, range +-12 (about 24..48 calm, 88..112 loud)
    articulation     a          notes sound 0.95 - 0.2 (1 + a) of their slot (legato .. staccato)
    syncopation      a          clip(.1 + .4 a, 0, .5): off-beat cells and rhythm slots
    drums            a          the whole kit always plays, thinner when calm: ride and side stick
                                below -.2; hats and snare below .45; open hats, crashes, tom fills
    instruments      v, a       the five families always play (programs vary by mood); arousal
                                thins or fills each part instead of switching it on or off

Rhythm: each accompanying part draws its bar rhythms (`pulse`) from the seed, per section, with
the metrically strong slots most likely, so seeds differ and sections repeat.

Form: 4/4 bars, 4-bar phrases labelled A A B A (a 1-bar intro or a 2-bar cadential extension
absorbs leftover bars). A dynamic arc (FORM_ARC) runs from a quiet opening to a climax at 65 %
(where the melody also rises) and a softer close, with a swell inside each phrase; drums and bass
wait for the first 10 % of a longer piece; the melody breathes at each phrase end. The last phrase
closes with the mode's cadence (IV V I, iv V i) and a held tonic chord that lasts until exactly
`options.duration_s`. The melody repeats a one-bar motif (bar 1), answers it (bar 2), varies it
(bar 3) and cadences (bar 4); it uses chord tones on beats 1 and 3 and scale steps between.
Roman numerals are relative to the major scale on the tonic (aeolian's i bVI bIII bVII is the
minor-key i VI III VII).

A `Trajectory` is read once per bar for tempo and once per phrase for everything else
(`trajectory.at(fraction of the piece)`), so the music follows the emotion; the key stays put.
"""

from __future__ import annotations

import io
import math
import random
import re
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np
import pretty_midi

from aria_engine.emotion import Emotion, Trajectory
from aria_engine.music import FAMILIES, Composition, ProgressFn
from aria_engine.options import GenerationOptions

PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
LOWEST_NOTE, HIGHEST_NOTE = 21, 108  # the published models' pitch range (piano keys)

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
RELATIVE_GAIN = 1.4  # phrases in the relative key: this times the other mode's share...
RELATIVE_CAP = 0.9  # ...at most (the home key must still be heard)
BORROW_SHARE = 0.5  # chords borrowed from the parallel mode: this share of the other mode's share
# Per mode: (pre-dominant, dominant) before the final tonic.
CADENCES = {
    "lydian": ("II", "V"),
    "ionian": ("IV", "V"),
    "mixolydian": ("IV", "bVII"),
    "dorian": ("IV", "V"),
    "aeolian": ("iv", "V"),
    "phrygian": ("iv", "bII"),
}

DRUM = {"kick": 36, "side_stick": 37, "snare": 38, "closed_hat": 42, "open_hat": 46,
        "crash": 49, "ride": 51, "high_tom": 50, "mid_tom": 47, "low_tom": 45}
# One bar on a sixteenth-note grid.
DRUM_PATTERNS = {
    "soft": {"kick": "x.......x.......", "side_stick": "....x.......x...", "ride": "x...x...x...x..."},
    "groove": {"kick": "x.......x.x.....", "snare": "....x.......x...", "closed_hat": "x.x.x.x.x.x.x.x."},
    "full": {"kick": "x.....x.x.x.....", "snare": "....x.......x...",
             "closed_hat": "xxxxxxxxxxxxxx.x", "open_hat": "..............x."},
}
DRUM_FILL = ("snare", "high_tom", "mid_tom", "low_tom")  # sixteenths on the phrase's last beat

_MAJOR = SCALES["ionian"]
_NUMERALS = ("I", "II", "III", "IV", "V", "VI", "VII")
_TRIADS = {"major": (0, 4, 7), "minor": (0, 3, 7), "diminished": (0, 3, 6)}
_NUMERAL_RE = re.compile(r"([b#]?)(VII|VI|V|IV|III|II|I)(°?)", re.IGNORECASE)

# Valence shades the harmony gradually (issue 14): the share of minor-mode colour falls linearly
# with valence, and every chord other than a phrase's first and the final tonic is borrowed from
# the parallel mode with that share (modal mixture), so there is no single threshold.
MINOR_AT_NEUTRAL = 0.5
MINOR_SLOPE = 0.6  # minor share = 0.5 - 0.6 v: 0.98 at v = -0.8, 0.02 at v = +0.8
# A chord and its counterpart in the parallel mode (major <-> natural minor, same degree).
PARALLEL = {"I": "i", "ii": "ii°", "iii": "bIII", "IV": "iv", "V": "v", "vi": "bVI", "vii°": "bVII",
            "i": "I", "ii°": "ii", "bIII": "iii", "iv": "IV", "v": "V", "bVI": "vi", "bVII": "bVII"}
HOME_MODES = ("ionian", "aeolian")  # the key; other modes' colours come from mixture

# Arousal sets every part's notes per second on a geometric scale between two ends (at a = -1,
# 60 BPM, and a = +1, 160 BPM), so each step of 0.4 multiplies a density by the same factor,
# (hi / lo) ** 0.2, about 1.5-1.7x: never double. The parts turn these into notes per beat.
MELODY_RATE = (0.8, 6.9)
BASS_RATE = (0.35, 3.5)
GUITAR_RATE = (0.6, 4.0)  # strokes per second
GUITAR_STRINGS = (1.0, 2.5)  # strings per stroke: single arpeggio notes .. two- and three-string strokes
STRINGS_RATE = (0.25, 2.4)  # chord changes per second of the string section
DRUM_RATE = (0.75, 7.0)  # hits per second, all voices
DRUM_SHARES = {"time": 0.5, "kick": 0.3, "back": 0.2}  # timekeeper, kick drum, backbeat

# The metrical weight of each sixteenth of a 4/4 bar: where a rhythm's notes go first.
METRIC_WEIGHT = (4.0, 0.4, 1.0, 0.4, 2.0, 0.4, 1.0, 0.4, 3.0, 0.4, 1.0, 0.4, 2.0, 0.4, 1.0, 0.4)
RHYTHM_JITTER = 2.6  # how far the seed can reorder those weights: variety across seeds
SYNCOPATION_PULL = 1.6  # extra weight on off-beats per unit of syncopation

# Form: a dynamic arc over the piece (a quiet intro, a climax at 65 %, a softer close), in
# velocity steps, and a swell inside each phrase.
FORM_ARC = ((0.0, -0.8), (0.15, -0.4), (0.65, 1.0), (0.85, 0.3), (1.0, -0.6))
FORM_DYNAMIC = 11  # velocity at the arc's +-1
PHRASE_SWELL = (-2, 1, 4, -3)  # velocity per bar of a four-bar phrase
INTRO_SHARE = 0.1  # drums and bass wait this share of the piece (pieces of 6 bars or more)
CLIMAX_LIFT = 2  # scale steps the melody rises in the climax phrase
BREATH_NOTE_BEATS = 1.0  # a phrase's last melody note stops after this, leaving a rest
BREATH_AT_BEAT = 3.0  # where pads and guitar stop in a phrase's last bar, with the melody
MAJOR_SUS_SHARE = 0.7  # in a major key, this share of the coloured chords is suspended
NINTH_SHARE = 2.0  # ninths on that share of sevenths, times (dissonance - 0.5), when dissonance > 0.5
PASSING_SHARE = 0.9  # chromatic passing tones, times dissonance, where the melody moves a whole tone

TICKS_PER_BEAT = 480
_MIN_NOTE_S = 0.02  # shorter notes could collapse onto one MIDI tick
_STRUM_GAP_S = 0.008  # between strings of a strummed chord


# ---------------------------------------------------------------------------------------------
# Harmony


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


# ---------------------------------------------------------------------------------------------
# The plan: the documented mapping from one point of the plane to musical parameters


@dataclass(frozen=True)
class MusicalPlan:
    """Everything one emotion decides, before any note is written."""

    valence: float
    arousal: float
    tempo_bpm: int
    mode: str  # a key of SCALES
    tonic: str  # a PITCH_NAMES entry
    progression: tuple[str, ...]  # section A, one chord per bar
    contrast: tuple[str, ...]  # section B
    cadence: tuple[str, str, str]  # pre-dominant, dominant, tonic
    dissonance: float  # 0..1
    density: float  # melody notes per beat
    velocity: tuple[int, int]  # (soft, loud) MIDI velocities
    articulation: float  # sounding fraction of each note's slot
    syncopation: float  # 0..1
    melody_register: int  # MIDI pitch the melody centres on
    pad_register: int
    contour: str  # "rising arch" | "wave" | "falling"
    drums: str  # "off" | "soft" | "groove" | "full"
    # Labels of each part's feel, for descriptions; the notes come from the densities below.
    bass_pattern: str  # "held" | "roots" | "walking" | "octaves"
    guitar_style: str  # "arpeggio" | "strum" | "drive"
    strings_style: str  # "sustain" | "pulse" | "stabs"
    instruments: tuple[tuple[str, int], ...]  # (family, General MIDI program), canonical order
    minor_share: float = 0.0  # 0..1: how much of the harmony is minor-mode colour
    bass_density: float = 1.0  # notes per beat
    guitar_onsets: float = 1.0  # strokes per beat
    guitar_strings: float = 1.0  # strings per stroke
    strings_onsets: float = 0.25  # chords per beat
    drum_density: float = 1.0  # hits per beat

    @property
    def families(self) -> tuple[str, ...]:
        return tuple(family for family, _ in self.instruments)

    @property
    def tonic_pc(self) -> int:
        return PITCH_NAMES.index(self.tonic)

    @property
    def scale(self) -> tuple[int, ...]:
        return SCALES[self.mode]

    def describe(self) -> str:
        return (f"{self.tonic} {self.mode}, {self.tempo_bpm} BPM, {' '.join(self.progression)}, "
                f"{', '.join(self.families)}")


def _clip(x: float, lo: float, hi: float) -> float:
    return max(lo, min(hi, x))


def tempo_for(arousal: float) -> int:
    return round(110 + 50 * arousal)


def minor_share(valence: float) -> float:
    """How much of the harmony is minor-mode colour: falls linearly with valence."""
    return _clip(MINOR_AT_NEUTRAL - MINOR_SLOPE * valence, 0.0, 1.0)


def mode_for(valence: float, arousal: float) -> str:
    """The home key: minor when most of the harmony is (v < 0). Its tonic opens and closes the
    piece; mixture shades everything between, so v = 0 is a major key with half its chords
    borrowed from the minor, and v = -0.4 a minor key with a quarter borrowed from the major."""
    return "aeolian" if minor_share(valence) > MINOR_AT_NEUTRAL else "ionian"


def dissonance_for(valence: float, arousal: float) -> float:
    """Sevenths, suspensions and passing tones: valence alone sets them, so consonance follows
    valence at every arousal (arousal already speaks through tempo, density and loudness)."""
    return _clip(0.5 - 0.6 * valence, 0.0, 1.0)


def geometric(arousal: float, ends: tuple[float, float]) -> float:
    """A value between ends[0] (a = -1) and ends[1] (a = +1), on a geometric scale."""
    lo, hi = ends
    return lo * (hi / lo) ** ((arousal + 1) / 2)


def per_beat(arousal: float, rate: tuple[float, float]) -> float:
    """Notes per beat that give `geometric(arousal, rate)` notes per second at this tempo."""
    return geometric(arousal, rate) * 60.0 / tempo_for(arousal)


def families_for(valence: float, arousal: float, min_instruments: int = 1) -> tuple[str, ...]:
    """The whole band always plays: arousal thins or fills each part rather than switching
    instruments on and off (which made densities jump between adjacent levels)."""
    return FAMILIES


def programs_for(valence: float, arousal: float) -> dict[str, int]:
    """General MIDI programs, varied inside each family by mood."""
    if valence < -0.2 and arousal > 0.4:
        guitar = 30  # distortion guitar: tense and loud
    elif arousal < 0:
        guitar = 24  # nylon
    elif arousal > 0.5:
        guitar = 27  # clean electric
    else:
        guitar = 25  # steel
    if valence < -0.3 and arousal > 0.3:
        strings = 44  # tremolo strings
    elif arousal < -0.3:
        strings = 49  # slow string ensemble
    else:
        strings = 48
    return {
        "drums": 0,
        "guitar": guitar,
        "bass": 32 if arousal < 0 else (33 if arousal < 0.5 else 34),
        "piano": 4 if valence > 0.2 and arousal < -0.2 else 0,
        "strings": strings,
    }


def _strings_style(arousal: float, program: int) -> str:
    if arousal >= 0.6 and program != 44:  # tremolo strings already shiver
        return "stabs"
    return "pulse" if arousal >= 0.2 else "sustain"


def _drum_level(arousal: float, families: tuple[str, ...]) -> str:
    """The kit's sound (its density comes from DRUM_DENSITY): brushes-like ride and side stick,
    then hats and snare, then the full kit with open hats, crashes and tom fills."""
    if "drums" not in families:
        return "off"
    return "soft" if arousal < -0.2 else ("groove" if arousal < 0.45 else "full")


def plan_for(emotion: Emotion, *, seed: int | None = None, min_instruments: int = 1) -> MusicalPlan:
    """The mapping in the module docstring. With a seed, the key and progression variants are
    drawn from it; without one the key is C and the first variants are used."""
    v, a = emotion.valence, emotion.arousal
    pick = random.Random(f"{seed}/plan") if seed is not None else None
    tonic = PITCH_NAMES[pick.randrange(12)] if pick else "C"
    mode = mode_for(v, a)
    variants = PROGRESSIONS[mode]
    if mode == "ionian" and (pick.random() if pick else 0.5) < v:
        variants = BRIGHT_PROGRESSIONS
    a_variant = pick.randrange(len(variants["A"])) if pick else 0
    b_variant = pick.randrange(len(variants["B"])) if pick else 0
    families = families_for(v, a, min_instruments)
    programs = programs_for(v, a)
    centre = round(68 + 32 * a)
    return MusicalPlan(
        valence=v,
        arousal=a,
        tempo_bpm=tempo_for(a),
        mode=mode,
        tonic=tonic,
        progression=tuple(variants["A"][a_variant].split()),
        contrast=tuple(variants["B"][b_variant].split()),
        cadence=CADENCES[mode] + (tonic_chord(mode).name,),
        dissonance=round(dissonance_for(v, a), 3),
        density=round(per_beat(a, MELODY_RATE), 3),
        velocity=(max(16, centre - 12), min(120, centre + 12)),
        articulation=round(0.95 - 0.2 * (1 + a), 3),
        syncopation=round(_clip(0.1 + 0.4 * a, 0.0, 0.5), 3),
        melody_register=round(67 + 7 * v),
        pad_register=round(53 + 4 * v),
        contour="rising arch" if v > 0.2 else ("falling" if v < -0.2 else "wave"),
        drums=_drum_level(a, families),
        bass_pattern="held" if a < -0.5 else ("roots" if a < 0 else ("walking" if a < 0.5 else "octaves")),
        guitar_style="arpeggio" if a < -0.2 else ("strum" if a < 0.5 else "drive"),
        strings_style=_strings_style(a, programs["strings"]),
        instruments=tuple((f, programs[f]) for f in families),
        minor_share=round(minor_share(v), 3),
        bass_density=round(per_beat(a, BASS_RATE), 3),
        guitar_onsets=round(per_beat(a, GUITAR_RATE), 3),
        guitar_strings=round(geometric(a, GUITAR_STRINGS), 3),
        strings_onsets=round(per_beat(a, STRINGS_RATE), 3),
        drum_density=round(per_beat(a, DRUM_RATE), 3),
    )


# ---------------------------------------------------------------------------------------------
# Form: bars, phrases, chords


class Hit(NamedTuple):
    """One note in beats (a beat is a quarter note; bar i starts at beat 4 i)."""

    pitch: int
    start: float
    end: float
    velocity: int


@dataclass
class Bar:
    index: int
    start: float  # beats
    beats: float  # 4, except the final held chord
    time_s: float  # when it starts
    bpm: float
    plan: MusicalPlan | None = None
    chord: Chord | None = None
    scale: tuple[int, ...] = ()  # chord-scale for melody steps
    position: int = 0  # bar within its phrase
    final: bool = False
    dynamic: int = 0  # velocity added by the form's arc and the phrase's swell
    intro: bool = False  # drums and bass wait
    breath: bool = False  # the last bar of a phrase that is not the last: the band breathes

    @property
    def end(self) -> float:
        return self.start + self.beats


@dataclass
class Phrase:
    index: int
    letter: str  # "A" or "B"
    bars: list[Bar]
    plan: MusicalPlan
    last: bool = False
    climax: bool = False
    relative: bool = False  # in the relative key (see RELATIVE_PROGRESSIONS)


def bar_grid(trajectory: Trajectory, duration_s: float) -> list[Bar]:
    """Bars at the trajectory's tempo; the final bar holds its chord until exactly duration_s.

    Full bars are laid while at least 1.75 bars of time remain, so the held final chord lasts
    0.75..1.75 bars (or the whole piece when it is shorter than a bar)."""
    bars: list[Bar] = []
    t = 0.0
    while True:
        bpm = float(tempo_for(trajectory.at(t / duration_s).arousal))
        bar_s = 240.0 / bpm
        if t + 1.75 * bar_s > duration_s:
            beats = (duration_s - t) * bpm / 60.0
            bars.append(Bar(len(bars), 4.0 * len(bars), beats, t, bpm, final=True))
            return bars
        bars.append(Bar(len(bars), 4.0 * len(bars), 4.0, t, bpm))
        t += bar_s


def phrase_lengths(n_bars: int) -> tuple[int, list[int]]:
    """(intro bars, phrase lengths): 4-bar phrases; one leftover bar becomes an intro, two
    extend the last phrase's cadence."""
    if n_bars <= 4:
        return 0, [n_bars]
    rest = n_bars % 4
    intro = 1 if rest in (1, 3) else 0
    extension = 2 if rest in (2, 3) else 0
    lengths = [4] * ((n_bars - intro - extension) // 4)
    lengths[-1] += extension
    return intro, lengths


def section_letters(n_phrases: int) -> str:
    if n_phrases <= 2:
        return "A" * n_phrases
    if n_phrases == 3:
        return "ABA"
    return ("AABA" * n_phrases)[: n_phrases - 1] + "A"


def _colour(chord: Chord, scale: Sequence[int], plan: MusicalPlan, rng: random.Random) -> Chord:
    """Sevenths and suspensions with probability growing with dissonance. A major key takes
    mostly suspensions: its diatonic sevenths add the scale's strongest degrees and would make
    a slightly darker major piece sound more major than a bright one."""
    roll = rng.random()
    if plan.mode == "ionian" and roll < MAJOR_SUS_SHARE * plan.dissonance:
        return suspended(chord, scale)
    if roll < plan.dissonance:
        seventh = with_seventh(chord, scale)
        return with_ninth(seventh, scale) if rng.random() < NINTH_SHARE * (plan.dissonance - 0.5) else seventh
    if roll < 1.25 * plan.dissonance:
        return suspended(chord, scale)
    return chord


def relative_share(plan: MusicalPlan) -> float:
    """The share of the other mode in this emotion: minor colour in a major key, and back."""
    return plan.minor_share if plan.mode == "ionian" else 1.0 - plan.minor_share


def _other_mode(mode: str) -> str:
    return "aeolian" if mode == "ionian" else "ionian"


def _mixed(numeral: str, plan: MusicalPlan, rng: random.Random) -> tuple[str, str]:
    """(numeral, mode it comes from): borrowed from the parallel mode with the probability that
    puts `minor_share` of the harmony in minor."""
    if numeral in PARALLEL and rng.random() < BORROW_SHARE * relative_share(plan):
        return PARALLEL[numeral], _other_mode(plan.mode)
    return numeral, plan.mode


def _phrase_chords(phrase: Phrase, rng: random.Random) -> list[tuple[Chord, tuple[int, ...]]]:
    """(chord, the scale it comes from) per bar: the section's progression with mixture, and in
    the last phrase the mode's cadence onto the home tonic."""
    plan = phrase.plan
    progression = plan.progression if phrase.letter == "A" else plan.contrast
    if phrase.relative:
        progression = tuple(rng.choice(RELATIVE_PROGRESSIONS[plan.mode][phrase.letter]).split())
    n = len(phrase.bars)
    count = n if not phrase.last else max(0, n - 3)
    chords = []
    for j in range(count):
        numeral, mode = (progression[j % 4], plan.mode) if j == 0 else _mixed(progression[j % 4], plan, rng)
        chords.append((_colour(parse_numeral(numeral), SCALES[mode], plan, rng), SCALES[mode]))
    if not phrase.last:
        return chords
    pre, dominant, tonic = (parse_numeral(name) for name in plan.cadence)
    if plan.dissonance > 0.55 and dominant.name == "V" and 3 in plan.scale and rng.random() < plan.dissonance:
        dominant = leading_tone_diminished()
    elif plan.dissonance > 0.3:
        dominant = with_seventh(dominant, plan.scale)
    if rng.random() < NINTH_SHARE * (plan.dissonance - 0.5):  # a sad close keeps a rub
        tonic = Chord(tonic.name + "add9", tonic.root, tonic.intervals + (14,))
    return chords + [(c, plan.scale) for c in (pre, dominant, tonic)][-min(n, 3):]


def form_energy(fraction: float) -> float:
    """The piece's dynamic arc at a fraction of its length, -1..1 (FORM_ARC)."""
    xs, ys = zip(*FORM_ARC)
    return float(np.interp(fraction, xs, ys))


def arrange(trajectory: Trajectory, options: GenerationOptions) -> tuple[list[Bar], list[Phrase]]:
    """Lay out bars and phrases, give each phrase its plan and each bar its chord."""
    seed, duration = options.seed, options.duration_s
    bars = bar_grid(trajectory, duration)
    intro, lengths = phrase_lengths(len(bars))
    letters = section_letters(len(lengths))

    def plan_at(time_s: float) -> MusicalPlan:
        return plan_for(trajectory.at(time_s / duration), seed=seed, min_instruments=options.min_instruments)

    phrases: list[Phrase] = []
    first = intro
    for k, length in enumerate(lengths):
        members = bars[first:first + length]
        middle = (members[0].time_s + (members[-1].time_s if length > 1 else duration)) / 2
        phrases.append(Phrase(k, letters[k], members, plan_at(middle), last=k == len(lengths) - 1))
        first += length

    harmony = random.Random(f"{seed}/harmony")
    _choose_relative(phrases, harmony)
    for bar in bars[:intro]:
        bar.plan = phrases[0].plan
        bar.chord = _colour(tonic_chord(bar.plan.mode), bar.plan.scale, bar.plan, harmony)
        bar.scale = chord_scale(bar.plan.scale, bar.chord)
    for phrase in phrases:
        for position, (bar, (chord, scale)) in enumerate(zip(phrase.bars, _phrase_chords(phrase, harmony))):
            bar.plan, bar.chord, bar.position = phrase.plan, chord, position
            bar.scale = chord_scale(scale, chord)
    _shape_form(bars, phrases, duration)
    return bars, phrases


def _choose_relative(phrases: list[Phrase], rng: random.Random) -> None:
    """Which phrases turn to the relative key: their count follows each phrase's
    `relative_share` exactly on average (a running sum with one random offset, so seeds differ
    in which phrases, not in how many). The last phrase stays home, to cadence there."""
    total = rng.random()
    for phrase in phrases[:-1]:
        before = math.floor(total)
        share = min(RELATIVE_CAP, RELATIVE_GAIN * relative_share(phrase.plan))
        total += share * len(phrases) / (len(phrases) - 1)
        phrase.relative = math.floor(total) > before


def _shape_form(bars: list[Bar], phrases: list[Phrase], duration: float) -> None:
    """The dynamic arc and phrase swells, the intro where drums and bass wait, the climax."""
    for bar in bars:
        swell = PHRASE_SWELL[bar.position % len(PHRASE_SWELL)] if not bar.final else 0
        bar.dynamic = round(FORM_DYNAMIC * form_energy(bar.time_s / duration)) + swell
        bar.intro = len(bars) >= 6 and bar.time_s < INTRO_SHARE * duration
    for phrase in phrases[:-1]:
        phrase.bars[-1].breath = True
    if len(phrases) >= 3:
        peak = max(FORM_ARC, key=lambda point: point[1])[0] * duration
        climax = min(phrases[:-1], key=lambda p: abs((p.bars[0].time_s + p.bars[-1].time_s) / 2 - peak))
        climax.climax = True


# ---------------------------------------------------------------------------------------------
# Melody: motifs on a scale-step grid, shaped by the phrase contour


@dataclass(frozen=True)
class Motif:
    rhythm: tuple[tuple[float, float], ...]  # (onset, length) in beats within one bar
    steps: tuple[int, ...]  # scale-step offsets, one per note, centred on 0


# (cell length in beats, note lengths; negative = rest, syncopated?)
_CELLS = (
    (4.0, (4.0,), False),
    (2.0, (2.0,), False),
    (2.0, (1.5, 0.5), False),
    (2.0, (0.5, 1.0, 0.5), True),
    (1.0, (1.0,), False),
    (1.0, (0.5, 0.5), False),
    (1.0, (0.75, 0.25), False),
    (1.0, (-0.5, 0.5), True),
    (1.0, (0.5, 0.25, 0.25), False),
    (1.0, (0.25, 0.25, 0.5), False),
    (1.0, (0.25, 0.25, 0.25, 0.25), False),
)


def _rhythm(rng: random.Random, density: float, syncopation: float) -> tuple[tuple[float, float], ...]:
    """Fill one bar with rhythm cells whose notes-per-beat sit near `density`."""
    notes: list[tuple[float, float]] = []
    position = 0.0
    while position < 4.0 - 1e-9:
        fitting = [c for c in _CELLS
                   if c[0] <= 4.0 - position and (c[0] == 1.0 or position % c[0] == 0)]
        weights = []
        for length, values, syncopated in fitting:
            per_beat = sum(1 for x in values if x > 0) / length
            weight = math.exp(-((per_beat - density) ** 2) / 0.35)
            # per unit of time, not per cell: long cells would otherwise fill most of the bar
            weights.append(weight * (3.0 * syncopation if syncopated else 1.0) / length)
        length, values, _ = rng.choices(fitting, weights)[0]
        for value in values:
            if value > 0:
                notes.append((position, value))
            position += abs(value)
    return tuple(notes)


def _walk(rng: random.Random, n: int) -> tuple[int, ...]:
    """Mostly steps, some leaps that turn back (gap fill), centred on zero."""
    steps, position, last_leap = [0], 0, 0
    for _ in range(n - 1):
        if last_leap:
            move, last_leap = -int(math.copysign(1, last_leap)), 0
        else:
            roll = rng.random()
            if roll < 0.7:
                move = rng.choice((-1, 1))
            elif roll < 0.75:
                move = 0
            else:
                move = last_leap = rng.choice((-4, -3, -2, 2, 3, 4))
        position += move
        steps.append(position)
    mean = round(sum(steps) / len(steps))
    return tuple(s - mean for s in steps)


def make_motif(rng: random.Random, density: float, syncopation: float) -> Motif:
    rhythm = _rhythm(rng, density, syncopation)
    return Motif(rhythm, _walk(rng, len(rhythm)))


def vary(motif: Motif, rng: random.Random) -> Motif:
    """The same rhythm with its tail bent: the ear still recognises the motif."""
    steps = list(motif.steps)
    if len(steps) >= 3 and rng.random() < 0.5:
        pivot = len(steps) // 2
        steps[pivot:] = [2 * steps[pivot] - s for s in steps[pivot:]]  # mirror the second half
    else:
        steps[-1] += rng.choice((-2, -1, 1, 2))
    return Motif(motif.rhythm, tuple(steps))


def cadence_rhythm(density: float) -> tuple[tuple[float, float], ...]:
    if density < 1.0:
        return ((0.0, 2.0), (2.0, 2.0))
    if density < 1.8:
        return ((0.0, 1.0), (1.0, 1.0), (2.0, 2.0))
    return ((0.0, 0.5), (0.5, 0.5), (1.0, 0.5), (1.5, 0.5), (2.0, 2.0))


def contour(t: float, valence: float) -> float:
    """Phrase shape in [-0.5, 0.5] at fraction t: rising arch (pleasant) blended with a
    falling line (sad)."""
    arch = math.sin(math.pi * t ** 1.36) - 0.5  # peaks at t = 0.6
    fall = 0.5 - t
    w = (1 + valence) / 2
    return w * arch + (1 - w) * fall


_CONTOUR_SPAN = 6.0  # scale steps between the contour's low and high point


def _step_pitch(step: int, scale: Sequence[int], reference: int) -> int:
    return reference + scale[step % 7] + 12 * (step // 7)


def _nearest_step(target: float, allowed: Sequence[int]) -> int:
    """The step nearest `target` whose degree (step mod 7) is in `allowed`."""
    base = math.floor(target)
    candidates = [s for s in range(base - 7, base + 8) if s % 7 in allowed]
    return min(candidates, key=lambda s: (abs(s - target), s))


def _follow_motion(step: int, previous: int, motion: int, allowed: Sequence[int]) -> int:
    """Keep the motif's direction (a rising motif never lands on a repeated note) and never
    leap more than an octave."""
    if motion and (step - previous) * motion <= 0:
        direction = 1 if motion > 0 else -1
        ahead = range(previous + direction, previous + 8 * direction, direction)
        step = next(s for s in ahead if s % 7 in allowed)
    while abs(step - previous) > 7:
        step -= 7 if step > previous else -7
    return step


class MelodyWriter:
    """Writes the piano's melody phrase by phrase from section motifs."""

    def __init__(self, seed: int, tonic_pc: int) -> None:
        self.seed = seed
        self.reference = 60 + tonic_pc  # step 0: the tonic above middle C
        self._motifs: dict[tuple, tuple[Motif, Motif]] = {}

    def motifs(self, letter: str, plan: MusicalPlan) -> tuple[Motif, Motif]:
        """(idea, answer) of a section; equal plans give equal motifs, so sections repeat."""
        key = (letter, round(plan.density * 4), round(plan.syncopation * 4))
        if key not in self._motifs:
            rng = random.Random(f"{self.seed}/motif/{key}")
            self._motifs[key] = (make_motif(rng, plan.density, plan.syncopation),
                                 make_motif(rng, plan.density, plan.syncopation))
        return self._motifs[key]

    def phrase(self, phrase: Phrase) -> list[Hit]:
        plan = phrase.plan
        rng = random.Random(f"{self.seed}/melody/{phrase.index}")
        idea, answer = self.motifs(phrase.letter, plan)
        varied = vary(idea, rng)
        total = 4.0 * len(phrase.bars)
        centre = (plan.melody_register - self.reference) * 7 / 12 + (CLIMAX_LIFT if phrase.climax else 0)
        hits: list[Hit] = []
        previous = None
        for bar in phrase.bars:
            rhythm, offsets = self._bar_material(bar, len(phrase.bars), idea, answer, varied, plan)
            chord_degrees = [i for i, pc in enumerate(bar.scale) if pc in bar.chord.tones] or range(7)
            for index, ((onset, length), offset) in enumerate(zip(rhythm, offsets)):
                t = (4.0 * bar.position + onset) / total
                target = centre + _CONTOUR_SPAN * contour(t, plan.valence) + offset
                closing = bar.position == len(phrase.bars) - 1 and index == len(rhythm) - 1
                if closing and phrase.last:
                    allowed = (0,)
                elif onset in (0.0, 2.0) or closing:
                    allowed = chord_degrees
                else:
                    allowed = range(7)
                step = _nearest_step(target, allowed)
                if previous is not None:
                    motion = offset - offsets[index - 1] if index else 0
                    step = _follow_motion(step, previous, motion, allowed)
                previous = step
                pitch = _step_pitch(step, bar.scale, self.reference)
                hits.append(self._note(bar, onset, length, pitch, t, closing, plan, rng))
        if hits and not phrase.last:  # the melody breathes before the next phrase
            hits[-1] = hits[-1]._replace(end=min(hits[-1].end, hits[-1].start + BREATH_NOTE_BEATS))
        return self._passing_tones(hits, plan, rng)

    @staticmethod
    def _bar_material(bar, n_bars, idea, answer, varied, plan):
        if bar.final:
            return ((0.0, bar.beats),), (0,)
        if bar.position == n_bars - 1:
            rhythm = cadence_rhythm(plan.density)
            return rhythm, tuple(range(len(rhythm) - 1, -1, -1))
        if bar.position % 2 == 1:
            return answer.rhythm, answer.steps
        motif = idea if bar.position == 0 else varied
        return motif.rhythm, motif.steps

    @staticmethod
    def _note(bar, onset, length, pitch, t, closing, plan, rng) -> Hit:
        soft, loud = plan.velocity
        accent = 8 if onset == 0 else (4 if onset == 2 else (0 if onset % 1 == 0 else -4))
        swell = 8 * contour(t, 1.0)  # louder towards the phrase's peak
        velocity = round((soft + loud) / 2 + 6 + accent + swell + rng.randint(-3, 3))
        start = bar.start + onset
        if bar.final:
            end = bar.end
        else:
            end = start + length * (max(plan.articulation, 0.9) if closing else plan.articulation)
        return Hit(pitch, start, end, int(_clip(velocity, 1, 127)))

    @staticmethod
    def _passing_tones(hits: list[Hit], plan: MusicalPlan, rng: random.Random) -> list[Hit]:
        """Split a note a whole tone from its successor to slide in the chromatic note between."""
        out: list[Hit] = []
        for current, following in zip(hits, hits[1:] + [None]):
            eligible = (following is not None and abs(following.pitch - current.pitch) == 2
                        and following.start - current.start >= 0.5 and current.start % 2 != 0)
            if eligible and rng.random() < PASSING_SHARE * plan.dissonance:
                middle = (current.start + following.start) / 2
                out.append(current._replace(end=min(current.end, middle)))
                passing = (current.pitch + following.pitch) // 2
                end = min(following.start, middle + (current.end - current.start) / 2)
                out.append(Hit(passing, middle, end, max(1, current.velocity - 6)))
            else:
                out.append(current)
        return out


# ---------------------------------------------------------------------------------------------
# Accompaniment: bass, string pads, guitar, drums


def _nearest_pitch(pc: int, target: float, lo: int, hi: int) -> int:
    """The pitch of class pc inside [lo, hi] closest to target."""
    candidates = [p for p in range(lo, hi + 1) if p % 12 == pc % 12]
    return min(candidates, key=lambda p: (abs(p - target), p))


def _accompaniment_velocity(plan: MusicalPlan, rng: random.Random, offset: int = 0) -> int:
    soft, loud = plan.velocity
    return int(_clip(round((soft + loud) / 2 - 4 + offset + rng.randint(-3, 3)), 1, 127))


def pulse(rng: random.Random, per_beat: float, syncopation: float, step: int = 2,
          anchor: bool = True) -> tuple[int, ...]:
    """A one-bar rhythm (sixteenths 0..15) with `per_beat` notes per beat on average: the
    metrically strongest slots first, reordered a little by the seed and pulled towards the
    off-beats by syncopation. The count is rounded with a uniform draw, so its mean is exact."""
    slots = list(range(0, 16, step))
    count = int(_clip(math.floor(per_beat * 4 + rng.random()), 1, len(slots)))
    def weight(slot: int) -> float:
        offbeat = slot % 4 != 0
        return METRIC_WEIGHT[slot] + SYNCOPATION_PULL * syncopation * offbeat + RHYTHM_JITTER * rng.random()
    ranked = sorted(slots, key=weight, reverse=True)
    chosen = set(ranked[:count])
    if anchor and 0 not in chosen:
        chosen.discard(min(chosen, key=METRIC_WEIGHT.__getitem__))
        chosen.add(0)
    return tuple(sorted(chosen))


class Grooves:
    """Each part's bar rhythms: one per section and density, repeated so sections sound alike,
    with a variant for a phrase's last bar; drawn from the seed, so seeds differ."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._cache: dict[tuple, tuple[int, ...]] = {}

    def get(self, part: str, bar: Bar, letter: str, per_beat: float, step: int = 2, anchor: bool = True):
        variant = "end" if bar.position == 3 else "body"
        key = (part, letter, variant, round(per_beat * 8), step)
        if key not in self._cache:
            rng = random.Random(f"{self.seed}/groove/{key}")
            self._cache[key] = pulse(rng, per_beat, bar.plan.syncopation, step, anchor)
        return self._cache[key]


def _spans(onsets: Sequence[int], bar: Bar) -> list[tuple[float, float]]:
    """(start, length to the next onset) in beats for sixteenth-slot onsets in a bar."""
    beats = [bar.start + o / 4 for o in onsets] + [bar.end]
    return [(b, following - b) for b, following in zip(beats, beats[1:])]


def _letters(bars: Sequence[Bar], phrases: Sequence[Phrase]) -> dict[int, str]:
    return {b.index: p.letter for p in phrases for b in p.bars}


def bass_line(bars: Sequence[Bar], tonic_pc: int, rng: random.Random, grooves: Grooves | None = None,
              phrases: Sequence[Phrase] = ()) -> list[Hit]:
    """Roots on the downbeat, then fifths, octaves and an approach to the next root."""
    grooves = grooves or Grooves(rng.randrange(1 << 30))
    letters = _letters(bars, phrases)
    hits: list[Hit] = []
    previous = 36.0
    for bar, following in zip(bars, list(bars[1:]) + [None]):
        if "bass" not in bar.plan.families or bar.intro:
            continue
        plan, chord = bar.plan, bar.chord
        root = _nearest_pitch(tonic_pc + chord.root, previous, 28, 43)
        previous = root
        if bar.final:
            hits.append(Hit(root, bar.start, bar.end, _accompaniment_velocity(plan, rng, 6)))
            continue
        next_root = _nearest_pitch(tonic_pc + following.chord.root, root, 28, 43) if following else root
        onsets = grooves.get("bass", bar, letters.get(bar.index, "A"), plan.bass_density)
        spans = _spans(onsets, bar)
        legato = 0.95 if plan.arousal < 0.3 else plan.articulation
        for k, (start, length) in enumerate(spans):
            if k == 0:
                pitch = root
            elif k == len(spans) - 1 and len(spans) > 2 and rng.random() < plan.dissonance:
                pitch = next_root + (1 if next_root < root + chord.fifth else -1)  # chromatic approach
            else:
                pitch = rng.choice((root + chord.fifth, root + 12, root + chord.intervals[1], root))
            hits.append(Hit(pitch, start, start + length * legato,
                            _accompaniment_velocity(plan, rng, 6 if k == 0 else 0)))
    return hits


def voice_chord(tones: Sequence[int], tonic_pc: int, centre: float, previous: Sequence[int] | None,
                root_position: bool = False) -> list[int]:
    """A close-position voicing near `centre` that moves least from the previous one."""
    pcs = [(tonic_pc + t) % 12 for t in tones]
    candidates = []
    for rotation in range(1 if root_position else len(pcs)):
        order = pcs[rotation:] + pcs[:rotation]
        for base in (centre - 9, centre - 3):
            voicing = [_nearest_pitch(order[0], base, 36, 96)]
            for pc in order[1:]:
                voicing.append(voicing[-1] + ((pc - voicing[-1]) % 12 or 12))
            candidates.append(voicing)

    def cost(voicing: list[int]) -> float:
        spread = abs(sum(voicing) / len(voicing) - centre)
        if not previous:
            return spread
        movement = sum(min(abs(p - q) for q in previous) for p in voicing)
        return movement + 0.5 * spread

    return min(candidates, key=cost)


def string_pads(bars: Sequence[Bar], tonic_pc: int, rng: random.Random, grooves: Grooves | None = None,
                phrases: Sequence[Phrase] = ()) -> list[Hit]:
    """Chords held to the next change when calm, re-struck more often (and shorter) when lively."""
    grooves = grooves or Grooves(rng.randrange(1 << 30))
    letters = _letters(bars, phrases)
    hits: list[Hit] = []
    previous: list[int] | None = None
    for bar in bars:
        if "strings" not in bar.plan.families:
            continue
        plan = bar.plan
        voicing = voice_chord(bar.chord.tones, tonic_pc, plan.pad_register, previous, root_position=bar.final)
        previous = voicing
        if bar.final:
            spans = [(bar.start, bar.beats)]
        else:
            spans = _spans(grooves.get("strings", bar, letters.get(bar.index, "A"), plan.strings_onsets, 4), bar)
        for start, length in spans:
            sounding = length  # held to the next change, except where the phrase breathes
            if bar.breath:
                sounding = min(sounding, bar.start + BREATH_AT_BEAT - start)
            if sounding <= 0:
                continue
            velocity = _accompaniment_velocity(plan, rng, -6 if length >= 2 else 0)
            for pitch in voicing:
                hits.append(Hit(pitch, start, start + sounding, velocity))
    return hits


def guitar_voicing(chord: Chord, tonic_pc: int, power: bool) -> list[int]:
    """A barre-chord shape on the root between E2 and Eb3 (or a power chord)."""
    root = _nearest_pitch(tonic_pc + chord.root, 45, 40, 51)
    if power:
        return [root, root + 7, root + 12]
    third = chord.intervals[1]
    octave_tone = 12 if len(chord.intervals) < 4 else chord.intervals[3]
    fifth = chord.fifth
    return [root, root + fifth, root + octave_tone, root + 12 + third, root + 12 + fifth, root + 24]


def guitar_part(bars: Sequence[Bar], tonic_pc: int, rng: random.Random, grooves: Grooves | None = None,
                phrases: Sequence[Phrase] = ()) -> list[Hit]:
    """Single notes rolling through the chord when calm; strokes of more strings when lively."""
    grooves = grooves or Grooves(rng.randrange(1 << 30))
    letters = _letters(bars, phrases)
    hits: list[Hit] = []
    arpeggio = (0, 2, 3, 4, 5, 4, 3, 2)
    for bar in bars:
        if "guitar" not in bar.plan.families:
            continue
        plan = bar.plan
        program = dict(plan.instruments)["guitar"]
        voicing = guitar_voicing(bar.chord, tonic_pc, power=program in (29, 30) and not bar.final)
        gap = _STRUM_GAP_S * bar.bpm / 60.0  # seconds between strings, in beats
        if bar.final:
            hits += _strum(bar.start, bar.end, voicing, gap, _accompaniment_velocity(plan, rng))
            continue
        onsets = grooves.get("guitar", bar, letters.get(bar.index, "A"), plan.guitar_onsets, anchor=False)
        for k, (start, length) in enumerate(_spans(onsets, bar)):
            if bar.breath and start >= bar.start + BREATH_AT_BEAT:
                break
            strings = int(_clip(math.floor(plan.guitar_strings + rng.random()), 1, len(voicing)))
            end = start + length * (plan.articulation if plan.arousal >= 0 else 1.5)
            if bar.breath:
                end = min(end, bar.start + BREATH_AT_BEAT)
            velocity = _accompaniment_velocity(plan, rng, 4 if start == bar.start else -4)
            if strings == 1:
                string = arpeggio[(onsets[k] // 2) % len(arpeggio)] % len(voicing)  # power chords have 3
                hits.append(Hit(voicing[string], start, min(end, bar.end), velocity))
            else:
                top = voicing[-strings:] if k % 2 == 0 else voicing[-strings:][::-1]
                hits += _strum(start, min(end, bar.end), top, gap, velocity)
    return hits


def _strum(start: float, end: float, strings: Sequence[int], gap: float, velocity: int) -> list[Hit]:
    return [Hit(p, start + i * gap, max(end, start + i * gap + 0.05), velocity)
            for i, p in enumerate(strings)]


_KITS = {  # level: (timekeeper, backbeat)
    "soft": ("ride", "side_stick"),
    "groove": ("closed_hat", "snare"),
    "full": ("closed_hat", "snare"),
}


def drum_part(bars: Sequence[Bar], phrases: Sequence[Phrase], rng: random.Random,
              grooves: Grooves | None = None) -> list[Hit]:
    """Timekeeper, kick and backbeat, each with its share of DRUM_DENSITY; crashes open phrases
    and tom fills close them on the louder kits; nothing in the intro."""
    grooves = grooves or Grooves(rng.randrange(1 << 30))
    letters = _letters(bars, phrases)
    phrase_ends = {p.bars[-1].index for p in phrases}
    phrase_starts = {p.bars[0].index for p in phrases}
    hits: list[Hit] = []
    for bar in bars:
        plan = bar.plan
        if plan.drums == "off" or bar.intro:
            continue
        soft, loud = plan.velocity
        base = (soft + loud) / 2 - (10 if plan.drums == "soft" else 0)

        def hit(name: str, step: int, accent: int = 0) -> None:
            start = bar.start + step / 4
            velocity = int(_clip(round(base + accent + rng.randint(-4, 4)), 1, 127))
            hits.append(Hit(DRUM[name], start, start + 0.2, velocity))

        if bar.final:
            hit("kick", 0, 10)
            hit("crash", 0, 10)
            continue
        letter = letters.get(bar.index, "A")
        fill = bar.index in phrase_ends and plan.drums == "full"
        crash = bar.index in phrase_starts and plan.drums != "soft"
        timekeeper, backbeat = _KITS[plan.drums]
        density = plan.drum_density
        step = 1 if density * DRUM_SHARES["time"] > 2 else 2
        for slot in grooves.get("time", bar, letter, density * DRUM_SHARES["time"], step):
            if fill and slot >= 12:
                continue
            if slot == 0 and crash:
                hit("crash", 0, 8)
            elif plan.drums == "full" and slot == 14 and bar.position % 2 == 1:
                hit("open_hat", slot, -4)
            else:
                hit(timekeeper, slot, 4 if slot % 4 == 0 else -8)
        for slot in grooves.get("kick", bar, letter, density * DRUM_SHARES["kick"]):
            hit("kick", slot, 10 if slot in (0, 8) else 2)
        backbeats = grooves.get("back", bar, letter, density * DRUM_SHARES["back"], anchor=False)
        for slot in sorted(set(backbeats) | ({4, 12} if density * DRUM_SHARES["back"] >= 0.45 else set())):
            if not (fill and slot >= 12):
                hit(backbeat, slot, 8 if slot in (4, 12) else -14)  # ghost notes between
        if fill:
            for slot, name in zip(range(12, 16), DRUM_FILL):
                hit(name, slot, 4 + 2 * (slot - 12))
    return hits


# ---------------------------------------------------------------------------------------------
# Assembly


def _tidy(hits: list[Hit], end_beat: float, drums: bool) -> list[Hit]:
    """Keep notes in range and inside the piece, and never let two notes of one pitch overlap:
    pretty_midi pairs note-offs with the wrong note-ons when they do."""
    placed = []
    for hit in hits:
        pitch = hit.pitch
        if not drums:
            while pitch < LOWEST_NOTE:
                pitch += 12
            while pitch > HIGHEST_NOTE:
                pitch -= 12
        if hit.start < end_beat:
            placed.append(Hit(pitch, hit.start, min(hit.end, end_beat), hit.velocity))
    placed.sort(key=lambda h: (h.pitch, h.start, -h.velocity))
    tidy: list[Hit] = []
    for hit in placed:
        if tidy and tidy[-1].pitch == hit.pitch and hit.start < tidy[-1].end:
            if hit.start <= tidy[-1].start:  # the same note twice: keep the louder
                continue
            tidy[-1] = tidy[-1]._replace(end=hit.start)
        tidy.append(hit)
    return sorted(tidy, key=lambda h: (h.start, h.pitch))


def with_dynamics(hits: list[Hit], bars: Sequence[Bar]) -> list[Hit]:
    """Add each bar's form and phrase dynamics to the velocities of the notes that start in it."""
    starts = [b.start for b in bars]
    shaped = []
    for hit in hits:
        bar = bars[max(0, min(len(bars) - 1, int(np.searchsorted(starts, hit.start, side="right")) - 1))]
        shaped.append(hit._replace(velocity=int(_clip(hit.velocity + bar.dynamic, 1, 127))))
    return shaped


def _tempo_map(bars: Sequence[Bar], duration_s: float):
    """An empty MIDI carrying the bars' tempi, and the beat -> seconds mapping (piecewise linear
    through the bars where the tempo changes)."""
    turns = [b for i, b in enumerate(bars) if i == 0 or b.bpm != bars[i - 1].bpm]
    beats = np.array([b.start for b in turns] + [bars[-1].end])
    times = np.array([b.time_s for b in turns] + [duration_s])
    midi = pretty_midi.PrettyMIDI(resolution=TICKS_PER_BEAT, initial_tempo=turns[0].bpm)
    if len(turns) > 1:
        # Start at 60 BPM (one beat = one second) and warp to the bars' times: pretty_midi's
        # public way of writing tempo changes.
        midi = pretty_midi.PrettyMIDI(resolution=TICKS_PER_BEAT, initial_tempo=60.0)
        midi.adjust_times(beats, times)
    return midi, beats, times


def _instrument(family: str, program: int, hits: list[Hit], beats, times) -> pretty_midi.Instrument:
    instrument = pretty_midi.Instrument(program=program, is_drum=family == "drums", name=family)
    if not hits:
        return instrument
    starts = np.interp([h.start for h in hits], beats, times)
    ends = np.interp([h.end for h in hits], beats, times)
    for hit, start, end in zip(hits, starts, ends):
        if end - start >= _MIN_NOTE_S:
            instrument.notes.append(pretty_midi.Note(hit.velocity, hit.pitch, float(start), float(end)))
    return instrument


def _key_signatures(phrases: Sequence[Phrase], bars: Sequence[Bar], beats, times) -> list:
    signatures, last = [], None
    for phrase in phrases:
        number = phrase.plan.tonic_pc + (0 if 4 in phrase.plan.scale else 12)
        if number != last:
            start = bars[0].start if not signatures else phrase.bars[0].start
            signatures.append(pretty_midi.KeySignature(number, float(np.interp(start, beats, times))))
            last = number
    return signatures


def _as_trajectory(emotion: Emotion | Trajectory) -> Trajectory:
    if isinstance(emotion, Trajectory):
        return emotion
    if isinstance(emotion, Emotion):
        return Trajectory.constant(emotion)
    raise TypeError(f"the composer needs an Emotion or a Trajectory, not {type(emotion).__name__}")


class ProceduralComposer:
    """Emotion -> music by rule: no weights, fast, deterministic for a seed."""

    name = "procedural"

    def plan(self, emotion: Emotion, *, seed: int | None = None, min_instruments: int = 1) -> MusicalPlan:
        return plan_for(emotion, seed=seed, min_instruments=min_instruments)

    def compose(self, emotion: Emotion | Trajectory, options: GenerationOptions,
                progress: ProgressFn | None = None) -> Composition:
        trajectory = _as_trajectory(emotion)
        if options.seed is None:
            raise ValueError("options.seed must be set (use options.with_seed())")
        report = progress or (lambda fraction: None)
        report(0.0)
        bars, phrases = arrange(trajectory, options)
        report(0.3)
        tonic_pc = phrases[0].plan.tonic_pc
        seed = options.seed
        melody = MelodyWriter(seed, tonic_pc)
        grooves = Grooves(seed)
        parts = {
            "piano": [h for p in phrases for h in melody.phrase(p)],
            "bass": bass_line(bars, tonic_pc, random.Random(f"{seed}/bass"), grooves, phrases),
            "strings": string_pads(bars, tonic_pc, random.Random(f"{seed}/strings"), grooves, phrases),
            "guitar": guitar_part(bars, tonic_pc, random.Random(f"{seed}/guitar"), grooves, phrases),
            "drums": drum_part(bars, phrases, random.Random(f"{seed}/drums"), grooves),
        }
        parts = {family: with_dynamics(hits, bars) for family, hits in parts.items()}
        report(0.7)
        midi = self._assemble(bars, phrases, parts, options.duration_s)
        report(1.0)
        return Composition(
            midi=midi,
            composer=self.name,
            seed=seed,
            mode=None,
            notes=[f"procedural: {phrases[0].plan.describe()}"],
            stats=self._stats(bars, phrases, midi),
        )

    def compose_batch(self, requests: Sequence[tuple[Emotion | Trajectory, GenerationOptions]],
                      progress: ProgressFn | None = None) -> list[Composition]:
        results = []
        for i, (emotion, options) in enumerate(requests):
            step = None if progress is None else (lambda f, i=i: progress((i + f) / len(requests)))
            results.append(self.compose(emotion, options, step))
        return results

    @staticmethod
    def _assemble(bars, phrases, parts, duration_s) -> pretty_midi.PrettyMIDI:
        midi, beats, times = _tempo_map(bars, duration_s)
        programs: dict[str, int] = {}
        for phrase in phrases:  # a family keeps the program of the phrase it first plays in
            for family, program in phrase.plan.instruments:
                programs.setdefault(family, program)
        for family in FAMILIES:
            hits = _tidy(parts[family], bars[-1].end, drums=family == "drums")
            if family in programs and hits:
                midi.instruments.append(_instrument(family, programs[family], hits, beats, times))
        midi.key_signature_changes = _key_signatures(phrases, bars, beats, times)
        return midi

    @staticmethod
    def _stats(bars, phrases, midi) -> dict:
        first = phrases[0].plan
        return {
            "key": first.tonic,
            "tonic_pc": first.tonic_pc,
            "modes": [p.plan.mode for p in phrases],
            "tempo_bpm": bars[0].bpm,
            "bars": len(bars),
            "phrase_starts_s": [p.bars[0].time_s for p in phrases],
            "chords": [b.chord.name for b in bars],
            "families": [i.name for i in midi.instruments],
            "notes": sum(len(i.notes) for i in midi.instruments),
        }


def midi_bytes(midi: pretty_midi.PrettyMIDI) -> bytes:
    """The standard MIDI file as bytes."""
    buffer = io.BytesIO()
    midi.write(buffer)
    return buffer.getvalue()
