"""The parts into a standard MIDI file: notes kept in range and never overlapping, beats turned
into seconds through the bars' tempi, one track per family, the key signatures."""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np
import pretty_midi

from aria_engine.music import FAMILIES
from aria_engine.music.procedural.form import Bar, Hit, Phrase

LOWEST_NOTE, HIGHEST_NOTE = 21, 108  # the published models' pitch range (piano keys)
TICKS_PER_BEAT = 480
_MIN_NOTE_S = 0.02  # shorter notes could collapse onto one MIDI tick


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


def assemble(bars: Sequence[Bar], phrases: Sequence[Phrase], parts: dict[str, list[Hit]],
             duration_s: float) -> pretty_midi.PrettyMIDI:
    """One track per family that plays, in FAMILIES order, on the bars' tempo map."""
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


def midi_bytes(midi: pretty_midi.PrettyMIDI) -> bytes:
    """The standard MIDI file as bytes."""
    buffer = io.BytesIO()
    midi.write(buffer)
    return buffer.getvalue()


def appended(earlier: bytes, later: bytes, drop_text_prefix: str = "") -> bytes:
    """One MIDI file: `earlier`'s events as they were, then `later`'s from the tick where
    earlier's last note ends (its meta events merged into the first track, its note tracks added
    after earlier's). Both at TICKS_PER_BEAT. Earlier text events starting with
    `drop_text_prefix` are dropped (a superseded state)."""
    import mido

    first = mido.MidiFile(file=io.BytesIO(earlier), charset="utf-8")
    second = mido.MidiFile(file=io.BytesIO(later), charset="utf-8")
    if first.ticks_per_beat != TICKS_PER_BEAT or second.ticks_per_beat != TICKS_PER_BEAT:
        raise ValueError(f"both pieces must have {TICKS_PER_BEAT} ticks a beat")

    def absolute(track) -> list[tuple[int, object]]:
        tick, events = 0, []
        for message in track:
            tick += message.time
            if message.type != "end_of_track":
                events.append((tick, message))
        return events

    def is_text_to_drop(message) -> bool:
        return bool(drop_text_prefix) and message.type == "text" and message.text.startswith(drop_text_prefix)

    earlier_tracks = [[e for e in absolute(t) if not is_text_to_drop(e[1])] for t in first.tracks]
    join = max((tick for events in earlier_tracks for tick, m in events if m.type in ("note_on", "note_off")), default=0)
    later_tracks = [[(tick + join, m) for tick, m in absolute(t)] for t in second.tracks]
    merged = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT, charset="utf-8")
    meta = sorted(earlier_tracks[0] + (later_tracks[0] if later_tracks else []), key=lambda e: e[0])
    for events in [meta] + earlier_tracks[1:] + later_tracks[1:]:
        track = mido.MidiTrack()
        previous = 0
        for tick, message in events:
            track.append(message.copy(time=tick - previous))
            previous = tick
        track.append(mido.MetaMessage("end_of_track", time=0))
        merged.tracks.append(track)
    out = io.BytesIO()
    merged.save(file=out)
    return out.getvalue()
