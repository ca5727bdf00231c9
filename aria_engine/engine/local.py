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
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Sequence

from aria_engine.emotion import Emotion, Trajectory
from aria_engine.engine.base import Engine, EngineStatus, log_failure, polite_failure
from aria_engine.engine.cache import ResultCache
from aria_engine.engine.jobs import Cancelled, Done, Failed, Job, Progress, Queued, Started
from aria_engine.engine.metrics import EngineMetrics, ThroughputMeter, eta_seconds
from aria_engine.engine.scheduler import Busy, FairQueue, Limits, describe_wait, job_cost
from aria_engine.music import Composition
from aria_engine.options import GenerationOptions
from aria_engine.pipeline import Pipeline, Request

log = logging.getLogger(__name__)

STEP_CHUNK_S = 0.05  # decoding between two looks from the loop: the longest a joiner waits


class _Aborted(Exception):
    """Raised inside a stage's progress callback when nobody waits for its work any more."""


@dataclass(eq=False)
class _Work:
    """A job plus what its stages have made so far."""

    job: Job
    options: GenerationOptions  # with a concrete seed
    composer: str  # resolved: "procedural" or "transformer"
    server: str
    user: str
    encoder: str = "explicit"
    image: object = None
    emotion: Emotion | None = None
    trajectory: Trajectory | None = None
    conditioning: Emotion | Trajectory | None = None
    composition: Composition | None = None
    timings: dict[str, float] = field(default_factory=dict)
    deadline: asyncio.TimerHandle | None = None
    piece: object = None  # its piece in a decode session (neural.Piece), while composing there
    reported_at: float = 0.0  # when its composing progress last went out

    @property
    def request(self) -> Request:
        return self.job.request

    @property
    def kind(self) -> tuple[str, str]:
        """What batches together: the composer, and the mode for the transformer."""
        return self.composer, self.options.mode if self.composer == "transformer" else ""

    @property
    def live(self) -> bool:
        return not self.job.done


@dataclass(eq=False)
class _Session:
    """A running transformer batch (neural.CompositionSession) that waiting jobs of its kind
    join between decode steps."""

    kind: tuple[str, str]
    pieces: object  # neural.CompositionSession
    served: list[_Work] = field(default_factory=list)  # every job that joined it
    composing: set = field(default_factory=set)  # jobs whose piece is not decoded yet
    waiting: dict = field(default_factory=dict)  # piece -> (job, future of its Composition)
    tasks: set = field(default_factory=set)  # one per group of jobs that joined
    wake: asyncio.Event = field(default_factory=asyncio.Event)  # something to decode, or gone
    broken: BaseException | None = None  # decoding failed: later pieces are made alone

    def room(self, max_batch: int) -> int:
        return max_batch - len(self.composing)

    def add(self, work: _Work) -> asyncio.Future:
        """The job's piece joins at the next step; the future gets its Composition (None if it
        was cancelled first)."""
        future = asyncio.get_running_loop().create_future()
        if self.broken is not None:
            future.set_exception(self.broken)
            return future
        work.piece = self.pieces.add(work.conditioning, work.options)
        self.waiting[work.piece] = (work, future)
        self.wake.set()
        return future

    def release(self, work: _Work) -> None:
        """The job no longer takes a row (decoded, failed, or never got there)."""
        self.composing.discard(work)
        self.wake.set()


