"""Visibility on Discord, through the real client and the double: `/aria-admin show` lists every
registered setting with where it comes from (image_safety as it applies in an NSFW channel), and
`/aria-admin stats` shows the last 7 days: pieces, refusals by reason, top users, queue times."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("discord")

from bot.settings import aria_registry  # noqa: E402
from bot.stats import percentile  # noqa: E402
from tests.discord_harness import ephemeral_answer, make_world, result_of, running_bot  # noqa: E402

pytestmark = pytest.mark.timeout(240)


async def admin(double, world, command, options=None, channel=None):
    interaction = await double.send_slash_command(world.guild, channel or world.general, world.admin,
                                                  f"aria-admin {command}", options or {})
    return (await ephemeral_answer(double, interaction)).text()


async def test_show_lists_every_setting_with_its_source(double, tmp_path):
    world = make_world(double)
    world.quiet.nsfw = True
    async with running_bot(double, tmp_path) as running:
        await admin(double, world, "cooldown", {"seconds": 5, "channel": world.general})
        shown = await admin(double, world, "show")
        for setting in aria_registry():
            assert re.search(rf"^{setting.name}: .+ \((default|global|server|channel)\)$", shown, re.M), setting.name
        assert "cooldown_s: 5 (channel)" in shown and "daily_quota: 0 (global)" in shown
        assert "image_safety: refuse (default)" in shown
        assert "image_safety: off (default)" in await admin(double, world, "show", channel=world.quiet)


async def test_stats_show_the_last_seven_days(double, tmp_path):
    world = make_world(double)
    async with running_bot(double, tmp_path, settings={"daily_quota": 2}) as running:
        for user, count in ((world.alice, 3), (world.bob, 1)):
            for i in range(count):
                interaction = await double.send_slash_command(world.guild, world.general, user, "aria-mood",
                                                              {"valence": 0.1 * i, "arousal": 0.2})
                if user is world.alice and i == 2:
                    assert "today's" in (await ephemeral_answer(double, interaction)).content  # the quota
                else:
                    await result_of(double, interaction)
        shown = await admin(double, world, "stats")
        assert "ARIA, the last 7 days" in shown
        assert "Pieces: 3 (3 done)" in shown
        assert "Refusals: 1 (daily quota 1)" in shown
        assert f"Top requesters: <@{world.alice.id}> 2, <@{world.bob.id}> 1" in shown
        assert re.search(r"Queue times: p50 \d+\.\d s, p95 \d+\.\d s", shown), shown

        refused = await double.send_slash_command(world.guild, world.general, world.alice, "aria-admin stats",
                                                  bypass_command_permissions=True)
        assert "Only server admins" in (await ephemeral_answer(double, refused)).content


def test_percentiles_are_nearest_rank():
    waits = [0.5, 1.0, 1.5, 2.0, 9.0]
    assert (percentile(waits, 50), percentile(waits, 95), percentile([4.0], 50)) == (1.5, 9.0, 4.0)
