"""`aria worker --redis URL`: a process that takes jobs from Redis and runs the models.

Inside, a worker is a LocalEngine fed from Redis instead of from adapters. It claims only what
it can start at once: when a model thread is free and nothing waits locally, up to `max_batch`
jobs by fairness, which the LocalEngine then composes together. Jobs it cannot start yet stay
in Redis, in fair order and free for any worker, instead of waiting inside this process (where
a crash would hold them until the visibility timeout). It forwards each job's events to the
job's event stream and stores the outcome, acknowledging only after the result is stored.
Around that, every heartbeat (a third of the visibility timeout) it:
  - tells Redis it lives and resets the idle time of the jobs it holds, so nobody steals them;
  - stops jobs cancelled in Redis;
  - takes over jobs left idle past the visibility timeout by a worker that died.
Beside the jobs it answers readings (a jam contribution's picture, read for its readout) on their
own lane, one at a time, in a thread outside the model threads, so a readout never waits for a
piece to finish.

SIGTERM drains: no new claims, running jobs get `drain_s` to finish, and whatever is left is
marked idle so another worker takes it at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time

from redis.exceptions import RedisError

from aria_engine.engine.base import log_failure, polite_failure, stop_task
from aria_engine.engine.jobs import TERMINAL, Done, Failed, Job, Progress, Queued, Started
from aria_engine.engine.local import LocalEngine
from aria_engine.engine.metrics import EngineMetrics, MetricsServer
from aria_engine.engine.redis_backend import connect, unreadable
from aria_engine.engine.redis_queue import TERMINAL_STATES, RedisQueue
from aria_engine.engine.scheduler import Limits
from aria_engine.engine.stages import read_picture
from aria_engine.engine.wire import (
    WireError, dump_result, event_to_fields, reading_answer, reading_from_json, request_from_json,
)
from aria_engine.pipeline import Pipeline

log = logging.getLogger(__name__)
READING_ANSWER_TTL_S = 60  # the bot waits at most 30 s for an answer


def device_name(pipeline: Pipeline) -> str:
    """The worker's device in words; `cpu` without resolving when nothing asks for a GPU."""
    from aria_engine.device import describe

    try:
        return describe(pipeline.device())
    except Exception as error:  # reported, and the jobs that need the device fail with a reason
        return f"unusable ({error})"


def default_max_batch(pipeline: Pipeline) -> int:
    """Jobs a worker composes together by default: 4 on a CPU, 64 on a GPU."""
    try:
        return 64 if pipeline.device().type == "cuda" else 4
    except Exception:
        return 4


