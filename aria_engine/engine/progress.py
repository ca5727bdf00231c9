"""Progress events for jobs whose work runs in model threads: throttled, sent from the loop, and
the way a stage learns that nobody waits for its work any more (`Aborted`)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Callable, Sequence

from aria_engine.engine.jobs import Event, Job, Progress

if TYPE_CHECKING:
    from aria_engine.engine.stages import Work


class Aborted(Exception):
    """Raised inside a stage's progress callback when nobody waits for its work any more."""


class ProgressReporter:
    """Emits Progress for groups of jobs; `emit` is the engine's (it runs on the loop)."""

    def __init__(self, emit: Callable[[Job, Event], bool], interval_s: float) -> None:
        self.emit = emit
        self.interval_s = interval_s

    def callback(self, group: Sequence[Work], stage: str | None) -> Callable:
        """A callback for a stage running in a thread: throttled, hops to the loop, and aborts
        the stage once every job it serves has ended (cancelled, timed out).

        With `stage` None it takes (stage, fraction), as Pipeline.finish reports; else (fraction).
        Made on the loop's thread.
        """
        loop = asyncio.get_running_loop()
        interval = self.interval_s
        last = {"stage": None, "at": 0.0}

        def report(*args) -> None:
            name, fraction = (args if stage is None else (stage, args[0]))
            if all(not w.live for w in group):
                raise Aborted()
            now = time.monotonic()
            if name == last["stage"] and 0.0 < fraction < 1.0 and now - last["at"] < interval:
                return
            last["stage"], last["at"] = name, now
            loop.call_soon_threadsafe(self.report, group, name, float(fraction))

        return report

    def report(self, group: Sequence[Work], stage: str, fraction: float, together: int | None = None) -> None:
        """Progress for every job of a group; `together`: how many pieces share the work
        (default: the group)."""
        fraction = min(1.0, max(0.0, fraction))
        together = len(group) if together is None else together
        for work in group:
            event = Progress(stage, fraction, detail(work, stage, fraction, together))
            if work.live and work.job.history[-1] != event:
                self.emit(work.job, event)


def detail(work: Work, stage: str, fraction: float, batch_size: int) -> str:
    """The stage in words: "composing 128 of 512 tokens", "composing 12 of 30 seconds"."""
    if stage != "composing":
        return stage
    options = work.options
    if work.composer == "transformer":
        words = f"composing {round(fraction * options.length)} of {options.length} tokens"
    else:
        words = f"composing {round(fraction * options.duration_s)} of {options.duration_s:g} seconds"
    if batch_size > 1:
        words += f" (together with {batch_size - 1} other piece{'s' if batch_size > 2 else ''})"
    return words
