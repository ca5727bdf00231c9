"""The in-process engine on the real pipeline (palette encoder, procedural composer, FluidR3)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from aria_engine.emotion import Emotion, Trajectory
from aria_engine.engine import (
    Busy, Cancelled, Done, Failed, Limits, LocalEngine, Progress, Queued, ResultCache, Started, TERMINAL,
)
from aria_engine.options import GenerationOptions
from aria_engine.pipeline import Origin, Pipeline, Request

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def options(seed: int | None = 1, duration: float = 2.0, **more) -> GenerationOptions:
    return GenerationOptions(composer="procedural", encoder="palette", duration_s=duration, seed=seed, **more)


def mood(valence=0.5, arousal=0.2, *, server="s", user="u", **more) -> Request:
    return Request(emotion=Emotion(valence, arousal), options=options(**more), origin=Origin("test", server, "c", user))


def terminal_events(job) -> list:
    return [e for e in job.history if isinstance(e, TERMINAL)]


async def test_a_job_tells_its_whole_story_and_its_result_is_the_pipelines(pipeline):
    request = mood(0.6, -0.3, seed=5)
    async with LocalEngine(pipeline, concurrency=1) as engine:
        job = await engine.submit(request)
        events = [event async for event in job.events()]
    assert isinstance(events[0], Queued) and events[0].position == 1
    assert isinstance(events[1], Started) and events[1].worker == "local"
    stages = [e.stage for e in events if isinstance(e, Progress)]
    assert stages[0] == "composing" and {"drawing", "rendering"} <= set(stages)
    assert any("of 2 seconds" in e.detail for e in events if isinstance(e, Progress))
    done = events[-1]
    assert isinstance(done, Done) and not done.cached and terminal_events(job) == [done]
    assert done.result.options.seed == 5 and done.result.encoder == "explicit"
    alone = pipeline.run(request)
    assert done.result.midi == alone.midi
    assert set(done.result.timings) >= {"composing", "drawing", "rendering"}


async def test_a_picture_is_read_and_a_bad_one_fails_politely_without_harm(pipeline):
    picture = (EXAMPLES / "sunflowers.png").read_bytes()
    async with LocalEngine(pipeline, concurrency=1) as engine:
        bad = await engine.submit(Request(image=b"<html>not a picture</html>", options=options()))
        good = await engine.submit(Request(image=picture, options=options(seed=3)))
        bad_end, good_end = await bad.wait(), await good.wait()
    assert isinstance(bad_end, Failed) and bad_end.kind == "image_rejected" and bad_end.log_id is None
    assert "web page" in bad_end.reason
    assert isinstance(good_end, Done) and good_end.result.encoder == "palette"
    assert any(isinstance(e, Progress) and e.stage == "reading emotion" for e in good.history)


class ComposerBug(Pipeline):
    """The real pipeline with a bug in one place: composing a very sad piece raises."""

    def compose(self, items, progress=None):
        if any(emotion.valence < -0.9 for emotion, _ in items):
            raise ZeroDivisionError("a bug in the composer")
        return super().compose(items, progress)


async def test_an_unexpected_error_fails_only_its_job_with_a_log_id(caplog):
    caplog.set_level(logging.ERROR)
    async with LocalEngine(ComposerBug(), concurrency=1, max_batch=4) as engine:
        blocker = await engine.submit(mood(0.1, 0.1, user="a"))
        broken = await engine.submit(mood(-0.95, 0.0, user="b"))
        fine = await engine.submit(mood(0.3, 0.3, user="c"))
        outcomes = [await job.wait() for job in (blocker, broken, fine)]
    assert isinstance(outcomes[0], Done) and isinstance(outcomes[2], Done)
    failed = outcomes[1]
    assert isinstance(failed, Failed) and failed.kind == "error" and failed.log_id
    assert failed.log_id in failed.reason and "ZeroDivisionError" not in failed.reason
    logged = [r for r in caplog.records if failed.log_id in r.getMessage()]
    assert logged and logged[0].exc_info and "a bug in the composer" in str(logged[0].exc_info[1])


async def test_waiting_jobs_are_batched_and_each_result_equals_its_unbatched_run(pipeline):
    requests = [mood(0.2 * i - 0.4, 0.5 - 0.2 * i, user=f"u{i}", seed=100 + i) for i in range(4)]
    async with LocalEngine(pipeline, concurrency=1, max_batch=8) as engine:
        jobs = [await engine.submit(r) for r in requests]
        ends = [await job.wait() for job in jobs]
    sizes = [next(e.batch_size for e in job.history if isinstance(e, Started)) for job in jobs]
    assert max(sizes) > 1, sizes
    for request, end in zip(requests, ends):
        assert isinstance(end, Done)
        assert end.result.midi == pipeline.run(request).midi


async def test_cancel_a_waiting_job_and_a_running_one(pipeline):
    async with LocalEngine(pipeline, concurrency=1, max_batch=1) as engine:
        running = await engine.submit(mood(user="a", duration=90))
        waiting = await engine.submit(mood(user="b"))
        async for event in running.events():
            if isinstance(event, Started):
                break
        assert engine.cancel(waiting.id, by="bob") and engine.cancel(running.id, by="mod")
        assert not engine.cancel(waiting.id, by="bob")  # only once
        assert await waiting.wait() == Cancelled("bob") and await running.wait() == Cancelled("mod")
        assert not any(isinstance(e, Started) for e in waiting.history)
        after = await engine.submit(mood(user="c"))
        assert isinstance(await after.wait(), Done)
        status = await engine.status()
    assert status.finished == {"cancelled": 2, "done": 1}
    assert [len(terminal_events(j)) for j in (running, waiting, after)] == [1, 1, 1]


async def test_a_full_queue_refuses_with_position_and_expected_wait(pipeline):
    engine = LocalEngine(pipeline, concurrency=1, limits=Limits(max_queued=2, max_running_per_user=None))
    async with engine:
        first = await engine.submit(mood(seed=None))
        await asyncio.sleep(0)  # let it start
        queued = [await engine.submit(mood(seed=None)) for _ in range(2)]
        with pytest.raises(Busy) as refusal:
            await engine.submit(mood(seed=None))
    assert refusal.value.reason == "queue_full" and refusal.value.position == 3
    assert str(refusal.value).startswith("I'm busy right now: 2 pieces are waiting")
    assert first.started_at is not None
    assert all(isinstance(j.outcome, Cancelled) and j.outcome.by == "shutdown" for j in queued)


async def test_a_server_flooding_500_jobs_does_not_delay_another_servers_job(pipeline):
    engine = LocalEngine(pipeline, concurrency=1, max_batch=1, limits=Limits(max_running_per_server=None))
    async with engine:
        flood = [await engine.submit(mood(server="flood", user=f"u{i % 5}", seed=i)) for i in range(500)]
        mine = await engine.submit(mood(server="quiet", user="me"))
        started = []

        def watch(job):
            async def follow():
                async for event in job.events():
                    if isinstance(event, Started):
                        started.append(job)
            return asyncio.create_task(follow())

        watchers = [watch(job) for job in flood[:3] + [mine]]
        assert isinstance(await mine.wait(), Done)
        running_before = [j for j in flood if j.started_at is not None and j.started_at < mine.started_at]
        assert len(running_before) == 1  # only the one already running when it came
        for task in watchers:
            task.cancel()
    assert all(len(terminal_events(job)) == 1 for job in flood)  # the rest: cancelled at shutdown


async def test_a_job_running_past_its_timeout_fails_with_a_reason(pipeline):
    async with LocalEngine(pipeline, concurrency=1, limits=Limits(job_timeout_s=0.2)) as engine:
        job = await engine.submit(mood(duration=90))
        end = await job.wait()
    assert isinstance(end, Failed) and end.kind == "timeout" and "took longer than" in end.reason


async def test_an_identical_request_is_answered_from_the_cache_at_once(pipeline):
    async with LocalEngine(pipeline, concurrency=1, cache=ResultCache()) as engine:
        first = await (await engine.submit(mood(seed=9))).wait()
        again = await engine.submit(mood(seed=9))
        assert again.history == (Done(first.result, cached=True),)
        unseeded = await engine.submit(mood(seed=None))  # a random piece never comes from a cache
        made = await unseeded.wait()
        repeat = await engine.submit(mood(seed=made.result.options.seed))  # ...but its seed does
        assert repeat.outcome == Done(made.result, cached=True)
    assert isinstance(first, Done) and not first.cached


async def test_the_loop_stays_responsive_while_a_long_piece_is_made(pipeline):
    async with LocalEngine(pipeline, concurrency=1) as engine:
        job = await engine.submit(Request(
            emotion=Trajectory.linear([Emotion(-0.5, -0.5), Emotion(0.7, 0.8)]), options=options(duration=60),
        ))
        engine.lag.reset()
        lags = []
        loop = asyncio.get_running_loop()
        while not job.done:
            before = loop.time()
            await asyncio.sleep(0.02)
            lags.append(loop.time() - before - 0.02)
        assert isinstance(job.outcome, Done)
    assert len(lags) > 20 and max(lags) < 0.2, max(lags)
    assert engine.lag.percentile(0.99) < 0.2


async def test_status_and_every_follower_sees_the_same_story(pipeline):
    async with LocalEngine(pipeline, concurrency=1, max_batch=1) as engine:
        jobs = [await engine.submit(mood(user=f"u{i}", seed=i)) for i in range(3)]
        await asyncio.sleep(0)  # dispatch happens on the loop's next turn
        status = await engine.status()
        assert (status.queued, status.running, status.workers) == (2, 1, 1)
        early = asyncio.create_task(_collect(jobs[2]))
        for job in jobs:
            await job.wait()
        late = await _collect(jobs[2])
        assert await early == late and isinstance(late[-1], Done)
        status = await engine.status()
    assert status.queued == 0 and status.running == 0 and status.finished == {"done": 3}
    assert status.throughput_jobs_per_s and status.throughput_jobs_per_s > 0


async def _collect(job) -> list:
    return [event async for event in job.events()]


class WatchedRenderer(Pipeline):
    """The real pipeline, recording how each synthesis ended: made whole, or abandoned."""

    def __init__(self) -> None:
        super().__init__()
        self.syntheses: list[str] = []

    def renderer(self):
        real = super().renderer()
        watched = self

        class Watching:
            def __getattr__(self, name):
                return getattr(real, name)

            def master(self, midi, **kw):
                try:
                    mastered = real.master(midi, **kw)
                except BaseException:
                    watched.syntheses.append("abandoned")
                    raise
                watched.syntheses.append("whole")
                return mastered

        return Watching()


async def test_a_job_cancelled_while_rendering_stops_its_render_and_frees_the_thread():
    pipeline = WatchedRenderer()
    async with LocalEngine(pipeline, concurrency=1, progress_interval_s=0.01) as engine:
        long_piece = await engine.submit(mood(duration=240, user="a"))  # several seconds of synthesis
        async for event in long_piece.events():
            if isinstance(event, Progress) and event.stage == "rendering" and event.fraction > 0:
                break
        assert engine.cancel(long_piece.id, by="a")
        after = await engine.submit(mood(duration=2, user="b", seed=9))
        assert isinstance(await asyncio.wait_for(after.wait(), timeout=120), Done)
    assert long_piece.outcome == Cancelled("a")
    assert pipeline.syntheses == ["abandoned", "whole"]  # the thread went to the next job mid-render


async def test_finished_jobs_are_kept_for_lookups_within_a_byte_budget(pipeline, monkeypatch):
    from aria_engine.engine import base
    from aria_engine.engine.cache import result_nbytes

    async with LocalEngine(pipeline, concurrency=1) as engine:
        first = await engine.submit(mood(user="a", seed=1))
        one = result_nbytes((await first.wait()).result)
        monkeypatch.setattr(base, "_RECENT_BYTES", int(2.5 * one))  # room for two such results
        later = [await engine.submit(mood(user="a", seed=s)) for s in (2, 3, 4)]
        for job in later:
            await job.wait()
        assert [engine.job(j.id) is not None for j in [first, *later]] == [False, False, True, True]
