"""Continuous batching in the local engine: transformer jobs join a running decode session at
step boundaries (tiny random-weight checkpoint, real pipeline and renderer)."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("torch")

from aria_engine.emotion import Emotion  # noqa: E402
from aria_engine.engine import Cancelled, Done, Failed, Limits, LocalEngine, Progress, Started  # noqa: E402
from aria_engine.options import GenerationOptions  # noqa: E402
from aria_engine.pipeline import Origin, Pipeline, Request  # noqa: E402
from tests.factories.music import make_music_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Pipeline:
    models = tmp_path_factory.mktemp("models")
    make_music_checkpoint(models / "continuous_concat", "continuous_concat", seed=3)
    return Pipeline(models_dir=models)


def piece(user: str, seed: int, length: int, server: str = "s", valence: float = 0.3) -> Request:
    options = GenerationOptions(composer="transformer", encoder="palette", length=length, window=64, seed=seed)
    return Request(emotion=Emotion(valence, 0.2), options=options, origin=Origin("test", server, "c", user))


def procedural(user: str, server: str) -> Request:
    options = GenerationOptions(composer="procedural", duration_s=2.0, seed=1)
    return Request(emotion=Emotion(0.1, 0.1), options=options, origin=Origin("test", server, "c", user))


async def decoding(job) -> None:
    """Until the job reports composing progress part way."""
    async for event in job.events():
        if isinstance(event, Progress) and event.stage == "composing" and 0 < event.fraction < 1:
            return
    raise AssertionError(f"{job.id} ended before it was seen decoding: {job.history[-1]}")


def started(job) -> Started:
    return next(e for e in job.history if isinstance(e, Started))


def engine(pipeline, **more) -> LocalEngine:
    return LocalEngine(pipeline, concurrency=1, progress_interval_s=0.02, **more)


async def test_a_job_submitted_while_another_decodes_joins_it_and_both_equal_their_solo_runs(pipeline):
    first, second = piece("ann", 2, 600), piece("bob", 7, 150, valence=-0.6)  # b joins with most of a to go
    async with engine(pipeline, max_batch=4) as local:
        a = await local.submit(first)
        await decoding(a)
        b = await local.submit(second)
        ends = await a.wait(), await b.wait()
    assert all(isinstance(end, Done) for end in ends), ends
    assert started(b).batch_size == 2 and b.started_at < a.finished_at  # it did not wait for a
    assert any("together with 1 other piece" in e.detail for e in b.history if isinstance(e, Progress))
    assert b.finished_at < a.finished_at  # the short piece came out first
    for request, end in zip((first, second), ends):
        solo = pipeline.run(request)
        assert end.result.composition.tokens == solo.composition.tokens
        assert end.result.midi == solo.midi


async def test_with_joining_off_a_new_job_waits_for_the_running_batch(pipeline):
    async with engine(pipeline, max_batch=4, join_running=False) as local:
        a = await local.submit(piece("ann", 2, 300))
        await decoding(a)
        b = await local.submit(piece("bob", 7, 150))
        ends = await a.wait(), await b.wait()
    assert all(isinstance(end, Done) for end in ends)
    assert started(b).batch_size == 1 and b.started_at >= a.finished_at - 0.05


async def test_a_cancelled_job_leaves_the_session_and_its_row_goes_to_a_waiting_job(pipeline):
    first, doomed, third = piece("ann", 2, 1200), piece("bob", 3, 300), piece("cy", 7, 150)  # a outlasts the rest
    async with engine(pipeline, max_batch=2) as local:
        a = await local.submit(first)
        await decoding(a)
        b = await local.submit(doomed)
        await decoding(b)
        c = await local.submit(third)
        await asyncio.sleep(0.1)
        assert c.started_at is None  # the session is full and the only thread is taken
        assert local.cancel(b.id, by="bob")
        ends = await a.wait(), await b.wait(), await c.wait()
    assert ends[1] == Cancelled("bob")
    assert started(c).batch_size == 2 and c.started_at < a.finished_at
    assert isinstance(ends[0], Done) and isinstance(ends[2], Done)
    assert ends[0].result.midi == pipeline.run(first).midi
    assert ends[2].result.midi == pipeline.run(third).midi


async def test_a_job_of_another_kind_next_in_line_stops_the_joining(pipeline):
    async with engine(pipeline, max_batch=8, limits=Limits(max_running_per_server=None)) as local:
        a = await local.submit(piece("ann", 2, 300, server="one"))
        await decoding(a)
        other = await local.submit(procedural("pat", server="two"))
        late = await local.submit(piece("tom", 2, 100, server="three"))
        ends = [await job.wait() for job in (a, other, late)]
    assert all(isinstance(end, Done) for end in ends)
    assert other.started_at > a.finished_at - 1e-3  # it needed the thread
    assert late.started_at >= other.started_at  # and the transformer job did not jump it
    assert started(late).batch_size == 1


async def test_a_job_timing_out_mid_decode_leaves_the_session_which_carries_on(pipeline):
    local = engine(pipeline, max_batch=4, limits=Limits(job_timeout_s=3.0))
    await local.start()
    slow = await local.submit(piece("ann", 2, 8000))  # many seconds of decoding
    await decoding(slow)
    quick = await local.submit(piece("bob", 2, 100))
    ends = await slow.wait(), await quick.wait()
    closing = asyncio.get_running_loop().time()
    await local.close()  # waits up to 5 s for running work: there is none left
    assert asyncio.get_running_loop().time() - closing < 2.0  # not the grace: decoding had stopped
    assert isinstance(ends[0], Failed) and ends[0].kind == "timeout"
    assert isinstance(ends[1], Done) and started(quick).batch_size == 2
    assert (await local.status()).finished == {"failed": 1, "done": 1}  # nothing cut off at closing
