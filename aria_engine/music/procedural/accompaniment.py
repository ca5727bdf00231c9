"""The band under the melody: bass line, string pads, guitar and drums. Each bar's notes come from its
chord, its plan's density for the part and the part's groove for the section."""

from __future__ import annotations

import math
import random
from typing import Sequence

from aria_engine.music.procedural.form import Bar, Hit, Phrase, bar_letters
from aria_engine.music.procedural.harmony import Chord
from aria_engine.music.procedural.plan import MusicalPlan, clip
from aria_engine.music.procedural.rhythm import Grooves, bar_spans

DRUM = {"kick": 36, "side_stick": 37, "snare": 38, "closed_hat": 42, "open_hat": 46,
        "crash": 49, "ride": 51, "high_tom": 50, "mid_tom": 47, "low_tom": 45}
DRUM_FILL = ("snare", "high_tom", "mid_tom", "low_tom")  # sixteenths on the phrase's last beat
DRUM_SHARES = {"time": 0.5, "kick": 0.3, "back": 0.2}  # timekeeper, kick drum, backbeat
BREATH_AT_BEAT = 3.0  # where pads and guitar stop in a phrase's last bar, with the melody
_STRUM_GAP_S = 0.008  # between strings of a strummed chord


def _nearest_pitch(pc: int, target: float, lo: int, hi: int) -> int:
    """The pitch of class pc inside [lo, hi] closest to target."""
    candidates = [p for p in range(lo, hi + 1) if p % 12 == pc % 12]
    return min(candidates, key=lambda p: (abs(p - target), p))


def _accompaniment_velocity(plan: MusicalPlan, rng: random.Random, offset: int = 0) -> int:
    soft, loud = plan.velocity
    return int(clip(round((soft + loud) / 2 - 4 + offset + rng.randint(-3, 3)), 1, 127))


def bass_line(bars: Sequence[Bar], tonic_pc: int, rng: random.Random, grooves: Grooves | None = None,
              phrases: Sequence[Phrase] = ()) -> list[Hit]:
    """Roots on the downbeat, then fifths, octaves and an approach to the next root."""
    grooves = grooves or Grooves(rng.randrange(1 << 30))
    letters = bar_letters(bars, phrases)
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
        spans = bar_spans(onsets, bar)
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
    letters = bar_letters(bars, phrases)
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
            spans = bar_spans(grooves.get("strings", bar, letters.get(bar.index, "A"), plan.strings_onsets, 4), bar)
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
    letters = bar_letters(bars, phrases)
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
        for k, (start, length) in enumerate(bar_spans(onsets, bar)):
            if bar.breath and start >= bar.start + BREATH_AT_BEAT:
                break
            strings = int(clip(math.floor(plan.guitar_strings + rng.random()), 1, len(voicing)))
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
    """Timekeeper, kick and backbeat, each with its share (DRUM_SHARES) of the drum density; crashes open phrases
    and tom fills close them on the louder kits; nothing in the intro."""
    grooves = grooves or Grooves(rng.randrange(1 << 30))
    letters = bar_letters(bars, phrases)
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
            velocity = int(clip(round(base + accent + rng.randint(-4, 4)), 1, 127))
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
