"""The state a procedural piece closes in (key, tempo, motif, emotion), written into its own MIDI
so that any later request holding only the MIDI bytes can continue it (Extend).

One text meta-event at the piece's end, `aria-state {json}`: a short line that players and the
renderer ignore. Reading it is strict and bounded, since the MIDI may be a user's file: one event of
at most MAX_STATE_CHARS, exactly the known keys, each of its type and range, or no state at all
(`StateError` says what is wrong).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import pretty_midi

from aria_engine.emotion import Emotion
from aria_engine.music.procedural.harmony import SCALES

STATE_PREFIX = "aria-state "
STATE_VERSION = 1
MAX_STATE_CHARS = 1024
MAX_MOTIF_NOTES = 64
_KEYS = {"v", "tonic", "mode", "bpm", "motif", "valence", "arousal"}


class StateError(ValueError):
    """A state event that is not one ARIA wrote (damaged, forged or from another version)."""


@dataclass(frozen=True)
class ClosingState:
    """Where a procedural piece ends: what its continuation starts from."""

    tonic_pc: int  # 0..11
    mode: str  # a key of SCALES
    bpm: float  # the last bar's tempo
    motif: tuple[int, ...]  # the piece's motif, as scale steps
    emotion: Emotion  # the emotion it closes on

    def text(self) -> str:
        body = {"v": STATE_VERSION, "tonic": self.tonic_pc, "mode": self.mode, "bpm": round(self.bpm, 2),
                "motif": list(self.motif), "valence": round(self.emotion.valence, 4),
                "arousal": round(self.emotion.arousal, 4)}
        return STATE_PREFIX + json.dumps(body, separators=(",", ":"))


def write_state(midi: pretty_midi.PrettyMIDI, state: ClosingState, time_s: float) -> None:
    """Put the state event at `time_s` (the piece's end), replacing any earlier state event."""
    midi.text_events = [e for e in midi.text_events if not e.text.startswith(STATE_PREFIX)]
    midi.text_events.append(pretty_midi.Text(state.text(), float(time_s)))


def read_state(midi: pretty_midi.PrettyMIDI) -> ClosingState | None:
    """The piece's closing state, or None when it carries no state event; StateError when it
    carries a malformed one, or more than one."""
    found = [e.text for e in midi.text_events if e.text.startswith(STATE_PREFIX)]
    if not found:
        return None
    if len(found) > 1:
        raise StateError("the piece carries more than one ARIA state")
    return parse_state(found[0])


def parse_state(text: str) -> ClosingState:
    if len(text) > MAX_STATE_CHARS or not text.startswith(STATE_PREFIX):
        raise StateError("the piece's ARIA state is not one ARIA wrote")
    try:
        body = json.loads(text[len(STATE_PREFIX):])
    except (json.JSONDecodeError, RecursionError):
        raise StateError("the piece's ARIA state is not valid JSON") from None
    if not isinstance(body, dict) or set(body) != _KEYS or body["v"] != STATE_VERSION:
        raise StateError("the piece's ARIA state is from another version of ARIA")
    tonic, mode, bpm, motif = body["tonic"], body["mode"], body["bpm"], body["motif"]
    if type(tonic) is not int or not 0 <= tonic <= 11:
        raise StateError("the piece's ARIA state has a bad tonic")
    if not isinstance(mode, str) or mode not in SCALES:
        raise StateError("the piece's ARIA state has a bad mode")
    if type(bpm) not in (int, float) or not math.isfinite(bpm) or not 20 <= bpm <= 300:
        raise StateError("the piece's ARIA state has a bad tempo")
    if (not isinstance(motif, list) or not 1 <= len(motif) <= MAX_MOTIF_NOTES
            or any(type(step) is not int or not -64 <= step <= 64 for step in motif)):
        raise StateError("the piece's ARIA state has a bad motif")
    try:
        emotion = Emotion(body["valence"], body["arousal"])
        if type(body["valence"]) not in (int, float) or type(body["arousal"]) not in (int, float):
            raise ValueError
    except (TypeError, ValueError):
        raise StateError("the piece's ARIA state has a bad emotion") from None
    return ClosingState(tonic, mode, float(bpm), tuple(motif), emotion)
