"""An interaction Discord delivers twice (it sends each to every session of the bot: a rolling
restart or a second replica on the same data dir gets them all twice) is handled once: no
second piece, no second use, no second audited change, nothing logged as an error (a second
handling spends a use, or changes a setting, before Discord refuses its "already acknowledged"
answer). Through the real bot and the Discord double."""

from __future__ import annotations

import asyncio
import logging

import pytest

pytest.importorskip("discord")

from tests.discord_harness import make_world, result_of, running_bot  # noqa: E402

pytestmark = pytest.mark.timeout(240)


def errors(caplog) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_an_interaction_delivered_twice_is_handled_once(double, tmp_path, caplog):
    world = make_world(double)
    async with running_bot(double, tmp_path) as running:
        mood = await double.send_slash_command(world.guild, world.general, world.alice, "aria-mood",
                                               {"valence": 0.4, "arousal": -0.2})
        result = await result_of(double, mood)
        click = await double.click_button(result, next(c for c in result.custom_ids() if c.startswith("aria:v:")),
                                          world.alice)
        await result_of(double, click)
        change = await double.send_slash_command(world.guild, world.general, world.admin, "aria-admin cooldown",
                                                 {"seconds": 5})
        await double.wait_for_response(change)
        answered = [(len(i.callbacks), len(i.followups)) for i in (mood, click, change)]
        messages = len(double.messages)
        audited = len(running.store.recent_audit("discord", str(world.guild.id)))

        for interaction in (mood, click, change):
            await double.redeliver(interaction)
        await asyncio.sleep(1.5)  # a second handling would have answered, or failed to, by now

        assert [(len(i.callbacks), len(i.followups)) for i in (mood, click, change)] == answered
        assert len(double.messages) == messages
        assert len(running.store.recent_audit("discord", str(world.guild.id))) == audited == 1
        jobs = running.store.list_user_jobs("discord", str(world.guild.id), str(world.alice.id))
        assert len(jobs) == 2
        usage = running.service.policy.usage(_actor(world)).used_today
        assert usage == 2
    assert errors(caplog) == []


def _actor(world):
    from bot.policy import Actor

    return Actor("discord", str(world.guild.id), str(world.general.id), str(world.alice.id))
