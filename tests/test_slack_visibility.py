"""Visibility on Slack, through the real bolt app and the double: `/aria admin show` lists every
registered setting with its source, and `/aria admin stats` the last 7 days."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("slack_bolt")

from bot.settings import aria_registry  # noqa: E402
from tests.slack_harness import RESULT_TIMEOUT_S, has_action, make_world, running_app, wait_for_ephemeral  # noqa: E402

pytestmark = pytest.mark.timeout(240)


async def test_show_and_stats(double, tmp_path):
    world = make_world(double)
    async with running_app(double, tmp_path, settings={"daily_quota": 1}) as running:
        await double.slash(world.general, world.alice, "mood 0.3 0.1")
        await double.wait_for(lambda: any(has_action(m, "aria_variation") for m in double.bot_messages(world.general.id))
                              or None, RESULT_TIMEOUT_S, "the result")
        await double.slash(world.general, world.alice, "mood 0.4 0.1")
        assert "today's" in (await wait_for_ephemeral(double, world.alice))["text"]

        await double.slash(world.general, world.admin, "admin show")
        shown = (await wait_for_ephemeral(double, world.admin))["text"]
        missing = [s.name for s in aria_registry() if s.name not in shown]
        assert missing == [], missing

        await double.slash(world.general, world.admin, "admin stats")
        stats = (await wait_for_ephemeral(double, world.admin, after=1))["text"]
        assert stats.startswith("ARIA on this server, the last 7 days")
        assert "• Pieces: 1 (1 done)" in stats and "• Refusals: 1 (daily quota 1)" in stats
        assert f"• Top requesters: <@{world.alice.id}> 1" in stats
        assert re.search(r"• Queue times: p50 \d+\.\d s, p95 \d+\.\d s", stats), stats

        await double.slash(world.general, world.alice, "admin stats")
        assert (await wait_for_ephemeral(double, world.alice, after=1))["text"].startswith("Only workspace admins")
