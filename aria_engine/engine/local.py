"""The in-process engine: a fair queue on the event loop, model work in a thread pool.

The loop only decides; every stage call (decode, encode, compose, render, draw) runs in one
of `concurrency` threads, so the loop keeps answering chat platforms while models run. Each
thread works on a batch: the next job by fairness plus the waiting jobs that share its
composer and mode, so the batched decoder composes them together and the encoder reads their
pictures together. Results per job are what the job would get alone (the composer's
contract), and every job's Done goes out as soon as its own audio is ready.

Transformer batches are sessions (continuous batching): the decoder runs in short chunks of
steps, and a job of the same composer and mode that becomes next by fairness while one runs
joins it at the next step boundary (up to `max_batch` pieces decoding at once) instead of
waiting for the whole batch. A job of another kind that is next by fairness stops the joining,
so a session cannot hold its thread against the rest of the queue. A cancelled or timed-out
job's piece leaves the session at the next step. The procedural composer has no steps: its
batches run start to end as before.

This module is the engine's own loop: admission, dispatch by fairness, threads, deadlines and
the bookkeeping of a job's end. What runs on a batch is in `stages`, the sessions that jobs join
in `sessions`, progress events in `progress`.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from aria_engine.emotion import Trajectory
from aria_engine.engine.base import Engine, EngineStatus, log_failure, polite_failure
from aria_engine.engine.cache import ResultCache
from aria_engine.engine.jobs import Cancelled, Done, Failed, Job, Queued, Started
from aria_engine.engine.metrics import EngineMetrics, ThroughputMeter, eta_seconds
from aria_engine.engine.progress import ProgressReporter
from aria_engine.engine.scheduler import Busy, FairQueue, Limits, describe_wait, job_cost
from aria_engine.engine.sessions import DecodeSession, open_pieces
from aria_engine.engine.stages import Stages, Work
from aria_engine.options import GenerationOptions
from aria_engine.pipeline import Pipeline, Request


class LocalEngine(Engine):
    """Runs a Pipeline in this process. Use `async with`, or `start()` and `close()`."""

    backend = "local"

    def __init__(
        self,
        pipeline: Pipeline | None = None,
        *,
        concurrency: int = 2,
        max_batch: int = 8,
        limits: Limits | None = None,
        cache: ResultCache | None = None,
        metrics: EngineMetrics | None = None,
        name: str = "local",
        progress_interval_s: float = 0.25,
        close_grace_s: float = 5.0,
        join_running: bool = True,
    ) -> None:
        if concurrency < 1 or max_batch < 1:
            raise ValueError("concurrency and max_batch must be at least 1")
        super().__init__(limits=limits, cache=cache, metrics=metrics or EngineMetrics("local"), name=name)
        self.pipeline = pipeline or Pipeline()
        self.concurrency = concurrency
        self.max_batch = max_batch
        self.close_grace_s = close_grace_s
        self.join_running = join_running  # False: a running transformer batch takes no joiners
        self.throughput = ThroughputMeter()
        self._progress = ProgressReporter(self._emit, progress_interval_s)
        self._stages = Stages(self.pipeline, self.metrics, self._progress, self._emit, self._in_thread)
        self._queue: FairQueue[Work] = FairQueue(self.limits)
        self._work: dict[str, Work] = {}
        self._free_slots = concurrency
        self._batches: set[asyncio.Task] = set()
        self._sessions: list[DecodeSession] = []  # running transformer batches
        self._pump_scheduled = False
        self._composer_names: dict[tuple[str, str], str] = {}
        self._service_s: float | None = None  # moving average of thread time per job
        self._executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def progress_interval_s(self) -> float:
        """The shortest time between two progress events of one job's stage."""
        return self._progress.interval_s

    @progress_interval_s.setter
    def progress_interval_s(self, value: float) -> None:
        self._progress.interval_s = value

    # -- lifecycle ------------------------------------------------------------------------------

    async def _start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"{self.name}-model")

    async def _close(self) -> None:
        for work in list(self._work.values()):
            if self._queue.remove(work):
                self._emit(work.job, Cancelled(by="shutdown"))
        if self._batches:
            await asyncio.wait(list(self._batches), timeout=self.close_grace_s)
        for task in list(self._batches):
            task.cancel()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    # -- the API --------------------------------------------------------------------------------

    async def _enqueue(self, request: Request, job_id: str | None) -> Job:
        origin = request.origin
        options = request.options.with_seed()
        composer = await self._composer_name(options)
        refusal = self._queue.refusal(origin.server, origin.user)  # after the await: no overshoot
        if refusal is not None:
            reason, position = refusal
            raise Busy(reason, position, eta_seconds(len(self._queue) + 1, self._rate()))
        job = Job(request) if job_id is None else Job(request, id=job_id)
        work = Work(job, options, composer, origin.server, origin.user)
        if request.image is None:
            work.conditioning = request.emotion
            if isinstance(request.emotion, Trajectory):
                work.trajectory = request.emotion
                work.emotion = request.emotion.at(0.0)
            else:
                work.emotion = request.emotion
        else:
            work.encoder = self.pipeline.encoder_name(options.encoder)
        self._work[job.id] = work
        position = self._queue.push(
            work, server=origin.server, user=origin.user, cost=job_cost(request),
            key=work.kind,
        )
        self._emit(job, Queued(position, eta_seconds(position, self._rate())))
        self._gauges()
        self._schedule_pump()
        return job

    def cancel(self, job_id: str, by: str = "user") -> bool:
        work = self._work.get(job_id)
        if work is None or work.job.done:
            return False
        self._queue.remove(work)  # if it still waits; a running one stops at its next progress report
        self._emit(work.job, Cancelled(by=by))
        self._gauges()
        return True

    async def status(self) -> EngineStatus:
        rate = self._rate()
        return EngineStatus(
            backend=self.backend,
            queued=len(self._queue),
            running=self._running_count(),
            workers=self.concurrency,
            throughput_jobs_per_s=rate,
            eta_s=eta_seconds(len(self._queue) + 1, rate),
            loop_lag_p99_ms=self.lag.percentile(0.99) * 1000,
            finished=dict(self._finished_counts),
        )

    @property
    def idle(self) -> bool:
        """A model thread is free and no job waits: work taken now would start at once."""
        return self._free_slots > 0 and not self._queue and not self._closed

    def health(self) -> dict:
        report = super().health()
        report.update(queued=len(self._queue), running=self._running_count(), workers=self.concurrency)
        return report

    # -- bookkeeping ----------------------------------------------------------------------------

    async def _composer_name(self, options: GenerationOptions) -> str:
        """`auto` resolved once per mode, off the loop (it looks for checkpoints on disk)."""
        key = (options.composer, options.mode)
        if key not in self._composer_names:
            self._composer_names[key] = await asyncio.to_thread(
                self.pipeline.composer_name, options.composer, options.mode
            )
        return self._composer_names[key]

    def _rate(self) -> float | None:
        """Jobs per second: measured, else what the mean job time and the threads allow."""
        rate = self.throughput.rate()
        if rate is None and self._service_s:
            rate = self.concurrency / self._service_s
        return rate

    def _running_count(self) -> int:
        return sum(self._queue.running_by_server.values())

    def _gauges(self) -> None:
        self.metrics.queue_depth.set(len(self._queue))
        self.metrics.running.set(self._running_count())

    def _ended(self, job: Job, event) -> None:
        super()._ended(job, event)
        work = self._work.pop(job.id, None)
        if work is not None and work.deadline is not None:
            work.deadline.cancel()
        if work is not None and work.piece is not None:
            work.piece.cancel()  # leaves its decode session at the next step

    def _job_done(self, work: Work) -> None:
        """A job taken from the queue stopped running: its limits free up."""
        self._queue.finished(work.server, work.user)
        if work.job.done and isinstance(work.job.outcome, Done):
            self.throughput.record()
        elif not work.job.done and self._closed:  # stopped past the shutdown grace
            self._emit(work.job, Cancelled(by="shutdown"))
        elif not work.job.done:  # cannot happen; never let a job vanish
            log_id = log_failure(work.job.id, RuntimeError("its batch ended without an outcome"))
            self._emit(work.job, Failed(polite_failure(log_id), log_id))
        self._gauges()
        self._schedule_pump()

    def _slot_done(self, jobs: int, elapsed: float) -> None:
        """A thread's batch (or session) is over: `jobs` ran on it in `elapsed` seconds."""
        per_job = elapsed / max(1, jobs)
        self._service_s = per_job if self._service_s is None else 0.8 * self._service_s + 0.2 * per_job
        self._free_slots += 1
        self._gauges()
        self._schedule_pump()

    def _expire(self, work: Work) -> None:
        limit = describe_wait(self.limits.job_timeout_s)
        self._emit(work.job, Failed(
            f"Sorry, your piece took longer than {limit} to make, so I stopped. "
            "A shorter piece may work.", kind="timeout",
        ))

    # -- dispatch -------------------------------------------------------------------------------

    def _schedule_pump(self) -> None:
        """Dispatch on the loop's next turn, so jobs submitted together can batch."""
        if not self._pump_scheduled and not self._closed:
            self._pump_scheduled = True
            asyncio.get_running_loop().call_soon(self._pump)

    def _pump(self) -> None:
        """Start work by fairness: the next job joins a running session of its kind when that
        has room, else starts a batch on a free thread, else everything waits."""
        self._pump_scheduled = False
        while not self._closed:
            head = self._queue.peek()
            if head is None:
                break
            session = self._joinable(head.kind)
            if session is not None:
                self._join(session, self._queue.pop_batch(session.room(self.max_batch)))
            elif self._free_slots > 0:
                batch = self._queue.pop_batch(self.max_batch)
                self._free_slots -= 1
                run = self._run_session if batch[0].composer == "transformer" else self._run_batch
                task = asyncio.get_running_loop().create_task(run(batch))
                self._batches.add(task)
                task.add_done_callback(self._batches.discard)
            else:
                break
        self._gauges()

    def _joinable(self, kind: tuple[str, str]) -> DecodeSession | None:
        if not self.join_running:
            return None
        return next((s for s in self._sessions if s.open and s.kind == kind and s.room(self.max_batch) > 0), None)

    def _begin(self, group: list[Work], batch_size: int) -> None:
        """Started for every job of a group taking its place in a batch; deadlines from now."""
        now = time.monotonic()
        self.metrics.batch_size.observe(batch_size)
        for work in group:
            self.metrics.queue_wait.observe(now - work.job.submitted_at)
            self._emit(work.job, Started(worker=self.name, batch_size=batch_size))
            if self.limits.job_timeout_s is not None:
                work.deadline = self._loop.call_later(self.limits.job_timeout_s, self._expire, work)

    async def _in_thread(self, fn: Callable, *args):
        return await self._loop.run_in_executor(self._executor, fn, *args)

    async def _run_batch(self, batch: list[Work], begun: bool = False) -> None:
        """A batch from start to end on one thread: emotions, one compose call, then each
        job's audio and pictures."""
        started = time.monotonic()
        if not begun:
            self._begin(batch, len(batch))
        try:
            await self._stages.read_emotions(batch)
            await self._stages.compose(batch)
            for work in batch:
                if work.live:
                    await self._stages.finish(work)
        except Exception as error:  # a bug here must still end every job
            self._stages.fail_all(batch, error)
        finally:
            for work in batch:
                self._job_done(work)
            self._slot_done(len(batch), time.monotonic() - started)

    async def _run_session(self, batch: list[Work]) -> None:
        """A transformer batch that jobs of its kind join while it decodes; holds one thread
        until every piece it took is decoded and rendered."""
        started = time.monotonic()
        kind = batch[0].kind
        self._begin(batch, len(batch))
        try:
            pieces = await self._in_thread(open_pieces, self.pipeline, kind[1])
        except Exception as error:  # a missing or broken checkpoint: every job says so
            for work in batch:
                self._stages.fail(work, error)
                self._job_done(work)
            self._slot_done(len(batch), time.monotonic() - started)
            return
        if pieces is None:  # a composer without sessions: the whole batch at once
            await self._run_batch(batch, begun=True)
            return
        session = DecodeSession(kind, pieces, self._stages, job_done=self._job_done, row_free=self._schedule_pump)
        self._sessions.append(session)
        try:
            session.add_group(batch)
            self._schedule_pump()  # waiting jobs of this kind may join now
            await session.run()
        finally:
            session.close()
            self._sessions.remove(session)
            self._slot_done(len(session.served), time.monotonic() - started)

    def _join(self, session: DecodeSession, group: list[Work]) -> None:
        """Jobs taken from the queue join a running session."""
        self._begin(group, len(session.composing) + len(group))
        session.add_group(group)
