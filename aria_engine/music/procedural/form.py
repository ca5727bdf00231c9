"""The piece's form: bars at the trajectory's tempo, four-bar phrases in sections (A A B A), each
phrase's plan and each bar's chord (`arrange`), and the dynamics of the form: an arc over the
piece, a swell inside each phrase, an intro where drums and bass wait, a climax, breaths."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np

from aria_engine.emotion import Trajectory
from aria_engine.music.procedural.chords import choose_relative, colour, phrase_chords
from aria_engine.music.procedural.harmony import Chord, chord_scale, tonic_chord
from aria_engine.music.procedural.plan import MusicalPlan, clip, plan_for, tempo_for
from aria_engine.options import GenerationOptions

# A dynamic arc over the piece (a quiet intro, a climax at 65 %, a softer close), in
# velocity steps, and a swell inside each phrase.
FORM_ARC = ((0.0, -0.8), (0.15, -0.4), (0.65, 1.0), (0.85, 0.3), (1.0, -0.6))
FORM_DYNAMIC = 11  # velocity at the arc's +-1
PHRASE_SWELL = (-2, 1, 4, -3)  # velocity per bar of a four-bar phrase
INTRO_SHARE = 0.1  # drums and bass wait this share of the piece (pieces of 6 bars or more)


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
    choose_relative(phrases, harmony)
    for bar in bars[:intro]:
        bar.plan = phrases[0].plan
        bar.chord = colour(tonic_chord(bar.plan.mode), bar.plan.scale, bar.plan, harmony)
        bar.scale = chord_scale(bar.plan.scale, bar.chord)
    for phrase in phrases:
        for position, (bar, (chord, scale)) in enumerate(zip(phrase.bars, phrase_chords(phrase, harmony))):
            bar.plan, bar.chord, bar.position = phrase.plan, chord, position
            bar.scale = chord_scale(scale, chord)
    _shape_form(bars, phrases, duration)
    return bars, phrases


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


def bar_letters(bars: Sequence[Bar], phrases: Sequence[Phrase]) -> dict[int, str]:
    """Each bar's section letter (A or B); the intro's bars have none."""
    return {b.index: p.letter for p in phrases for b in p.bars}


def with_dynamics(hits: list[Hit], bars: Sequence[Bar]) -> list[Hit]:
    """Add each bar's form and phrase dynamics to the velocities of the notes that start in it."""
    starts = [b.start for b in bars]
    shaped = []
    for hit in hits:
        bar = bars[max(0, min(len(bars) - 1, int(np.searchsorted(starts, hit.start, side="right")) - 1))]
        shaped.append(hit._replace(velocity=int(clip(hit.velocity + bar.dynamic, 1, 127))))
    return shaped
