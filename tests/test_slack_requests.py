"""What reaches the Slack app's door: garbage and replays.

Over HTTP the signature is checked on the raw bytes before anything parses them: unsigned or
badly signed garbage gets 401, a signed but malformed body 400, and neither leaves a traceback
in the log. Over Socket Mode a malformed envelope is dropped and the app goes on. Every request
Slack could send again (slash commands, shortcuts, button clicks, form submissions, events) is
done at most once, even when replayed byte for byte within the signature's five minutes."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

pytest.importorskip("slack_bolt")

from tests.slack_harness import RESULT_TIMEOUT_S, make_world, picture, running_app, wait_for_result  # noqa: E402

pytestmark = pytest.mark.timeout(180)

FORM = "application/x-www-form-urlencoded"
GARBAGE = [  # (content type, body): nothing here is a request Slack could send
    ("application/json", b'{"type": "event_callback", "event": '),  # JSON cut short
    (FORM, b"payload=%7Bnot+json"),  # a broken interactive payload
    (FORM, b"payload=%5B1%2C2%5D"),  # a payload that is JSON but not an object
    (FORM, b"command=%2Faria&text=\xff\xfe\xfd"),  # bytes that are not UTF-8
    ("application/json", b"\xff\xfe{\x00"),
    ("application/json", b"[1, 2, 3]"),  # JSON, but not an object
    ("application/json", b'"just a string"'),
    (None, b"{{{{"),  # no content type at all
]


def tracebacks(caplog) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_garbage_gets_401_unsigned_and_400_signed_without_a_traceback(double, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    world = make_world(double)
    async with running_app(double, tmp_path, transport="http"):
        calls_at_start = len(double.calls)
        for content_type, body in GARBAGE:
            headers = {"Content-Type": content_type} if content_type else {}
            status, _ = await double.post_raw(body, headers)
            assert status == 401, (body, status)
            status, _ = await double.post_raw(body, {**headers, "X-Slack-Signature": "v0=" + "0" * 64,
                                                     "X-Slack-Request-Timestamp": "1\u00b2"})
            assert status == 401, (body, status)
            status, _ = await double.post_raw(body, {**headers, **double.signature_headers(body)})
            assert status == 400, (body, status)
        assert len(double.calls) == calls_at_start  # no Web API call: nothing was done
        delivery = await double.slash(world.general, world.alice, "help")  # and it still answers
        assert delivery.status == 200 and "ARIA" in double.ephemerals_for(world.alice)[-1]["text"]
    assert tracebacks(caplog) == []


async def test_malformed_socket_mode_envelopes_are_dropped(double, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    world = make_world(double)
    frames = ["not json at all", "{broken", "[1, 2]", json.dumps({"type": "slash_commands"}),
              json.dumps({"type": "slash_commands", "envelope_id": "E1", "payload": "text=help"}),
              json.dumps({"type": "interactive", "envelope_id": "E2", "payload": [1, 2]}),
              json.dumps({"type": "events_api", "envelope_id": "E3"}),
              json.dumps({"type": "events_api", "envelope_id": "E4", "payload": {"type": "event_callback",
                                                                                  "event": "not an object"}}),
              json.dumps({"type": "interactive", "envelope_id": "E5", "payload": {"type": "block_actions",
                                                                                   "actions": "nope"}})]
    async with running_app(double, tmp_path, transport="socket") as running:
        for frame in frames:
            await double.send_raw_frame(frame)
        delivery = await double.slash(world.general, world.alice, "help")
        assert not delivery.late and "ARIA" in double.ephemerals_for(world.alice)[-1]["text"]
        assert double.connected and running.store.list_user_jobs("slack", world.team.id, world.alice.id) == []
    assert tracebacks(caplog) == []


def jobs_of(running, world, user) -> list:
    return running.store.list_user_jobs("slack", world.team.id, user.id)


async def all_done(double, running, world, user, count: int) -> None:
    await double.wait_for(lambda: len(jobs := jobs_of(running, world, user)) == count
                          and all(j.status == "done" for j in jobs), RESULT_TIMEOUT_S, f"{count} finished pieces")


@pytest.mark.parametrize("transport", ["socket", "http"])
async def test_every_kind_of_request_is_done_once_even_when_replayed(double, tmp_path, transport):
    world = make_world(double)
    theirs = double.add_file(world.bob, "sea.png", picture((30, 120, 200)), "image/png")
    mine = double.add_file(world.alice, "me.png", picture(), "image/png")
    posted, _ = await double.post(world.general, world.bob, "holiday", files=(theirs,))
    async with running_app(double, tmp_path, transport=transport) as running:
        command = await double.slash(world.general, world.alice, "mood 0.5 0.5")  # a slash command
        first = await wait_for_result(double, world.general)
        shortcut = await double.shortcut(world.general, world.alice, posted)  # a message shortcut
        await wait_for_result(double, world.general, posted["ts"])
        click = await double.click(world.general, world.alice, first, "aria_variation")  # a button
        await all_done(double, running, world, world.alice, 3)
        form = await double.slash(world.general, world.alice, "")  # a form...
        [view] = await double.wait_for(lambda: double.views_for(world.alice), 10, "the form")
        submitted = await double.submit(view["id"], world.alice, {"picture": [mine]})  # ...submitted
        await all_done(double, running, world, world.alice, 4)
        message, mention = await double.post(world.general, world.alice, f"<@{double.bot_user_id}> again",
                                             files=(mine,))  # an event
        await wait_for_result(double, world.general, message["ts"])
        await all_done(double, running, world, world.alice, 5)
        seen = (len(double.bot_messages()), len(double.ephemerals_for(world.alice)), len(double.calls))

        for delivery in (command, shortcut, click, form, submitted, mention):
            again = await double.replay(delivery)
            assert again.status == 200 and not again.late, (delivery.kind, again.status)
        await asyncio.sleep(1.5)  # a repeat would have posted, asked Slack or queued something by now

        pieces = len(jobs_of(running, world, world.alice))
        assert pieces == 5, f"{pieces} pieces, not 5: a repeat was done again"
        assert len(double.views_for(world.alice)) == 1  # no second form
        assert (len(double.bot_messages()), len(double.ephemerals_for(world.alice)), len(double.calls)) == seen
        # A new request of a kind seen before is done as usual.
        await double.slash(world.general, world.alice, "mood -0.5 0.5")
        await all_done(double, running, world, world.alice, 6)
