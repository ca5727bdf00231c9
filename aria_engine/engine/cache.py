"""Finished results by request key, bounded by bytes, least recently used out first.

Identical requests (same picture bytes or emotion, options, seed and upload limit; see
`Request.cache_key`) get the stored result at once. Results are mostly bytes (audio, MIDI,
two PNGs), so the bound is on those bytes; LRU suits a chat bot, where a piece is asked for
again soon after it was made (a button pressed twice, a repost) or not at all.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace

from aria_engine.pipeline import Request, Result


# What one event object of pretty_midi's (a Note, ControlChange, PitchBend, text...) takes,
# measured with tracemalloc: about 144 bytes, with its list slot.
_MIDI_EVENT_BYTES = 160


def midi_object_nbytes(midi: object) -> int:
    """What a pretty_midi object keeps alive: its tick-to-time table (8 bytes a tick of the
    longest track, when it was read from a file) and its event objects."""
    if midi is None:
        return 0
    table = getattr(midi, "_PrettyMIDI__tick_to_time", None)  # a list of one, for a new object
    total = int(table.nbytes) if hasattr(table, "nbytes") else 8 * len(table) if table is not None else 0
    events = 0
    for name in ("key_signature_changes", "time_signature_changes", "lyrics", "text_events"):
        events += len(getattr(midi, name, ()) or ())
    for instrument in getattr(midi, "instruments", ()) or ():
        events += 1 + sum(len(getattr(instrument, name, ()) or ())
                          for name in ("notes", "control_changes", "pitch_bends"))
    return total + events * _MIDI_EVENT_BYTES


def result_nbytes(result: Result) -> int:
    """What a result keeps alive: its files, the composition's pretty_midi object (often more
    than the files: see midi_object_nbytes), and a little for the objects around them."""
    audio = getattr(result.audio, "data", b"")
    midi = getattr(result.composition, "midi", None)
    return (len(result.midi) + len(audio) + len(result.emotion_chart) + len(result.piano_roll)
            + midi_object_nbytes(midi) + 4096)


def result_key(request: Request, result: Result) -> str | None:
    """The key under which a finished result answers later requests: its concrete seed's."""
    return replace(request, options=request.options.replace(seed=result.options.seed)).cache_key()


class ResultCache:
    """Not thread-safe: engines touch it from their event loop only."""

    def __init__(self, max_bytes: int = 256 * 1024 * 1024) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        self.max_bytes = max_bytes
        self.nbytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self._items: OrderedDict[str, tuple[Result, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def get(self, key: str | None) -> Result | None:
        if key is None:
            return None
        found = self._items.get(key)
        if found is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return found[0]

    def put(self, key: str | None, result: Result) -> bool:
        """Store a result; False when it is bigger than the whole cache (then nothing changes)."""
        if key is None:
            return False
        size = result_nbytes(result)
        if size > self.max_bytes:
            return False
        self.discard(key)
        self._items[key] = (result, size)
        self.nbytes += size
        while self.nbytes > self.max_bytes:
            _, (_, evicted) = self._items.popitem(last=False)
            self.nbytes -= evicted
            self.evictions += 1
        return True

    def discard(self, key: str) -> None:
        found = self._items.pop(key, None)
        if found is not None:
            self.nbytes -= found[1]
