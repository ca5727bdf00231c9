"""What every engine offers the adapters, and what the backends share (cache, metrics, lag).

    async with LocalEngine(Pipeline()) as engine:
        job = await engine.submit(request)          # raises Busy when the queue is full
        async for event in job.events():             # Queued, Started, Progress..., then
            ...                                      # exactly one of Done, Failed, Cancelled
        engine.cancel(job.id, by="user-42")
        print(await engine.status())
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass

from aria_engine.engine.cache import ResultCache, result_key, result_nbytes
from aria_engine.engine.jobs import TERMINAL, Cancelled, Done, Event, Failed, Job
from aria_engine.engine.metrics import EngineMetrics, LoopLagMonitor
from aria_engine.engine.scheduler import Busy, Limits
from aria_engine.pipeline import Request

log = logging.getLogger(__name__)

_RECENT_JOBS = 1000  # finished jobs kept for `engine.job(id)` lookups...
_RECENT_BYTES = 64 * 1024 * 1024  # ...and no more than this of their pictures and results


@dataclass(frozen=True)
class EngineStatus:
    backend: str  # "local" or "redis"
    queued: int  # waiting to start (all processes, for Redis)
    running: int
    workers: int  # threads (local) or live worker processes (Redis)
    throughput_jobs_per_s: float | None  # measured; None until enough jobs finished
    eta_s: float | None  # expected wait for a job submitted now
    loop_lag_p99_ms: float  # of this process's event loop, recently
    finished: dict  # outcome -> count, in this process

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class Engine(ABC):
    """Submit requests, follow their jobs, cancel them, ask how busy things are."""

    backend = "abstract"

    def __init__(
        self,
        *,
        limits: Limits | None = None,
        cache: ResultCache | None = None,
        metrics: EngineMetrics | None = None,
        name: str = "engine",
    ) -> None:
        self.limits = limits or Limits()
        self.cache = cache
        self.metrics = metrics or EngineMetrics(role=self.backend)
        self.name = name
        self.lag = LoopLagMonitor(observe=self.metrics.loop_lag.observe)
        self._active: dict[str, Job] = {}
        self._recent: OrderedDict[str, tuple[Job, int]] = OrderedDict()  # job, bytes it holds
        self._recent_bytes = 0
        self._finished_counts: dict[str, int] = {}
        self._started = False
        self._closed = False

    # -- the API ------------------------------------------------------------------------------

    async def submit(self, request: Request, *, job_id: str | None = None) -> Job:
        """A job for the request: at once Done from the cache, else queued. Raises Busy."""
        if self._closed:
            raise RuntimeError("this engine is closed")
        await self.start()
        cached = self._from_cache(request)
        if cached is not None:
            job = Job(request) if job_id is None else Job(request, id=job_id)
            self._remember(job)
            self._emit(job, Done(cached, cached=True))
            return job
        try:
            job = await self._enqueue(request, job_id)
        except Busy as busy:
            self.metrics.refused.labels(busy.reason).inc()
            raise
        self.metrics.submitted.inc()
        self._remember(job)
        return job

    @abstractmethod
    def cancel(self, job_id: str, by: str = "user") -> bool:
        """End a queued or running job with Cancelled(by) now; False if it ended or is unknown here.

        Synchronous, so a button handler can answer at once; running work stops at its next
        progress report (Redis: the workers hear of it within a heartbeat).
        """

    @abstractmethod
    async def status(self) -> EngineStatus:
        ...

    def job(self, job_id: str) -> Job | None:
        """A job this process submitted, while running or recently finished."""
        recent = self._recent.get(job_id)
        return self._active.get(job_id) or (recent[0] if recent else None)

    async def start(self) -> None:
        if not self._started:
            self._started = True
            self.lag.start()
            await self._start()

    async def close(self) -> None:
        """Stop: waiting jobs end Cancelled(by="shutdown"); running ones get a short grace."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._close()
        finally:
            for job in list(self._active.values()):
                self._emit(job, Cancelled(by="shutdown"))
            await self.lag.stop()

    async def __aenter__(self) -> "Engine":
        await self.start()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    # -- for the backends ---------------------------------------------------------------------

    @abstractmethod
    async def _enqueue(self, request: Request, job_id: str | None) -> Job:
        """Queue the request (emitting Queued) or raise Busy."""

    async def _start(self) -> None:
        pass

    async def _close(self) -> None:
        pass

    def _emit(self, job: Job, event: Event) -> bool:
        """Emit on the loop's thread; a terminal event also does the bookkeeping."""
        if not job.emit(event):
            return False
        if isinstance(event, TERMINAL):
            self._ended(job, event)
        return True

    def _ended(self, job: Job, event: Done | Failed | Cancelled) -> None:
        outcome = type(event).__name__.lower()
        self._finished_counts[outcome] = self._finished_counts.get(outcome, 0) + 1
        self._active.pop(job.id, None)
        self._keep_recent(job, event)
        self.metrics.finished.labels(outcome).inc()
        self.metrics.latency.labels(outcome).observe(time.monotonic() - job.submitted_at)
        if isinstance(event, Failed):
            self.metrics.failures.labels(event.kind).inc()
        if isinstance(event, Done) and not event.cached and self.cache is not None:
            self.cache.put(result_key(job.request, event.result), event.result)

    def _keep_recent(self, job: Job, event: Done | Failed | Cancelled) -> None:
        """Keep a finished job for lookups, within a count and a byte budget: a finished job holds
        its picture and its whole result (audio, MIDI, PNGs), which a chat bot making pieces all
        day must not keep by the thousand."""
        held = len(job.request.image or b"") + (result_nbytes(event.result) if isinstance(event, Done) else 0)
        self._recent[job.id] = (job, held)
        self._recent_bytes += held
        while len(self._recent) > _RECENT_JOBS or (self._recent_bytes > _RECENT_BYTES and len(self._recent) > 1):
            _, (_, freed) = self._recent.popitem(last=False)
            self._recent_bytes -= freed

    def _remember(self, job: Job) -> None:
        if not job.done:
            self._active[job.id] = job

    def _from_cache(self, request: Request):
        if self.cache is None:
            return None
        key = request.cache_key()
        if key is None:
            return None
        result = self.cache.get(key)
        self.metrics.cache.labels("yes" if result is not None else "no").inc()
        return result

    def health(self) -> dict:
        """A snapshot for /healthz (read from another thread: plain values only)."""
        lag_ms = self.lag.percentile(0.99) * 1000
        return {
            "ok": self._started and not self._closed and lag_ms < 1000,
            "backend": self.backend,
            "name": self.name,
            "active_jobs": len(self._active),
            "loop_lag_p99_ms": round(lag_ms, 1),
        }


def log_failure(job_id: str, error: BaseException) -> str:
    """Log an unexpected error with its traceback; the id lets a user's report find it."""
    log_id = secrets.token_hex(4)
    log.error("job %s failed [log id %s]", job_id, log_id, exc_info=error)
    return log_id


def polite_failure(log_id: str) -> str:
    return (f"Sorry, something went wrong while making your piece. "
            f"Please try again; if it keeps happening, mention log id {log_id}.")


async def stop_task(task: asyncio.Task, timeout_s: float = 5.0) -> None:
    """Cancel a task and wait for it a while. A loop around a client library may swallow one
    CancelledError (redis-py can, mid-command), so loops also check their own stop flag."""
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    if not done:
        log.warning("task %s did not stop within %.0f s", task.get_name(), timeout_s)
    elif not task.cancelled() and task.exception() is not None:
        log.error("task %s failed", task.get_name(), exc_info=task.exception())
