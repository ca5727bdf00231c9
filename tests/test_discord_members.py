"""Member data on Discord, through the real client and the double: `/aria-forget-me` deletes the
member's results, usage, own settings and the bot's messages with their pieces, says exactly what
went, and leaves other members alone; `/aria-admin purge` does it for a member or a channel,
admins only, in the audit log and channel."""

from __future__ import annotations

import pytest

pytest.importorskip("discord")

from bot.policy import Actor  # noqa: E402
from bot.settings import Scope  # noqa: E402
from tests.discord_harness import ephemeral_answer, make_world, result_of, running_bot  # noqa: E402

pytestmark = pytest.mark.timeout(240)


async def mood(double, world, user, channel=None, valence=0.3):
    interaction = await double.send_slash_command(world.guild, channel or world.general, user, "aria-mood",
                                                  {"valence": valence, "arousal": 0.1})
    return await result_of(double, interaction)


def rows(running, world, user):
    actor = Actor("discord", str(world.guild.id), str(world.general.id), str(user.id))
    return (running.store.list_user_jobs("discord", str(world.guild.id), str(user.id), include_deleted=True),
            running.service.policy.usage(actor).used_today)


async def test_forget_me_deletes_the_members_data_and_messages_and_says_what_went(double, tmp_path):
    world = make_world(double)
    async with running_bot(double, tmp_path, settings={"daily_quota": 10}) as running:
        mine = [await mood(double, world, world.alice, valence=v) for v in (0.2, -0.4)]
        theirs = await mood(double, world, world.bob)
        running.service.settings.set("private_by_default", False, scope=Scope.USER,
                                     server=f"discord:{world.guild.id}", user=str(world.alice.id))

        forget = await double.send_slash_command(world.guild, world.general, world.alice, "aria-forget-me")
        answer = await ephemeral_answer(double, forget)
        assert answer.content == ("Deleted your data on this server: 2 pieces, 2 uses of the daily quota, 1 setting; "
                                  "removed 2 messages of ARIA's. The server's moderation audit log is kept (a year).")
        assert all(message.deleted for message in mine) and not theirs.deleted
        assert rows(running, world, world.alice) == ([], 0)
        assert running.service.settings.lookup("private_by_default", server=f"discord:{world.guild.id}",
                                               user=str(world.alice.id)).source is None
        bob_records, bob_used = rows(running, world, world.bob)
        assert len(bob_records) == 1 and bob_used == 1
        assert running.store.recent_audit("discord", str(world.guild.id))[0].action == "forget_me"

        again = await double.send_slash_command(world.guild, world.general, world.alice, "aria-forget-me")
        assert (await ephemeral_answer(double, again)).content == "ARIA had nothing stored about you on this server."


async def test_admins_purge_a_member_or_a_channel_and_others_may_not(double, tmp_path):
    world = make_world(double)
    audit = world.guild.channel("audit-log")
    async with running_bot(double, tmp_path, settings={"daily_quota": 10}) as running:
        running.service.settings.set("audit_channel", str(audit.id), scope=Scope.SERVER,
                                     server=f"discord:{world.guild.id}")
        bobs = await mood(double, world, world.bob)
        quiet = await mood(double, world, world.alice, channel=world.quiet)
        general = await mood(double, world, world.alice)

        refused = await double.send_slash_command(world.guild, world.general, world.alice, "aria-admin purge",
                                                  {"member": world.bob}, bypass_command_permissions=True)
        assert "Only server admins" in (await ephemeral_answer(double, refused)).content
        assert not bobs.deleted

        purge = await double.send_slash_command(world.guild, world.general, world.admin, "aria-admin purge",
                                                {"member": world.bob})
        assert (await ephemeral_answer(double, purge)).content == (
            f"Deleted <@{world.bob.id}>'s data on this server: 1 piece, 1 use of the daily quota; "
            "removed 1 message of ARIA's.")
        assert bobs.deleted and rows(running, world, world.bob) == ([], 0)

        channel = await double.send_slash_command(world.guild, world.general, world.admin, "aria-admin purge",
                                                  {"channel": world.quiet})
        assert (await ephemeral_answer(double, channel)).content == (
            f"Deleted the data of <#{world.quiet.id}> on this server: 1 piece, 1 use of the daily quota; "
            "removed 1 message of ARIA's.")
        assert quiet.deleted and not general.deleted
        actions = [e.action for e in running.store.recent_audit("discord", str(world.guild.id))]
        assert actions[:2] == ["purge_channel", "purge_member"]
        logged = await double.wait_for(lambda: len(double.bot_messages(channel=audit)) >= 2 or None, 20, "audit lines")
        assert logged and f"<@{world.admin.id}> purged ARIA's data for <@{world.bob.id}>" in \
            double.bot_messages(channel=audit)[0].content