def default_worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Worker:
    def __init__(
        self,
        url: str,
        *,
        pipeline: Pipeline | None = None,
        prefix: str = "aria",
        name: str | None = None,
        concurrency: int = 1,
        max_batch: int = 4,
        visibility_timeout_s: float = 60.0,
        max_deliveries: int = 5,
        job_timeout_s: float | None = 600.0,
        result_ttl_s: int = 3600,
        drain_s: float = 30.0,
        warm_up: bool = True,
        metrics: EngineMetrics | None = None,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.name = name or default_worker_name()
        self.metrics = metrics or EngineMetrics("worker")
        self.engine = LocalEngine(
            pipeline, concurrency=concurrency, max_batch=max_batch, metrics=self.metrics, name=self.name,
            limits=Limits(max_queued=1_000_000, max_running_per_server=None, max_running_per_user=None,
                          job_timeout_s=job_timeout_s),
        )
        self.max_batch = max_batch
        self.device = device_name(self.engine.pipeline)
        self.visibility_timeout_s = visibility_timeout_s
        self.heartbeat_s = max(0.1, visibility_timeout_s / 3)
        self.max_deliveries = max_deliveries
        self.result_ttl_s = result_ttl_s
        self.drain_s = drain_s
        self.warm_up = warm_up
        self.queue: RedisQueue | None = None
        self._held: dict[str, str] = {}  # job id -> stream entry id, for jobs this worker holds
        self._handed_over: set[str] = set()  # held jobs another worker took over: no outcome from here
        self._forwarders: set[asyncio.Task] = set()
        self._room = asyncio.Event()
        self._stopping = asyncio.Event()
        self._last_heartbeat = 0.0

    # -- running --------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Work until `stop` is set (or SIGTERM/SIGINT when run by `aria worker`)."""
        redis = connect(self.url)
        self.queue = RedisQueue(redis, self.prefix)
        await self.engine.start()
        if self.warm_up:
            await asyncio.to_thread(self._warm_up)
        tasks = [asyncio.create_task(self._claim_loop(), name="claim"),
                 asyncio.create_task(self._reading_loop(), name="readings"),
                 asyncio.create_task(self._heartbeat_loop(), name="heartbeat")]
        log.info("worker %s ready on %s (%d threads, batches up to %d, visibility timeout %.1f s)",
                 self.name, self.device, self.engine.concurrency, self.max_batch, self.visibility_timeout_s)
        try:
            await (stop or asyncio.Event()).wait()
        finally:
            self._stopping.set()
            await self._drain(tasks)
            await self.engine.close()
            await redis.aclose()
            log.info("worker %s stopped", self.name)

    def _warm_up(self) -> None:
        """Load the default backends now, so the first job is not the slow one. A backend that
        cannot load is only logged here: the jobs that need it fail with a reason."""
        pipeline = self.engine.pipeline
        for load in (pipeline.renderer, pipeline.encoder, pipeline.composer):
            try:
                load()
            except Exception:
                log.exception("warm-up: %s failed", load.__name__)

    async def _drain(self, tasks: list[asyncio.Task]) -> None:
        claim, readings, heartbeat = tasks
        await stop_task(claim)  # no more claims
        await stop_task(readings)
        if self._forwarders:
            await asyncio.wait(list(self._forwarders), timeout=self.drain_s)
        await stop_task(heartbeat)
        # What is left goes back to the pool unfinished: its outcome belongs to the worker that
        # takes it next, so stopping it here must not be stored as the job's end.
        left = dict(self._held)
        self._handed_over.update(left)
        for job_id in left:
            self.engine.cancel(job_id, by="shutdown")
        try:
            await self.queue.release(self.name, list(left.values()), int(self.visibility_timeout_s * 1000))
        except RedisError as error:
            log.warning("could not hand back %d jobs (%s); they return after the visibility timeout",
                        len(left), error)

    def info(self) -> dict:
        """What this worker runs on and can take, for Redis and /healthz: its device (a GPU
        worker claims larger batches) and capacity."""
        return {"device": self.device, "concurrency": self.engine.concurrency, "max_batch": self.max_batch}

    def health(self) -> dict:
        report = self.engine.health()
        age = time.monotonic() - self._last_heartbeat
        report.update(role="worker", held=len(self._held), heartbeat_age_s=round(age, 1), **self.info(),
                      ok=report["ok"] and age < 3 * self.heartbeat_s + 5)
        return report

    # -- claiming -------------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            if not self.engine.idle:
                self._room.clear()
                try:  # woken when a job ends; the timeout covers a slot freed without one
                    await asyncio.wait_for(self._room.wait(), timeout=0.5)
                except asyncio.TimeoutError:
                    pass
                continue
            try:
                claimed = await self._claim_batch()
                if not claimed:
                    await self.queue.wait_for_work(timeout_s=0.5)
                    continue
                await self._begin_all(claimed)
                await asyncio.sleep(0)  # let the local engine start them before looking again
                failures = 0
            except RedisError as error:
                failures += 1
                if failures in (1, 10) or failures % 100 == 0:
                    log.warning("cannot claim jobs (%s); retrying", error)
                await asyncio.sleep(min(2.0, 0.1 * failures))
            except Exception:  # a bug must not stop the claiming; the entry returns after the timeout
                log.exception("while claiming jobs")
                await asyncio.sleep(1.0)

    async def _claim_batch(self) -> list[tuple[str, str]]:
        """Up to max_batch jobs, in fair order, all pending on this worker now."""
        claimed = []
        while len(claimed) < self.max_batch:
            entry = await self.queue.claim(self.name)
            if entry is None:
                break
            claimed.append(entry)
        return claimed

    async def _begin_all(self, claimed: list[tuple[str, str]]) -> None:
        """Read every job first, then submit them together, so the local engine batches them."""
        ready = [prepared for entry_id, job_id in claimed if (prepared := await self._prepare(entry_id, job_id))]
        for entry_id, job_id, request in ready:
            await self._start(entry_id, job_id, request)

    async def _prepare(self, entry_id: str, job_id: str):
        """(entry id, job id, request) for a job to run, or None (acked, or failed, here)."""
        if job_id in self._held:  # ours already (its entry went idle while we held it)
            self._held[job_id] = entry_id
            return None
        fields = await self.queue.job_fields(job_id)
        state = fields.get("state", b"").decode(errors="replace")
        if not fields or state in TERMINAL_STATES:
            await self.queue.ack(entry_id)  # expired, or cancelled/finished by someone else
            return None
        try:
            request = request_from_json(fields.get("request"), fields.get("image"), fields.get("continues"))
        except WireError as error:  # a malformed job must fail, not loop through the workers
            await self._finish(job_id, entry_id, unreadable(job_id, error, "this request as it reached the worker"))
            return None
        except Exception as error:
            log_id = log_failure(job_id, error)
            await self._finish(job_id, entry_id, Failed(polite_failure(log_id), log_id))
            return None
        if state != "running" or fields.get("worker", b"").decode(errors="replace") != self.name:
            if not await self.queue.mark_running(job_id, self.name):  # cancelled since we looked
                await self.queue.ack(entry_id)
                return None
        return entry_id, job_id, request

    async def _start(self, entry_id: str, job_id: str, request) -> None:
        job = await self.engine.submit(request, job_id=job_id)
        self._held[job_id] = entry_id
        task = asyncio.create_task(self._forward(job, entry_id), name=f"job-{job_id}")
        self._forwarders.add(task)
        task.add_done_callback(self._forwarders.discard)

    async def _forward(self, job: Job, entry_id: str) -> None:
        """The local job's events into its Redis stream; the outcome stored, then acked."""
        try:
            async for event in job.events():
                if isinstance(event, Queued):
                    continue
                if isinstance(event, (Started, Progress)):
                    try:
                        await self.queue.post(job.id, event_to_fields(event))
                    except RedisError:
                        pass  # progress is best effort; the outcome is not
                elif isinstance(event, TERMINAL) and job.id not in self._handed_over:
                    await self._finish(job.id, entry_id, event)
        finally:
            self._handed_over.discard(job.id)
            self._held.pop(job.id, None)
            self._room.set()

    async def _finish(self, job_id: str, entry_id: str, event) -> None:
        """Store the outcome and ack; retried until Redis takes it (or this worker dies, and
        the job is redelivered)."""
        result = None
        if isinstance(event, Done):
            try:
                result = await asyncio.to_thread(dump_result, event.result)
            except WireError as error:  # over a limit of the envelope: the bot would refuse it
                log.warning("job %s: its result cannot be sent (%s)", job_id, error)
                event = Failed(f"Sorry, this piece came out too large to send back ({error}). "
                               "A shorter piece may work.", kind="too_large")
        kind = type(event).__name__.lower()
        delay = 0.1
        while True:
            try:
                wrote = await self.queue.finish(job_id, entry_id, kind, event_to_fields(event), result,
                                                self.result_ttl_s)
                if not wrote:
                    log.info("job %s already had an outcome; this %s is dropped", job_id, kind)
                return
            except RedisError as error:
                log.warning("cannot store the outcome of job %s yet (%s); retrying", job_id, error)
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)

    # -- readings: a jam contribution's picture --------------------------------------------------

    async def _reading_loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                taken = await self.queue.next_reading(timeout_s=0.5)
                failures = 0
            except RedisError as error:
                failures += 1
                if failures in (1, 10) or failures % 100 == 0:
                    log.warning("cannot take readings (%s); retrying", error)
                await asyncio.sleep(min(2.0, 0.1 * failures))
                continue
            except Exception:  # a forged key (one of the wrong type) must not stop the readings
                log.exception("while taking a reading")
                await asyncio.sleep(0.5)
                continue
            if taken is None:
                continue
            read_id, fields = taken
            answer = await self._read(read_id, fields)
            try:
                await self.queue.answer_reading(read_id, answer, READING_ANSWER_TTL_S)
            except RedisError as error:  # the bot hears nothing, and tells the member to try again
                log.warning("cannot answer reading %s (%s)", read_id, error)

    async def _read(self, read_id: str, fields: dict[str, bytes]) -> str:
        """The answer to one reading: the emotion, the gate's refusal, or why it cannot be read
        (the words an in-process reading would raise)."""
        from aria_engine.safety import ImageUnsafe, SafetyUnavailable

        try:
            image, options = reading_from_json(fields.get("reading"), fields.get("image"))
            emotion, encoder = await asyncio.to_thread(read_picture, self.engine.pipeline, image, options)
        except WireError as error:
            log.warning("reading %s: unreadable message from Redis: %s", read_id, error)
            return reading_answer(error=f"the request to read it did not read as data ({error})")
        except ImageUnsafe as refused:
            return reading_answer(unsafe=(refused.score, refused.threshold))
        except ValueError as error:  # ImageRejected and the like: words for the member
            return reading_answer(error=str(error))
        except SafetyUnavailable as error:
            log.error("reading %s: the image-safety gate cannot run here: %s", read_id, error)
            return reading_answer(error="the image-safety check cannot run on the workers right now")
        except Exception as error:
            log_id = log_failure(read_id, error)
            return reading_answer(error=f"something went wrong on my side (log id {log_id})")
        return reading_answer(emotion, encoder)

    # -- heartbeat: liveness, cancellations, take-overs ----------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while not self._stopping.is_set() or self._forwarders:
            try:
                await self._heartbeat()
            except RedisError as error:
                log.warning("heartbeat failed (%s)", error)
            except Exception:
                log.exception("heartbeat failed")
            await asyncio.sleep(self.heartbeat_s)

    async def _heartbeat(self) -> None:
        held = dict(self._held)
        owned = await self.queue.heartbeat(self.name, list(held.values()), self.info())
        self._last_heartbeat = time.monotonic()
        for job_id, entry_id in held.items():
            job = self.engine.job(job_id)
            if entry_id not in owned and job is not None and not job.done:
                log.warning("job %s went to another worker (no heartbeat from here in time); dropping it",
                            job_id)
                self._handed_over.add(job_id)
                self.engine.cancel(job_id, by="handed over")
        if held:
            for job_id, state in (await self.queue.states(list(held))).items():
                if state == "cancelled":
                    self.engine.cancel(job_id, by="redis")
        if not self._stopping.is_set():
            await self._take_over()

    async def _take_over(self) -> None:
        room = self.max_batch if self.engine.idle else 0
        ready = []
        for entry_id, job_id, deliveries in await self.queue.reclaim(
            self.name, int(self.visibility_timeout_s * 1000), room
        ):
            self.metrics.redeliveries.inc()
            if deliveries > self.max_deliveries:
                log.error("job %s was handed out %d times without finishing; failing it", job_id, deliveries)
                await self._finish(job_id, entry_id, Failed(
                    "Sorry, I couldn't finish this piece: the workers making it kept stopping. "
                    "Please try again, perhaps with a shorter piece.", kind="redelivery_limit",
                ))
                continue
            log.warning("taking over job %s (delivery %d)", job_id, deliveries)
            if prepared := await self._prepare(entry_id, job_id):
                ready.append(prepared)
        for prepared in ready:
            await self._start(*prepared)


# -- the process ----------------------------------------------------------------------------------


def run_worker_process(worker: Worker, metrics_port: int | None = None, metrics_host: str = "0.0.0.0") -> int:
    """Run a worker until SIGTERM or SIGINT; serve /metrics and /healthz if asked."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        server = None
        if metrics_port is not None:
            server = MetricsServer(worker.metrics.registry, worker.health, metrics_port, metrics_host).start()
            log.info("metrics on %s/metrics", server.url)
        try:
            await worker.run(stop)
        finally:
            if server is not None:
                server.close()

    asyncio.run(main())
    return 0
