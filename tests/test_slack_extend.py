"""The Extend button under a piece on Slack: its form (a mood or a picture) continues the piece,
and the reply in the piece's thread is the whole longer piece, the new section marked and credited."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("slack_bolt")

from aria_engine.jam import markers_of  # noqa: E402
from tests.slack_harness import (  # noqa: E402
    has_action, make_world, picture, running_app, wait_for_ephemeral, wait_for_result)

pytestmark = [pytest.mark.timeout(240)]

ROOM = {"max_duration_s": 60}  # a longer piece is longer than the 4 s the harness allows by default


def midis(double, channel, thread) -> list[dict]:
    return [f for f in double.uploaded_files(channel.id, thread) if f["name"].endswith(".mid")]


def results_in(double, channel, thread) -> list[dict]:
    return [m for m in double.bot_messages(channel.id) if has_action(m, "aria_extend")
            and thread in (m.get("thread_ts"), m["ts"])]


async def open_form(double, world, message, user) -> dict:
    before = len(double.views_for(user))
    await double.click(world.general, user, message, "aria_extend")
    views = await double.wait_for(lambda: double.views_for(user)[before:], 10, "the Extend form")
    return views[0]


def jobs_of(running, world, user) -> int:
    return len(running.store.list_user_jobs("slack", world.team.id, user.id))


async def a_piece(double, world):
    await double.slash(world.general, world.alice, "mood -0.6 -0.4")
    first = await wait_for_result(double, world.general)
    return first, first.get("thread_ts") or first["ts"]


async def test_extend_with_a_mood_then_a_picture(double, tmp_path):
    world = make_world(double)
    async with running_app(double, tmp_path, settings=ROOM):
        first, thread = await a_piece(double, world)
        [one] = midis(double, world.general, thread)
        assert markers_of(double.file_data[one["id"]]) == []  # a single piece: one section, unmarked

        view = await open_form(double, world, first, world.bob)
        inputs = {b["block_id"]: b["element"]["type"] for b in view["blocks"] if b["type"] == "input"}
        assert inputs == {"valence": "number_input", "arousal": "number_input", "caption": "plain_text_input",
                          "picture": "file_input"}
        answer = await double.submit(view["id"], world.bob, {"valence": "0.8", "arousal": "0.7", "caption": "sunrise"})
        assert not answer.late and answer.ack_payload in (None, "", {})
        await double.wait_for(lambda: len(midis(double, world.general, thread)) == 2, 60, "the longer piece")
        markers = [t for _, t in markers_of(double.file_data[midis(double, world.general, thread)[1]["id"]])]
        assert len(markers) == 2 and markers[0].startswith(f"1. <@{world.alice.id}>")
        assert markers[1].startswith(f"2. <@{world.bob.id}>: joyful")
        longer = await double.wait_for(lambda: results_in(double, world.general, thread)[1:], 20, "its readout")
        text = json.dumps(longer[0]["blocks"])
        assert "credits" in text and f"<@{world.alice.id}>" in text and f"<@{world.bob.id}>" in text
        status = [a for a in double.calls_to("chat.postMessage") if "is extending the piece" in a.get("text", "")]
        assert "valence +0.80 (pleasant)" in status[0]["text"] and status[0]["thread_ts"] == thread

        view = await open_form(double, world, longer[0], world.alice)
        image = double.add_file(world.alice, "sun.png", picture((240, 200, 40)), "image/png")
        answer = await double.submit(view["id"], world.alice, {"picture": [image], "valence": "-1"})  # the picture wins
        assert answer.ack_payload in (None, "", {})
        await double.wait_for(lambda: len(midis(double, world.general, thread)) == 3, 60, "the piece extended again")
        markers = [t for _, t in markers_of(double.file_data[midis(double, world.general, thread)[2]["id"]])]
        assert len(markers) == 3 and markers[2].startswith(f"3. <@{world.alice.id}>")
        assert image["id"] in [d["file_id"] for d in double.downloads]


async def test_bad_input_and_a_piece_gone_are_refused_privately(double, tmp_path):
    world = make_world(double)
    pdf = double.add_file(world.bob, "doc.pdf", b"%PDF-1.4", "application/pdf")
    async with running_app(double, tmp_path, settings=ROOM) as running:
        first, thread = await a_piece(double, world)
        before = jobs_of(running, world, world.bob)
        view = await open_form(double, world, first, world.bob)
        for values, field, words in (({}, "picture", "Add a picture, or both"),
                                     ({"valence": "0.5"}, "arousal", "Arousal too"),
                                     ({"valence": "2", "arousal": "0"}, "valence", "between -1 and 1"),
                                     ({"picture": [pdf]}, "picture", "isn't a JPEG, PNG")):
            answer = await double.submit(view["id"], world.bob, values)
            assert answer.ack_payload["response_action"] == "errors", values
            assert words in answer.ack_payload["errors"][field], answer.ack_payload
        assert jobs_of(running, world, world.bob) == before  # nothing queued

        running.store.mark_result_deleted(first["blocks"][-1]["block_id"].split(":", 1)[1])  # the piece goes
        answer = await double.submit(view["id"], world.bob, {"valence": "0.5", "arousal": "0.5"})
        assert answer.ack_payload in (None, "", {})  # the form closes; the refusal comes privately
        assert "That piece is gone" in (await wait_for_ephemeral(double, world.bob))["text"]
        await double.click(world.general, world.bob, first, "aria_extend")  # and at the click, no form
        assert "That piece is gone" in (await wait_for_ephemeral(double, world.bob, after=1))["text"]
        assert len(double.views_for(world.bob)) == 1 and jobs_of(running, world, world.bob) == before
