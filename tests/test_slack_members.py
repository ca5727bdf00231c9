"""Member data on Slack, through the real bolt app and the double: `/aria forget-me` deletes the
member's results, usage, own settings, ARIA's messages with their pieces and the files it uploaded
for them, says exactly what went, and leaves other members alone; `/aria admin purge` does it for a
member or a channel, admins only, in the audit log and channel."""

from __future__ import annotations

import pytest

pytest.importorskip("slack_bolt")

from bot.policy import Actor  # noqa: E402
from bot.settings import Scope  # noqa: E402
from tests.slack_harness import RESULT_TIMEOUT_S, has_action, make_world, running_app, wait_for_ephemeral  # noqa: E402

pytestmark = pytest.mark.timeout(240)


def results_of(double, channel, user) -> list[dict]:
    return [m for m in double.bot_messages(channel.id) if has_action(m, "aria_variation") and user.id in str(m)]


async def moods(double, channel, user, count: int) -> list[dict]:
    for i in range(count):
        await double.slash(channel, user, f"mood 0.{i + 2} 0.1")
        await double.wait_for(lambda: len(results_of(double, channel, user)) > i or None, RESULT_TIMEOUT_S, "a result")
    return results_of(double, channel, user)


def file_ids(messages) -> set[str]:
    return {f["id"] for m in messages for f in m.get("files", [])}


def used(running, world, user) -> int:
    return running.service.policy.usage(Actor("slack", world.team.id, world.general.id, user.id)).used_today


async def test_forget_me_deletes_the_members_data_messages_and_files(double, tmp_path):
    world = make_world(double)
    async with running_app(double, tmp_path, settings={"daily_quota": 10}) as running:
        mine = await moods(double, world.general, world.alice, 2)
        theirs = await moods(double, world.general, world.bob, 1)
        uploaded = [f for f in double.files.values() if f["user"] == double.bot_user_id]
        assert len(uploaded) == 12  # MIDI, audio and two pictures for each of the three pieces
        running.service.settings.set("private_by_default", True, scope=Scope.USER, server=f"slack:{world.team.id}",
                                     user=world.alice.id)

        await double.slash(world.general, world.alice, "forget-me")
        answer = await wait_for_ephemeral(double, world.alice)
        assert answer["text"] == ("Deleted your data on this server: 2 pieces, 2 uses of the daily quota, 1 setting; "
                                  "removed 2 messages of ARIA's. The server's moderation audit log is kept (a year).")
        left = double.bot_messages(world.general.id)
        assert not any(m["ts"] in {r["ts"] for r in mine} for m in left)
        assert any(m["ts"] == theirs[0]["ts"] for m in left)
        remaining = [f for f in double.files.values() if f["user"] == double.bot_user_id]
        assert len(remaining) == 4 and len(double.deleted_files) == 8  # only bob's piece keeps its files
        assert running.store.list_user_jobs("slack", world.team.id, world.alice.id, include_deleted=True) == []
        assert used(running, world, world.alice) == 0 and used(running, world, world.bob) == 1
        assert running.store.recent_audit("slack", world.team.id)[0].action == "forget_me"


async def test_admins_purge_a_member_or_a_channel_and_others_may_not(double, tmp_path):
    world = make_world(double)
    audit = double.add_channel(world.team, "audit-log")
    async with running_app(double, tmp_path, settings={"daily_quota": 10}) as running:
        running.service.settings.set("audit_channel", audit.id, scope=Scope.SERVER, server=f"slack:{world.team.id}")
        await moods(double, world.general, world.bob, 1)
        await moods(double, world.quiet, world.alice, 1)

        await double.slash(world.general, world.alice, f"admin purge <@{world.bob.id}>")
        assert (await wait_for_ephemeral(double, world.alice))["text"].startswith("Only workspace admins")
        await double.slash(world.general, world.admin, f"admin purge <@{world.bob.id}|bob>")
        assert (await wait_for_ephemeral(double, world.admin))["text"] == (
            f"Deleted <@{world.bob.id}>'s data on this server: 1 piece, 1 use of the daily quota; "
            "removed 1 message of ARIA's.")
        assert results_of(double, world.general, world.bob) == []
        await double.slash(world.general, world.admin, f"admin purge <#{world.quiet.id}|quiet>")
        assert (await wait_for_ephemeral(double, world.admin, after=1))["text"] == (
            f"Deleted the data of <#{world.quiet.id}> on this server: 1 piece, 1 use of the daily quota; "
            "removed 1 message of ARIA's.")
        assert results_of(double, world.quiet, world.alice) == []
        await double.slash(world.general, world.admin, "admin purge everyone")
        assert (await wait_for_ephemeral(double, world.admin, after=2))["text"] == (
            "Use `/aria admin purge @member` or `/aria admin purge #channel`.")
        assert [e.action for e in running.store.recent_audit("slack", world.team.id)][:2] == [
            "purge_channel", "purge_member"]
        lines = await double.wait_for(lambda: len(double.bot_messages(audit.id)) >= 2 and double.bot_messages(audit.id),
                                      20, "the audit lines")
        assert lines[0]["text"].startswith(f"<@{world.admin.id}> purged ARIA's data for <@{world.bob.id}>: Deleted")
