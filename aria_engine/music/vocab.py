"""The token vocabulary of the midi-emotion / ARIA music models, and tokens <-> MIDI.

A token is either a special string (`<PAD>`, `<START>`, emotion tokens such as `<V-1>`) or a
tuple `(event_index, value)`: `ON_<INS>` / `OFF_<INS>` with a MIDI pitch, or `TIMESHIFT` with a
number of milliseconds. Indices are always read from the checkpoint's `mappings.pt`; `Vocab.build`
recreates the published order for new models.
"""

from __future__ import annotations

import pickle
from operator import attrgetter
from pathlib import Path
from typing import Iterable, Sequence

import pretty_midi

from aria_engine.music import instrument_family

INSTRUMENTS = ("DRUMS", "GUITAR", "BASS", "PIANO", "STRINGS")  # vocabulary order
MIN_PITCH, MAX_PITCH = 21, 108
TIMESHIFT_STEP_MS, MAX_TIMESHIFT_MS = 8, 1000
PAD, START = "<PAD>", "<START>"
EMOTION_BIN_IDS = (-2, -1, 0, 1, 2)

# Decoding to MIDI: (program, is_drum) and the fixed velocity of each instrument. Tracks are
# created in this order, as the reference does.
PROGRAMS = {"DRUMS": (0, True), "PIANO": (0, False), "GUITAR": (24, False), "BASS": (32, False), "STRINGS": (48, False)}
VELOCITIES = {"BASS": 127, "DRUMS": 120, "GUITAR": 95, "PIANO": 110, "STRINGS": 85}

# Encoding from MIDI: at equal times ON sorts before OFF; instruments sort in this priority.
_ON_OFF_PRIORITY = {"ON": 0, "OFF": 1}
_INSTRUMENT_PRIORITY = {name: i for i, name in enumerate(("DRUMS", "BASS", "GUITAR", "PIANO", "STRINGS"))}

_MAPPING_KEYS = ("event2idx", "idx2event", "tuple2idx", "idx2tuple", "transposable_event_inds")


def emotion_token(axis: str, bin_id: int) -> str:
    """`<V-1>`, `<A2>`: the discrete-token model's name for one axis bin."""
    return f"<{axis}{bin_id}>"


class VocabError(ValueError):
    """A mappings file or a token sequence that does not fit the published format."""


