"""Which chord each bar plays: a section's progression shaded by the other mode (phrases in the
relative key, chords borrowed from the parallel mode), coloured with sevenths, ninths and
suspensions as dissonance grows, and the closing cadence onto the home tonic."""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Sequence

from aria_engine.music.procedural.harmony import (PARALLEL, RELATIVE_PROGRESSIONS, SCALES, Chord,
                                                  leading_tone_diminished, parse_numeral, suspended,
                                                  with_ninth, with_seventh)
from aria_engine.music.procedural.plan import MusicalPlan

if TYPE_CHECKING:
    from aria_engine.music.procedural.form import Phrase

RELATIVE_GAIN = 1.4  # phrases in the relative key: this times the other mode's share...
RELATIVE_CAP = 0.9  # ...at most (the home key must still be heard)
BORROW_SHARE = 0.5  # chords borrowed from the parallel mode: this share of the other mode's share
MAJOR_SUS_SHARE = 0.7  # in a major key, this share of the coloured chords is suspended
NINTH_SHARE = 2.0  # ninths on that share of sevenths, times (dissonance - 0.5), when dissonance > 0.5


def colour(chord: Chord, scale: Sequence[int], plan: MusicalPlan, rng: random.Random) -> Chord:
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


def phrase_chords(phrase: Phrase, rng: random.Random) -> list[tuple[Chord, tuple[int, ...]]]:
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
        chords.append((colour(parse_numeral(numeral), SCALES[mode], plan, rng), SCALES[mode]))
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


def choose_relative(phrases: list[Phrase], rng: random.Random) -> None:
    """Which phrases turn to the relative key: their count follows each phrase's
    `relative_share` exactly on average (a running sum with one random offset, so seeds differ
    in which phrases, not in how many). The last phrase stays home, to cadence there."""
    total = rng.random()
    for phrase in phrases[:-1]:
        before = math.floor(total)
        share = min(RELATIVE_CAP, RELATIVE_GAIN * relative_share(phrase.plan))
        total += share * len(phrases) / (len(phrases) - 1)
        phrase.relative = math.floor(total) > before
