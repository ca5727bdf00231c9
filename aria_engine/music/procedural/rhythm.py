"""Rhythms on one bar's grid: the melody's rhythm cells, and the accompaniment's pulses (the
metrically strong sixteenths first, reordered a little by the seed), kept per section by `Grooves`
so that sections repeat and seeds differ."""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Sequence

from aria_engine.music.procedural.plan import clip

if TYPE_CHECKING:
    from aria_engine.music.procedural.form import Bar

# The metrical weight of each sixteenth of a 4/4 bar: where a rhythm's notes go first.
METRIC_WEIGHT = (4.0, 0.4, 1.0, 0.4, 2.0, 0.4, 1.0, 0.4, 3.0, 0.4, 1.0, 0.4, 2.0, 0.4, 1.0, 0.4)
RHYTHM_JITTER = 2.6  # how far the seed can reorder those weights: variety across seeds
SYNCOPATION_PULL = 1.6  # extra weight on off-beats per unit of syncopation


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


def cell_rhythm(rng: random.Random, density: float, syncopation: float) -> tuple[tuple[float, float], ...]:
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


def cadence_rhythm(density: float) -> tuple[tuple[float, float], ...]:
    if density < 1.0:
        return ((0.0, 2.0), (2.0, 2.0))
    if density < 1.8:
        return ((0.0, 1.0), (1.0, 1.0), (2.0, 2.0))
    return ((0.0, 0.5), (0.5, 0.5), (1.0, 0.5), (1.5, 0.5), (2.0, 2.0))


def pulse(rng: random.Random, per_beat: float, syncopation: float, step: int = 2,
          anchor: bool = True) -> tuple[int, ...]:
    """A one-bar rhythm (sixteenths 0..15) with `per_beat` notes per beat on average: the
    metrically strongest slots first, reordered a little by the seed and pulled towards the
    off-beats by syncopation. The count is rounded with a uniform draw, so its mean is exact."""
    slots = list(range(0, 16, step))
    count = int(clip(math.floor(per_beat * 4 + rng.random()), 1, len(slots)))
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


def bar_spans(onsets: Sequence[int], bar: Bar) -> list[tuple[float, float]]:
    """(start, length to the next onset) in beats for sixteenth-slot onsets in a bar."""
    beats = [bar.start + o / 4 for o in onsets] + [bar.end]
    return [(b, following - b) for b, following in zip(beats, beats[1:])]
