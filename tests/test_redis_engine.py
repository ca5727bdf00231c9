"""The Redis backend with a real redis-server and real `aria worker` processes.

Workers are started as `python -m bot.cli worker ...`, killed with SIGKILL, and Redis is
restarted from its AOF, as in production; pieces are 2 s long to keep the suite quick.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import generate_latest

pytest.importorskip("redis")

from aria_engine.emotion import Emotion  # noqa: E402
from aria_engine.engine import Busy, Cancelled, Done, Failed, Limits, Progress, Started, TERMINAL  # noqa: E402
from aria_engine.engine.redis_backend import RedisEngine, connect  # noqa: E402
from aria_engine.engine.redis_queue import RedisQueue  # noqa: E402
from aria_engine.engine.wire import dump_result, event_to_fields, request_to_json  # noqa: E402
from aria_engine.loadtest import WorkerPool  # noqa: E402
from aria_engine.options import GenerationOptions  # noqa: E402
from aria_engine.pipeline import Origin, Pipeline, Request  # noqa: E402
from aria_engine.worker import Worker  # noqa: E402
from tests.redis_server import RedisServer, free_port, needs_redis  # noqa: E402

pytestmark = [needs_redis, pytest.mark.redis]

REPO = Path(__file__).resolve().parents[1]
FAST_WORKER = ["--visibility-timeout", "2", "--max-batch", "1", "--concurrency", "1"]


@pytest.fixture
def redis_aof() -> bool:
    """These tests restart Redis and expect their jobs back."""
    return True


@pytest.fixture
def workers(server, tmp_path):
    """Start N worker processes: `pool = workers(2)`; all stopped after the test."""
    pools = []

    def start(count: int = 1, args: list[str] = FAST_WORKER) -> WorkerPool:
        pool = WorkerPool(server.url, count, args=args, log_dir=tmp_path / f"workers{len(pools)}").start()
        pools.append(pool)
        pool.wait_ready()
        return pool

    yield start
    for pool in pools:
        pool.stop()


def mood(valence=0.3, arousal=-0.2, *, server="s", user="u", seed=1, duration=2.0) -> Request:
    return Request(
        emotion=Emotion(valence, arousal),
        options=GenerationOptions(composer="procedural", encoder="palette", duration_s=duration, seed=seed),
        origin=Origin("test", server, "c", user),
    )


async def started_by(job, timeout_s: float = 60) -> str:
    async def first_start() -> str:
        async for event in job.events():
            if isinstance(event, Started):
                return event.worker
        raise AssertionError(f"ended without starting: {job.outcome}")

    return await asyncio.wait_for(first_start(), timeout_s)


def workers_of(job) -> list[str]:
    return [e.worker for e in job.history if isinstance(e, Started)]


async def test_jobs_run_on_worker_processes_and_results_come_back(server, workers):
    port = free_port()
    pool = workers(1, FAST_WORKER + ["--metrics-port", str(port), "--metrics-host", "127.0.0.1"])
    picture = (REPO / "examples" / "dusk.png").read_bytes()
    requests = [mood(seed=4), Request(image=picture, options=mood(seed=5).options, origin=Origin(server="t"))]
    async with RedisEngine(server.url, name="bot") as engine:
        jobs = [await engine.submit(r) for r in requests]
        ends = [await job.wait() for job in jobs]
        status = await engine.status()
        client_metrics = generate_latest(engine.metrics.registry).decode()
    assert all(isinstance(end, Done) for end in ends), ends
    assert 'aria_job_latency_seconds_count{outcome="done"} 2.0' in client_metrics
    worker_metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'aria_jobs_finished_total{outcome="done"} 2.0' in worker_metrics
    assert 'aria_stage_seconds_count{stage="rendering"} 2.0' in worker_metrics
    health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read())
    assert health["ok"] and health["role"] == "worker"
    assert workers_of(jobs[0]) == [pool.names[0]]
    stages = {e.stage for e in jobs[1].history if isinstance(e, Progress)}
    assert {"decoding image", "composing", "rendering"} <= stages, stages  # progress crossed Redis too
    assert ends[0].result.midi == Pipeline().run(requests[0]).midi  # the same piece as made locally
    assert ends[1].result.encoder == "palette" and ends[1].result.audio.data
    assert status.workers == 1 and status.queued == 0 and status.running == 0


async def test_a_worker_killed_mid_job_hands_it_to_another(server, workers):
    pool = workers(2)
    async with RedisEngine(server.url) as engine:
        job = await engine.submit(mood(duration=90))
        victim = await started_by(job)
        pool.kill(pool.index_of(victim))
        end = await asyncio.wait_for(job.wait(), timeout=90)
    assert isinstance(end, Done), end
    survivor = next(name for name in pool.names if name != victim)
    assert workers_of(job) == [victim, survivor]


async def test_a_redis_restart_loses_no_queued_job(server, workers):
    async with RedisEngine(server.url) as engine:
        jobs = [await engine.submit(mood(server=f"s{i % 2}", user=f"u{i}", seed=i)) for i in range(4)]
        server.restart(kill=True)  # SIGKILL: only what the AOF holds survives
        workers(1)
        ends = await asyncio.wait_for(asyncio.gather(*(job.wait() for job in jobs)), timeout=90)
    assert all(isinstance(end, Done) for end in ends), ends
    assert [end.result.options.seed for end in ends] == [0, 1, 2, 3]


async def test_cancel_a_queued_job_and_a_running_one(server, workers):
    workers(1, FAST_WORKER)
    async with RedisEngine(server.url) as engine:
        running = await engine.submit(mood(user="a", duration=600))  # the longest piece: 20 s of rendering here
        waiting = await engine.submit(mood(user="b"))
        await started_by(running)
        assert engine.cancel(waiting.id, by="bob") and engine.cancel(running.id, by="mod")
        assert not engine.cancel(running.id, by="mod")
        assert waiting.outcome == Cancelled("bob") and running.outcome == Cancelled("mod")
        began = time.monotonic()
        after = await engine.submit(mood(user="c"))
        assert isinstance(await asyncio.wait_for(after.wait(), timeout=60), Done)
        freed_after = time.monotonic() - began
        queue = RedisQueue(engine.redis, engine.prefix)
        states = await queue.states([running.id, waiting.id])
    assert states == {running.id: "cancelled", waiting.id: "cancelled"}
    assert not workers_of(waiting)  # it never ran
    assert freed_after < 8  # the worker dropped the long piece mid-way (within a heartbeat) instead of finishing it


async def test_a_full_queue_refuses_with_position_and_nothing_is_lost(server):
    limits = Limits(max_queued=3, max_queued_per_user=2)
    async with RedisEngine(server.url, limits=limits) as engine:
        await engine.submit(mood(user="a"))
        await engine.submit(mood(user="a"))
        with pytest.raises(Busy) as mine:
            await engine.submit(mood(user="a"))
        await engine.submit(mood(user="b"))
        with pytest.raises(Busy) as everyone:
            await engine.submit(mood(user="c"))
        status = await engine.status()
    assert (mine.value.reason, mine.value.position) == ("user_queue_full", 3)
    assert (everyone.value.reason, everyone.value.position) == ("queue_full", 4)
    assert "3 pieces are waiting" in str(everyone.value)
    assert status.queued == 3


async def test_a_server_flooding_500_jobs_does_not_delay_another_servers_job(server, workers):
    async with RedisEngine(server.url) as engine:
        flood = [await engine.submit(mood(server="flood", user=f"u{i % 5}", seed=i)) for i in range(500)]
        mine = await engine.submit(mood(server="quiet", user="me"))
        assert mine.history[0].position == 2  # after the flood's first, before its second
        workers(1)
        assert isinstance(await asyncio.wait_for(mine.wait(), timeout=60), Done)
        ran_before = [job for job in flood if job.started_at is not None and job.started_at <= mine.started_at]
        assert len(ran_before) <= 1
        for job in flood:
            engine.cancel(job.id, by="test")


async def test_a_duplicate_outcome_is_ignored_and_acks_still_happen(server):
    redis = connect(server.url)
    queue = RedisQueue(redis, "dup")
    request = mood()
    try:
        await queue.enqueue("j1", request_to_json(request), None, server="s", user="u", cost=1,
                            max_queued=10, max_per_server=None, max_per_user=None)
        first_entry, job_id = await queue.claim("w1")
        result = Pipeline().run(request)
        done = event_to_fields(Done(result))
        assert await queue.finish(job_id, first_entry, "done", done, dump_result(result), 60)
        assert not await queue.finish(job_id, first_entry, "failed", event_to_fields(Failed("late")), None, 60)
        assert await queue.cancel(job_id, "someone", 60) == "done"
        events = await redis.xrange(queue.key("events", job_id))
        assert [fields[b"type"] for _, fields in events] == [b"done"]
        assert await redis.xlen(queue.work_stream) == 0  # acked and deleted
        assert (await redis.xpending(queue.work_stream, "workers"))["pending"] == 0
    finally:
        await redis.aclose()


async def test_a_job_that_keeps_losing_its_workers_fails_instead_of_looping(server):
    redis = connect(server.url)
    queue = RedisQueue(redis, "poison")
    stop = asyncio.Event()
    try:
        async with RedisEngine(server.url, prefix="poison") as engine:
            job = await engine.submit(mood())
            await queue.claim("ghost-1")  # a worker that takes the job and dies
            worker = Worker(server.url, prefix="poison", pipeline=Pipeline(), name="w", max_deliveries=1,
                            visibility_timeout_s=0.3, warm_up=False)
            running = asyncio.create_task(worker.run(stop))
            end = await asyncio.wait_for(job.wait(), timeout=30)
            stop.set()
            await running
        assert isinstance(end, Failed) and end.kind == "redelivery_limit", end
        assert "kept stopping" in end.reason
    finally:
        await redis.aclose()


async def test_a_job_redis_forgot_ends_failed_not_forever_waiting(tmp_path):
    with RedisServer(tmp_path / "volatile", aof=False) as volatile:
        async with RedisEngine(volatile.url, lost_check_s=0.2) as engine:
            job = await engine.submit(mood())
            volatile.restart(kill=True)  # no AOF: the queue is gone
            end = await asyncio.wait_for(job.wait(), timeout=30)
    assert isinstance(end, Failed) and end.kind == "lost" and "lost" in end.reason
    assert sum(isinstance(e, TERMINAL) for e in job.history) == 1


async def test_events_of_a_job_can_be_followed_from_another_process(server, workers):
    workers(1)
    async with RedisEngine(server.url, name="bot-1") as first, RedisEngine(server.url, name="bot-2") as second:
        job = await first.submit(mood(seed=77))
        other = await second.attach(job.id)
        mine, theirs = await asyncio.wait_for(asyncio.gather(job.wait(), other.wait()), timeout=60)
    assert isinstance(theirs, Done) and theirs.result.midi == mine.result.midi
    assert other.request == job.request


def test_a_bot_process_follows_jobs_without_loading_any_model(server, workers):
    workers(1)
    script = f"""
