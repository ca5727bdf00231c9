"""Each Slack flow end to end, over Socket Mode and over HTTP: the real bolt app, the real engine
(embedded defaults) and SQLite, against the local Slack double."""

from __future__ import annotations

import json
import re

import pytest

pytest.importorskip("slack_bolt")

from adapters.slack.blocks import mode_select  # noqa: E402
from bot.policy import Actor  # noqa: E402
from tests.doubles.slack_api import SlackDouble  # noqa: E402
from tests.slack_harness import (  # noqa: E402
    RESULT_TIMEOUT_S, make_world, neural_engine, picture, running_app, wait_for_ephemeral, wait_for_result,
    wait_for_status,
)

pytestmark = [pytest.mark.timeout(240), pytest.mark.parametrize("transport", ["socket", "http"])]

READOUT = re.compile(r"valence [+-]\d\.\d\d \((pleasant|neutral|unpleasant)\).*arousal [+-]\d\.\d\d "
                     r"\((energetic|moderate|calm)\)", re.S)


def blocks_text(message: dict) -> str:
    return json.dumps(message.get("blocks") or [])


def assert_result(double: SlackDouble, channel, message: dict, requester, composer: str = "procedural") -> dict:
    """The readout (valence/arousal with words, backend, seed, chart) and the files in its thread."""
    text = blocks_text(message)
    assert READOUT.search(text), text
    assert "made by" in text and composer in text and "*seed*" in text
    assert f"<@{requester.id}>" in text
    images = [b for b in message["blocks"] if b["type"] == "image"]
    assert len(images) == 1
    chart = double.files[images[0]["slack_file"]["id"]]
    assert chart["mimetype"] == "image/png" and chart["name"].endswith(".emotion.png")
    thread = message.get("thread_ts") or message["ts"]
    names = [f["name"] for f in double.uploaded_files(channel.id, thread)]
    assert any(n.endswith(".mid") for n in names) and any(n.endswith(".ogg") for n in names), names
    midi = next(f for f in double.uploaded_files(channel.id, thread) if f["name"].endswith(".mid"))
    assert double.file_data[midi["id"]].startswith(b"MThd")
    actions = {el["action_id"] for b in message["blocks"] if b["type"] == "actions" for el in b["elements"]}
    # Another mode only for composers with modes: the procedural one has none.
    assert actions == ({"aria_variation", "aria_extend"} if composer == "procedural"
                       else {"aria_variation", "aria_extend", "aria_another_mode"})
    assert not any(e["via"] == "chat.postEphemeral" for e in double.ephemerals_for(requester))
    return message


async def test_mention_with_a_picture(double, tmp_path, transport):
    world = make_world(double)
    image = double.add_file(world.alice, "sunflowers.png", picture(), "image/png")
    async with running_app(double, tmp_path, transport=transport) as running:
        message, delivery = await double.post(world.general, world.alice, f"<@{double.bot_user_id}> seed=7 please",
                                              files=(image,))
        assert not delivery.late
        result = await wait_for_result(double, world.general, message["ts"])
        assert_result(double, world.general, result, world.alice)
        assert result["thread_ts"] == message["ts"]  # the status message is a reply in the thread
        assert "*seed*\\n7\"" in blocks_text(result)
        # It started as a status message with a Cancel button, then was edited (throttled) into the result.
        assert any("aria_cancel" in json.dumps(u["blocks"]) for u in double.updates if u["ts"] == result["ts"])
        record = running.store.list_user_jobs("slack", world.team.id, world.alice.id)[0]
        assert record.status == "done" and record.message_id == result["ts"]
        assert record.image_ref["file_id"] == image["id"]
    assert double.downloads == [{"file_id": image["id"], "authorized": True}]


async def test_mention_in_a_thread_under_a_picture(double, tmp_path, transport):
    world = make_world(double)
    image = double.add_file(world.bob, "dusk.jpg", picture((40, 40, 90), fmt="JPEG"), "image/jpeg")
    parent, _ = await double.post(world.general, world.bob, "look at this", files=(image,))
    async with running_app(double, tmp_path, transport=transport):
        await double.post(world.general, world.alice, f"<@{double.bot_user_id}> make this sing",
                          thread_ts=parent["ts"])
        result = await wait_for_result(double, world.general, parent["ts"])
        assert_result(double, world.general, result, world.alice)
        assert result["thread_ts"] == parent["ts"]


