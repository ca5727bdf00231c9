"""The moderator's toolbox on Slack, through the real bolt app and the double: members of a user
group in moderator_roles block and unblock a member (the reason in the audit log and channel, the
member's refusal in exact words); ordinary members cannot."""

from __future__ import annotations

import pytest

pytest.importorskip("slack_bolt")

from bot.settings import Scope  # noqa: E402
from tests.slack_harness import make_world, running_app, wait_for_ephemeral, wait_for_result  # noqa: E402

pytestmark = pytest.mark.timeout(240)
BLOCKED = ("A moderator has paused your use of ARIA on this server. "
           "If you'd like to talk about it, please ask the moderators.")


async def test_a_moderator_group_blocks_and_unblocks_with_a_reason(double, tmp_path):
    world = make_world(double)
    audit = double.add_channel(world.team, "audit-log")
    mods = double.add_usergroup(world.team, "mods", (world.bob,))
    async with running_app(double, tmp_path) as running:
        server = f"slack:{world.team.id}"
        running.service.settings.set("audit_channel", audit.id, scope=Scope.SERVER, server=server)
        await double.slash(world.general, world.bob, f"block <@{world.alice.id}> spam")
        assert (await wait_for_ephemeral(double, world.bob))["text"] == (
            "Only ARIA's moderators (and server admins) can do that.")

        await double.slash(world.general, world.admin, f"admin set moderator_roles {mods.mention}")
        await wait_for_ephemeral(double, world.admin)
        await double.slash(world.general, world.bob, f"block <@{world.alice.id}|alice> reposting others' art")
        assert (await wait_for_ephemeral(double, world.bob, after=1))["text"] == (
            f"<@{world.alice.id}> can no longer use ARIA on this server. Reason: reposting others' art")
        await double.slash(world.general, world.alice, "mood 0.2 0.1")
        assert (await wait_for_ephemeral(double, world.alice))["text"] == BLOCKED
        line = await double.wait_for(lambda: next((m for m in double.bot_messages(audit.id) if "blocked" in m["text"]),
                                                  None), 20, "the audit line")
        assert line["text"] == f"<@{world.bob.id}> blocked <@{world.alice.id}> from ARIA. Reason: reposting others' art"

        await double.slash(world.general, world.bob, f"unblock <@{world.alice.id}>")
        assert (await wait_for_ephemeral(double, world.bob, after=2))["text"] == (
            f"<@{world.alice.id}> may use ARIA again on this server.")
        await double.slash(world.general, world.alice, "mood 0.2 0.1")
        await wait_for_result(double, world.general)
        assert running.store.recent_audit("slack", world.team.id)[0].action == "unblock"


async def test_a_moderator_group_cancels_anyones_piece_and_the_audit_channel_hears(double, tmp_path):
    from tests.slack_harness import wait_for_status

    world = make_world(double)
    audit = double.add_channel(world.team, "audit-log")
    mods = double.add_usergroup(world.team, "mods", (world.bob,))
    async with running_app(double, tmp_path, settings={"max_duration_s": 90}) as running:
        server = f"slack:{world.team.id}"
        running.service.settings.set("audit_channel", audit.id, scope=Scope.SERVER, server=server)
        await double.slash(world.general, world.alice, "mood 0.1 0.9 duration=90")
        status = await wait_for_status(double, world.general)
        await double.click(world.general, world.bob, status, "aria_cancel")
        assert (await wait_for_ephemeral(double, world.bob))["text"].startswith("Only the person who asked")

        running.service.settings.set("moderator_roles", [mods.id], scope=Scope.SERVER, server=server)
        await double.click(world.general, world.bob, status, "aria_cancel")
        assert (await wait_for_ephemeral(double, world.bob, after=1))["text"] == "Cancelled."
        line = await double.wait_for(lambda: next((m for m in double.bot_messages(audit.id) if "cancelled" in m["text"]),
                                                  None), 30, "the audit line")
        assert line["text"] == f"<@{world.bob.id}> cancelled a piece by <@{world.alice.id}> in <#{world.general.id}>."
        [record] = running.store.list_user_jobs("slack", world.team.id, world.alice.id)
        assert record.status == "cancelled"
