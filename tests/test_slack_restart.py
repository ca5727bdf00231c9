"""Pieces a restart interrupts, on Slack: with a Redis worker pool the status message is picked
up again and becomes the result; with in-process models it says the piece was lost, and why.
Through the real bolt app and the local Slack double; Redis is a real redis-server with a real
worker."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

pytest.importorskip("slack_bolt")
pytest.importorskip("redis")

from aria_engine.engine import LocalEngine  # noqa: E402
from aria_engine.engine.redis_backend import RedisEngine  # noqa: E402
from aria_engine.pipeline import Pipeline  # noqa: E402
from aria_engine.worker import Worker  # noqa: E402
from bot.policy import Actor  # noqa: E402
from bot.store import Store  # noqa: E402
from tests.redis_server import RedisServer, needs_redis  # noqa: E402
from tests.slack_harness import has_action, make_world, running_app  # noqa: E402

pytestmark = pytest.mark.timeout(240)


@contextlib.asynccontextmanager
async def worker(url: str):
    stop = asyncio.Event()
    task = asyncio.create_task(Worker(url, pipeline=Pipeline(), name="w1", warm_up=False,
                                      visibility_timeout_s=5).run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def status_of_the_job(double, running, world, user):
    [record] = await double.wait_for(lambda: running.store.list_user_jobs("slack", world.team.id, user.id), 20,
                                     "the job")
    await double.wait_for(lambda: running.store.get_result(record.result_id).message_id, 20, "its status message")
    return running.store.get_result(record.result_id)


@needs_redis
async def test_the_status_message_is_picked_up_again_and_becomes_the_result(double, tmp_path):
    world = make_world(double)
    with RedisServer(tmp_path / "redis", aof=True) as server:
        async with running_app(double, tmp_path, engine=RedisEngine(server.url)) as running:
            await double.slash(world.general, world.alice, "mood 0.5 0.5")
            record = await status_of_the_job(double, running, world, world.alice)
        status = double.message(world.general.id, record.message_id)
        assert has_action(status, "aria_cancel")  # still waiting: nothing said "cancelled" on the way down
        async with running_app(double, tmp_path, engine=RedisEngine(server.url)) as running, worker(server.url):
            await double.wait_for(lambda: has_action(double.message(world.general.id, record.message_id),
                                                     "aria_variation"), 60, "the status message to become the result")
            texts = [u["text"] for u in double.updates if u["ts"] == record.message_id]
            assert "ARIA restarted and picked your piece up again: on its way..." in texts
            assert running.store.get_result(record.result_id).status == "done"
            names = [f["name"] for f in double.uploaded_files(world.general.id, record.message_id)]
            assert any(n.endswith(".mid") for n in names)


async def test_an_in_process_piece_stopped_by_a_restart_says_so_in_its_status_message(double, tmp_path):
    world = make_world(double)
    engine = LocalEngine(Pipeline(), concurrency=1, progress_interval_s=0.05, close_grace_s=0.0)
    settings = {"max_duration_s": 60, "daily_quota": 5}
    async with running_app(double, tmp_path, engine=engine, settings=settings) as running:
        await double.slash(world.general, world.alice, "mood -0.3 0.6 duration=60")
        record = await status_of_the_job(double, running, world, world.alice)
        await double.wait_for(lambda: running.store.get_result(record.result_id).status == "running", 30,
                              "the piece to start")
    with Store(tmp_path / "aria.db") as store:
        assert store.get_result(record.result_id).status == "running"
    async with running_app(double, tmp_path) as running:
        text = double.message(world.general.id, record.message_id)["text"]
        assert text == (f"<@{world.alice.id}> ARIA restarted while your piece for valence -0.30, arousal +0.60 was "
                        "being made, and a restart stops the pieces in progress, so it was lost. Sorry! It didn't "
                        "count toward your daily quota; please ask again.")
        assert running.store.get_result(record.result_id).status == "failed"
        usage = running.service.policy.usage(Actor("slack", world.team.id, world.general.id, world.alice.id))
        assert usage.used_today == 0