async def test_message_shortcut(double, tmp_path, transport):
    world = make_world(double)
    image = double.add_file(world.bob, "sea.png", picture((30, 120, 200)), "image/png")
    message, _ = await double.post(world.general, world.bob, "holiday", files=(image,))
    async with running_app(double, tmp_path, transport=transport):
        delivery = await double.shortcut(world.general, world.alice, message)
        assert not delivery.late
        result = await wait_for_result(double, world.general, message["ts"])
        assert_result(double, world.general, result, world.alice)


async def test_slash_command_opens_a_modal_and_composes(double, tmp_path, transport):
    world = make_world(double)
    async with running_app(double, tmp_path, transport=transport) as running:
        delivery = await double.slash(world.general, world.alice, "discrete_token 256 42")
        assert not delivery.late
        [view] = await double.wait_for(lambda: double.views_for(world.alice), 10, "the modal")
        inputs = {b["block_id"]: b["element"] for b in view["blocks"] if b["type"] == "input"}
        assert inputs["picture"]["type"] == "file_input"
        assert inputs["mode"]["initial_option"]["value"] == "discrete_token"
        assert inputs["length"]["initial_value"] == "256" and inputs["seed"]["initial_value"] == "42"
        assert inputs["duration"]["initial_value"] == "4"  # the default, fitted to max_duration_s
        image = double.add_file(world.alice, "me.png", picture((200, 60, 60)), "image/png")
        submitted = await double.submit(view["id"], world.alice, {"picture": [image]})
        assert not submitted.late and submitted.ack_payload in (None, "", {})
        result = await wait_for_result(double, world.general)
        assert_result(double, world.general, result, world.alice)
        assert result.get("thread_ts", result["ts"]) == result["ts"]  # a new message, files in its thread
        assert "*seed*\\n42\"" in blocks_text(result)
        [record] = running.store.list_user_jobs("slack", world.team.id, world.alice.id)
        assert record.options["mode"] == "discrete_token" and record.options["length"] == 256
        assert sorted(record.extra["explicit"]) == ["length", "mode", "seed"]


async def test_slash_last_uses_your_newest_recent_picture(double, tmp_path, transport):
    world = make_world(double)
    old = double.add_file(world.alice, "old.png", picture((10, 10, 10)), "image/png")
    mine = double.add_file(world.alice, "mine.png", picture((250, 220, 30)), "image/png")
    theirs = double.add_file(world.bob, "theirs.png", picture((0, 0, 255)), "image/png")
    old_message, _ = await double.post(world.general, world.alice, "old one", files=(old,))
    old_message["ts"] = f"{float(old_message['ts']) - 3600:.6f}"  # an hour ago
    mine_message, _ = await double.post(world.general, world.alice, "new one", files=(mine,))
    await double.post(world.general, world.bob, "someone else's, newer", files=(theirs,))
    async with running_app(double, tmp_path, transport=transport):
        delivery = await double.slash(world.general, world.alice, "last seed=3")
        assert not delivery.late
        result = await wait_for_result(double, world.general, mine_message["ts"])
        assert_result(double, world.general, result, world.alice)
    assert [d["file_id"] for d in double.downloads] == [mine["id"]]


async def test_slash_mood(double, tmp_path, transport):
    world = make_world(double)
    async with running_app(double, tmp_path, transport=transport):
        await double.slash(world.general, world.alice, "mood 0.6 -0.3")
        result = await wait_for_result(double, world.general)
        assert_result(double, world.general, result, world.alice)
        assert "valence +0.60 (pleasant)" in blocks_text(result)
        assert "arousal -0.30 (calm)" in blocks_text(result)
        assert "explicit encoder" in blocks_text(result)


def results_in_thread(double: SlackDouble, channel, thread: str) -> list[dict]:
    return [m for m in double.bot_messages(channel.id) if m.get("thread_ts") == thread
            and m["ts"] != thread and "aria_variation" in blocks_text(m)]


