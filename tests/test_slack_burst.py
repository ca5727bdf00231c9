"""A burst: 50 requests from 5 workspaces at once (mentions with pictures and `/aria mood`), every
one acknowledged within Slack's 3 s and every one answered with its piece in its own thread."""

from __future__ import annotations

import asyncio
import time

import pytest

pytest.importorskip("slack_bolt")

from aria_engine.engine import LocalEngine  # noqa: E402
from aria_engine.pipeline import Pipeline  # noqa: E402
from tests.doubles.slack_api import SlackDouble  # noqa: E402
from tests.slack_harness import has_action, make_world, picture, running_app  # noqa: E402

WORKSPACES, USERS, PER_USER = 5, 5, 2  # 50 requests


@pytest.mark.slow
@pytest.mark.timeout(420)
@pytest.mark.parametrize("transport", ["socket", "http"])
async def test_fifty_requests_from_five_workspaces(tmp_path, transport):
    async with SlackDouble() as double:
        worlds = [make_world(double, f"team{i}") for i in range(WORKSPACES)]
        engine = LocalEngine(Pipeline(), concurrency=2, progress_interval_s=0.2)
        async with running_app(double, tmp_path, transport=transport, engine=engine,
                               settings={"max_duration_s": 1}, progress_interval_s=1.0) as running:
            started = time.monotonic()
            requests = []
            for w, world in enumerate(worlds):
                users = [world.alice, world.bob, world.admin, world.owner,
                         double.add_user(world.team, f"team{w}-carol")]
                for u, user in enumerate(users):
                    image = double.add_file(user, f"p{w}{u}.png", picture((40 * w, 50 * u, 120)), "image/png")
                    requests.append(double.post(world.general, user, f"<@{double.bot_user_id}> go",
                                                files=(image,)))
                    requests.append(double.slash(world.quiet, user, f"mood {u / 5:.1f} {-w / 5:.1f}"))
            deliveries = await asyncio.gather(*requests)
            acks = [d[1] if isinstance(d, tuple) else d for d in deliveries]
            assert len(acks) == 50 and all(not d.late for d in acks), max(d.ack_s or 99 for d in acks)

            def results():
                return [m for m in double.bot_messages() if has_action(m, "aria_variation")]

            await double.wait_for(lambda: len(results()) == 50, 360, "50 results")
            elapsed = time.monotonic() - started
            assert not [e for e in double.ephemerals if e["via"] != "ack"], double.ephemerals
            for world in worlds:
                mine = [m for m in results() if m["team"] == world.team.id]
                assert len(mine) == 10
                assert len({m.get("thread_ts") or m["ts"] for m in mine}) == 10  # each in its own thread
            records = [r for world in worlds for user_id in {m["user"] for m in world.general.messages
                                                             if "bot_id" not in m}
                       for r in running.store.list_user_jobs("slack", world.team.id, user_id)]
            assert len(records) == 50 and {r.status for r in records} == {"done"}
            print(f"\n50 requests from 5 workspaces over {transport}: all answered in {elapsed:.1f} s "
                  f"(2 shared cores; noisy)")
