"""Jams on Slack end to end: the real bolt app, engine and SQLite against the Slack double."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("slack_bolt")

from aria_engine.jam import markers_of  # noqa: E402
from tests.slack_harness import make_world, picture, running_app, wait_for_ephemeral, wait_for_result  # noqa: E402

pytestmark = [pytest.mark.timeout(240)]


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def board_of(double, channel) -> dict | None:
    """The jam board: the bot's message at the head of the jam's thread."""
    for message in double.bot_messages(channel.id):
        if "aria_jam_finish" in json.dumps(message.get("blocks") or []) or "Jam:" in message.get("text", ""):
            if message.get("thread_ts") in (None, message["ts"]):  # the head of its thread
                return double.message(channel.id, message["ts"])
    return None


def board_text(double, channel) -> str:
    return json.dumps((board_of(double, channel) or {}).get("blocks") or [])


async def start_jam(double, world, text="jam start Evening seconds=6"):
    await double.slash(world.general, world.alice, text)
    return await double.wait_for(lambda: board_of(double, world.general), 20, "the jam board")


async def test_three_members_contribute_and_the_host_finishes_one_piece(double, tmp_path):
    double.message_events = True
    world = make_world(double)
    async with running_app(double, tmp_path):
        board = await start_jam(double, world)
        thread = board["ts"]
        assert "Host: <@" in board_text(double, world.general) and "Contributions: 0 of 12" in board_text(double, world.general)

        sunny = double.add_file(world.bob, "sun.png", picture(), "image/png")
        await double.post(world.general, world.bob, "the beach", files=(sunny,), thread_ts=thread)
        await double.wait_for(lambda: "Contributions: 1 of 12" in board_text(double, world.general), 30, "1 contribution")
        dark = double.add_file(world.admin, "night.png", picture((20, 20, 60)), "image/png")
        await double.post(world.general, world.admin, "", files=(dark,), thread_ts=thread)
        await double.wait_for(lambda: "Contributions: 2 of 12" in board_text(double, world.general), 30, "2 contributions")
        await double.post(world.general, world.owner, f"<@{double.bot_user_id}> jam mood 0.5 -0.2 calm sea",
                          thread_ts=thread)
        await double.wait_for(lambda: "Contributions: 3 of 12" in board_text(double, world.general), 30, "3 contributions")
        text = board_text(double, world.general)
        assert f"1. <@{world.bob.id}>" in text and '\\"the beach\\"' in text and f"3. <@{world.owner.id}>: content" in text
        readouts = [m.get("initial_comment") or m.get("text", "") for m in double.thread(world.general.id, thread)]
        assert any("valence +0.50 (pleasant)  arousal -0.20 (calm)  -> content" in r for r in readouts), readouts
        assert any(b["type"] == "image" for b in board_of(double, world.general)["blocks"])  # the trajectory chart

        await double.click(world.general, world.bob, board_of(double, world.general), "aria_jam_finish")
        refusal = await wait_for_ephemeral(double, world.bob)
        assert "Only the host" in refusal["text"]
        await double.click(world.general, world.alice, board_of(double, world.general), "aria_jam_finish")
        result = await wait_for_result(double, world.general, thread)
        notes = json.dumps(result["blocks"])
        assert "credits" in notes and f"1. <@{world.bob.id}>" in notes
        midi = next(f for f in double.uploaded_files(world.general.id, thread) if f["name"].endswith(".mid"))
        markers = [t for _, t in markers_of(double.file_data[midi["id"]])]
        assert len(markers) == 3 and markers[2] == f"3. <@{world.owner.id}>: content"
        names = [f["name"] for f in double.uploaded_files(world.general.id, thread)]
        assert any(n.endswith(".ogg") for n in names) and any(n.endswith(".emotion.png") for n in names)

        await double.click(world.general, world.bob, result, "aria_variation")  # same contributions, new seed
        await double.wait_for(lambda: sum(f["name"].endswith(".mid") for f in double.uploaded_files(world.general.id, thread)) == 2,
                              60, "the variation")
        second = [f for f in double.uploaded_files(world.general.id, thread) if f["name"].endswith(".mid")][-1]
        assert len(markers_of(double.file_data[second["id"]])) == 3

        await double.post(world.general, world.bob, f"<@{double.bot_user_id}> jam extend 0.8 0.8 sunrise",
                          thread_ts=thread)
        await double.wait_for(lambda: sum(f["name"].endswith(".mid") for f in double.uploaded_files(world.general.id, thread)) == 3,
                              60, "the extension")
        longer = [f for f in double.uploaded_files(world.general.id, thread) if f["name"].endswith(".mid")][-1]
        assert [t for _, t in markers_of(double.file_data[longer["id"]])][-1] == f"4. <@{world.bob.id}>: joyful"

        late = double.add_file(world.bob, "late.png", picture(), "image/png")
        before = len(double.ephemerals_for(world.bob))
        await double.post(world.general, world.bob, "", files=(late,), thread_ts=thread)
        refused = await wait_for_ephemeral(double, world.bob, after=before)
        assert "closed" in refused["text"]


async def test_the_deadline_finishes_a_jam_after_a_restart_and_a_moderator_removes_one(double, tmp_path):
    double.message_events = True
    world = make_world(double)
    clock = Clock(1_800_000_000.0)
    async with running_app(double, tmp_path, jam_watch_s=0.05) as running:
        running.service.policy.clock = clock
        board = await start_jam(double, world, "jam start Night minutes=5 seconds=6")
        thread = board["ts"]
        for user, mood in ((world.bob, "0.4 0.4"), (world.owner, "-0.6 0.6")):
            await double.post(world.general, user, f"<@{double.bot_user_id}> jam mood {mood}", thread_ts=thread)
        await double.wait_for(lambda: "Contributions: 2 of 12" in board_text(double, world.general), 30, "2 contributions")
        await double.post(world.general, world.bob, f"<@{double.bot_user_id}> jam remove 2", thread_ts=thread)
        refused = await wait_for_ephemeral(double, world.bob)
        assert "Only a moderator" in refused["text"]
        await double.post(world.general, world.admin, f"<@{double.bot_user_id}> jam remove 2", thread_ts=thread)
        await double.wait_for(lambda: "Contributions: 1 of 12" in board_text(double, world.general), 30, "the removal")

    async with running_app(double, tmp_path, jam_watch_s=0.05) as running:  # a restart mid-jam
        running.service.policy.clock = clock
        await double.post(world.general, world.admin, f"<@{double.bot_user_id}> jam mood 0.8 -0.5", thread_ts=thread)
        await double.wait_for(lambda: "Contributions: 2 of 12" in board_text(double, world.general), 30, "after the restart")
        clock.now += 5 * 60 + 1
        result = await wait_for_result(double, world.general, thread)
        midi = next(f for f in double.uploaded_files(world.general.id, thread) if f["name"].endswith(".mid"))
        assert len(markers_of(double.file_data[midi["id"]])) == 2
        assert "credits" in json.dumps(result["blocks"])


def board_updates(double, board) -> list[str]:
    """Every text the board was updated to, in order (chat.update calls on its ts)."""
    return [args.get("text", "") for args in double.calls_to("chat.update") if args.get("ts") == board["ts"]]


async def test_only_the_thread_contributes_the_mood_form_adds_and_the_board_shows_progress(double, tmp_path):
    world = make_world(double)
    async with running_app(double, tmp_path, progress_interval_s=0.2):
        board = await start_jam(double, world)
        thread = board["ts"]

        await double.slash(world.general, world.bob, "jam mood 0.5 -0.2")  # a slash command has no thread
        refused = await wait_for_ephemeral(double, world.bob)
        assert refused["text"] == "Join the jam's thread to contribute to it."
        assert "Contributions: 0 of 12" in board_text(double, world.general)

        async def mood_form(user):
            before = len(double.views_for(user))
            await double.click(world.general, user, board_of(double, world.general), "aria_jam_mood")
            views = await double.wait_for(lambda: double.views_for(user)[before:], 20, "the mood form")
            return views[0]["id"]

        before = len(double.ephemerals_for(world.bob))
        # Slack's own form keeps a number input within -1..1; the double does not, so the listener's check shows
        await double.submit(await mood_form(world.bob), world.bob, {"valence": "1.5", "arousal": "0"})
        bad = await wait_for_ephemeral(double, world.bob, after=before)
        assert "valence" in bad["text"].lower() and "Contributions: 0 of 12" in board_text(double, world.general)

        await double.submit(await mood_form(world.bob), world.bob,
                            {"valence": "0.5", "arousal": "-0.2", "caption": "calm sea"})
        await double.wait_for(lambda: "Contributions: 1 of 12" in board_text(double, world.general), 30, "the form's mood")
        readouts = [m.get("initial_comment") or m.get("text", "") for m in double.thread(world.general.id, thread)]
        assert any(f"1. <@{world.bob.id}>  valence +0.50 (pleasant)  arousal -0.20 (calm)  -> content" in r
                   for r in readouts), readouts
        assert '\\"calm sea\\"' in board_text(double, world.general)

        await double.post(world.general, world.alice, f"<@{double.bot_user_id}> jam mood -0.5 0.5", thread_ts=thread)
        await double.wait_for(lambda: "Contributions: 2 of 12" in board_text(double, world.general), 30, "the host's mood")
        await double.click(world.general, world.alice, board_of(double, world.general), "aria_jam_finish")
        await wait_for_result(double, world.general, thread)
        await double.wait_for(lambda: "Finished: see the reply in the thread" in board_text(double, world.general),
                              20, "the board's ending")
        progress = [t.splitlines()[2] for t in board_updates(double, board) if "Progress: " in t]
        assert progress and any("%" in line or "line" in line for line in progress), board_updates(double, board)
