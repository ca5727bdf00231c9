"""Every refusal is a specific message only the requester sees, over Socket Mode and HTTP; no
refusal leaves a public message, a job or a counted use behind. Bad events never stop the app."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("slack_bolt")

from aria_engine.engine import LocalEngine, Limits  # noqa: E402
from aria_engine.pipeline import Pipeline  # noqa: E402
from bot.policy import Actor  # noqa: E402
from bot.settings import Scope  # noqa: E402
from tests.doubles.slack_api import SlackDouble  # noqa: E402
from tests.slack_harness import (  # noqa: E402
    make_world, picture, running_app, wait_for_ephemeral, wait_for_result, wait_for_status,
)

pytestmark = [pytest.mark.timeout(180), pytest.mark.parametrize("transport", ["socket", "http"])]


def mention(double: SlackDouble, text: str = "please") -> str:
    return f"<@{double.bot_user_id}> {text}"


def used_today(running, world, user) -> int:
    return running.service.policy.usage(Actor("slack", world.team.id, world.general.id, user.id)).used_today


def assert_nothing_happened(double, running, world, user) -> None:
    assert double.bot_messages() == []
    assert running.store.list_user_jobs("slack", world.team.id, user.id) == []
    assert used_today(running, world, user) == 0


async def refused(double, user, after: int = 0) -> str:
    return (await wait_for_ephemeral(double, user, after=after))["text"]


# -- pictures ---------------------------------------------------------------------------------------------


async def test_mention_without_a_picture(double, tmp_path, transport):
    world = make_world(double)
    async with running_app(double, tmp_path, transport=transport) as running:
        message, _ = await double.post(world.general, world.alice, mention(double))
        text = await refused(double, world.alice)
        assert text.startswith("Your message has no picture.")
        shown = double.ephemerals_for(world.alice)[0]
        assert shown["via"] == "chat.postEphemeral" and shown["thread_ts"] == message["ts"]
        assert_nothing_happened(double, running, world, world.alice)


async def test_mention_with_a_document(double, tmp_path, transport):
    world = make_world(double)
    pdf = double.add_file(world.alice, "notes.pdf", b"%PDF-1.4 ...", "application/pdf")
    async with running_app(double, tmp_path, transport=transport) as running:
        await double.post(world.general, world.alice, mention(double), files=(pdf,))
        assert "has `notes.pdf`, but no picture I can read" in await refused(double, world.alice)
        assert_nothing_happened(double, running, world, world.alice)


async def test_too_big_is_refused_before_downloading(double, tmp_path, transport):
    world = make_world(double)
    huge = double.add_file(world.alice, "huge.png", picture(), "image/png", size=30 * 1024 * 1024)
    async with running_app(double, tmp_path, transport=transport) as running:
        await double.post(world.general, world.alice, mention(double), files=(huge,))
        assert "That picture is 30.0 MB; the most I take is 25.0 MB" in await refused(double, world.alice)
        assert double.downloads == []
        assert_nothing_happened(double, running, world, world.alice)


async def test_login_page_is_not_a_picture(double, tmp_path, transport):
    world = make_world(double)
    hidden = double.add_file(world.alice, "secret.png", picture(), "image/png", hidden_from_bot=True)
    async with running_app(double, tmp_path, transport=transport, settings={"daily_quota": 5}) as running:
        await double.post(world.general, world.alice, mention(double), files=(hidden,))
        assert "sign-in page instead of the picture" in await refused(double, world.alice)
        assert double.downloads == [{"file_id": hidden["id"], "authorized": True}]
        assert_nothing_happened(double, running, world, world.alice)  # the use was given back


async def test_unreadable_picture_is_told_privately_and_refunded(double, tmp_path, transport):
    world = make_world(double)
    fake = double.add_file(world.alice, "fake.png", b"this is not a png at all" * 10, "image/png")
    async with running_app(double, tmp_path, transport=transport, settings={"daily_quota": 5}) as running:
        message, _ = await double.post(world.general, world.alice, mention(double), files=(fake,))
        text = await refused(double, world.alice)
        assert "isn't a picture I can read" in text or "not a picture" in text or "JPEG" in text, text
        status = double.bot_messages(world.general.id)[0]
        await double.wait_for(lambda: "couldn't use that picture" in double.message(world.general.id,
                                                                                    status["ts"])["text"], 10)
        [record] = running.store.list_user_jobs("slack", world.team.id, world.alice.id)
        assert record.status == "failed"
        assert used_today(running, world, world.alice) == 0


async def test_shortcut_on_a_message_without_a_picture(double, tmp_path, transport):
    world = make_world(double)
    message, _ = await double.post(world.general, world.bob, "just words")
    async with running_app(double, tmp_path, transport=transport) as running:
        await double.shortcut(world.general, world.alice, message)
        text = await refused(double, world.alice)
        assert text.startswith("That message has no picture.") and "Compose music" in text
        assert double.ephemerals_for(world.alice)[0]["via"] == "response_url"
        assert_nothing_happened(double, running, world, world.alice)


async def test_last_without_a_recent_picture(double, tmp_path, transport):
    world = make_world(double)
    stale = double.add_file(world.alice, "stale.png", picture(), "image/png")
    stale_message, _ = await double.post(world.general, world.alice, "mine, but too old", files=(stale,))
    stale_message["ts"] = f"{float(stale_message['ts']) - 11 * 60:.6f}"  # 11 minutes ago: outside the window
    theirs = double.add_file(world.bob, "theirs.png", picture(), "image/png")
    await double.post(world.general, world.bob, "not alice's", files=(theirs,))
    async with running_app(double, tmp_path, transport=transport) as running:
        await double.slash(world.general, world.alice, "last")
        assert "no picture you posted in this channel in the last 10 minutes" in await refused(double, world.alice)
        assert_nothing_happened(double, running, world, world.alice)


# -- what people type -------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("mood 2 0", "Valence must be between -1 and 1, not 2."),
    ("mood happy", "Use `/aria mood VALENCE AROUSAL`"),
    ("loud please", "I don't know the option 'loud'."),
    ("length=lots", "Length must be a number, not 'lots'."),
    ("mode=jazz", "Mode must be one of continuous_concat, continuous_token, discrete_token, not 'jazz'."),
    ("mood 0.5 0.5 duration=9999", "Duration must be between 1 and 600 seconds."),
])
async def test_bad_command_text(double, tmp_path, transport, text, expected):
    world = make_world(double)
    async with running_app(double, tmp_path, transport=transport) as running:
        delivery = await double.slash(world.general, world.alice, text)
        assert not delivery.late
        answer = double.ephemerals_for(world.alice)
        assert len(answer) == 1 and answer[0]["via"] == "ack" and expected in answer[0]["text"]
        assert_nothing_happened(double, running, world, world.alice)


async def test_mention_with_a_bad_option(double, tmp_path, transport):
    world = make_world(double)
    image = double.add_file(world.alice, "a.png", picture(), "image/png")
    async with running_app(double, tmp_path, transport=transport) as running:
        await double.post(world.general, world.alice, mention(double, "seed=abc"), files=(image,))
        assert await refused(double, world.alice) == "Seed must be a number, not 'abc'."
        assert_nothing_happened(double, running, world, world.alice)


# -- policy -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("settings, text, expected", [
    ({"enabled": False}, "mood 0 0", "ARIA is turned off for now"),
    ({"allowed_modes": "continuous_concat"}, "mood 0 0 discrete_token",
     "The discrete_token mode isn't allowed here; please pick continuous_concat."),
    ({"max_length": 128}, "mood 0 0 length=512", "A length of 512 tokens is above the limit here of 128"),
    ({"max_duration_s": 4}, "mood 0 0 duration=10", "A piece of 10 s is longer than the limit here of 4 s"),
])
async def test_policy_refusals(double, tmp_path, transport, settings, text, expected):
    world = make_world(double)
    async with running_app(double, tmp_path, transport=transport, settings=settings) as running:
        await double.slash(world.general, world.alice, text)
        assert expected in await refused(double, world.alice)
        assert_nothing_happened(double, running, world, world.alice)


async def test_channel_disabled_by_an_admin(double, tmp_path, transport):
    world = make_world(double)
    image = double.add_file(world.alice, "a.png", picture(), "image/png")
    async with running_app(double, tmp_path, transport=transport) as running:
        running.service.settings.set("enabled", False, scope=Scope.CHANNEL, server=f"slack:{world.team.id}",
                                     channel=world.general.id)
        await double.post(world.general, world.alice, mention(double), files=(image,))
        assert await refused(double, world.alice) == ("ARIA is turned off in this channel; ask a moderator to "
                                                      "turn it on, or try another channel.")
        assert_nothing_happened(double, running, world, world.alice)


async def test_cooldown_and_quota(double, tmp_path, transport):
    world = make_world(double)
    async with running_app(double, tmp_path, transport=transport,
                           settings={"cooldown_s": 600, "daily_quota": 2}) as running:
        await double.slash(world.general, world.alice, "mood 0.1 0.1")
        await wait_for_result(double, world.general)
        await double.slash(world.general, world.alice, "mood 0.1 0.1")
        text = await refused(double, world.alice)
        assert "Just a moment: you can compose again in " in text and "(there's a 10 min cooldown here)" in text
        running.service.settings.set("cooldown_s", 0, scope=Scope.GLOBAL)
        running.store.add_use(Actor("slack", world.team.id, world.general.id, world.alice.id), kind="compose",
                              at=running.service.policy.clock())
        await double.slash(world.general, world.alice, "mood 0.1 0.1")
        text = await refused(double, world.alice, after=1)
        assert text.startswith("You've used all 2 of today's compositions here. Your quota resets in ")
        assert len(running.store.list_user_jobs("slack", world.team.id, world.alice.id)) == 1


async def test_busy_engine(double, tmp_path, transport):
    world = make_world(double)
    engine = LocalEngine(Pipeline(), concurrency=1, limits=Limits(max_queued=1), progress_interval_s=0.05)
    async with running_app(double, tmp_path, transport=transport, engine=engine,
                           settings={"max_duration_s": 30}) as running:
        await double.slash(world.general, world.bob, "mood 0 0 duration=30")
        await double.wait_for(lambda: [r for r in running.store.list_user_jobs("slack", world.team.id, world.bob.id)
                                       if r.status == "running"], 30, "Bob's piece to start")
        await double.slash(world.general, world.owner, "mood 0 0")  # waits in the one queue slot
        await double.wait_for(lambda: len(double.bot_messages(world.general.id)) == 2, 10, "the owner's status")
        await double.slash(world.general, world.alice, "mood 0 0")
        assert (await refused(double, world.alice)).startswith("I'm busy right now: 1 pieces are waiting")
        assert len(double.deleted) == 1  # the status message posted for it was taken back
        assert running.store.list_user_jobs("slack", world.team.id, world.alice.id) == []
        assert used_today(running, world, world.alice) == 0


async def test_bot_not_in_the_channel(double, tmp_path, transport):
    world = make_world(double)
    outside = double.add_channel(world.team, "private-ish", bot_member=False)
    async with running_app(double, tmp_path, transport=transport) as running:
        await double.slash(outside, world.alice, "mood 0.4 0.4")
        text = await refused(double, world.alice)
        assert text.startswith("I'm not in this channel") and "/invite @ARIA" in text
        await double.slash(outside, world.alice, "last")
        assert (await refused(double, world.alice, after=1)).startswith("I'm not in this channel")
        assert running.store.list_user_jobs("slack", world.team.id, world.alice.id) == []
        assert running.service.policy.usage(Actor("slack", world.team.id, outside.id, world.alice.id)).used_today == 0


# -- the modal ---------------------------------------------------------------------------------------------


async def test_modal_refusals_stay_in_the_modal(double, tmp_path, transport):
    world = make_world(double)
    pdf = double.add_file(world.alice, "doc.pdf", b"%PDF-1.4", "application/pdf")
    image = double.add_file(world.alice, "ok.png", picture(), "image/png")
    async with running_app(double, tmp_path, transport=transport, settings={"max_length": 256}) as running:
        await double.slash(world.general, world.alice, "")
        [view] = await double.wait_for(lambda: double.views_for(world.alice), 10, "the modal")
        answer = await double.submit(view["id"], world.alice, {"picture": [pdf]})
        assert answer.ack_payload["response_action"] == "errors"
        assert "isn't a JPEG, PNG, WebP, GIF or BMP picture" in answer.ack_payload["errors"]["picture"]
        answer = await double.submit(view["id"], world.alice, {"picture": [image], "top_p": "7"})
        assert answer.ack_payload["errors"] == {"top_p": "Top-p must be between 0.01 and 1."}
        answer = await double.submit(view["id"], world.alice, {"picture": [image], "length": "512"})
        assert answer.ack_payload["response_action"] == "update"
        assert "above the limit here of 256" in json.dumps(answer.ack_payload["view"])
        assert_nothing_happened(double, running, world, world.alice)

        hidden = double.add_file(world.alice, "hidden.png", picture(), "image/png", hidden_from_bot=True)
        await double.slash(world.general, world.alice, "")  # that form now shows the refusal: a new one
        view = await double.wait_for(lambda: double.views_for(world.alice)[1:], 10, "the second modal")
        answer = await double.submit(view[0]["id"], world.alice, {"picture": [hidden]})
        assert answer.ack_payload in (None, "", {})  # the form closes; the download fails after
        assert "sign-in page instead of the picture" in await refused(double, world.alice)
        assert_nothing_happened(double, running, world, world.alice)


# -- buttons -----------------------------------------------------------------------------------------------


async def test_buttons_on_gone_or_foreign_results(double, tmp_path, transport):
    world = make_world(double)
    async with running_app(double, tmp_path, transport=transport, settings={"max_duration_s": 90}) as running:
        await double.slash(world.general, world.alice, "mood 0.3 0.3 duration=90")
        status = await wait_for_status(double, world.general)
        await double.click(world.general, world.bob, status, "aria_cancel")
        assert await refused(double, world.bob) == "Only the person who asked (or a moderator) can cancel this piece."
        result = await wait_for_result(double, world.general)
        [record] = running.store.list_user_jobs("slack", world.team.id, world.alice.id)
        running.store.mark_result_deleted(record.result_id)
        await double.click(world.general, world.bob, result, "aria_variation")
        assert (await refused(double, world.bob, after=1)).startswith("That result is gone")
        assert running.store.list_user_jobs("slack", world.team.id, world.bob.id) == []


# -- events the app must shrug off -------------------------------------------------------------------------


async def test_own_and_other_bots_messages_are_ignored(double, tmp_path, transport):
    world = make_world(double)
    image = double.add_file(world.alice, "a.png", picture(), "image/png")
    async with running_app(double, tmp_path, transport=transport) as running:
        for who in ({"user": double.bot_user_id, "bot_id": double.bot_id}, {"user": "UOTHERBOT", "bot_id": "BOTHER"}):
            await double.send_event(world.team.id, {"type": "app_mention", "channel": world.general.id,
                                                    "text": mention(double), "ts": "1700000000.000100",
                                                    "event_ts": "1700000000.000100", "files": [image], **who})
        delivery = await double.slash(world.general, world.alice, "help")  # still answering
        assert not delivery.late
        assert double.bot_messages() == [] and double.downloads == []
        assert running.store.list_user_jobs("slack", world.team.id, double.bot_user_id) == []


async def test_malformed_events_do_not_stop_the_app(double, tmp_path, transport):
    world = make_world(double)
    async with running_app(double, tmp_path, transport=transport):
        await double.send_event(world.team.id, {"type": "app_mention", "text": mention(double)})  # no channel
        await double.send_event(world.team.id, {"type": "reaction_added", "user": world.alice.id})
        await double._deliver("interactive", {"type": "block_actions", "team": {"id": world.team.id},
                                              "user": {"id": world.alice.id}, "actions": [
                                                  {"action_id": "something_old", "value": "x"}]})
        await double._deliver("interactive", {"type": "block_actions", "team": {"id": world.team.id},
                                              "user": {"id": world.alice.id}, "actions": [
                                                  {"action_id": "aria_variation", "value": "no-such-result"}]})
        await double._deliver("interactive", {"type": "view_submission", "team": {"id": world.team.id},
                                              "user": {"id": world.alice.id},
                                              "view": {"id": "V1", "type": "modal", "callback_id": "aria_compose",
                                                       "state": {}}})
        await double._deliver("interactive", {"type": "view_submission", "team": {"id": world.team.id},
                                              "user": {"id": world.alice.id},
                                              "view": {"id": "V2", "type": "modal", "callback_id": "someone_elses",
                                                       "state": {}}})
        assert all(not d.late and d.status == 200 for d in double.deliveries), [
            (d.kind, d.status, d.ack_s) for d in double.deliveries]
        delivery = await double.slash(world.general, world.alice, "help")
        assert not delivery.late and "ARIA" in double.ephemerals_for(world.alice)[-1]["text"]
