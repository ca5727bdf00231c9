"""The Slack app's wiring through the local double: Socket Mode handshake and acks, HTTP request
signing (bad, stale and missing signatures get 401 and cause no work), retries deduplicated."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import pytest

pytest.importorskip("slack_bolt")

from tests.slack_harness import make_world, picture, running_app, wait_for_result  # noqa: E402

pytestmark = pytest.mark.timeout(180)


@pytest.mark.parametrize("transport", ["socket", "http"])
async def test_help_round_trip(double, tmp_path, transport):
    world = make_world(double)
    async with running_app(double, tmp_path, transport=transport):
        delivery = await double.slash(world.general, world.alice, "help")
    assert delivery.ack_s is not None and not delivery.late
    shown = double.ephemerals_for(world.alice)
    assert len(shown) == 1 and shown[0]["via"] == "ack"
    assert "/aria mood VALENCE AROUSAL" in shown[0]["text"]
    assert f"<@{double.bot_user_id}>" in shown[0]["text"]  # bolt's auth.test told it who it is


async def test_socket_mode_handshake_uses_the_app_token(double, tmp_path):
    make_world(double)
    async with running_app(double, tmp_path, transport="socket"):
        assert double.connected
        opened = [c for c in double.calls if c[1] == "apps.connections.open"]
        assert len(opened) == 1
    assert not double.errors


async def test_socket_mode_reconnects_when_slack_asks(double, tmp_path):
    world = make_world(double)
    async with running_app(double, tmp_path, transport="socket"):
        await double.disconnect_sockets()
        await double.wait_for(lambda: len(double.calls_to("apps.connections.open")) == 2, 20, "a reconnection")
        await double.wait_for(lambda: double.connected, 20, "the new connection")
        delivery = await double.slash(world.general, world.alice, "help")
        assert not delivery.late


def _slash_body(double, world, text="mood 0.5 0.5") -> str:
    return urlencode({"team_id": world.team.id, "team_domain": world.team.domain, "channel_id": world.general.id,
                      "channel_name": "general", "user_id": world.alice.id, "user_name": "alice",
                      "command": "/aria", "text": text, "api_app_id": double.app_id,
                      "response_url": f"{double.base_url}/respond/none", "trigger_id": "1.2"})


@pytest.mark.parametrize("case", ["bad", "stale", "missing", "wrong_secret"])
async def test_bad_signatures_get_401_and_cause_no_work(double, tmp_path, case):
    world = make_world(double)
    async with running_app(double, tmp_path, transport="http") as running:
        calls_at_start = len(double.calls)  # auth.test, checking the bot token
        body = _slash_body(double, world)
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if case == "bad":
            headers.update(double.signature_headers(body))
            headers["X-Slack-Signature"] = "v0=" + "0" * 64
        elif case == "stale":
            headers.update(double.signature_headers(body, timestamp=int(time.time()) - 6 * 60))
        elif case == "wrong_secret":
            headers.update(double.signature_headers(body, secret="not-the-secret"))
        status, _ = await double.post_raw(body, headers)
        assert status == 401
        # An event with a bad signature is refused the same way.
        event = json.dumps({"type": "event_callback", "team_id": world.team.id, "event_id": "Ev1",
                            "event": {"type": "app_mention", "user": world.alice.id, "channel": world.general.id,
                                      "text": f"<@{double.bot_user_id}>", "ts": "1.000001"}})
        status, _ = await double.post_raw(event, {"Content-Type": "application/json"})
        assert status == 401
        assert len(double.calls) == calls_at_start  # no Web API call at all
        assert running.store.list_user_jobs("slack", world.team.id, world.alice.id) == []


async def test_good_signature_is_accepted(double, tmp_path):
    world = make_world(double)
    async with running_app(double, tmp_path, transport="http"):
        body = _slash_body(double, world, text="help")
        status, answer = await double.post_raw(
            body, {"Content-Type": "application/x-www-form-urlencoded", **double.signature_headers(body)})
    assert status == 200 and "ARIA" in json.dumps(answer)


async def test_url_verification_challenge(double, tmp_path):
    async with running_app(double, tmp_path, transport="http"):
        body = json.dumps({"type": "url_verification", "challenge": "abc123", "token": "x"})
        status, answer = await double.post_raw(
            body, {"Content-Type": "application/json", **double.signature_headers(body)})
    assert status == 200 and answer == {"challenge": "abc123"}


@pytest.mark.parametrize("transport", ["socket", "http"])
async def test_event_retries_are_deduplicated(double, tmp_path, transport):
    world = make_world(double)
    image = double.add_file(world.alice, "sun.png", picture(), "image/png")
    async with running_app(double, tmp_path, transport=transport) as running:
        message, delivery = await double.post(world.general, world.alice, f"<@{double.bot_user_id}> please",
                                              files=(image,), retries=2)
        await wait_for_result(double, world.general, message["ts"])
        retries = [d for d in double.deliveries if d.kind == "events_api"]
        assert len(retries) == 3 and all(not d.late for d in retries)
        assert len({d.payload["event_id"] for d in retries}) == 1
        jobs = running.store.list_user_jobs("slack", world.team.id, world.alice.id)
        assert len(jobs) == 1
        assert len([m for m in double.bot_messages(world.general.id) if m.get("thread_ts") == message["ts"]]) == 2


@pytest.mark.parametrize("transport", ["socket", "http"])
async def test_a_retry_after_a_restart_is_not_done_again(double, tmp_path, transport):
    world = make_world(double)
    image = double.add_file(world.alice, "sun.png", picture(), "image/png")
    async with running_app(double, tmp_path, transport=transport):
        message, first = await double.post(world.general, world.alice, f"<@{double.bot_user_id}> please",
                                           files=(image,))
        await wait_for_result(double, world.general, message["ts"])
    async with running_app(double, tmp_path, transport=transport) as running:  # a new process, same data dir
        retry = await double.send_event(world.team.id, first.payload["event"], event_id=first.payload["event_id"],
                                        retry_attempt=1)
        assert not retry.late and retry.status == 200
        # A new mention after it is answered; by then the retry would have posted a status message too.
        other, _ = await double.post(world.general, world.bob, f"<@{double.bot_user_id}> again", files=(image,))
        await wait_for_result(double, world.general, other["ts"])
        in_first_thread = [m for m in double.bot_messages(world.general.id) if m.get("thread_ts") == message["ts"]]
        assert len(in_first_thread) == 2  # the result and its files, from before the restart; nothing new
        assert len(running.store.list_user_jobs("slack", world.team.id, world.alice.id)) == 1
    assert len([d for d in double.downloads if d["file_id"] == image["id"]]) == 2  # the first and Bob's