async def test_variation(double, tmp_path, transport):
    world = make_world(double)
    async with running_app(double, tmp_path, transport=transport):
        await double.slash(world.general, world.alice, "mood 0.2 0.7 seed=5")
        first = await wait_for_result(double, world.general)
        delivery = await double.click(world.general, world.bob, first, "aria_variation")
        assert not delivery.late
        [variation] = await double.wait_for(lambda: results_in_thread(double, world.general, first["ts"]),
                                            RESULT_TIMEOUT_S, "the variation")
        assert_result(double, world.general, variation, world.bob)
        assert "valence +0.20" in blocks_text(variation) and "*seed*\\n5\"" not in blocks_text(variation)


async def test_another_mode(double, tmp_path, transport):
    world = make_world(double)
    async with running_app(double, tmp_path, transport=transport, engine=neural_engine(tmp_path / "models"),
                           settings={"max_length": 256}) as running:
        await double.slash(world.general, world.alice, "mood 0.2 0.7 seed=5")
        first = await wait_for_result(double, world.general)
        assert_result(double, world.general, first, world.alice, composer="transformer (continuous_concat)")
        select = next(el for b in first["blocks"] if b["type"] == "actions" for el in b["elements"]
                      if el["action_id"] == "aria_another_mode")
        assert {o["value"] for o in select["options"]} == {"continuous_token", "discrete_token"}
        await double.click(world.general, world.bob, first, "aria_another_mode", option="continuous_token")
        [other] = await double.wait_for(lambda: results_in_thread(double, world.general, first["ts"]),
                                        RESULT_TIMEOUT_S, "the other mode")
        assert_result(double, world.general, other, world.bob, composer="transformer (continuous_token)")
        records = running.store.list_user_jobs("slack", world.team.id, world.bob.id)
        assert [r.options["mode"] for r in records] == ["continuous_token"]


async def test_another_mode_of_a_procedural_piece_is_explained(double, tmp_path, transport):
    """The procedural composer has no modes: no select under its pieces, and the select on a
    message from an older version explains why instead of making the same piece again."""
    world = make_world(double)
    async with running_app(double, tmp_path, transport=transport, settings={"daily_quota": 5}) as running:
        await double.slash(world.general, world.alice, "mood -0.2 0.4")
        first = await wait_for_result(double, world.general)
        [record] = running.store.list_user_jobs("slack", world.team.id, world.alice.id)
        stored = double.message(world.general.id, first["ts"])
        actions = next(b for b in stored["blocks"] if b["type"] == "actions")
        actions["elements"].append(mode_select(record.result_id, "continuous_concat"))  # as an older ARIA posted
        delivery = await double.click(world.general, world.alice, stored, "aria_another_mode",
                                      option="discrete_token")
        assert not delivery.late
        answer = await wait_for_ephemeral(double, world.alice)
        assert "procedural composer, which has no conditioning modes" in answer["text"]
        assert "`aria models pull`" in answer["text"] and answer["via"] == "response_url"
        assert len(running.store.list_user_jobs("slack", world.team.id, world.alice.id)) == 1
        usage = running.service.policy.usage(Actor("slack", world.team.id, world.general.id, world.alice.id))
        assert usage.used_today == 1


async def test_cancel_while_queued(double, tmp_path, transport):
    world = make_world(double)
    async with running_app(double, tmp_path, transport=transport, settings={"max_duration_s": 90}) as running:
        # Bob's long piece keeps the single worker busy; Alice's waits in line and is cancelled.
        await double.slash(world.general, world.bob, "mood 0.1 0.1 duration=90")
        await double.slash(world.quiet, world.alice, "mood -0.5 0.5")
        status = await wait_for_status(double, world.quiet)
        await double.click(world.quiet, world.alice, status, "aria_cancel")
        answer = await wait_for_ephemeral(double, world.alice)
        assert answer["text"] == "Cancelled." and answer["via"] == "response_url"
        await double.wait_for(lambda: "Cancelled" in double.message(world.quiet.id, status["ts"])["text"], 20,
                              "the status message to say so")
        assert "aria_cancel" not in blocks_text(double.message(world.quiet.id, status["ts"]))
        [record] = running.store.list_user_jobs("slack", world.team.id, world.alice.id)
        assert record.status == "cancelled"


