"""The piano's melody: one-bar motifs on a scale-step grid (idea, answer, variation and cadence in
each four-bar phrase), shaped by the phrase contour, on chord tones at beats 1 and 3, with chromatic
passing tones as dissonance grows."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Sequence

from aria_engine.music.procedural.form import Hit, Phrase
from aria_engine.music.procedural.plan import MusicalPlan, clip
from aria_engine.music.procedural.rhythm import cadence_rhythm, cell_rhythm

CLIMAX_LIFT = 2  # scale steps the melody rises in the climax phrase
BREATH_NOTE_BEATS = 1.0  # a phrase's last melody note stops after this, leaving a rest
PASSING_SHARE = 0.9  # chromatic passing tones, times dissonance, where the melody moves a whole tone


@dataclass(frozen=True)
class Motif:
    rhythm: tuple[tuple[float, float], ...]  # (onset, length) in beats within one bar
    steps: tuple[int, ...]  # scale-step offsets, one per note, centred on 0


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
    rhythm = cell_rhythm(rng, density, syncopation)
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
            chord_degrees = [i for i, pc in enumerate(bar.scale) if pc % 12 in bar.chord.tones] or range(7)
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
        return Hit(pitch, start, end, int(clip(velocity, 1, 127)))

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
