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

The modules, in the order a piece is made: `plan` (the mapping above: an emotion -> `MusicalPlan`),
`harmony` (scales, progressions, chords from numerals), `form` (bars, phrases and their dynamics,
`arrange`), `chords` (which chord each bar plays), `rhythm` (melody cells, accompaniment grooves),
`melody`, `accompaniment` (bass, pads, guitar, drums), `midi_file` (the parts into a MIDI file).
`sections` plans a piece in sections, one per emotion (a jam, `compose_sections`): keys that
modulate, a bounded tempo ramp at each boundary, one motif through every section.
Every piece's MIDI carries its closing state (key, last tempo, motif, emotion: `state`), so that
Extend can continue it from its bytes alone (`continuation`).
"""

from __future__ import annotations

import random
from typing import Sequence

from aria_engine.emotion import Emotion, Trajectory
from aria_engine.jam import JamScore
from aria_engine.music import Composition, ProgressFn
from aria_engine.music.procedural.accompaniment import bass_line, drum_part, guitar_part, string_pads
from aria_engine.music.procedural.form import arrange, with_dynamics
from aria_engine.music.procedural.harmony import (CADENCES, PROGRESSIONS, SCALES, Chord, chord_scale,
                                                  leading_tone_diminished, parse_numeral)
from aria_engine.music.procedural.melody import MelodyWriter
from aria_engine.music.procedural.midi_file import assemble, midi_bytes
from aria_engine.music.procedural.plan import MusicalPlan, plan_for
from aria_engine.music.procedural.rhythm import Grooves
from aria_engine.music.procedural.sections import JamMelodyWriter, arrange_sections, plan_sections
from aria_engine.music.procedural.state import ClosingState, write_state
from aria_engine.options import GenerationOptions

__all__ = ["ProceduralComposer", "MusicalPlan", "plan_for", "midi_bytes", "Chord", "parse_numeral",
           "chord_scale", "leading_tone_diminished", "SCALES", "PROGRESSIONS", "CADENCES"]


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
        if isinstance(emotion, JamScore) and emotion.continues is not None:  # Extend
            from aria_engine.music.procedural.continuation import continue_piece

            return continue_piece(self, emotion, options)
        if isinstance(emotion, JamScore):  # a jam: one section per contribution
            return self.compose_sections(emotion.emotions, emotion.seconds, options, progress)
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
        parts = self._parts(bars, phrases, tonic_pc, seed, melody)
        report(0.7)
        midi = assemble(bars, phrases, parts, options.duration_s)
        motif = melody.motifs(phrases[0].letter, phrases[0].plan)[0].steps  # the piece's first idea
        write_state(midi, ClosingState(phrases[-1].plan.tonic_pc, phrases[-1].plan.mode, bars[-1].bpm, motif,
                                       trajectory.at(1.0)), options.duration_s)
        report(1.0)
        return Composition(
            midi=midi,
            composer=self.name,
            seed=seed,
            mode=None,
            notes=[f"procedural: {phrases[0].plan.describe()}"],
            stats=self._stats(bars, phrases, midi),
        )

    def compose_sections(self, emotions: Sequence[Emotion], seconds: float, options: GenerationOptions,
                         progress: ProgressFn | None = None, after: ClosingState | None = None) -> Composition:
        """One piece, one section of `seconds` per emotion (see `sections`); `stats["sections"]`
        says where each section starts, its key and its tempi. `after`: the closing state of an
        earlier piece these sections continue (its key, tempo and motif; see `continuation`)."""
        if options.seed is None:
            raise ValueError("options.seed must be set (use options.with_seed())")
        report = progress or (lambda fraction: None)
        report(0.0)
        seed = options.seed
        sections = plan_sections(emotions, seed, after)
        bars, phrases = arrange_sections(sections, seconds, seed, after)
        report(0.3)
        tonic_pc = sections[0].tonic_pc
        melody = JamMelodyWriter(seed, tonic_pc, after.motif if after is not None else None)
        parts = self._parts(bars, phrases, tonic_pc, seed, melody)
        report(0.7)
        midi = assemble(bars, phrases, parts, seconds * len(emotions))
        closing = sections[-1]
        write_state(midi, ClosingState(closing.tonic_pc, closing.mode, bars[-1].bpm, melody.motif_steps or (0,),
                                       closing.emotion), seconds * len(emotions))
        report(1.0)
        stats = self._stats(bars, phrases, midi)
        stats["sections"] = [{"start_s": round(s.start_s, 4), "key": s.key, "mode": s.mode,
                              "tempo_bpm": [b.bpm for b in s.bars], "bars": len(s.bars)} for s in sections]
        stats["motif_steps"] = list(melody.motif_steps or ())
        return Composition(midi=midi, composer=self.name, seed=seed, mode=None,
                           notes=[f"procedural: {len(sections)} sections, " + " -> ".join(s.key for s in sections)],
                           stats=stats)

    @staticmethod
    def _parts(bars, phrases, tonic_pc: int, seed: int, melody: MelodyWriter) -> dict:
        grooves = Grooves(seed)
        parts = {
            "piano": [h for p in phrases for h in melody.phrase(p)],
            "bass": bass_line(bars, tonic_pc, random.Random(f"{seed}/bass"), grooves, phrases),
            "strings": string_pads(bars, tonic_pc, random.Random(f"{seed}/strings"), grooves, phrases),
            "guitar": guitar_part(bars, tonic_pc, random.Random(f"{seed}/guitar"), grooves, phrases),
            "drums": drum_part(bars, phrases, random.Random(f"{seed}/drums"), grooves),
        }
        return {family: with_dynamics(hits, bars) for family, hits in parts.items()}

    def compose_batch(self, requests: Sequence[tuple[Emotion | Trajectory, GenerationOptions]],
                      progress: ProgressFn | None = None) -> list[Composition]:
        results = []
        for i, (emotion, options) in enumerate(requests):
            step = None if progress is None else (lambda f, i=i: progress((i + f) / len(requests)))
            results.append(self.compose(emotion, options, step))
        return results

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
