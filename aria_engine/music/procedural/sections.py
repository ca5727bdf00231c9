"""A piece in sections, one per emotion (a jam): each section in its own key and tempo, with
transitions that carry the music from one emotion to the next, and one motif through them all.

The plan, section by section (`plan_sections`):

    key        the first section's key comes from the seed (as a single piece's does); each next
               section modulates to a neighbouring key: to the relative key when the mode changes
               (major -> its relative minor, minor -> its relative major: the same key signature),
               else up a fifth when valence rises (or holds) and down a fifth when it falls
    pivot      the last bar of every section but the last plays the dominant seventh of the next
               key, and the band plays through it (no breath), so the boundary is a cadence into
               the next key rather than a cut
    tempo      each section's home tempo is the single-piece mapping, 110 + 50 a BPM; at a
               boundary the tempo ramps bar by bar towards the new home tempo, never changing by
               more than MAX_TEMPO_RATIO (x1.2, or /1.2) from one bar to the next (the documented
               ramp: 60 -> 160 BPM takes 6 bars)
    density    every part's notes per beat come from the section's own plan (`plan_for`), so
               density follows each section's arousal; the tempo ramp carries it between
    motif      the jam's motif (the first section's melodic idea) is the idea of every section: its pitch shape is kept and fitted
               to the rhythm each section's density asks for

Sections are whole bars: a section ends at the first bar line at or after its share of the time
(less a quarter bar), so the section boundaries are bar lines and the markers sit on them. The
last section ends with the mode's cadence and a held tonic until exactly the requested length.

A continuation (Extend) starts from an earlier piece's closing state (`state.ClosingState`: its
key, its last bar's tempo, its motif, its last emotion) instead of the seed: the first new section
modulates from the earlier key by the same table, the tempo ramps from the earlier closing tempo,
the motif is the earlier one, and since the earlier piece's last bar (its cadence) stays as it
was, the new part's first bar is the pivot: the dominant seventh of the new key. There is no intro.

Chords and scales of a modulated section are written relative to the first section's tonic (the
piece's reference): a chord in E minor inside a C piece is the chord transposed by +4, which the
accompaniment and melody already play as they are.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from aria_engine.emotion import Emotion
from aria_engine.music.procedural.chords import choose_relative, colour, phrase_chords
from aria_engine.music.procedural.form import PHRASE_SWELL, Bar, Phrase, phrase_lengths, section_letters
from aria_engine.music.procedural.harmony import PITCH_NAMES, SCALES, Chord, chord_scale, tonic_chord
from aria_engine.music.procedural.melody import MelodyWriter, Motif
from aria_engine.music.procedural.plan import MusicalPlan, mode_for, plan_for, tempo_for
from aria_engine.music.procedural.rhythm import cell_rhythm

if TYPE_CHECKING:
    from aria_engine.music.procedural.state import ClosingState

MAX_TEMPO_RATIO = 1.2  # the most the tempo changes from one bar to the next
FINAL_FADE = -6  # velocity off the last section's closing bar
MIN_SECTION_S = 6.0  # at 60 BPM a bar lasts 4 s: a section needs room for more than one


@dataclass
class SectionPlan:
    """One section: its emotion, key, home tempo and (after `arrange_sections`) its bars."""

    index: int
    emotion: Emotion
    tonic_pc: int  # absolute pitch class
    mode: str
    home_bpm: float
    bars: list[Bar] = dataclasses.field(default_factory=list)
    phrases: list[Phrase] = dataclasses.field(default_factory=list)

    @property
    def start_s(self) -> float:
        return self.bars[0].time_s

    @property
    def key(self) -> str:
        return f"{PITCH_NAMES[self.tonic_pc]} {'major' if self.mode == 'ionian' else 'minor'}"


def next_key(tonic_pc: int, mode: str, previous: Emotion, emotion: Emotion) -> tuple[int, str]:
    """The neighbouring key the next section modulates to (the table in the module docstring)."""
    mode_next = mode_for(emotion.valence, emotion.arousal)
    if mode_next != mode:
        return (tonic_pc + (9 if mode == "ionian" else 3)) % 12, mode_next
    return (tonic_pc + (7 if emotion.valence >= previous.valence else 5)) % 12, mode


def plan_sections(emotions: Sequence[Emotion], seed: int, after: "ClosingState | None" = None) -> list[SectionPlan]:
    """Each section's key and home tempo, in order. Each depends only on the sections before it,
    so a piece extended by one section (same seed) keeps every earlier section's key and tempo.
    `after`: the closing state of the piece these sections continue, whose key they modulate from."""
    if not emotions:
        raise ValueError("a piece in sections needs at least one emotion")
    first = emotions[0]
    if after is None:
        tonic, mode = plan_for(first, seed=seed).tonic_pc, mode_for(first.valence, first.arousal)
    else:
        tonic, mode = next_key(after.tonic_pc, after.mode, after.emotion, first)
    plans = [SectionPlan(0, first, tonic, mode, float(tempo_for(first.arousal)))]
    for index, emotion in enumerate(emotions[1:], start=1):
        previous = plans[-1]
        tonic, mode = next_key(previous.tonic_pc, previous.mode, previous.emotion, emotion)
        plans.append(SectionPlan(index, emotion, tonic, mode, float(tempo_for(emotion.arousal))))
    return plans


def ramped(previous_bpm: float, target_bpm: float) -> float:
    """One bar's tempo on the ramp towards `target_bpm`."""
    ratio = min(MAX_TEMPO_RATIO, max(1 / MAX_TEMPO_RATIO, target_bpm / previous_bpm))
    return round(previous_bpm * ratio, 2)


