"""Attachments come only from Discord's CDN (or the configured API base), matched by scheme, host
and port: another port, host or scheme is refused before a byte is fetched, and a CDN URL that
redirects elsewhere is not followed. Through the real bot and the Discord double."""

from __future__ import annotations

import pytest

pytest.importorskip("discord")

from bot.policy import Actor  # noqa: E402
from tests.discord_harness import ephemeral_answer, make_world, picture, result_of, running_bot  # noqa: E402
from tests.doubles.discord_api import EPHEMERAL  # noqa: E402

pytestmark = pytest.mark.timeout(240)


def used_today(running, world) -> int:
    actor = Actor("discord", str(world.guild.id), str(world.general.id), str(world.alice.id))
    return running.service.policy.usage(actor).used_today


async def aria(double, world, attachment):
    return await double.send_slash_command(world.guild, world.general, world.alice, "aria", {"image": attachment})


async def test_attachments_off_discord_are_refused_before_downloading(double, elsewhere, tmp_path):
    world = make_world(double)
    real = double.add_attachment(picture(), "sun.png")
    path = real["url"].split(str(double.port), 1)[1]
    crafted = [
        elsewhere.url("cdn/attachments/1/sun.png"),  # the API base's host, another port
        f"http://localhost:{double.port}{path}",  # the API base's port, another host name
        f"https://127.0.0.1:{double.port}{path}",  # the API base's host and port, another scheme
        f"http://cdn.discordapp.com:{elsewhere.port}/attachments/1/sun.png",  # Discord's CDN, another port
    ]
    async with running_bot(double, tmp_path) as running:
        for url in crafted:
            interaction = await aria(double, world, {**real, "url": url, "proxy_url": url})
            callback = await double.wait_for_response(interaction)
            assert callback["type"] == 4 and callback["data"]["flags"] & EPHEMERAL
            assert "isn't stored on Discord" in interaction.original.content, (url, interaction.original.content)
        assert elsewhere.requests == [] and double.downloads == []
        assert used_today(running, world) == 0
        await result_of(double, await aria(double, world, real))  # the real URL still works
    assert len(double.downloads) == 1


async def test_a_redirect_off_discord_is_not_followed(double, elsewhere, tmp_path):
    world = make_world(double)
    attachment = double.add_attachment(picture(), "sun.png")
    double.redirect_attachment(attachment, elsewhere.url("sun.png"))
    async with running_bot(double, tmp_path) as running:
        interaction = await aria(double, world, attachment)
        answer = await ephemeral_answer(double, interaction)
        assert "sent me somewhere other than Discord, so I didn't follow it" in answer.content, answer.content
        assert elsewhere.requests == []
        assert len(double.downloads) == 1  # the first hop, on the CDN
        assert running.store.list_user_jobs("discord", str(world.guild.id), str(world.alice.id)) == []
        assert used_today(running, world) == 0  # given back