def user_facing_message(error: BaseException) -> tuple[str, str] | None:
    """(kind, sentence) for errors whose message is written for the user; None otherwise."""
    from aria_engine.images import ImageRejected

    if isinstance(error, ImageRejected):
        return "image_rejected", error.message
    try:
        from aria_engine.render import RenderError, SoundFontError
    except ImportError:  # pragma: no cover - render.py always ships with the engine
        return None
    if isinstance(error, RenderError) and not isinstance(error, SoundFontError):
        return "render", str(error)
    return None


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
        self.progress_interval_s = progress_interval_s
        self.close_grace_s = close_grace_s
        self.join_running = join_running  # False: a running transformer batch takes no joiners
        self.throughput = ThroughputMeter()
        self._queue: FairQueue[_Work] = FairQueue(self.limits)
        self._work: dict[str, _Work] = {}
        self._free_slots = concurrency
        self._batches: set[asyncio.Task] = set()
        self._sessions: list[_Session] = []  # running transformer batches that take joiners
        self._pump_scheduled = False
        self._composer_names: dict[tuple[str, str], str] = {}
        self._service_s: float | None = None  # moving average of thread time per job
        self._executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

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
        work = _Work(job, options, composer, origin.server, origin.user)
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

    def _joinable(self, kind: tuple[str, str]) -> _Session | None:
        if not self.join_running:
            return None
        return next((s for s in self._sessions if s.kind == kind and s.room(self.max_batch) > 0), None)

    def _begin(self, group: list[_Work], batch_size: int) -> None:
        """Started for every job of a group taking its place in a batch; deadlines from now."""
        now = time.monotonic()
        self.metrics.batch_size.observe(batch_size)
        for work in group:
            self.metrics.queue_wait.observe(now - work.job.submitted_at)
            self._emit(work.job, Started(worker=self.name, batch_size=batch_size))
            if self.limits.job_timeout_s is not None:
                work.deadline = self._loop.call_later(self.limits.job_timeout_s, self._expire, work)

    async def _run_batch(self, batch: list[_Work], begun: bool = False) -> None:
        started = time.monotonic()
        if not begun:
            self._begin(batch, len(batch))
        try:
            await self._read_emotions(batch)
            await self._compose(batch)
            for work in batch:
                if work.live:
                    await self._finish(work)
        except Exception as error:  # a bug here must still end every job
            self._fail_all(batch, error)
        finally:
            for work in batch:
                self._job_done(work)
            self._slot_done(len(batch), time.monotonic() - started)

    def _job_done(self, work: _Work) -> None:
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

    def _fail_all(self, group: list[_Work], error: BaseException) -> None:
        log_id = log_failure(",".join(w.job.id for w in group), error)
        for work in group:
            self._emit(work.job, Failed(polite_failure(log_id), log_id))

    # -- transformer sessions: continuous batching ---------------------------------------------

    async def _run_session(self, batch: list[_Work]) -> None:
        """A transformer batch that jobs of its kind join while it decodes; holds one thread
        until every piece it took is decoded and rendered."""
        started = time.monotonic()
        kind = batch[0].kind
        self._begin(batch, len(batch))
        try:
            pieces = await self._in_thread(self._open_pieces, kind[1])
        except Exception as error:  # a missing or broken checkpoint: every job says so
            for work in batch:
                self._fail(work, error)
                self._job_done(work)
            self._slot_done(len(batch), time.monotonic() - started)
            return
        if pieces is None:  # a composer without sessions: the whole batch at once
            await self._run_batch(batch, begun=True)
            return
        session = _Session(kind, pieces)
        self._sessions.append(session)
        try:
            self._add_group(session, batch)
            self._schedule_pump()  # waiting jobs of this kind may join now
            await self._drive(session)
            while session.tasks:
                await asyncio.wait(list(session.tasks))
        except asyncio.CancelledError:  # shutdown past its grace
            for task in session.tasks:
                task.cancel()
            raise
        finally:
            self._close_session(session)
            self._slot_done(len(session.served), time.monotonic() - started)

    def _open_pieces(self, mode: str):
        """A new decode session of the mode's composer, or None when it has no sessions (in a
        thread: the first call loads the model)."""
        composer = self.pipeline.composer("transformer", mode)
        return composer.session() if hasattr(composer, "session") else None

    def _close_session(self, session: _Session) -> None:
        """No more joiners for this session."""
        if session in self._sessions:
            self._sessions.remove(session)

    def _join(self, session: _Session, group: list[_Work]) -> None:
        """Jobs taken from the queue join a running session."""
        self._begin(group, len(session.composing) + len(group))
        self._add_group(session, group)

    def _add_group(self, session: _Session, group: list[_Work]) -> None:
        session.served += group
        session.composing.update(group)
        task = asyncio.get_running_loop().create_task(self._compose_in_session(session, group))
        session.tasks.add(task)
        task.add_done_callback(session.tasks.discard)

    async def _drive(self, session: _Session) -> None:
        """Decode in short chunks while pieces are live; between chunks joiners get in, pieces
        that left go on to rendering, and progress goes out. Ends (and closes the session to
        joiners) when no job of it waits for a piece."""
        while True:
            if session.pieces.live:
                try:
                    left = await self._in_thread(session.pieces.run_for, STEP_CHUNK_S)
                except Exception as error:  # a bug in decoding: its jobs try again alone
                    log.error("a decode session failed; its pieces are made one by one", exc_info=error)
                    self._close_session(session)
                    session.broken = error
                    for _, future in session.waiting.values():
                        future.set_exception(error)
                    session.waiting.clear()
                    return
                for piece in left:
                    _, future = session.waiting.pop(piece)
                    future.set_result(piece.composition)  # None when cancelled
                self._report_decoding(session)
            elif session.composing:
                session.wake.clear()
                await session.wake.wait()
            else:
                self._close_session(session)
                return

    async def _compose_in_session(self, session: _Session, group: list[_Work]) -> None:
        """A group that joined a session: read the pictures, add the pieces, then each job goes
        on to rendering as soon as its own piece is decoded."""
        try:
            await self._read_emotions(group)
            joined = []
            for work in group:
                if work.live:
                    try:
                        joined.append((work, session.add(work)))
                        self._report([work], "composing", 0.0, len(session.composing))
                    except Exception as error:  # a request the model cannot make
                        self._fail(work, error)
            added = {work for work, _ in joined}
            for work in group:
                if work not in added:
                    session.release(work)
            await asyncio.gather(*(self._decoded_then_finish(session, w, f) for w, f in joined))
        except Exception as error:  # a bug here must still end every job
            self._fail_all(group, error)
        finally:
            for work in group:
                session.release(work)
                self._job_done(work)

    async def _decoded_then_finish(self, session: _Session, work: _Work, piece: asyncio.Future) -> None:
        started = time.perf_counter()
        try:
            work.composition = await piece
        except Exception:  # the session broke (logged there): compose this one alone
            try:
                await self._compose_one(work)
            except _Aborted:
                return
            except Exception as own_error:
                self._fail(work, own_error)
                return
        finally:
            work.piece = None
            session.release(work)
            self._schedule_pump()  # its row is free for a joiner
        if work.composition is None or not work.live:
            return
        elapsed = time.perf_counter() - started
        work.timings["composing"] = elapsed
        self.metrics.stage_seconds.labels("composing").observe(elapsed)
        if "tokens_per_s" in work.composition.stats:
            self.metrics.tokens_per_s.observe(work.composition.stats["tokens_per_s"])
        await self._finish(work)

    def _report_decoding(self, session: _Session) -> None:
        """Composing progress of a session's pieces, each at most every progress interval."""
        now = time.monotonic()
        together = len(session.waiting)
        for piece, (work, _) in session.waiting.items():
            if now - work.reported_at >= self.progress_interval_s:
                work.reported_at = now
                self._report([work], "composing", piece.progress, together)

    def _expire(self, work: _Work) -> None:
        limit = describe_wait(self.limits.job_timeout_s)
        self._emit(work.job, Failed(
            f"Sorry, your piece took longer than {limit} to make, so I stopped. "
            "A shorter piece may work.", kind="timeout",
        ))

    # -- stages ---------------------------------------------------------------------------------

    async def _in_thread(self, fn: Callable, *args):
        return await self._loop.run_in_executor(self._executor, fn, *args)

    async def _read_emotions(self, batch: list[_Work]) -> None:
        pictures = [w for w in batch if w.live and w.request.image is not None]
        for work in pictures:
            self._report([work], "decoding image", 0.0)
            started = time.perf_counter()
            try:
                work.image = await self._in_thread(self.pipeline.decode_image, work.request.image)
            except Exception as error:
                self._fail(work, error)
            self._timed(work, "decoding image", started)
        by_encoder: dict[str, list[_Work]] = defaultdict(list)
        for work in pictures:
            if work.live:
                by_encoder[work.encoder].append(work)
        for encoder, group in by_encoder.items():
            self._report(group, "reading emotion", 0.0)
            started = time.perf_counter()
            try:
                emotions = await self._in_thread(self.pipeline.read_emotions, [w.image for w in group], encoder)
            except Exception as error:
                await self._one_by_one(group, error, self._read_one)
            else:
                for work, emotion in zip(group, emotions):
                    work.emotion = work.conditioning = emotion
            elapsed = time.perf_counter() - started
            self.metrics.stage_seconds.labels("reading emotion").observe(elapsed)
            for work in group:
                work.timings["reading emotion"] = elapsed
                work.image = None  # the pixels are not needed any more

    async def _read_one(self, work: _Work) -> None:
        emotion = (await self._in_thread(self.pipeline.read_emotions, [work.image], work.encoder))[0]
        work.emotion = work.conditioning = emotion

    async def _compose(self, batch: list[_Work]) -> None:
        group = [w for w in batch if w.live]
        if not group:
            return
        self._report(group, "composing", 0.0)
        started = time.perf_counter()
        items = [(w.conditioning, w.options) for w in group]
        try:
            compositions = await self._in_thread(self.pipeline.compose, items, self._progress_fn(group, "composing"))
        except _Aborted:
            return
        except Exception as error:
            await self._one_by_one(group, error, self._compose_one)
        else:
            for work, composition in zip(group, compositions):
                work.composition = composition
        elapsed = time.perf_counter() - started
        self.metrics.stage_seconds.labels("composing").observe(elapsed)
        for work in group:
            work.timings["composing"] = elapsed
            if work.composition is not None and "tokens_per_s" in work.composition.stats:
                self.metrics.tokens_per_s.observe(work.composition.stats["tokens_per_s"])

    async def _compose_one(self, work: _Work) -> None:
        progress = self._progress_fn([work], "composing")
        work.composition = (await self._in_thread(self.pipeline.compose, [(work.conditioning, work.options)], progress))[0]

    async def _one_by_one(self, group: list[_Work], error: Exception, run_one: Callable) -> None:
        """A batched stage failed: run each job alone, so one bad request fails only itself."""
        if len(group) == 1:
            self._fail(group[0], error)
            return
        for work in group:
            if not work.live:
                continue
            try:
                await run_one(work)
            except _Aborted:
                pass
            except Exception as own_error:
                self._fail(work, own_error)

    async def _finish(self, work: _Work) -> None:
        try:
            result = await self._in_thread(
                self.pipeline.finish, work.emotion, work.trajectory, work.encoder, work.composition,
                work.options, self._progress_fn([work], None), work.request.max_upload_bytes,
            )
        except _Aborted:
            return
        except Exception as error:
            self._fail(work, error)
            return
        for stage in ("rendering", "drawing"):
            if stage in result.timings:
                self.metrics.stage_seconds.labels(stage).observe(result.timings[stage])
        result.timings = {**work.timings, **result.timings}
        self._emit(work.job, Done(result))

    def _fail(self, work: _Work, error: BaseException) -> None:
        if isinstance(error, _Aborted) or not work.live:
            return
        known = user_facing_message(error)
        if known is not None:
            kind, sentence = known
            self._emit(work.job, Failed(sentence, kind=kind))
            return
        log_id = log_failure(work.job.id, error)
        self._emit(work.job, Failed(polite_failure(log_id), log_id))

    def _timed(self, work: _Work, stage: str, started: float) -> None:
        elapsed = time.perf_counter() - started
        work.timings[stage] = elapsed
        self.metrics.stage_seconds.labels(stage).observe(elapsed)

    # -- progress -------------------------------------------------------------------------------

    def _progress_fn(self, group: Sequence[_Work], stage: str | None) -> Callable:
        """A callback for a stage running in a thread: throttled, hops to the loop, and aborts
        the stage once every job it serves has ended (cancelled, timed out).

        With `stage` None it takes (stage, fraction), as Pipeline.finish reports; else (fraction).
        """
        loop = self._loop
        interval = self.progress_interval_s
        last = {"stage": None, "at": 0.0}

        def report(*args) -> None:
            name, fraction = (args if stage is None else (stage, args[0]))
            if all(not w.live for w in group):
                raise _Aborted()
            now = time.monotonic()
            if name == last["stage"] and 0.0 < fraction < 1.0 and now - last["at"] < interval:
                return
            last["stage"], last["at"] = name, now
            loop.call_soon_threadsafe(self._report, group, name, float(fraction))

        return report

    def _report(self, group: Sequence[_Work], stage: str, fraction: float, together: int | None = None) -> None:
        """Progress for every job of a group; `together`: how many pieces share the work
        (default: the group)."""
        fraction = min(1.0, max(0.0, fraction))
        together = len(group) if together is None else together
        for work in group:
            event = Progress(stage, fraction, _detail(work, stage, fraction, together))
            if work.live and work.job.history[-1] != event:
                self._emit(work.job, event)


def _detail(work: _Work, stage: str, fraction: float, batch_size: int) -> str:
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