import asyncio, sys
from aria_engine.engine.redis_backend import RedisEngine
from aria_engine.engine import Done
from tests.test_redis_engine import mood

async def main():
    async with RedisEngine({server.url!r}) as engine:
        end = await (await engine.submit(mood(seed=3))).wait()
    assert isinstance(end, Done), end
    print(end.result.emotion.label, len(end.result.midi))

asyncio.run(main())
loaded = [m for m in ("torch", "aria_engine.music.procedural", "aria_engine.encoders.palette",
                      "aria_engine.music.neural", "aria_engine.encoders.clip") if m in sys.modules]
assert not loaded, loaded
"""
    run = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]


async def test_a_worker_stopping_hands_its_running_job_back_unfinished(server):
    """SIGTERM's drain: a job still running when the grace is over is not ended (as
    cancelled) by the worker that leaves; the next worker takes it at once and finishes it."""
    leaving = Worker(server.url, pipeline=Pipeline(), name="leaving", drain_s=0.0, visibility_timeout_s=30,
                     warm_up=False)
    leaving.engine.close_grace_s = 0.0  # stop the model at once: nothing finishes on the way out
    stop = asyncio.Event()
    async with RedisEngine(server.url) as engine:
        job = await engine.submit(mood(duration=60))
        running = asyncio.create_task(leaving.run(stop))
        assert await started_by(job) == "leaving"
        stop.set()
        await running
        queue = RedisQueue(engine.redis, engine.prefix)
        assert (await queue.states([job.id]))[job.id] == "running"
        entries = await engine.redis.xrange(queue.key("events", job.id))
        kinds = {fields[b"type"] for _, fields in entries}
        assert b"started" in kinds and not kinds & {b"done", b"failed", b"cancelled"}, kinds
        assert not job.done
        taking_over = Worker(server.url, pipeline=Pipeline(), name="next", visibility_timeout_s=30, warm_up=False)
        stop_next = asyncio.Event()
        second = asyncio.create_task(taking_over.run(stop_next))
        end = await asyncio.wait_for(job.wait(), timeout=120)  # well inside the 30 s timeout: released
        stop_next.set()
        await second
    assert isinstance(end, Done), end
    assert workers_of(job) == ["leaving", "next"]


@contextlib.asynccontextmanager
async def raw_queue(server, prefix: str):
    """The queue's operations on their own client, for tests that play the workers' parts."""
    redis = connect(server.url)
    try:
        yield redis, RedisQueue(redis, prefix)
    finally:
        await redis.aclose()


async def _pending_job(queue: RedisQueue, job_id: str, consumer: str) -> str:
    await queue.enqueue(job_id, request_to_json(mood()), None, server="s", user=job_id, cost=1,
                        max_queued=1000, max_per_server=None, max_per_user=None)
    entry, claimed = await queue.claim(consumer)
    assert claimed == job_id
    return entry


async def test_take_overs_reach_a_dead_workers_jobs_behind_many_live_ones(server):
    async with raw_queue(server, "scan") as (redis, queue):
        for n in range(40):  # older entries, held by a worker that lives
            await _pending_job(queue, f"live{n}", "alive")
        dead = await _pending_job(queue, "orphan", "dead")
        await redis.xclaim(queue.work_stream, "workers", "dead", 0, [dead], idle=60_000, justid=True)
        taken = []
        for _ in range(6):  # XAUTOCLAIM looks at 10 entries a call at count 1
            taken += await queue.reclaim("rescuer", min_idle_ms=30_000, count=1)
        assert [(entry, job_id) for entry, job_id, _ in taken] == [(dead, "orphan")]


async def test_a_heartbeat_never_takes_back_a_job_another_worker_took_over(server):
    async with raw_queue(server, "hold") as (redis, queue):
        mine = await _pending_job(queue, "kept", "slow")
        lost = await _pending_job(queue, "lost", "slow")
        await redis.xclaim(queue.work_stream, "workers", "slow", 0, [lost], idle=60_000, justid=True)
        assert [e for e, _, _ in await queue.reclaim("quick", min_idle_ms=30_000, count=4)] == [lost]
        assert await queue.heartbeat("slow", [mine, lost]) == {mine}
        owners = {p["message_id"].decode(): p["consumer"].decode()
                  for p in await redis.xpending_range(queue.work_stream, "workers", "-", "+", 10)}
        assert owners == {mine: "slow", lost: "quick"}


async def test_a_job_cancelled_before_its_worker_starts_it_is_not_started(server):
    async with raw_queue(server, "race") as (redis, queue):
        await _pending_job(queue, "j", "w")
        assert await queue.cancel("j", "someone", 60) == "running"
        assert not await queue.mark_running("j", "w2")
        assert (await queue.states(["j"]))["j"] == "cancelled"