class Vocab:
    """Bidirectional maps between tokens and indices, plus the lookups decoding needs."""

    def __init__(self, mappings: dict):
        missing = [key for key in _MAPPING_KEYS if key not in mappings]
        if missing:
            raise VocabError(f"mappings are missing {', '.join(missing)}")
        self.event2idx: dict[str, int] = dict(mappings["event2idx"])
        self.idx2event: dict[int, str] = dict(mappings["idx2event"])
        self.tuple2idx: dict = dict(mappings["tuple2idx"])
        self.idx2tuple: dict = dict(mappings["idx2tuple"])
        self.transposable_event_inds: list[int] = list(mappings["transposable_event_inds"])
        if sorted(self.idx2tuple) != list(range(len(self.idx2tuple))):
            raise VocabError("token indices in mappings are not 0..N-1")
        if any(self.tuple2idx.get(token) != idx for idx, token in self.idx2tuple.items()):
            raise VocabError("tuple2idx and idx2tuple disagree")
        for token in (PAD, START):
            if token not in self.tuple2idx:
                raise VocabError(f"mappings lack the {token} token")
        if "TIMESHIFT" not in self.event2idx:
            raise VocabError("mappings lack the TIMESHIFT event")

        self.pad_id = self.tuple2idx[PAD]
        self.start_id = self.tuple2idx[START]
        self.timeshift_event = self.event2idx["TIMESHIFT"]
        # Per token index: special?, TIMESHIFT?, which instrument an ON/OFF names (or None).
        self.special_ids = [i for i in range(len(self)) if self.is_special(i)]
        self.is_timeshift = [self._event_name(i) == "TIMESHIFT" for i in range(len(self))]
        self.instrument_of = [self._instrument(i) for i in range(len(self))]

    # -- building and saving ---------------------------------------------------------------

    @classmethod
    def build(cls, conditioning: str = "none", emotion_tokens: Iterable[str] | None = None) -> "Vocab":
        """The published vocabulary; discrete_token models append emotion tokens sorted as strings."""
        events = []
        tokens: list = [PAD, START]
        for instrument in INSTRUMENTS:
            for on_off in ("OFF", "ON"):
                events.append(f"{on_off}_{instrument}")
                tokens.extend((len(events) - 1, pitch) for pitch in range(MIN_PITCH, MAX_PITCH + 1))
        events.append("TIMESHIFT")
        tokens.extend((len(events) - 1, ms) for ms in range(TIMESHIFT_STEP_MS, MAX_TIMESHIFT_MS + 1, TIMESHIFT_STEP_MS))
        if conditioning == "discrete_token":
            if emotion_tokens is None:
                emotion_tokens = [emotion_token(axis, b) for axis in "VA" for b in EMOTION_BIN_IDS]
            tokens.extend(sorted(set(emotion_tokens)))
        event2idx = {name: i for i, name in enumerate(events)}
        return cls(
            {
                "event2idx": event2idx,
                "idx2event": {i: name for name, i in event2idx.items()},
                "tuple2idx": {token: i for i, token in enumerate(tokens)},
                "idx2tuple": dict(enumerate(tokens)),
                "transposable_event_inds": [i for name, i in event2idx.items() if name.endswith(("_GUITAR", "_BASS", "_PIANO", "_STRINGS"))],
            }
        )

    @classmethod
    def load(cls, path: str | Path) -> "Vocab":
        """Read a checkpoint's mappings.pt.

        Loaded with `weights_only=True`: the restricted unpickler admits only dicts, lists,
        tuples, strings and numbers, which is all the format needs. `weights_only=False` is
        never used, so a hostile file cannot run code.
        """
        from aria_engine.models import load_data_only

        path = Path(path)
        try:
            mappings = load_data_only(path)
        except pickle.UnpicklingError as exc:
            raise VocabError(f"{path} holds objects other than the vocabulary format allows: {exc}") from exc
        except Exception as exc:  # a damaged or foreign file: torch raises nearly anything (KeyError, EOFError...)
            raise VocabError(f"{path} could not be read ({type(exc).__name__}: {exc})") from exc
        if not isinstance(mappings, dict):
            raise VocabError(f"{path} does not hold a mappings dict")
        try:
            return cls(mappings)
        except Exception as exc:  # the right container, the wrong contents
            raise VocabError(f"{path} does not hold the vocabulary format ({type(exc).__name__}: {exc})") from exc

    def mappings(self) -> dict:
        return {
            "event2idx": dict(self.event2idx),
            "idx2event": dict(self.idx2event),
            "tuple2idx": dict(self.tuple2idx),
            "idx2tuple": dict(self.idx2tuple),
            "transposable_event_inds": list(self.transposable_event_inds),
        }

    def save_mappings(self, path: str | Path) -> None:
        import torch

        torch.save(self.mappings(), Path(path))

    # -- token lookups -------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.idx2tuple)

    def is_special(self, idx: int) -> bool:
        token = self.idx2tuple[idx]
        return isinstance(token, str) and token.startswith("<")

    def timeshift_id(self, ms: int) -> int:
        return self.tuple2idx[(self.timeshift_event, ms)]

    def note_id(self, on_off: str, instrument: str, pitch: int) -> int:
        return self.tuple2idx[(self.event2idx[f"{on_off}_{instrument}"], pitch)]

    def emotion_ids(self, valence_bin: int, arousal_bin: int) -> tuple[int, int]:
        """Indices of the `<V..>` and `<A..>` tokens a discrete_token model is prompted with."""
        names = (emotion_token("V", valence_bin), emotion_token("A", arousal_bin))
        absent = [name for name in names if name not in self.tuple2idx]
        if absent:
            raise VocabError(f"this model has no {' or '.join(absent)} token (its training data lacked that bin)")
        return self.tuple2idx[names[0]], self.tuple2idx[names[1]]

    def describe(self, idx: int) -> str:
        """`ON_PIANO_60`, `TIMESHIFT_8`, `<START>`: the reference's string form of a token."""
        token = self.idx2tuple[idx]
        if isinstance(token, str):
            return token
        return f"{self.idx2event[token[0]]}_{token[1]}"

    def count_instruments(self, tokens: Iterable[int]) -> int:
        """Distinct instruments named by any ON/OFF token (the reference's min-instruments count)."""
        return len({self.instrument_of[t] for t in tokens} - {None})

    def _event_name(self, idx: int) -> str | None:
        token = self.idx2tuple[idx]
        return None if isinstance(token, str) else self.idx2event[token[0]]

    def _instrument(self, idx: int) -> str | None:
        name = self._event_name(idx)
        if name is None or "_" not in name:
            return None
        return name.split("_", 1)[1]

    # -- tokens -> MIDI ------------------------------------------------------------------

    def to_midi(self, tokens: Sequence[int]) -> pretty_midi.PrettyMIDI:
        """Decode token indices: specials are skipped, TIMESHIFT advances absolute time (ms),
        an OFF without an open note is ignored, a note never closed is dropped."""
        tracks = {
            name: pretty_midi.Instrument(program=program, is_drum=is_drum, name=name.lower())
            for name, (program, is_drum) in PROGRAMS.items()
        }
        open_notes: dict[tuple[str, int], float] = {}
        time_s = 0.0
        for idx in tokens:
            idx = int(idx)
            if not 0 <= idx < len(self):
                raise VocabError(f"token index {idx} is outside the vocabulary (size {len(self)})")
            token = self.idx2tuple[idx]
            if isinstance(token, str):
                continue
            event, value = self.idx2event[token[0]], int(token[1])
            if event == "TIMESHIFT":
                time_s += value / 1000.0
                continue
            on_off, instrument = event.split("_", 1)
            if on_off == "ON":
                open_notes[(instrument, value)] = time_s
            elif (instrument, value) in open_notes:
                start = open_notes.pop((instrument, value))
                tracks[instrument].notes.append(pretty_midi.Note(VELOCITIES[instrument], value, start, time_s))
        midi = pretty_midi.PrettyMIDI()
        midi.instruments.extend(tracks.values())
        return midi

    # -- MIDI -> tokens ------------------------------------------------------------------

    def from_midi(self, midi: pretty_midi.PrettyMIDI) -> list[int]:
        """Encode a piece as the models were trained (no `<START>`): notes outside 21..108 are
        dropped, events sorted by time (ON before OFF, then instrument priority), gaps split into
        1000 ms shifts plus a remainder rounded to a multiple of 8 ms (never to 0)."""
        events = []
        for track in midi.instruments:
            instrument = _vocab_instrument(track)
            for note in track.notes:
                if not MIN_PITCH <= note.pitch <= MAX_PITCH:
                    continue
                for on_off, time in (("ON", note.start), ("OFF", note.end)):
                    token = (self.event2idx[f"{on_off}_{instrument}"], note.pitch)
                    events.append((round(time, 6), _ON_OFF_PRIORITY[on_off], _INSTRUMENT_PRIORITY[instrument], token))
        events.sort()
        if not events:
            return []
        tokens: list[int] = []
        cursor_ms = int(round(events[0][0] * 1000))
        for time, _, _, token in events:
            time_ms = int(round(time * 1000))
            if time_ms > cursor_ms:
                tokens.extend(self._timeshift_tokens(time_ms - cursor_ms))
                cursor_ms = time_ms
            tokens.append(self.tuple2idx[token])
        return tokens

    def _timeshift_tokens(self, gap_ms: int) -> list[int]:
        shifts = [MAX_TIMESHIFT_MS] * (gap_ms // MAX_TIMESHIFT_MS)
        remainder = gap_ms % MAX_TIMESHIFT_MS
        if remainder > 0:
            shifts.append(max(TIMESHIFT_STEP_MS, int(TIMESHIFT_STEP_MS * round(remainder / TIMESHIFT_STEP_MS))))
        return [self.timeshift_id(ms) for ms in shifts]


def _vocab_instrument(track: pretty_midi.Instrument) -> str:
    """The vocabulary instrument of a MIDI track: by its name if it is one of the five (as the
    reference's own files are named), else by General MIDI program."""
    name = (track.name or "").strip().upper()
    if name in INSTRUMENTS:
        return name
    return instrument_family(track).upper()


__all__ = ["Vocab", "VocabError", "INSTRUMENTS", "PROGRAMS", "VELOCITIES", "emotion_token"]
