"""The Redis backend's submitting side: bots enqueue jobs and follow their events; `aria worker`
processes (aria_engine/worker.py) run them. This side loads no model.

The protocol, and why Redis Streams through redis-py, is in redis_queue.py. Here: one task
follows the event streams of every job this process waits for, with a single blocking XREAD
over all of them, and turns entries back into the same events a LocalEngine emits. A job
that Redis no longer knows (a Redis without persistence restarted) ends Failed(kind="lost"),
so no follower waits forever; with AOF nothing is lost and followers carry on after a
restart from the last entry they saw.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from aria_engine.emotion import Emotion
from aria_engine.engine.base import Engine, EngineStatus, log_failure, polite_failure, stop_task
from aria_engine.engine.cache import ResultCache
from aria_engine.engine.jobs import Cancelled, Failed, Job, Queued, new_job_id
from aria_engine.engine.metrics import EngineMetrics, eta_seconds
from aria_engine.engine.redis_queue import Refused, RedisQueue
from aria_engine.engine.scheduler import Busy, Limits, job_cost
from aria_engine.engine.wire import (
    WireError, event_from_fields, event_kind, load_reading_answer, load_result, reading_to_json,
    request_from_json, request_to_json, score_continuation,
)
from aria_engine.options import GenerationOptions
from aria_engine.pipeline import Request

log = logging.getLogger(__name__)

def connect(url: str) -> aioredis.Redis:
    """A client for our scripts: RESP2 replies (the shapes redis_queue.py reads), binary values."""
    return aioredis.from_url(url, protocol=2, health_check_interval=10, socket_keepalive=True)


class RedisEngine(Engine):
    """Submit to a Redis-backed worker pool; the same API as LocalEngine."""

    backend = "redis"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "aria",
        limits: Limits | None = None,
        cache: ResultCache | None = None,
        metrics: EngineMetrics | None = None,
        name: str = "bot",
        result_ttl_s: int = 3600,
        block_ms: int = 200,
        lost_check_s: float = 5.0,
        worker_timeout_s: float = 30.0,
    ) -> None:
        super().__init__(limits=limits, cache=cache, metrics=metrics or EngineMetrics("redis"), name=name)
        self.url = url
        self.prefix = prefix
        self.result_ttl_s = result_ttl_s
        self.block_ms = block_ms
        self.lost_check_s = lost_check_s
        self.worker_timeout_s = worker_timeout_s
        self.redis: aioredis.Redis | None = None
        self.queue: RedisQueue | None = None
        self._last_ids: dict[str, str] = {}  # followed job -> last event entry seen
        self._follower: asyncio.Task | None = None
        self._background: set[asyncio.Task] = set()
        self._redis_ok = False
        self._rate: float | None = None
        self._stopping = False

    # -- lifecycle ------------------------------------------------------------------------------

    async def _start(self) -> None:
        self.redis = connect(self.url)
        self.queue = RedisQueue(self.redis, self.prefix)
        self._follower = asyncio.get_running_loop().create_task(self._follow(), name="redis-follower")

    async def _close(self) -> None:
        self._stopping = True
        if self._follower is not None:
            await stop_task(self._follower)
        if self._background:
            await asyncio.wait(list(self._background), timeout=2.0)
        if self.redis is not None:
            await self.redis.aclose()

    # -- the API --------------------------------------------------------------------------------

    async def _enqueue(self, request: Request, job_id: str | None) -> Job:
        job_id = job_id or new_job_id()
        origin = request.origin
        limits = self.limits
        try:
            reply = await self.queue.enqueue(
                job_id, request_to_json(request), request.image, server=origin.server, user=origin.user,
                cost=job_cost(request), max_queued=limits.max_queued,
                max_per_server=limits.max_queued_per_server, max_per_user=limits.max_queued_per_user,
                continues=score_continuation(request.emotion),
            )
        except RedisError as error:
            log.warning("cannot enqueue: %s", error)
            raise Busy("unavailable", 0, None) from error
        rate = self._rate
        if isinstance(reply, Refused):
            raise Busy(reply.reason, reply.position, eta_seconds(reply.position, rate))
        job = Job(request, id=job_id)
        self._emit(job, Queued(reply.position, eta_seconds(reply.position, rate)))
        self._last_ids[job_id] = "0-0"
        return job

    def cancel(self, job_id: str, by: str = "user") -> bool:
        """Cancelled here at once; Redis and the workers hear of it in the background."""
        job = self._active.get(job_id)
        if job is None or job.done:
            return False
        self._emit(job, Cancelled(by=by))
        task = asyncio.get_running_loop().create_task(self._cancel_in_redis(job_id, by))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return True

    async def cancel_remote(self, job_id: str, by: str = "user") -> str:
        """Cancel any job in Redis (also one another process submitted); returns its state before."""
        await self.start()
        state = await self.queue.cancel(job_id, by, self.result_ttl_s)
        job = self._active.get(job_id)
        if job is not None and state in ("queued", "running"):
            self._emit(job, Cancelled(by=by))
        return state

    async def attach(self, job_id: str) -> Job | None:
        """Follow a job submitted earlier (by this process before a restart, or another one)."""
        await self.start()
        if job_id in self._active:
            return self._active[job_id]
        fields = await self.queue.job_fields(job_id)
        if not fields:
            return None
        job = Job(request_from_json(fields.get("request"), fields.get("image"), fields.get("continues")),
                  id=job_id)  # or WireError
        self._remember(job)
        self._last_ids[job_id] = "0-0"
        return job

    async def status(self) -> EngineStatus:
        await self.start()
        counts = await self.queue.counts(self.worker_timeout_s)
        rate = _rate(counts["completions"], counts["now"])
        self._rate = rate
        self.metrics.queue_depth.set(counts["queued"])
        self.metrics.running.set(counts["running"])
        return EngineStatus(
            backend=self.backend,
            queued=counts["queued"],
            running=counts["running"],
            workers=counts["workers"],
            throughput_jobs_per_s=rate,
            eta_s=eta_seconds(counts["queued"] + 1, rate),
            loop_lag_p99_ms=self.lag.percentile(0.99) * 1000,
            finished=dict(self._finished_counts),
        )

    async def read_picture(self, image: bytes, options: GenerationOptions,
                           timeout_s: float = 30.0) -> tuple[Emotion, str]:
        """One picture's emotion, read by a worker (its encoder for `options.encoder`, after the
        image-safety gate `options` ask for): (emotion, encoder). Raises as an in-process reading
        does: ImageUnsafe when the gate refuses it, ValueError (with why, for the member) when it
        cannot be read, no worker answers within `timeout_s` or Redis cannot be reached.

        Why the workers read it and not this process: the bot side of a worker pool loads no
        model, so a reading here could use neither the workers' encoder (CLIP where they have
        its weights) nor their image-safety classifier; a jam's readout would then differ from
        what a single piece of the same picture reads. Readings skip the job queue (see
        redis_queue.py), so they answer at once even while every worker composes."""
        await self.start()
        read_id = new_job_id()
        try:
            await self.queue.ask_reading(read_id, reading_to_json(options), image, int(timeout_s) + 5)
            answer = await self.queue.reading_answer(read_id, timeout_s)
            if answer is None:
                await self.queue.forget_reading(read_id)
        except RedisError as error:
            log.warning("cannot have a picture read: %s", error)
            raise ValueError("the worker pool cannot be reached right now; please try again soon") from None
        if answer is None:
            raise ValueError("no worker answered in time; please try again soon")
        return load_reading_answer(answer)

    def health(self) -> dict:
        report = super().health()
        report["redis"] = "ok" if self._redis_ok else "unreachable"
        report["ok"] = report["ok"] and self._redis_ok
        return report

    # -- following ------------------------------------------------------------------------------

    def _ended(self, job: Job, event) -> None:
        super()._ended(job, event)
        self._last_ids.pop(job.id, None)

    async def _cancel_in_redis(self, job_id: str, by: str) -> None:
        for attempt in range(30):
            try:
                await self.queue.cancel(job_id, by, self.result_ttl_s)
                return
            except RedisError as error:
                log.warning("cancel of %s not delivered yet (%s); retrying", job_id, error)
                await asyncio.sleep(min(5.0, 0.2 * 2 ** attempt))
        log.error("gave up telling Redis that job %s is cancelled", job_id)

    async def _follow(self) -> None:
        """One loop for every followed job: read new events, fetch results, spot lost jobs."""
        next_lost_check = time.monotonic() + self.lost_check_s
        next_rate = 0.0
        failures = 0
        status_failures = 0
        while not self._stopping:
            try:
                if time.monotonic() >= next_rate:
                    next_rate = time.monotonic() + 2.0
                    try:  # the queue's figures are for ETAs: never a reason to stop reading events
                        await self.status()
                        status_failures = 0
                    except asyncio.CancelledError:
                        raise
                    except RedisError as error:
                        if not isinstance(error, ResponseError):
                            raise  # unreachable: the outer handler waits and retries
                        status_failures += 1
                        if status_failures in (1, 10) or status_failures % 100 == 0:
                            log.warning("cannot read the queue's figures from Redis (%s); "
                                        "following jobs without them", str(error)[:200])
                    except Exception as error:
                        status_failures += 1
                        if status_failures in (1, 10) or status_failures % 100 == 0:
                            log.warning("cannot read the queue's figures from Redis (%s: %s); "
                                        "following jobs without them", type(error).__name__, str(error)[:200])
                if not self._last_ids:
                    self._redis_ok = bool(await self.redis.ping())
                    await asyncio.sleep(self.block_ms / 1000)
                    continue
                try:
                    batches = await self.queue.read_events(dict(self._last_ids), self.block_ms)
                except ResponseError as error:  # one key that is no stream fails the whole read
                    if "WRONGTYPE" not in str(error) or not await self._fail_wrong_streams():
                        raise
                    continue
                for job_id, entries in batches:
                    for entry_id, fields in entries:
                        if job_id not in self._last_ids:
                            break
                        await self._deliver(job_id, fields)
                        if job_id in self._last_ids:  # still followed: not ended by this entry
                            self._last_ids[job_id] = entry_id
                if time.monotonic() >= next_lost_check:
                    await self._fail_lost_jobs()
                    next_lost_check = time.monotonic() + self.lost_check_s
                self._redis_ok, failures = True, 0
            except asyncio.CancelledError:
                raise
            except RedisError as error:
                self._redis_ok = False
                failures += 1
                if failures in (1, 10) or failures % 100 == 0:
                    log.warning("Redis unreachable while following jobs (%s); retrying", error)
                await asyncio.sleep(min(2.0, 0.1 * failures))
            except Exception:  # a bug must not stop every follower
                log.exception("while following jobs")
                await asyncio.sleep(0.5)

    async def _deliver(self, job_id: str, fields: dict) -> None:
        """One stream entry as the job's event. What Redis holds is only data: an entry or a
        result that does not read as this version writes it fails this job, with why."""
        job = self._active.get(job_id)
        if job is None or job.done:
            return
        try:
            if event_kind(fields) != "done":
                self._emit(job, event_from_fields(fields))
                return
            data = await self.queue.result(job_id)
            if data is None:
                self._emit(job, Failed("Sorry, your piece was made but has expired before I could fetch it. "
                                       "Please ask again.", kind="lost"))
                return
            result = await asyncio.to_thread(load_result, data)
            self._emit(job, event_from_fields(fields, result))
        except WireError as error:
            self._emit(job, unreadable(job_id, error))
        except RedisError:
            raise  # the follower retries this entry
        except Exception as error:  # a bug: this job fails, the others carry on
            log_id = log_failure(job_id, error)
            self._emit(job, Failed(polite_failure(log_id), log_id))

    async def _fail_wrong_streams(self) -> int:
        """Fail the jobs whose events key holds no stream; returns how many."""
        wrong = await self.queue.not_streams(list(self._last_ids))
        for job_id in wrong:
            job = self._active.get(job_id)
            if job is not None:
                self._emit(job, unreadable(job_id, WireError("its event stream is not a Redis stream")))
            self._last_ids.pop(job_id, None)
        return len(wrong)

    async def _fail_lost_jobs(self) -> None:
        followed = list(self._last_ids)
        if not followed:
            return
        known = await self.queue.existing(followed)
        for job_id in followed:
            job = self._active.get(job_id)
            if job_id not in known and job is not None:
                log.error("job %s vanished from Redis (restarted without persistence?)", job_id)
                self._emit(job, Failed("Sorry, your request was lost on my side. Please ask again.", kind="lost"))


def unreadable(job_id: str, error: WireError, what: str = "what came back for this piece") -> Failed:
    """The end of a job whose message from Redis did not read as data of this version: one
    line in the log (no traceback: the bytes came from outside), the reason for the user."""
    log_id = secrets.token_hex(4)
    log.warning("job %s: unreadable message from Redis [log id %s]: %s", job_id, log_id, error)
    return Failed(f"Sorry, I could not read {what}: {error}. Please ask again; "
                  f"if it keeps happening, mention log id {log_id}.", log_id, kind="unreadable")


def _rate(completions: list[float], now: float) -> float | None:
    """Jobs per second over the recent completions (None below three)."""
    if len(completions) < 3:
        return None
    span = max(now - min(completions), 1e-3)
    return len(completions) / span
