"""/aria-admin: who may use it, what each setting does to members' requests, and the audit."""

from __future__ import annotations

import pytest

pytest.importorskip("discord")

from tests.discord_harness import ephemeral_answer, make_world, result_of, running_bot  # noqa: E402

pytestmark = pytest.mark.timeout(240)


async def admin(double, world, command, options=None, *, user=None, channel=None):
    interaction = await double.send_slash_command(world.guild, channel or world.general, user or world.admin,
                                                  f"aria-admin {command}", options or {})
    return (await ephemeral_answer(double, interaction)).text()


async def mood(double, world, user, channel=None, **options):
    return await double.send_slash_command(world.guild, channel or world.general, user, "aria-mood",
                                           {"valence": 0.2, "arousal": 0.2, **options})


async def test_admin_commands_need_manage_server(double, tmp_path):
    world = make_world(double)
    async with running_bot(double, tmp_path) as running:
        schema = next(c for c in double.commands[None] if c["name"] == "aria-admin")
        assert int(schema["default_member_permissions"]) == 1 << 5  # Manage Server
        with pytest.raises(PermissionError):  # Discord hides it from ordinary members
            await double.send_slash_command(world.guild, world.general, world.alice, "aria-admin show")
        # A server may override the command's visibility; the bot still checks.
        sneaky = await double.send_slash_command(world.guild, world.general, world.alice, "aria-admin cooldown",
                                                 {"seconds": 0}, bypass_command_permissions=True)
        assert "Only server admins" in (await ephemeral_answer(double, sneaky)).content
        assert running.store.recent_audit("discord", str(world.guild.id)) == []
        # ...and a user the server lists in admin_user_ids may.
        running.service.settings.set("admin_user_ids", [str(world.alice.id)], scope="server",
                                     server=f"discord:{world.guild.id}")
        allowed = await double.send_slash_command(world.guild, world.general, world.alice, "aria-admin cooldown",
                                                  {"seconds": 5}, bypass_command_permissions=True)
        assert "cooldown_s is now 5" in (await ephemeral_answer(double, allowed)).content


async def test_disable_and_enable_a_channel(double, tmp_path):
    world = make_world(double)
    async with running_bot(double, tmp_path):
        assert "enabled is now off" in await admin(double, world, "disable")
        refused = await mood(double, world, world.alice)
        assert "turned off in this channel" in (await ephemeral_answer(double, refused)).content
        elsewhere = await mood(double, world, world.alice, channel=world.quiet)
        await result_of(double, elsewhere)
        assert "enabled is now on" in await admin(double, world, "enable")
        await result_of(double, await mood(double, world, world.bob))


async def test_allowed_roles(double, tmp_path):
    world = make_world(double)
    musicians = double.add_role(world.guild, "musicians")
    async with running_bot(double, tmp_path):
        answer = await admin(double, world, "roles", {"action": "allow", "role": musicians})
        assert str(musicians.id) in answer
        refused = await mood(double, world, world.alice)
        assert "limited to certain roles" in (await ephemeral_answer(double, refused)).content
        double.add_member(world.guild, world.bob, (musicians,))
        await result_of(double, await mood(double, world, world.bob))
        await admin(double, world, "roles", {"action": "everyone"})
        await result_of(double, await mood(double, world, world.alice))


async def test_cooldown_and_quota(double, tmp_path):
    world = make_world(double)
    async with running_bot(double, tmp_path):
        assert "cooldown_s is now 600" in await admin(double, world, "cooldown", {"seconds": 600})
        await result_of(double, await mood(double, world, world.alice))
        again = await mood(double, world, world.alice)
        text = (await ephemeral_answer(double, again)).content
        assert "compose again in" in text and "min" in text

        await admin(double, world, "cooldown", {"seconds": 0})
        assert "daily_quota is now 1" in await admin(double, world, "quota", {"per_day": 1})
        refused = await mood(double, world, world.alice)  # the first piece already counts today
        text = (await ephemeral_answer(double, refused)).content
        assert "all 1 of today's composition" in text and "resets in" in text


async def test_limits_on_length_duration_and_modes(double, tmp_path):
    world = make_world(double)
    async with running_bot(double, tmp_path):
        await admin(double, world, "max-length", {"tokens": 256})
        too_long = await mood(double, world, world.alice, length=1024)
        assert "above the limit here of 256" in (await ephemeral_answer(double, too_long)).content
        await admin(double, world, "max-duration", {"seconds": 3})
        too_long = await mood(double, world, world.alice, duration=10)
        assert "longer than the limit here of 3 s" in (await ephemeral_answer(double, too_long)).content
        answer = await admin(double, world, "modes", {"continuous_concat": True, "continuous_token": False,
                                                      "discrete_token": False})
        assert "allowed_modes is now continuous_concat" in answer
        wrong_mode = await mood(double, world, world.alice, mode="discrete_token")
        assert "discrete_token mode isn't allowed here" in (await ephemeral_answer(double, wrong_mode)).content
        none = await admin(double, world, "modes", {"continuous_concat": False, "continuous_token": False,
                                                    "discrete_token": False})
        assert "at least one mode" in none


async def test_privacy_audit_channel_show_and_reset(double, tmp_path):
    world = make_world(double)
    log_channel = world.guild.channel("audit-log")
    async with running_bot(double, tmp_path) as running:
        await admin(double, world, "audit-channel", {"channel": log_channel})
        assert "private_by_default is now on" in await admin(double, world, "privacy", {"private_by_default": True})
        posted = await double.wait_for_message(lambda m: m.channel_id == log_channel.id and "private_by_default" in m.content)
        assert f"<@{world.admin.id}>" in posted.content
        private = await mood(double, world, world.alice)
        assert (await result_of(double, private)).ephemeral
        public = await mood(double, world, world.bob, private=False)  # a member may still choose
        assert not (await result_of(double, public)).ephemeral

        shown = await admin(double, world, "show")
        assert "private_by_default: on (server)" in shown and "daily_quota: 0 (global)" in shown
        assert "reset" in await admin(double, world, "reset", {"setting": "private_by_default"})
        assert "private_by_default: off (default)" in await admin(double, world, "show")
        actions = [a.action for a in running.store.recent_audit("discord", str(world.guild.id))]
        assert actions.count("setting_changed") == 2 and "setting_reset" in actions


async def test_bad_values_get_a_clear_answer(double, tmp_path):
    world = make_world(double)
    async with running_bot(double, tmp_path):
        answer = await admin(double, world, "reset", {"setting": "audit_channel", "channel": world.quiet})
        assert "audit_channel can be set for a server, not per channel" in answer
