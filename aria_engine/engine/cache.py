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


def result_nbytes(result: Result) -> int:
    """What a result keeps alive, roughly: its files plus a little for the objects around them."""
    audio = getattr(result.audio, "data", b"")
    return len(result.midi) + len(audio) + len(result.emotion_chart) + len(result.piano_roll) + 4096


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
