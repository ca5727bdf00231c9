"""`allowed_roles` on Slack: user groups. Admins limit ARIA to members of some groups (for the
workspace or one channel) with `/aria admin groups`; members are looked up with
usergroups.users.list and looked up afresh when Slack says a group changed. Through the real
bolt app, the real engine and SQLite, against the local Slack double."""

from __future__ import annotations

import pytest

pytest.importorskip("slack_bolt")

from tests.slack_harness import make_world, running_app, wait_for_ephemeral, wait_for_result  # noqa: E402

pytestmark = pytest.mark.timeout(180)

LIMITED = "ARIA is limited to certain user groups here, and none of yours is among them"


async def said(double, user, after: int) -> str:
    return (await wait_for_ephemeral(double, user, after=after))["text"]


@pytest.mark.parametrize("transport", ["socket", "http"])
async def test_admins_limit_aria_to_a_user_group(double, tmp_path, transport):
    world = make_world(double)
    designers = double.add_usergroup(world.team, "designers", (world.bob,))
    async with running_app(double, tmp_path, transport=transport) as running:
        await double.slash(world.general, world.alice, f"admin groups allow {designers.mention}")
        assert (await said(double, world.alice, 0)).startswith("Only workspace admins")

        await double.slash(world.general, world.admin, f"admin groups allow {designers.mention}")
        text = await said(double, world.admin, 0)
        assert text.startswith(f"ARIA in this workspace is for members of <!subteam^{designers.id}>")
        assert f"<!subteam^{designers.id}> has 1 member." in text
        assert running.service.settings.get("allowed_roles", server=f"slack:{world.team.id}") == [designers.id]

        await double.slash(world.general, world.alice, "mood 0.2 0.2")
        assert (await said(double, world.alice, 1)).startswith(LIMITED)
        assert running.store.list_user_jobs("slack", world.team.id, world.alice.id) == []

        await double.slash(world.general, world.bob, "mood 0.2 0.2")  # a designer
        await wait_for_result(double, world.general)
        await double.slash(world.quiet, world.admin, "mood -0.2 0.2")  # admins always may
        await wait_for_result(double, world.quiet)

        # Slack says Alice joined the group: she may compose at once, no cache to wait out.
        await double.change_usergroup(designers, (world.bob, world.alice))
        await double.slash(world.quiet, world.alice, "mood 0.5 0.5")
        await double.wait_for(lambda: running.store.list_user_jobs("slack", world.team.id, world.alice.id), 30,
                              "Alice's piece")
        assert len(double.calls_to("usergroups.users.list")) >= 2  # looked up again after the change


async def test_groups_by_handle_per_channel_and_open_again(double, tmp_path):
    world = make_world(double)
    designers = double.add_usergroup(world.team, "designers", (world.bob,))
    async with running_app(double, tmp_path) as running:
        await double.slash(world.general, world.admin, "admin groups")
        assert (await said(double, world.admin, 0)).startswith(f"ARIA is open to everyone in <#{world.general.id}>.")

        await double.slash(world.general, world.admin, "admin groups allow @nobody")
        assert (await said(double, world.admin, 1)).startswith("I can't find a user group called @nobody")

        # A bare handle works too, and the limit may be for one channel only.
        await double.slash(world.general, world.admin, f"admin groups allow designers <#{world.quiet.id}|quiet>")
        assert (await said(double, world.admin, 2)).startswith(
            f"ARIA in <#{world.quiet.id}> is for members of <!subteam^{designers.id}>")
        await double.slash(world.quiet, world.alice, "mood 0 0")
        assert (await said(double, world.alice, 0)).startswith(LIMITED)
        await double.slash(world.general, world.alice, "mood 0 0")  # other channels are open
        await wait_for_result(double, world.general)

        await double.slash(world.general, world.admin, f"admin show <#{world.quiet.id}>")
        assert f"`allowed_roles` = <!subteam^{designers.id}> _(channel)_" in await said(double, world.admin, 3)

        await double.slash(world.general, world.admin, f"admin groups remove {designers.mention} <#{world.quiet.id}>")
        assert (await said(double, world.admin, 4)) == f"ARIA is open to everyone in <#{world.quiet.id}>."
        await double.slash(world.general, world.admin, f"admin groups allow {designers.mention}")
        await said(double, world.admin, 5)
        await double.slash(world.general, world.admin, "admin groups everyone")
        assert (await said(double, world.admin, 6)) == "ARIA is open to everyone in this workspace."
        assert running.service.settings.get("allowed_roles", server=f"slack:{world.team.id}") == []
        audit = running.store.recent_audit("slack", world.team.id)
        assert [e.details["value"] for e in audit[:2]] == [[], [designers.id]]


async def test_the_generic_setting_takes_group_mentions_too(double, tmp_path):
    world = make_world(double)
    designers = double.add_usergroup(world.team, "designers", (world.bob,))
    async with running_app(double, tmp_path) as running:
        await double.slash(world.general, world.owner, f"admin set allowed_roles {designers.mention}")
        assert "allowed_roles is now" in await said(double, world.owner, 0)
        assert running.service.settings.get("allowed_roles", server=f"slack:{world.team.id}") == [designers.id]
        await double.slash(world.general, world.alice, "mood 0 0")
        assert (await said(double, world.alice, 0)).startswith(LIMITED)


async def test_a_missing_scope_is_explained_to_the_admin(double, tmp_path):
    world = make_world(double)
    designers = double.add_usergroup(world.team, "designers", (world.bob,))
    double.revoked_scopes.add("usergroups:read")  # installed from an older manifest
    async with running_app(double, tmp_path) as running:
        await double.slash(world.general, world.admin, f"admin groups allow {designers.mention}")
        text = await said(double, world.admin, 0)
        assert text.startswith("I need the `usergroups:read` permission") and "manifest" in text
        assert running.service.settings.get("allowed_roles", server=f"slack:{world.team.id}") == []
