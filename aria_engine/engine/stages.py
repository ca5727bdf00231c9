"""A job's work (`Work`) and the pipeline's stages run on a group of jobs in the model threads:
batched where the pipeline batches (reading emotions, composing), one by one when a batch fails so
one bad request fails only itself, and every error turned into the job's Failed."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from aria_engine.emotion import Emotion, Trajectory
from aria_engine.engine.base import log_failure, polite_failure
from aria_engine.engine.jobs import Done, Event, Failed, Job
from aria_engine.engine.metrics import EngineMetrics
from aria_engine.engine.progress import Aborted, ProgressReporter
from aria_engine.music import Composition
from aria_engine.options import GenerationOptions
from aria_engine.pipeline import Pipeline, Request


@dataclass(eq=False)
class Work:
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
    safety_note: dict | None = None  # the image-safety gate's score, for the result (aria_engine.safety)

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


def user_facing_message(error: BaseException) -> tuple[str, str] | None:
    """(kind, sentence) for errors whose message is written for the user; None otherwise."""
    from aria_engine.images import ImageRejected
    from aria_engine.safety import ImageUnsafe

    if isinstance(error, ImageRejected):
        return "image_rejected", error.message
    if isinstance(error, ImageUnsafe):
        return "image_unsafe", error.message
    try:
        from aria_engine.render import RenderError, SoundFontError
    except ImportError:  # pragma: no cover - render.py always ships with the engine
        return None
    if isinstance(error, RenderError) and not isinstance(error, SoundFontError):
        return "render", str(error)
    return None


def read_picture(pipeline: Pipeline, image: bytes, options: GenerationOptions) -> tuple[Emotion, str]:
    """One picture's emotion outside any job, for a jam contribution's readout: decoded, through
    the image-safety gate `options` ask for (raises ImageUnsafe), read by `options.encoder`.
    (emotion, the encoder that read it). The bot's in-process reader and a worker's readings
    both run this, so a readout is the same on either engine."""
    name = pipeline.encoder_name(options.encoder)
    picture = pipeline.decode_image(image)
    pipeline.apply_safety(pipeline.check_safety([picture], [options])[0], options)
    return pipeline.read_emotions([picture], name)[0], name


class Stages:
    """The pipeline's stages for groups of jobs; `in_thread` runs a call in a model thread and
    `emit` is the engine's (Done and Failed end the jobs)."""

    def __init__(self, pipeline: Pipeline, metrics: EngineMetrics, progress: ProgressReporter,
                 emit: Callable[[Job, Event], bool], in_thread: Callable[..., Awaitable]) -> None:
        self.pipeline = pipeline
        self.metrics = metrics
        self.progress = progress
        self.emit = emit
        self.in_thread = in_thread

    async def read_emotions(self, batch: list[Work]) -> None:
        pictures = [w for w in batch if w.live and w.request.image is not None]
        for work in pictures:
            self.progress.report([work], "decoding image", 0.0)
            started = time.perf_counter()
            try:
                work.image = await self.in_thread(self.pipeline.decode_image, work.request.image)
            except Exception as error:
                self.fail(work, error)
            self._timed(work, "decoding image", started)
        await self.check_safety([w for w in pictures if w.live])
        by_encoder: dict[str, list[Work]] = defaultdict(list)
        for work in pictures:
            if work.live:
                by_encoder[work.encoder].append(work)
        for encoder, group in by_encoder.items():
            self.progress.report(group, "reading emotion", 0.0)
            started = time.perf_counter()
            try:
                emotions = await self.in_thread(self.pipeline.read_emotions, [w.image for w in group], encoder)
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

    async def check_safety(self, group: list[Work]) -> None:
        """The image-safety gate on the decoded pictures, one batch (see aria_engine.safety): a
        refused picture fails its job (kind image_unsafe) and its pixels go at once; a classifier
        that cannot run fails the jobs that asked for it, never lets them through."""
        gated = [w for w in group if w.options.image_safety != "off"]
        if not gated:
            return
        self.progress.report(gated, "safety", 0.0)
        started = time.perf_counter()
        try:
            scores = await self.in_thread(self.pipeline.check_safety, [w.image for w in gated],
                                          [w.options for w in gated])
        except Exception as error:
            scores = None
            for work in gated:
                work.image = None
                self.fail(work, error)
        elapsed = time.perf_counter() - started
        self.metrics.stage_seconds.labels("safety").observe(elapsed)
        for i, work in enumerate(gated):
            work.timings["safety"] = elapsed
            if scores is None:
                continue
            try:
                work.safety_note = self.pipeline.apply_safety(scores[i], work.options)
            except Exception as refused:
                work.image = None
                self.fail(work, refused)

    async def _read_one(self, work: Work) -> None:
        emotion = (await self.in_thread(self.pipeline.read_emotions, [work.image], work.encoder))[0]
        work.emotion = work.conditioning = emotion

    async def compose(self, batch: list[Work]) -> None:
        group = [w for w in batch if w.live]
        if not group:
            return
        self.progress.report(group, "composing", 0.0)
        started = time.perf_counter()
        items = [(w.conditioning, w.options) for w in group]
        try:
            compositions = await self.in_thread(self.pipeline.compose, items,
                                                self.progress.callback(group, "composing"))
        except Aborted:
            return
        except Exception as error:
            await self._one_by_one(group, error, self.compose_one)
        else:
            for work, composition in zip(group, compositions):
                work.composition = composition
        elapsed = time.perf_counter() - started
        self.metrics.stage_seconds.labels("composing").observe(elapsed)
        for work in group:
            work.timings["composing"] = elapsed
            if work.composition is not None and "tokens_per_s" in work.composition.stats:
                self.metrics.tokens_per_s.observe(work.composition.stats["tokens_per_s"])

    async def compose_one(self, work: Work) -> None:
        progress = self.progress.callback([work], "composing")
        work.composition = (await self.in_thread(self.pipeline.compose, [(work.conditioning, work.options)], progress))[0]

    async def _one_by_one(self, group: list[Work], error: Exception, run_one: Callable) -> None:
        """A batched stage failed: run each job alone, so one bad request fails only itself."""
        if len(group) == 1:
            self.fail(group[0], error)
            return
        for work in group:
            if not work.live:
                continue
            try:
                await run_one(work)
            except Aborted:
                pass
            except Exception as own_error:
                self.fail(work, own_error)

    async def finish(self, work: Work) -> None:
        """Render and draw; the job ends Done (or Failed)."""
        if work.safety_note is not None and work.composition is not None:
            work.composition.stats["image_safety"] = work.safety_note
        try:
            result = await self.in_thread(
                self.pipeline.finish, work.emotion, work.trajectory, work.encoder, work.composition,
                work.options, self.progress.callback([work], None), work.request.max_upload_bytes,
            )
        except Aborted:
            return
        except Exception as error:
            self.fail(work, error)
            return
        for stage in ("rendering", "drawing"):
            if stage in result.timings:
                self.metrics.stage_seconds.labels(stage).observe(result.timings[stage])
        result.timings = {**work.timings, **result.timings}
        self.emit(work.job, Done(result))

    def fail(self, work: Work, error: BaseException) -> None:
        if isinstance(error, Aborted) or not work.live:
            return
        known = user_facing_message(error)
        if known is not None:
            kind, sentence = known
            self.emit(work.job, Failed(sentence, kind=kind))
            return
        log_id = log_failure(work.job.id, error)
        self.emit(work.job, Failed(polite_failure(log_id), log_id))

    def fail_all(self, group: list[Work], error: BaseException) -> None:
        """A bug outside any one job's stage: every job of the group fails with one log id."""
        log_id = log_failure(",".join(w.job.id for w in group), error)
        for work in group:
            self.emit(work.job, Failed(polite_failure(log_id), log_id))

    def _timed(self, work: Work, stage: str, started: float) -> None:
        elapsed = time.perf_counter() - started
        work.timings[stage] = elapsed
        self.metrics.stage_seconds.labels(stage).observe(elapsed)
