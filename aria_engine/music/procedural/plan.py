"""The emotion-to-music mapping: one point (valence, arousal) becomes a `MusicalPlan`, each parameter
a continuous function of the point (the table in the package docstring), so adjacent points sound
adjacent. Nothing here writes a note."""

from __future__ import annotations

import random
from dataclasses import dataclass

from aria_engine.emotion import Emotion
from aria_engine.music import FAMILIES
from aria_engine.music.procedural.harmony import (BRIGHT_PROGRESSIONS, CADENCES, PITCH_NAMES, PROGRESSIONS,
                                                  SCALES, tonic_chord)

# Valence shades the harmony gradually (issue 14): the share of minor-mode colour falls linearly
# with valence, and every chord other than a phrase's first and the final tonic is borrowed from
# the parallel mode with that share (modal mixture), so there is no single threshold.
MINOR_AT_NEUTRAL = 0.5
MINOR_SLOPE = 0.6  # minor share = 0.5 - 0.6 v: 0.98 at v = -0.8, 0.02 at v = +0.8

# Arousal sets every part's notes per second on a geometric scale between two ends (at a = -1,
# 60 BPM, and a = +1, 160 BPM), so each step of 0.4 multiplies a density by the same factor,
# (hi / lo) ** 0.2, about 1.5-1.7x: never double. The parts turn these into notes per beat.
MELODY_RATE = (0.8, 6.9)
BASS_RATE = (0.35, 3.5)
GUITAR_RATE = (0.6, 4.0)  # strokes per second
GUITAR_STRINGS = (1.0, 2.5)  # strings per stroke: single arpeggio notes .. two- and three-string strokes
STRINGS_RATE = (0.25, 2.4)  # chord changes per second of the string section
DRUM_RATE = (0.75, 7.0)  # hits per second, all voices


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


def clip(x: float, lo: float, hi: float) -> float:
    return max(lo, min(hi, x))


def tempo_for(arousal: float) -> int:
    return round(110 + 50 * arousal)


def minor_share(valence: float) -> float:
    """How much of the harmony is minor-mode colour: falls linearly with valence."""
    return clip(MINOR_AT_NEUTRAL - MINOR_SLOPE * valence, 0.0, 1.0)


def mode_for(valence: float, arousal: float) -> str:
    """The home key: minor when most of the harmony is (v < 0). Its tonic opens and closes the
    piece; mixture shades everything between, so v = 0 is a major key with half its chords
    borrowed from the minor, and v = -0.4 a minor key with a quarter borrowed from the major."""
    return "aeolian" if minor_share(valence) > MINOR_AT_NEUTRAL else "ionian"


def dissonance_for(valence: float, arousal: float) -> float:
    """Sevenths, suspensions and passing tones: valence alone sets them, so consonance follows
    valence at every arousal (arousal already speaks through tempo, density and loudness)."""
    return clip(0.5 - 0.6 * valence, 0.0, 1.0)


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
    """The kit's sound (its density comes from DRUM_RATE): brushes-like ride and side stick,
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
        syncopation=round(clip(0.1 + 0.4 * a, 0.0, 0.5), 3),
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
