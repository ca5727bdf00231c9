"""Continuous batching: a running transformer batch (a decode session) that waiting jobs of its
kind join between decode steps.

The decoder runs in chunks of STEP_CHUNK_S; between chunks joiners' pieces get in, pieces that
are decoded go on to rendering (each job as soon as its own piece is done), cancelled ones leave,
and progress goes out. A session whose decoding fails is broken: its pieces, and any that join
later, are composed one by one instead."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from aria_engine.engine.progress import Aborted
from aria_engine.engine.stages import Stages, Work
from aria_engine.pipeline import Pipeline

log = logging.getLogger(__name__)

STEP_CHUNK_S = 0.05  # decoding between two looks from the loop: the longest a joiner waits


def open_pieces(pipeline: Pipeline, mode: str):
    """A new decode session of the mode's composer (neural.CompositionSession), or None when it
    has no sessions (in a thread: the first call loads the model)."""
    composer = pipeline.composer("transformer", mode)
    return composer.session() if hasattr(composer, "session") else None


@dataclass(eq=False)
class DecodeSession:
    """One thread's transformer batch and the jobs that joined it. `job_done(work)` hands a job
    back to the engine when it stops running; `row_free()` says a joiner may take its row."""

    kind: tuple[str, str]
    pieces: object  # neural.CompositionSession
    stages: Stages
    job_done: Callable[[Work], None]
    row_free: Callable[[], None]
    open: bool = True  # takes joiners
    served: list[Work] = field(default_factory=list)  # every job that joined it
    composing: set = field(default_factory=set)  # jobs whose piece is not decoded yet
    waiting: dict = field(default_factory=dict)  # piece -> (job, future of its Composition)
    tasks: set = field(default_factory=set)  # one per group of jobs that joined
    wake: asyncio.Event = field(default_factory=asyncio.Event)  # something to decode, or gone
    broken: BaseException | None = None  # decoding failed: later pieces are made alone

    def room(self, max_batch: int) -> int:
        return max_batch - len(self.composing)

    def close(self) -> None:
        """No more joiners."""
        self.open = False

    def add_group(self, group: list[Work]) -> None:
        """Jobs that have started join: their pictures are read, then their pieces decode here."""
        self.served += group
        self.composing.update(group)
        task = asyncio.get_running_loop().create_task(self._compose(group))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def run(self) -> None:
        """Decode until no job waits for a piece, then wait for every job to be finished."""
        try:
            await self._drive()
            while self.tasks:
                await asyncio.wait(list(self.tasks))
        except asyncio.CancelledError:  # shutdown past its grace
            for task in self.tasks:
                task.cancel()
            raise

    def _add(self, work: Work) -> asyncio.Future:
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

    def _release(self, work: Work) -> None:
        """The job no longer takes a row (decoded, failed, or never got there)."""
        self.composing.discard(work)
        self.wake.set()

    async def _drive(self) -> None:
        """Decode in short chunks while pieces are live; between chunks joiners get in, pieces
        that left go on to rendering, and progress goes out. Ends (and closes the session to
        joiners) when no job of it waits for a piece."""
        while True:
            if self.pieces.live:
                try:
                    left = await self.stages.in_thread(self.pieces.run_for, STEP_CHUNK_S)
                except Exception as error:  # a bug in decoding: its jobs try again alone
                    log.error("a decode session failed; its pieces are made one by one", exc_info=error)
                    self.close()
                    self.broken = error
                    for _, future in self.waiting.values():
                        future.set_exception(error)
                    self.waiting.clear()
                    return
                for piece in left:
                    _, future = self.waiting.pop(piece)
                    future.set_result(piece.composition)  # None when cancelled
                self._report_decoding()
            elif self.composing:
                self.wake.clear()
                await self.wake.wait()
            else:
                self.close()
                return

    async def _compose(self, group: list[Work]) -> None:
        """A group that joined: read the pictures, add the pieces, then each job goes on to
        rendering as soon as its own piece is decoded."""
        try:
            await self.stages.read_emotions(group)
            joined = []
            for work in group:
                if work.live:
                    try:
                        joined.append((work, self._add(work)))
                        self.stages.progress.report([work], "composing", 0.0, len(self.composing))
                    except Exception as error:  # a request the model cannot make
                        self.stages.fail(work, error)
            added = {work for work, _ in joined}
            for work in group:
                if work not in added:
                    self._release(work)
            await asyncio.gather(*(self._decoded_then_finish(w, f) for w, f in joined))
        except Exception as error:  # a bug here must still end every job
            self.stages.fail_all(group, error)
        finally:
            for work in group:
                self._release(work)
                self.job_done(work)

    async def _decoded_then_finish(self, work: Work, piece: asyncio.Future) -> None:
        stages = self.stages
        started = time.perf_counter()
        try:
            work.composition = await piece
        except Exception:  # the session broke (logged there): compose this one alone
            try:
                await stages.compose_one(work)
            except Aborted:
                return
            except Exception as own_error:
                stages.fail(work, own_error)
                return
        finally:
            work.piece = None
            self._release(work)
            self.row_free()
        if work.composition is None or not work.live:
            return
        elapsed = time.perf_counter() - started
        work.timings["composing"] = elapsed
        stages.metrics.stage_seconds.labels("composing").observe(elapsed)
        if "tokens_per_s" in work.composition.stats:
            stages.metrics.tokens_per_s.observe(work.composition.stats["tokens_per_s"])
        await stages.finish(work)

    def _report_decoding(self) -> None:
        """Composing progress of the pieces, each at most every progress interval."""
        now = time.monotonic()
        together = len(self.waiting)
        progress = self.stages.progress
        for piece, (work, _) in self.waiting.items():
            if now - work.reported_at >= progress.interval_s:
                work.reported_at = now
                progress.report([work], "composing", piece.progress, together)
