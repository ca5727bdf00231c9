"""The embedded default composer: an emotion becomes a multi-instrument piece built from music theory.

No weights and no global randomness: every choice comes from `random.Random` streams derived from
`options.seed`, so the same seed and emotion give the same MIDI, byte for byte.

How a point (valence v, arousal a, both in [-1, 1]) becomes music (`plan_for` is the code):

    what             driven by  mapping
    mode             v (a)      v >= .65 and a < 0: lydian;  v >= .3: ionian;  v >= 0: mixolydian;
                                v >= -.3: dorian;  v >= -.65 or a < 0: aeolian;  else phrygian
    harmony colour   v, a       dissonance d = clip((.3 (1 - v) + .2 (1 + a) - .15) / .85, 0, 1):
                                sevenths with probability d, sus2/sus4 with .25 d, a diminished
                                seventh for the cadence's dominant in minor when d > .55, chromatic
                                passing tones in the melody with .5 d; pleasant and calm = triads
    register         v          melody centred on MIDI 67 + 6 v, string pads below it on 57 + 3 v
    contour          v          each phrase follows a blend of a rising arch (peak at 60 %) and a
                                falling line, weighted (1 + v) / 2: "rising arch" v > .2, "falling"
                                v < -.2, "wave" between
    tempo            a          110 + 50 a BPM (60 .. 160)
    density          a          melody 0.75 + (1 + a) notes per beat (half notes .. sixteenths)
    velocity         a          centre 68 + 32 a, range +-12 (about 24..48 calm, 88..112 loud)
    articulation     a          notes sound 0.95 - 0.2 (1 + a) of their slot (legato .. staccato)
    syncopation      a          clip(.1 + .4 a, 0, .5): off-beat cells and kick pushes
    drums            a          none below -.3; soft (side stick, quarter hats) below .15; groove
                                (eighth hats) below .55; full kit (sixteenths, crashes, fills) above
    bass             a          held roots < -.5; root-fifth halves < 0; walking < .5; octaves
    instruments      v, a       piano always (melody, plus its left hand when no guitar or strings
                                hold the harmony); bass a > -.7; strings a < .6 or v < -.3, but not
                                when serene (v > .4, a < -.5); guitar and drums a > -.3; then bass,
                                strings, guitar, drums (soft) are added until `min_instruments`
                                families play

Form: 4/4 bars, 4-bar phrases labelled A A B A (a 1-bar intro or a 2-bar cadential extension
absorbs leftover bars). Each phrase plays its section's progression, one chord per bar; the last
phrase closes with the mode's cadence (e.g. IV V I, iv V i, IV bVII I, iv bII i) and a held tonic
chord that lasts until exactly `options.duration_s`. The melody repeats a one-bar motif (bar 1),
answers it (bar 2), varies it (bar 3) and cadences (bar 4); it uses chord tones on beats 1 and 3
and scale steps between. Roman numerals are relative to the major scale on the tonic
(aeolian's i bVI bIII bVII is the minor-key i VI III VII).

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
    "aeolian": {"A": ("i bVI bIII bVII", "i iv bVI V"), "B": ("bVI bVII i v", "iv i bVI bVII")},
    "phrygian": {"A": ("i bII bvii i", "i bII bIII bII"), "B": ("iv bVI bII i", "bVI bvii i bII")},
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

TICKS_PER_BEAT = 480
_MIN_NOTE_S = 0.02  # shorter notes could collapse onto one MIDI tick
_STRUM_GAP_S = 0.012  # between strings of a strummed chord


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
    bass_pattern: str  # "held" | "roots" | "walking" | "octaves"
    guitar_style: str  # "arpeggio" | "strum" | "drive"
    strings_style: str  # "sustain" | "pulse" | "stabs"
    instruments: tuple[tuple[str, int], ...]  # (family, General MIDI program), canonical order

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


def mode_for(valence: float, arousal: float) -> str:
    if valence >= 0.65 and arousal < 0:
        return "lydian"
    if valence >= 0.3:
        return "ionian"
    if valence >= 0.0:
        return "mixolydian"
    if valence >= -0.3:
        return "dorian"
    if valence >= -0.65 or arousal < 0:
        return "aeolian"
    return "phrygian"


def dissonance_for(valence: float, arousal: float) -> float:
    return _clip((0.3 * (1 - valence) + 0.2 * (1 + arousal) - 0.15) / 0.85, 0.0, 1.0)


def families_for(valence: float, arousal: float, min_instruments: int = 1) -> tuple[str, ...]:
    chosen = {"piano"}
    if arousal > -0.7:
        chosen.add("bass")
    serene = valence > 0.4 and arousal < -0.5  # a piano alone (with bass unless very calm)
    if (arousal < 0.6 or valence < -0.3) and not serene:
        chosen.add("strings")
    if arousal > -0.3:
        chosen |= {"guitar", "drums"}
    for extra in ("bass", "strings", "guitar", "drums"):
        if len(chosen) >= min_instruments:
            break
        chosen.add(extra)
    return tuple(f for f in FAMILIES if f in chosen)


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
    if "drums" not in families:
        return "off"
    return "soft" if arousal < 0.15 else ("groove" if arousal < 0.55 else "full")


def plan_for(emotion: Emotion, *, seed: int | None = None, min_instruments: int = 1) -> MusicalPlan:
    """The mapping in the module docstring. With a seed, the key and progression variants are
    drawn from it; without one the key is C and the first variants are used."""
    v, a = emotion.valence, emotion.arousal
    mode = mode_for(v, a)
    pick = random.Random(f"{seed}/plan") if seed is not None else None
    tonic = PITCH_NAMES[pick.randrange(12)] if pick else "C"
    variants = PROGRESSIONS[mode]
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
        density=round(0.75 + (1 + a), 3),
        velocity=(max(16, centre - 12), min(120, centre + 12)),
        articulation=round(0.95 - 0.2 * (1 + a), 3),
        syncopation=round(_clip(0.1 + 0.4 * a, 0.0, 0.5), 3),
        melody_register=round(67 + 6 * v),
        pad_register=round(57 + 3 * v),
        contour="rising arch" if v > 0.2 else ("falling" if v < -0.2 else "wave"),
        drums=_drum_level(a, families),
        bass_pattern="held" if a < -0.5 else ("roots" if a < 0 else ("walking" if a < 0.5 else "octaves")),
        guitar_style="arpeggio" if a < -0.2 else ("strum" if a < 0.5 else "drive"),
        strings_style=_strings_style(a, programs["strings"]),
        instruments=tuple((f, programs[f]) for f in families),
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


def _colour(chord: Chord, plan: MusicalPlan, rng: random.Random) -> Chord:
    """Sevenths and suspensions with probability growing with dissonance."""
    roll = rng.random()
    if roll < plan.dissonance:
        return with_seventh(chord, plan.scale)
    if roll < 1.25 * plan.dissonance:
        return suspended(chord, plan.scale)
    return chord


def _phrase_chords(phrase: Phrase, rng: random.Random) -> list[Chord]:
    plan = phrase.plan
    progression = plan.progression if phrase.letter == "A" else plan.contrast
    n = len(phrase.bars)
    if not phrase.last:
        return [_colour(parse_numeral(progression[j % 4]), plan, rng) for j in range(n)]
    head = [_colour(parse_numeral(progression[j % 4]), plan, rng) for j in range(max(0, n - 3))]
    pre, dominant, tonic = (parse_numeral(name) for name in plan.cadence)
    if plan.dissonance > 0.55 and dominant.name == "V" and 3 in plan.scale and rng.random() < plan.dissonance:
        dominant = leading_tone_diminished()
    elif plan.dissonance > 0.3:
        dominant = with_seventh(dominant, plan.scale)
    return head + [pre, dominant, tonic][-min(n, 3):]


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
    for bar in bars[:intro]:
        bar.plan = phrases[0].plan
        bar.chord = tonic_chord(bar.plan.mode)
    for phrase in phrases:
        for position, (bar, chord) in enumerate(zip(phrase.bars, _phrase_chords(phrase, harmony))):
            bar.plan, bar.chord, bar.position = phrase.plan, chord, position
    for bar in bars:
        bar.scale = chord_scale(bar.plan.scale, bar.chord)
    return bars, phrases


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
            weights.append(weight * (3.0 * syncopation if syncopated else 1.0))
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
    if density < 1.25:
        return ((0.0, 2.0), (2.0, 2.0))
    if density < 2.0:
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
        centre = (plan.melody_register - self.reference) * 7 / 12
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
            if eligible and rng.random() < 0.5 * plan.dissonance:
                middle = (current.start + following.start) / 2
                out.append(current._replace(end=min(current.end, middle)))
                passing = (current.pitch + following.pitch) // 2
                end = min(following.start, middle + (current.end - current.start) / 2)
                out.append(Hit(passing, middle, end, max(1, current.velocity - 6)))
            else:
                out.append(current)
        return out


# ---------------------------------------------------------------------------------------------
# Accompaniment: bass, string pads, guitar, piano left hand, drums


def _nearest_pitch(pc: int, target: float, lo: int, hi: int) -> int:
    """The pitch of class pc inside [lo, hi] closest to target."""
    candidates = [p for p in range(lo, hi + 1) if p % 12 == pc % 12]
    return min(candidates, key=lambda p: (abs(p - target), p))


def _accompaniment_velocity(plan: MusicalPlan, rng: random.Random, offset: int = 0) -> int:
    soft, loud = plan.velocity
    return int(_clip(round((soft + loud) / 2 - 4 + offset + rng.randint(-3, 3)), 1, 127))


def bass_line(bars: Sequence[Bar], tonic_pc: int, rng: random.Random) -> list[Hit]:
    hits: list[Hit] = []
    previous = 36.0
    for bar, following in zip(bars, list(bars[1:]) + [None]):
        if "bass" not in bar.plan.families:
            continue
        plan, chord = bar.plan, bar.chord
        root = _nearest_pitch(tonic_pc + chord.root, previous, 28, 43)
        previous = root
        if bar.final:
            hits.append(Hit(root, bar.start, bar.end, _accompaniment_velocity(plan, rng, 6)))
            continue
        next_root = _nearest_pitch(tonic_pc + following.chord.root, root, 28, 43) if following else root
        third = chord.intervals[1]
        patterns = {
            "held": [(0, 4, root)],
            "roots": [(0, 2, root), (2, 2, root + chord.fifth)],
            "walking": [(0, 1, root), (1, 1, root + third), (2, 1, root + chord.fifth),
                        (3, 1, next_root + (1 if next_root < root + chord.fifth else -1))],
            "octaves": [(k * 0.5, 0.5, root + 12 * (k % 2)) for k in range(8)],
        }
        for onset, length, pitch in patterns[plan.bass_pattern]:
            sounding = length * (plan.articulation if plan.bass_pattern == "octaves" else 0.95)
            accent = 6 if onset == 0 else 0
            hits.append(Hit(pitch, bar.start + onset, bar.start + onset + sounding,
                            _accompaniment_velocity(plan, rng, accent)))
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


def string_pads(bars: Sequence[Bar], tonic_pc: int, rng: random.Random) -> list[Hit]:
    hits: list[Hit] = []
    previous: list[int] | None = None
    for bar in bars:
        if "strings" not in bar.plan.families:
            continue
        plan = bar.plan
        voicing = voice_chord(bar.chord.tones, tonic_pc, plan.pad_register, previous, root_position=bar.final)
        previous = voicing
        style = "sustain" if bar.final else plan.strings_style
        slots = {"sustain": [(0.0, bar.beats)], "pulse": [(0.0, 2.0), (2.0, 2.0)],
                 "stabs": [(float(b), 1.0) for b in range(4)]}[style]
        for onset, length in slots:
            sounding = length * (plan.articulation if style == "stabs" else 1.0)
            velocity = _accompaniment_velocity(plan, rng, -6 if style == "sustain" else 0)
            for pitch in voicing:
                hits.append(Hit(pitch, bar.start + onset, bar.start + onset + sounding, velocity))
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


def guitar_part(bars: Sequence[Bar], tonic_pc: int, rng: random.Random) -> list[Hit]:
    hits: list[Hit] = []
    for bar in bars:
        if "guitar" not in bar.plan.families:
            continue
        plan = bar.plan
        program = dict(plan.instruments)["guitar"]
        voicing = guitar_voicing(bar.chord, tonic_pc, power=program in (29, 30) and not bar.final)
        gap = _STRUM_GAP_S * bar.bpm / 60.0  # seconds between strings, in beats
        if bar.final:
            hits += _strum(bar.start, bar.end, voicing, gap, _accompaniment_velocity(plan, rng))
        elif plan.guitar_style == "arpeggio":
            order = (0, 2, 3, 4, 5, 4, 3, 2)
            for k, index in enumerate(order):
                start = bar.start + 0.5 * k
                hits.append(Hit(voicing[index], start, min(start + 1.5, bar.end),
                                _accompaniment_velocity(plan, rng, 4 if k == 0 else -4)))
        elif plan.guitar_style == "strum":
            pattern = ((0.0, "down"), (1.0, "down"), (1.5, "up"), (2.5, "up"), (3.0, "down"), (3.5, "up"))
            for (onset, stroke), following in zip(pattern, [p[0] for p in pattern[1:]] + [4.0]):
                strings = voicing if stroke == "down" else voicing[-4:][::-1]
                end = bar.start + onset + (following - onset) * plan.articulation
                hits += _strum(bar.start + onset, end, strings, gap,
                               _accompaniment_velocity(plan, rng, 2 if stroke == "down" else -8))
        else:  # drive: eighth-note strokes, the full chord on the beat, the top strings between
            for k in range(8):
                onset = bar.start + 0.5 * k
                strings = voicing if k % 2 == 0 else voicing[-3:]
                hits += _strum(onset, onset + 0.5 * plan.articulation, strings, gap,
                               _accompaniment_velocity(plan, rng, 6 if k % 2 == 0 else -4))
    return hits


def _strum(start: float, end: float, strings: Sequence[int], gap: float, velocity: int) -> list[Hit]:
    return [Hit(p, start + i * gap, max(end, start + i * gap + 0.05), velocity)
            for i, p in enumerate(strings)]


def piano_left_hand(bars: Sequence[Bar], tonic_pc: int, rng: random.Random) -> list[Hit]:
    """The piano comps when neither guitar nor strings hold the harmony."""
    hits: list[Hit] = []
    previous = None
    for bar in bars:
        plan = bar.plan
        if "guitar" in plan.families or "strings" in plan.families:
            continue
        centre = min(52, plan.melody_register - 14)
        voicing = voice_chord(bar.chord.tones[:3], tonic_pc, centre, previous, root_position=bar.final)
        previous = voicing
        if bar.final:
            hits += [Hit(p, bar.start, bar.end, _accompaniment_velocity(plan, rng)) for p in voicing]
        elif plan.arousal < 0:  # broken chords, rolling upward and back
            order = (0, 2, 1, 2) if plan.density < 1.25 else (0, 2, 1, 2, 0, 2, 1, 2)
            step = 4.0 / len(order)
            for k, index in enumerate(order):
                start = bar.start + step * k
                hits.append(Hit(voicing[index], start, start + step * 1.5,
                                _accompaniment_velocity(plan, rng, 4 if k == 0 else -4)))
        else:  # block chords, pushed ahead of beat 3 when syncopated
            onsets = (0.0, 1.5, 3.0) if rng.random() < plan.syncopation * 2 else (0.0, 2.0)
            for onset in onsets:
                velocity = _accompaniment_velocity(plan, rng, 4 if onset == 0 else 0)
                hits += [Hit(p, bar.start + onset, bar.start + onset + 1.0 * plan.articulation, velocity)
                         for p in voicing]
    return hits


def drum_part(bars: Sequence[Bar], phrases: Sequence[Phrase], rng: random.Random) -> list[Hit]:
    phrase_ends = {p.bars[-1].index for p in phrases}
    phrase_starts = {p.bars[0].index for p in phrases}
    hits: list[Hit] = []
    for bar in bars:
        plan = bar.plan
        if plan.drums == "off":
            continue
        soft, loud = plan.velocity
        base = (soft + loud) / 2 - (14 if plan.drums == "soft" else 0)

        def hit(name: str, step: int, accent: int = 0) -> None:
            start = bar.start + step / 4
            velocity = int(_clip(round(base + accent + rng.randint(-4, 4)), 1, 127))
            hits.append(Hit(DRUM[name], start, start + 0.2, velocity))

        if bar.final:
            hit("kick", 0, 10)
            hit("crash", 0, 10)
            continue
        fill = bar.index in phrase_ends and plan.drums != "soft"
        crash = bar.index in phrase_starts and plan.drums != "soft"
        for name, pattern in DRUM_PATTERNS[plan.drums].items():
            for step, mark in enumerate(pattern):
                if mark != "x" or (fill and step >= 12):
                    continue
                if step == 0 and crash and name in ("closed_hat", "ride"):
                    hit("crash", 0, 8)
                    continue
                accent = 10 if name in ("kick", "snare") else (4 if step % 4 == 0 else -8)
                hit(name, step, accent)
        if plan.drums != "soft" and rng.random() < plan.syncopation:
            hit("kick", rng.choice((3, 7, 14)), 0)  # a syncopated push
        if fill:
            for step, name in zip(range(12, 16), DRUM_FILL if plan.drums == "full" else ("snare",) * 4):
                hit(name, step, 4 + 2 * (step - 12))
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
        parts = {
            "piano": [h for p in phrases for h in melody.phrase(p)]
            + piano_left_hand(bars, tonic_pc, random.Random(f"{seed}/piano")),
            "bass": bass_line(bars, tonic_pc, random.Random(f"{seed}/bass")),
            "strings": string_pads(bars, tonic_pc, random.Random(f"{seed}/strings")),
            "guitar": guitar_part(bars, tonic_pc, random.Random(f"{seed}/guitar")),
            "drums": drum_part(bars, phrases, random.Random(f"{seed}/drums")),
        }
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
