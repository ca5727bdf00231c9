"""Extend with the built-in composer: new sections after an earlier procedural piece, from its
closing state (`state.ClosingState`, read from the MIDI it wrote), the earlier notes verbatim.

The earlier piece ends on its cadence and a held tonic that lasts until its last tick; the new part
is a piece in sections (`sections`) planned from that state: its first bar is the pivot into the
first new key (modulated from the earlier key by the sections table), its tempo ramps from the
earlier closing tempo by at most MAX_TEMPO_RATIO a bar, its melody keeps the earlier motif. The
two are joined at the MIDI level (`midi_file.appended`): every earlier event keeps its tick, the
new part starts at the tick where the earlier notes end, so there is no silent gap at the join.
"""

from __future__ import annotations

import io

import pretty_midi

from aria_engine.music.procedural.harmony import PITCH_NAMES
from aria_engine.music.procedural.state import STATE_PREFIX, ClosingState, StateError, read_state


def earlier_state(midi: pretty_midi.PrettyMIDI) -> ClosingState:
    """The closing state of an earlier piece, or JamError when it carries none ARIA can use."""
    from aria_engine.jam import JamError

    try:
        state = read_state(midi)
    except StateError as error:
        raise JamError(str(error)) from None
    if state is None:
        raise JamError("the earlier piece carries no ARIA state: only a piece ARIA's built-in composer made "
                       "continues with it (continue another with the transformer)")
    return state


def earlier_sections(midi: pretty_midi.PrettyMIDI, starts: list[float]) -> list[dict]:
    """The earlier sections' stats as the readouts show them: the key signature in force at each
    start, the tempo of its first and last bar (from the MIDI's own meta events)."""
    end = midi.get_end_time()
    times, tempi = midi.get_tempo_changes()
    signatures = sorted(midi.key_signature_changes, key=lambda k: k.time)
    out = []
    for start, stop in zip(starts, starts[1:] + [end]):
        in_force = [k for k in signatures if k.time <= start + 1e-6]
        key = ""
        if in_force:
            number = in_force[-1].key_number
            key = f"{PITCH_NAMES[number % 12]} {'major' if number < 12 else 'minor'}"
        first = [float(q) for t, q in zip(times, tempi) if t <= start + 1e-6]
        last = [float(q) for t, q in zip(times, tempi) if t < stop - 1e-6]
        stat = {"start_s": round(start, 4), "key": key}
        if first and last:
            stat["tempo_bpm"] = [round(first[-1], 1), round(last[-1], 1)]  # tempo meta-events hold whole microseconds
        out.append(stat)
    return out


def continue_piece(composer, score, options):
    """The whole longer piece as a Composition: the earlier MIDI verbatim, then the score's new
    parts composed from the earlier closing state."""
    from aria_engine.jam import JamError, check_continuation, earlier_section_starts, read_earlier_midi
    from aria_engine.music import Composition
    from aria_engine.music.procedural.midi_file import appended, midi_bytes

    check_continuation(score)
    if score.continues.composer != "procedural":
        raise JamError("a piece the transformer made continues with the transformer")
    earlier_midi, _ = read_earlier_midi(score.continues.midi)
    state = earlier_state(earlier_midi)
    starts = earlier_section_starts(score.continues.midi, score.held)
    new = composer.compose_sections([p.emotion for p in score.new_parts], score.seconds, options, after=state)
    try:
        joined = appended(score.continues.midi, midi_bytes(new.midi), drop_text_prefix=STATE_PREFIX)
    except ValueError as error:
        raise JamError(f"the earlier piece cannot be continued: {error}") from None
    midi = pretty_midi.PrettyMIDI(io.BytesIO(joined))
    join_s = max(n.end for i in earlier_midi.instruments for n in i.notes)
    stats = dict(new.stats)
    later = [{**s, "start_s": round(s["start_s"] + join_s, 4)} for s in new.stats["sections"]]
    stats["sections"] = earlier_sections(earlier_midi, starts) + later
    stats["continued_at_s"] = round(join_s, 4)
    stats["notes"] = sum(len(i.notes) for i in midi.instruments)
    notes = [f"procedural: continued {score.held} section(s) from {state.emotion.label} at {state.bpm:g} BPM, "
             + " -> ".join(s["key"] for s in new.stats["sections"])]
    return Composition(midi=midi, composer=composer.name, seed=new.seed, mode=None, notes=notes, stats=stats)
