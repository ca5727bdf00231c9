"""A job and its events: what an adapter follows between `submit` and the reply.

A job's events are a short, append-only story: Queued, Started, Progress..., then exactly one
terminal event (Done, Failed or Cancelled). The first terminal event wins; anything emitted
after it is dropped, so racing paths (a timeout and a late result, a cancel and a finish) can
never tell a user two different endings. `Job.events()` replays the story from the start, so
any number of followers may attach at any time.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Union

from aria_engine.pipeline import Request, Result


@dataclass(frozen=True)
class Queued:
    position: int  # 1 = next to start
    eta_s: float | None  # expected wait before it starts, from measured throughput


@dataclass(frozen=True)
class Started:
    worker: str  # which engine or worker process runs it
    batch_size: int = 1  # how many jobs share its model work


@dataclass(frozen=True)
class Progress:
    stage: str  # one of pipeline.STAGES
    fraction: float  # of that stage, 0..1
    detail: str  # in words, e.g. "composing 12 of 30 seconds"


@dataclass(frozen=True)
class Done:
    result: Result
    cached: bool = False


@dataclass(frozen=True)
class Failed:
    reason: str  # a sentence fit to show the user
    log_id: str | None = None  # where the operator finds the traceback, when there is one
    kind: str = "error"  # short machine word: image_rejected, timeout, error, lost, ...


@dataclass(frozen=True)
class Cancelled:
    by: str  # who cancelled: a user id, "shutdown", ...


Event = Union[Queued, Started, Progress, Done, Failed, Cancelled]
TERMINAL = (Done, Failed, Cancelled)


def new_job_id() -> str:
    return secrets.token_hex(8)


@dataclass(eq=False)
class Job:
    """One request on its way through an engine. Emit only from the event loop's thread."""

    request: Request
    id: str = field(default_factory=new_job_id)
    submitted_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    finished_at: float | None = None
    _history: list[Event] = field(default_factory=list, repr=False)
    _changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    # -- reading ----------------------------------------------------------------------------

    @property
    def outcome(self) -> Done | Failed | Cancelled | None:
        last = self._history[-1] if self._history else None
        return last if isinstance(last, TERMINAL) else None

    @property
    def done(self) -> bool:
        return self.outcome is not None

    @property
    def state(self) -> str:
        """queued, running, done, failed or cancelled."""
        outcome = self.outcome
        if outcome is not None:
            return type(outcome).__name__.lower()
        return "running" if self.started_at is not None else "queued"

    @property
    def history(self) -> tuple[Event, ...]:
        return tuple(self._history)

    async def events(self) -> AsyncIterator[Event]:
        """Every event from the first, waiting for new ones; ends after the terminal one."""
        index = 0
        while True:
            while index < len(self._history):
                event = self._history[index]
                index += 1
                yield event
                if isinstance(event, TERMINAL):
                    return
            changed = self._changed
            await changed.wait()

    async def wait(self) -> Done | Failed | Cancelled:
        """The terminal event, once there is one."""
        async for event in self.events():
            if isinstance(event, TERMINAL):
                return event
        raise AssertionError("unreachable: events() ends with a terminal event")

    # -- writing (engines only) ---------------------------------------------------------------

    def emit(self, event: Event) -> bool:
        """Append an event; False (and nothing happens) once the job has ended."""
        if self.done:
            return False
        now = time.monotonic()
        if isinstance(event, Started) and self.started_at is None:
            self.started_at = now
        if isinstance(event, TERMINAL):
            self.finished_at = now
        self._history.append(event)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        return True