async def test_progress_edits_are_throttled(double, tmp_path, transport):
    world = make_world(double)
    async with running_app(double, tmp_path, transport=transport, progress_interval_s=0.5,
                           settings={"max_duration_s": 90}):
        # A minute of music: over a second of work even on an idle machine, so edits fall in between.
        await double.slash(world.general, world.alice, "mood 0.3 0.3 duration=90")
        result = await wait_for_result(double, world.general)
    texts = [u["text"] for u in double.updates if u["ts"] == result["ts"]]
    assert texts[0] == "Next in line." and texts[-1].startswith(result["text"]), texts
    assert any(re.search(r"\(\d+%\)$", text) for text in texts[1:-1]), texts  # progress in between
    edits = [u["at"] for u in double.updates if u["ts"] == result["ts"]]
    gaps = [b - a for a, b in zip(edits[:-2], edits[1:-1])]  # the last edit (the result) is never held back
    assert all(gap >= 0.4 for gap in gaps), gaps  # 0.5 s apart when sent; arrival jitter allowed


async def test_admin_settings(double, tmp_path, transport):
    world = make_world(double)
    audit = double.add_channel(world.team, "aria-audit")
    async with running_app(double, tmp_path, transport=transport) as running:
        await double.slash(world.general, world.alice, "admin set cooldown_s 30")
        refused = await wait_for_ephemeral(double, world.alice)
        assert "Only workspace admins" in refused["text"]

        await double.slash(world.general, world.admin, f"admin set audit_channel <#{audit.id}|aria-audit>")
        await wait_for_ephemeral(double, world.admin)
        await double.slash(world.general, world.admin, f"admin set daily_quota 3 <#{world.quiet.id}|quiet>")
        answer = await wait_for_ephemeral(double, world.admin, after=1)
        assert "daily_quota is now 3" in answer["text"]
        settings = running.service.settings
        assert settings.get("daily_quota", server=f"slack:{world.team.id}", channel=world.quiet.id) == 3
        assert settings.get("daily_quota", server=f"slack:{world.team.id}", channel=world.general.id) == 0
        posted = await double.wait_for(lambda: [m for m in double.bot_messages(audit.id)
                                                if "daily_quota is now 3" in m["text"]], 10, "the audit post")
        assert world.admin.id in posted[0]["text"]  # who did it

        # The owner may too; and a user listed in admin_user_ids, without Slack's admin flag.
        await double.slash(world.general, world.owner, f"admin set admin_user_ids <@{world.bob.id}>")
        await wait_for_ephemeral(double, world.owner)
        await double.slash(world.general, world.bob, "admin show")
        shown = await wait_for_ephemeral(double, world.bob)
        assert "`daily_quota`" in shown["text"] and "`cooldown_s`" in shown["text"]

        await double.slash(world.general, world.bob, "admin set cooldown_s forever")
        bad = await wait_for_ephemeral(double, world.bob, after=1)
        assert "cooldown_s must be a number of seconds" in bad["text"]

        await double.slash(world.general, world.bob, f"admin reset daily_quota <#{world.quiet.id}>")
        reset = await wait_for_ephemeral(double, world.bob, after=2)
        assert "daily_quota reset" in reset["text"]


async def test_queue(double, tmp_path, transport):
    world = make_world(double)
    async with running_app(double, tmp_path, transport=transport, settings={"daily_quota": 5}):
        await double.slash(world.general, world.alice, "queue")
        lines = (await wait_for_ephemeral(double, world.alice))["text"].splitlines()
        assert lines[0] == "Nothing of yours is waiting or being composed."
        assert lines[1].startswith("5 of 5 compositions left today (resets in ")


async def test_result_without_the_chart_when_slack_is_not_ready_to_show_it(double, tmp_path, transport):
    world = make_world(double)
    double.slack_files_ready = False
    async with running_app(double, tmp_path, transport=transport):
        await double.slash(world.general, world.alice, "mood -0.4 -0.6")
        result = await wait_for_result(double, world.general)
    assert READOUT.search(blocks_text(result)) and not [b for b in result["blocks"] if b["type"] == "image"]
    names = [f["name"] for f in double.uploaded_files(world.general.id, result["ts"])]
    assert any(n.endswith(".emotion.png") for n in names)  # the chart is in the thread all the same
    assert any("invalid_blocks" in e for e in double.errors)
