"""The moderator's toolbox on Discord, through the real client and the double: a member with
Manage Messages, or with a role in moderator_roles, blocks and unblocks a member (the reason in the
audit log and channel, the member's refusal in exact words); ordinary members cannot; a moderator
cancels someone else's piece and the audit channel hears of it."""

from __future__ import annotations

import pytest

pytest.importorskip("discord")

from bot.settings import Scope  # noqa: E402
from tests.discord_harness import ephemeral_answer, make_world, result_of, running_bot  # noqa: E402

pytestmark = pytest.mark.timeout(240)
BLOCKED = ("A moderator has paused your use of ARIA on this server. "
           "If you'd like to talk about it, please ask the moderators.")


async def mod(double, world, user, verb, options):
    interaction = await double.send_slash_command(world.guild, world.general, user, f"aria-mod {verb}", options)
    return (await ephemeral_answer(double, interaction)).content


async def test_moderators_block_and_unblock_members_with_a_reason(double, tmp_path):
    world = make_world(double)
    audit = world.guild.channel("audit-log")
    helpers = double.add_role(world.guild, "helpers", 0)  # no Manage Messages: a configured moderator role
    double.add_member(world.guild, world.bob, (helpers,))
    async with running_bot(double, tmp_path) as running:
        server = f"discord:{world.guild.id}"
        running.service.settings.set("audit_channel", str(audit.id), scope=Scope.SERVER, server=server)

        assert await mod(double, world, world.bob, "block", {"member": world.alice}) == (
            "Only ARIA's moderators (and server admins) can do that.")
        running.service.settings.set("moderator_roles", [str(helpers.id)], scope=Scope.SERVER, server=server)
        assert await mod(double, world, world.bob, "block", {"member": world.alice, "reason": "spam"}) == (
            f"<@{world.alice.id}> can no longer use ARIA on this server. Reason: spam")
        refused = await double.send_slash_command(world.guild, world.general, world.alice, "aria-mood",
                                                  {"valence": 0.2, "arousal": 0.1})
        assert (await ephemeral_answer(double, refused)).content == BLOCKED
        line = await double.wait_for(lambda: next(iter(double.bot_messages(channel=audit)), None), 20, "audit")
        assert line.content == f"<@{world.bob.id}> blocked <@{world.alice.id}> from ARIA. Reason: spam"
        assert await mod(double, world, world.moderator, "blocked", {}) == f"<@{world.alice.id}>"

        assert await mod(double, world, world.moderator, "unblock", {"member": world.alice}) == (
            f"<@{world.alice.id}> may use ARIA again on this server.")
        again = await double.send_slash_command(world.guild, world.general, world.alice, "aria-mood",
                                                {"valence": 0.2, "arousal": 0.1})
        await result_of(double, again)
        entries = running.store.recent_audit("discord", str(world.guild.id))
        assert [(e.action, e.user_id, e.details.get("reason")) for e in entries[:2]] == [
            ("unblock", str(world.moderator.id), None), ("block", str(world.bob.id), "spam")]


async def test_a_moderator_role_cancels_anyones_piece_and_the_audit_channel_hears(double, tmp_path):
    world = make_world(double)
    audit = world.guild.channel("audit-log")
    helpers = double.add_role(world.guild, "helpers", 0)
    double.add_member(world.guild, world.bob, (helpers,))
    async with running_bot(double, tmp_path, settings={"max_duration_s": 90}) as running:
        server = f"discord:{world.guild.id}"
        running.service.settings.set("audit_channel", str(audit.id), scope=Scope.SERVER, server=server)
        running.service.settings.set("moderator_roles", [str(helpers.id)], scope=Scope.SERVER, server=server)
        long = await double.send_slash_command(world.guild, world.general, world.moderator, "aria-mood",
                                               {"valence": 0.1, "arousal": 0.9, "duration": 90})
        await double.wait_for(lambda: long.original and long.original.custom_ids(), 20, "the long piece's status")
        status = long.original
        cancel = next(i for i in status.custom_ids() if i.split(":")[1] == "c")
        click = await double.click_button(status, cancel, world.bob)
        assert (await ephemeral_answer(double, click)).content == "Cancelled."
        line = await double.wait_for(lambda: next(iter(double.bot_messages(channel=audit)), None), 20, "audit")
        assert line.content == (f"<@{world.bob.id}> cancelled a piece by <@{world.moderator.id}> "
                                f"in <#{world.general.id}>.")
        assert running.store.recent_audit("discord", str(world.guild.id))[0].action == "cancel"
