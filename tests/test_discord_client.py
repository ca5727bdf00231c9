"""The real discord.py client against the local double: login, gateway, command sync, a round trip."""

from __future__ import annotations

import pytest

pytest.importorskip("discord")

from tests.discord_harness import running_bot  # noqa: E402
from tests.doubles.discord_api import EPHEMERAL  # noqa: E402

pytestmark = pytest.mark.timeout(60)

EXPECTED_COMMANDS = {"aria", "aria-mood", "aria-queue", "aria-forget-me", "aria-mod", "aria-help", "aria-admin", "aria-jam",
                     "Compose music from image"}


async def test_login_syncs_commands_and_answers_help(discord_double, tmp_path):
    double = discord_double
    guild = double.add_guild("cafe")
    alice = double.add_user("alice")
    async with running_bot(double, tmp_path) as running:
        assert double.identifies and double.identifies[0]["token"] == double.token
        assert running.bot.synced is True
        assert {c["name"] for c in double.commands[None]} == EXPECTED_COMMANDS
        interaction = await double.send_slash_command(guild, guild.channel("general"), alice, "aria-help")
        callback = await double.wait_for_response(interaction)
        assert callback["type"] == 4 and callback["data"]["flags"] & EPHEMERAL
        assert "compose" in interaction.original.text().lower()


async def test_sync_only_when_the_command_set_changed(discord_double, tmp_path):
    double = discord_double
    double.add_guild("cafe")
    async with running_bot(double, tmp_path) as running:
        assert running.bot.synced is True
    assert len(double.command_syncs) == 1
    async with running_bot(double, tmp_path) as running:  # same data dir: same hash, no sync
        assert running.bot.synced is False
    assert len(double.command_syncs) == 1
    async with running_bot(double, tmp_path / "fresh") as running:  # fresh data dir: always syncs
        assert running.bot.synced is True
    assert len(double.command_syncs) == 2


async def test_a_changed_command_set_syncs_again(discord_double, tmp_path):
    double = discord_double
    double.add_guild("cafe")
    async with running_bot(double, tmp_path) as running:
        assert running.bot.synced is True
        key = f"discord.commands.{running.bot.application_id}.global"
        assert running.store.get_meta(key)  # what this version synced
        running.store.set_meta(key, "the hash of an older version's commands")
    async with running_bot(double, tmp_path) as running:
        assert running.bot.synced is True
    assert len(double.command_syncs) == 2


async def test_a_refused_sync_does_not_stop_the_bot_and_is_tried_again(discord_double, tmp_path):
    double = discord_double
    double.add_guild("cafe")
    dev = double.add_guild("dev")
    del double.guilds[dev.id]  # the bot was removed from the test guild: Discord answers 403 Missing Access
    async with running_bot(double, tmp_path, test_guild=dev.id) as running:
        assert running.bot.synced is False and running.bot.is_ready()
    assert double.command_syncs == []
    double.guilds[dev.id] = dev  # invited back: the next start syncs, since nothing was recorded
    async with running_bot(double, tmp_path, test_guild=dev.id) as running:
        assert running.bot.synced is True
    assert [scope for scope, _ in double.command_syncs] == [dev.id]


async def test_test_guild_sync_is_guild_scoped(discord_double, tmp_path):
    double = discord_double
    guild = double.add_guild("dev")
    async with running_bot(double, tmp_path, test_guild=guild.id) as running:
        assert running.bot.synced is True
        scope, commands = double.command_syncs[-1]
        assert scope == guild.id and {c["name"] for c in commands} == EXPECTED_COMMANDS
