"""Private results on Slack: with `private` (or where `private_by_default` is on) the status and
the result, files included, go to the requester's direct messages with ARIA, and the place they
asked gets only a note that only they see. Through the real bolt app, engine and SQLite, against
the local Slack double."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("slack_bolt")

from bot.policy import Actor  # noqa: E402
from bot.settings import Scope  # noqa: E402
from tests.slack_harness import has_action, make_world, picture, running_app, wait_for_ephemeral, wait_for_result  # noqa: E402

pytestmark = pytest.mark.timeout(180)

NOTICE = "I'm composing this just for you: your music will arrive in your direct messages with me"


async def private_result(double, user, count: int = 1) -> dict:
    """The `count`-th result in the user's direct messages with ARIA."""
    def find():
        dm = double.dm_channel(user)
        found = [m for m in double.bot_messages(dm.id) if has_action(m, "aria_variation")] if dm else []
        return found[count - 1] if len(found) >= count else None
    return await double.wait_for(find, 90, f"result {count} in {user.name}'s direct messages")


def assert_private(double, user, result: dict) -> None:
    dm = double.dm_channel(user)
    text = json.dumps(result["blocks"])
    assert "valence" in text and "arousal" in text and f"<@{user.id}>" in text
    names = [f["name"] for f in double.uploaded_files(dm.id, result.get("thread_ts") or result["ts"])]
    assert any(n.endswith(".mid") for n in names) and any(n.endswith(".ogg") for n in names), names


@pytest.mark.parametrize("transport", ["socket", "http"])
async def test_private_mood_goes_to_direct_messages(double, tmp_path, transport):
    world = make_world(double)
    async with running_app(double, tmp_path, transport=transport) as running:
        await double.slash(world.general, world.alice, "mood 0.3 -0.4 private")
        result = await private_result(double, world.alice)
        assert_private(double, world.alice, result)
        notice = await wait_for_ephemeral(double, world.alice)
        assert notice["text"].startswith(NOTICE) and notice["via"] == "response_url"
        assert double.bot_messages(world.general.id) == []  # nothing public at all
        [record] = running.store.list_user_jobs("slack", world.team.id, world.alice.id)
        assert record.extra["private"] is True and record.channel_id == world.general.id
        assert record.message_channel_id == double.dm_channel(world.alice).id and record.status == "done"


async def test_private_by_default_and_public_to_override(double, tmp_path):
    world = make_world(double)
    image = double.add_file(world.alice, "sun.png", picture(), "image/png")
    async with running_app(double, tmp_path) as running:
        running.service.settings.set("private_by_default", True, scope=Scope.SERVER, server=f"slack:{world.team.id}")
        message, _ = await double.post(world.general, world.alice, f"<@{double.bot_user_id}> please", files=(image,))
        assert_private(double, world.alice, await private_result(double, world.alice))
        notice = await wait_for_ephemeral(double, world.alice)
        assert notice["text"].startswith(NOTICE) and notice["thread_ts"] == message["ts"]
        assert not [m for m in double.bot_messages(world.general.id)]

        await double.post(world.general, world.alice, f"<@{double.bot_user_id}> public", files=(image,))
        public = await wait_for_result(double, world.general)
        assert public["thread_ts"] != message["ts"]  # in the new message's own thread, for everyone


async def test_the_form_ticks_only_me_where_results_are_private(double, tmp_path):
    world = make_world(double)
    async with running_app(double, tmp_path, settings={"private_by_default": True}):
        await double.slash(world.general, world.alice, "")
        [view] = await double.wait_for(lambda: double.views_for(world.alice), 10, "the modal")
        only_me = next(b for b in view["blocks"] if b["block_id"] == "private")["element"]
        assert [o["value"] for o in only_me["initial_options"]] == ["private"]
        image = double.add_file(world.alice, "me.png", picture((90, 160, 200)), "image/png")
        await double.submit(view["id"], world.alice, {"picture": [image], "private": []})  # unticked
        await wait_for_result(double, world.general)
        assert double.dm_channel(world.alice) is None

        await double.slash(world.general, world.bob, "private")
        [view] = await double.wait_for(lambda: double.views_for(world.bob), 10, "Bob's modal")
        await double.submit(view["id"], world.bob, {"picture": [image]})  # ticked as opened
        assert_private(double, world.bob, await private_result(double, world.bob))


async def test_buttons_under_a_private_piece_stay_private_and_keep_the_channels_rules(double, tmp_path):
    world = make_world(double)
    async with running_app(double, tmp_path, settings={"daily_quota": 5}) as running:
        await double.slash(world.quiet, world.alice, "mood -0.6 0.6 private")
        first = await private_result(double, world.alice)
        dm = double.dm_channel(world.alice)
        await double.click(dm, world.alice, first, "aria_variation")
        second = await private_result(double, world.alice, 2)
        assert second["thread_ts"] == first["ts"]  # in the first piece's thread, in the DM
        assert_private(double, world.alice, second)
        assert double.bot_messages(world.quiet.id) == []
        assert [e["text"] for e in double.ephemerals_for(world.alice)].count(NOTICE + " (under Apps in Slack's "
                                                                             "sidebar).") == 1

        # The piece was asked for in #quiet: turning ARIA off there turns off its buttons too.
        running.service.settings.set("enabled", False, scope=Scope.CHANNEL, server=f"slack:{world.team.id}",
                                     channel=world.quiet.id)
        await double.click(dm, world.alice, first, "aria_variation")
        refusal = await wait_for_ephemeral(double, world.alice, after=1)
        assert refusal["text"].startswith("ARIA is turned off in this channel")
        usage = running.service.policy.usage(Actor("slack", world.team.id, world.quiet.id, world.alice.id))
        assert usage.used_today == 2


async def test_no_permission_for_direct_messages_is_explained(double, tmp_path):
    world = make_world(double)
    double.revoked_scopes.add("im:write")  # installed from an older manifest
    async with running_app(double, tmp_path, settings={"daily_quota": 5}) as running:
        await double.slash(world.general, world.alice, "mood 0.1 0.1 private")
        text = (await wait_for_ephemeral(double, world.alice))["text"]
        assert text.startswith("I need the `im:write` permission to send results privately") and "`public`" in text
        assert double.bot_messages() == []
        assert running.store.list_user_jobs("slack", world.team.id, world.alice.id) == []
        assert running.service.policy.usage(Actor("slack", world.team.id, world.general.id,
                                                  world.alice.id)).used_today == 0