def section_bars(sections: Sequence[SectionPlan], seconds: float, start_bpm: float | None = None) -> list[Bar]:
    """Bars for every section (stored on each), on the ramped tempo; the last bar holds until
    exactly len(sections) * seconds. `start_bpm`: the tempo the ramp starts from (a continuation:
    the earlier piece's closing tempo), else the first section's own."""
    if seconds < MIN_SECTION_S:
        raise ValueError(f"a section needs at least {MIN_SECTION_S:g} seconds, got {seconds:g}")
    total = seconds * len(sections)
    bars: list[Bar] = []
    t, bpm = 0.0, start_bpm or sections[0].home_bpm
    for section in sections:
        last = section.index == len(sections) - 1
        end = (section.index + 1) * seconds
        while True:
            bpm = ramped(bpm, section.home_bpm)
            bar_s = 240.0 / bpm
            if last and t + 1.75 * bar_s > total:
                bar = Bar(len(bars), 4.0 * len(bars), (total - t) * bpm / 60.0, t, bpm, final=True)
                bars.append(bar)
                section.bars.append(bar)
                break
            if not last and section.bars and t >= end - 0.25 * bar_s:
                break
            bar = Bar(len(bars), 4.0 * len(bars), 4.0, t, bpm)
            bars.append(bar)
            section.bars.append(bar)
            t += bar_s
    return bars


def _offset(tonic_pc: int, reference_pc: int) -> int:
    """Semitones from the reference tonic to this one, -5..6 (the nearer way)."""
    k = (tonic_pc - reference_pc) % 12
    return k - 12 if k > 6 else k


def _transposed(chord: Chord, scale: Sequence[int], k: int) -> tuple[Chord, tuple[int, ...]]:
    return Chord(chord.name, (chord.root + k) % 12, chord.intervals), tuple(p + k for p in scale)


def _pivot(following: SectionPlan) -> tuple[Chord, tuple[int, ...]]:
    """The next key's dominant seventh, in the next key's own terms."""
    dominant = Chord("V7", 7, (0, 4, 7, 10))
    return dominant, chord_scale(SCALES[following.mode], dominant)


