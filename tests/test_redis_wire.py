"""Hostile and malformed messages through a real redis-server, against the real bot-side
RedisEngine and an in-process Worker: each fails its own job with the reason, nothing they
name is run, and the next job still comes back."""

from __future__ import annotations

import asyncio
import contextlib
import json
import pickle

import pytest

pytest.importorskip("redis")

from aria_engine.engine import Done, Failed  # noqa: E402
from aria_engine.engine import wire  # noqa: E402
from aria_engine.engine.redis_backend import RedisEngine, connect  # noqa: E402
from aria_engine.engine.redis_queue import RedisQueue  # noqa: E402
from aria_engine.engine.wire import MAX_RESULT_BYTES, dump_result  # noqa: E402
from aria_engine.pipeline import Pipeline  # noqa: E402
from aria_engine.worker import Worker  # noqa: E402
from tests.redis_server import needs_redis  # noqa: E402
from tests.test_redis_engine import mood  # noqa: E402
from tests.test_wire import exploit, malformed  # noqa: E402

pytestmark = [needs_redis, pytest.mark.redis]

DONE = {"type": "done", "cached": "false"}


@pytest.fixture(scope="module")
def result():
    return Pipeline().run(mood(seed=21))


@contextlib.asynccontextmanager
async def bot_and_forger(server, prefix: str):
    """The bot's engine, and a raw client that plays a worker which writes what it likes."""
    redis = connect(server.url)
    try:
        async with RedisEngine(server.url, prefix=prefix, block_ms=50) as engine:
            yield engine, RedisQueue(redis, prefix), redis
    finally:
        await redis.aclose()


async def forged(engine, queue, payload: bytes | None, fields=DONE, seed: int = 1):
    """Submit a job, take it as a worker would, store `payload` as its outcome; its ending."""
    job = await engine.submit(mood(seed=seed))
    entry, job_id = await queue.claim("forger")
    assert job_id == job.id
    assert await queue.finish(job.id, entry, fields["type"], fields, payload, 60)
    return await asyncio.wait_for(job.wait(), timeout=30)


@contextlib.asynccontextmanager
async def real_worker(server, prefix: str, **options):
    stop = asyncio.Event()
    worker = Worker(server.url, prefix=prefix, pipeline=Pipeline(), name="honest", warm_up=False, **options)
    running = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await running


async def test_a_pickle_naming_our_own_modules_runs_nothing_in_the_bot(server, tmp_path):
    marker = tmp_path / "owned"
    async with bot_and_forger(server, "exploit") as (engine, queue, redis):
        end = await forged(engine, queue, exploit(marker))
        await asyncio.sleep(1.0)  # time for a started process to have written its file
        assert not marker.exists(), "the pickle ran code in the bot"
        assert isinstance(end, Failed) and end.kind == "unreadable", end
        assert "pickle" in end.reason and end.log_id in end.reason
        async with real_worker(server, "exploit"):  # the bot carries on: the next job comes back
            job = await engine.submit(mood(seed=2))
            assert isinstance(await asyncio.wait_for(job.wait(), timeout=60), Done)


async def test_each_malformed_result_fails_only_its_job_with_why(server, result):
    cases = malformed(dump_result(result))
    async with bot_and_forger(server, "malformed") as (engine, queue, redis):
        for what, payload, reason in cases:
            end = await forged(engine, queue, payload)
            assert isinstance(end, Failed) and end.kind == "unreadable", (what, end)
            assert reason in end.reason, (what, end.reason)
        # More than an envelope's worth of bytes under the key: refused before it is fetched.
        job = await engine.submit(mood())
        await queue.claim("forger")
        await redis.set(queue.key("result", job.id), b"\0" * (MAX_RESULT_BYTES + 1))
        await redis.xadd(queue.key("events", job.id), DONE)
        end = await asyncio.wait_for(job.wait(), timeout=30)
        assert isinstance(end, Failed) and f"over the {MAX_RESULT_BYTES}-byte limit" in end.reason, end
        # Something that is no string under the key.
        job = await engine.submit(mood())
        await queue.claim("forger")
        await redis.hset(queue.key("result", job.id), "pickle", pickle.dumps(print))
        await redis.xadd(queue.key("events", job.id), DONE)
        end = await asyncio.wait_for(job.wait(), timeout=30)
        assert isinstance(end, Failed) and "is a Redis hash, not a string" in end.reason, end
        # And a good envelope still reads, to the byte.
        end = await forged(engine, queue, dump_result(result))
        assert isinstance(end, Done) and end.result.midi == result.midi and end.result.audio == result.audio


async def test_malformed_events_fail_only_their_job(server, result):
    async with bot_and_forger(server, "events") as (engine, queue, redis):
        for fields, reason in [
            ({"type": "progress", "stage": '"composing"', "fraction": '"most"', "detail": '""'},
             "fraction must be a number"),
            ({"type": "exec", "code": '"import os"'}, "unknown type 'exec'"),
            ({"type": "failed", "reason": '{"a": 1}'}, "reason must be text, not dict"),
        ]:
            job = await engine.submit(mood())
            await queue.claim("forger")
            await redis.xadd(queue.key("events", job.id), fields)
            end = await asyncio.wait_for(job.wait(), timeout=30)
            assert isinstance(end, Failed) and end.kind == "unreadable" and reason in end.reason, end
        # An events key that is no stream makes XREAD refuse every stream: only its job fails.
        broken, other = await engine.submit(mood(user="a")), await engine.submit(mood(user="b"))
        await redis.set(queue.key("events", broken.id), "not a stream")
        end = await asyncio.wait_for(broken.wait(), timeout=30)
        assert isinstance(end, Failed) and "not a Redis stream" in end.reason, end
        await queue.claim("forger")  # broken's entry
        entry, job_id = await queue.claim("forger")
        assert job_id == other.id
        await queue.finish(other.id, entry, "done", DONE, dump_result(result), 60)
        assert isinstance(await asyncio.wait_for(other.wait(), timeout=30), Done)


async def test_a_malformed_request_fails_its_job_on_the_worker_which_carries_on(server):
    async with bot_and_forger(server, "request") as (engine, queue, redis):
        job = await engine.submit(mood())
        request = json.loads((await redis.hget(queue.key("job", job.id), "request")))
        request["options"]["top_k"] = "__import__('os')"
        await redis.hset(queue.key("job", job.id), "request", json.dumps(request))
        async with real_worker(server, "request"):
            end = await asyncio.wait_for(job.wait(), timeout=60)
            assert isinstance(end, Failed) and end.kind == "unreadable", end
            assert "options.top_k must be an integer, not str" in end.reason
            after = await engine.submit(mood(seed=3))
            assert isinstance(await asyncio.wait_for(after.wait(), timeout=60), Done)


async def test_a_result_too_large_for_the_wire_fails_on_the_worker_with_why(server, monkeypatch):
    monkeypatch.setitem(wire.SECTION_LIMITS, "audio", 100)  # the worker is in this process
    async with bot_and_forger(server, "large") as (engine, queue, redis):
        async with real_worker(server, "large"):
            end = await asyncio.wait_for((await engine.submit(mood())).wait(), timeout=60)
    assert isinstance(end, Failed) and end.kind == "too_large" and "over its 100-byte limit" in end.reason, end