def arrange_sections(sections: Sequence[SectionPlan], seconds: float, seed: int,
                     after: "ClosingState | None" = None) -> tuple[list[Bar], list[Phrase]]:
    """Bars, phrases, plans and chords of every section; chords relative to the first tonic.
    `after`: the closing state these sections continue (the tempo ramps from it, the first bar is
    the pivot into the first section's key, no intro)."""
    bars = section_bars(sections, seconds, after.bpm if after is not None else None)
    reference = sections[0].tonic_pc
    harmony = random.Random(f"{seed}/harmony")
    phrases: list[Phrase] = []
    for section in sections:
        last_section = section.index == len(sections) - 1
        base = plan_for(section.emotion, seed=seed)
        plan = dataclasses.replace(base, tonic=PITCH_NAMES[section.tonic_pc], mode=section.mode)
        intro, lengths = phrase_lengths(len(section.bars))
        if (section.index > 0 or after is not None) and intro:  # only the piece's opening has an intro
            lengths[0] += intro
            intro = 0
        letters = section_letters(len(lengths))
        first = intro
        for k, length in enumerate(lengths):
            members = section.bars[first:first + length]
            last = last_section and k == len(lengths) - 1
            section.phrases.append(Phrase(len(phrases), letters[k], members, plan, last=last))
            phrases.append(section.phrases[-1])
            first += length
        choose_relative(section.phrases, harmony)
        k = _offset(section.tonic_pc, reference)
        for bar in section.bars[:intro]:
            bar.plan = plan
            chord = colour(tonic_chord(plan.mode), plan.scale, plan, harmony)
            bar.chord, bar.scale = _transposed(chord, chord_scale(plan.scale, chord), k)
        for phrase in section.phrases:
            for position, (bar, (chord, scale)) in enumerate(zip(phrase.bars, phrase_chords(phrase, harmony))):
                bar.plan, bar.position = plan, position
                bar.chord, bar.scale = _transposed(chord, chord_scale(scale, chord), k)
        if not last_section:
            following = sections[section.index + 1]
            chord, scale = _pivot(following)
            pivot_bar = section.bars[-1]
            pivot_bar.chord, pivot_bar.scale = _transposed(chord, scale, _offset(following.tonic_pc, reference))
    if after is not None and len(sections[0].bars) > 1:  # the continuation's way into its first key
        chord, scale = _pivot(sections[0])
        sections[0].bars[0].chord, sections[0].bars[0].scale = _transposed(chord, scale, 0)
    _shape_sections(sections, opening=after is None)
    return bars, phrases


def _shape_sections(sections: Sequence[SectionPlan], opening: bool = True) -> None:
    """Phrase swells and breaths inside sections; the band plays through each pivot bar; only the
    piece's opening has an intro (a continuation has none), only its close fades."""
    for section in sections:
        for bar in section.bars:
            bar.dynamic = PHRASE_SWELL[bar.position % len(PHRASE_SWELL)] if not bar.final else 0
            bar.intro = opening and section.index == 0 and len(section.bars) >= 6 and bar.index == 0
        for phrase in section.phrases[:-1]:
            phrase.bars[-1].breath = True
    closing = sections[-1].bars[-1]
    closing.dynamic += FINAL_FADE


def fitted(steps: Sequence[int], n: int) -> tuple[int, ...]:
    """A motif's pitch shape resampled to n notes: first and last note kept, the rest spread."""
    if n <= 1 or len(steps) == 1:
        return tuple(steps[:1]) * max(n, 1)
    return tuple(steps[round(i * (len(steps) - 1) / (n - 1))] for i in range(n))


class JamMelodyWriter(MelodyWriter):
    """The melody of a piece in sections: every section's idea is the jam's one motif, its pitch
    shape fitted to the rhythm the section's density asks for; answers stay each section's own.
    A continuation passes the earlier piece's motif."""

    def __init__(self, seed: int, tonic_pc: int, motif_steps: Sequence[int] | None = None) -> None:
        super().__init__(seed, tonic_pc)
        # the first section's idea, once drawn (or the earlier piece's)
        self.motif_steps: tuple[int, ...] | None = tuple(motif_steps) if motif_steps else None

    def motifs(self, letter: str, plan: MusicalPlan) -> tuple[Motif, Motif]:
        idea, answer = super().motifs(letter, plan)
        if self.motif_steps is None:
            self.motif_steps = idea.steps
        rng = random.Random(f"{self.seed}/jam-motif/{round(plan.density * 4)}/{round(plan.syncopation * 4)}")
        rhythm = cell_rhythm(rng, plan.density, plan.syncopation) if letter == "A" else idea.rhythm
        return Motif(rhythm, fitted(self.motif_steps, len(rhythm))), answer


__all__ = ["MAX_TEMPO_RATIO", "SectionPlan", "plan_sections", "arrange_sections",
           "JamMelodyWriter", "next_key", "ramped", "fitted"]
