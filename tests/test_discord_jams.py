"""Jams on Discord end to end: the real discord.py client, engine and SQLite against the double."""

from __future__ import annotations

import pytest

pytest.importorskip("discord")

from aria_engine.jam import markers_of  # noqa: E402
from tests.discord_harness import ephemeral_answer, make_world, picture, running_bot  # noqa: E402

pytestmark = pytest.mark.timeout(240)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def thread_of(world):
    return next(iter(world.guild.threads.values()))


def board_says(board, text: str) -> bool:
    return any(text in (e.get("description") or "") for e in board.embeds)


def jam_result(double, thread):
    return next((m for m in double.bot_messages(channel=thread) if m.file(".mid") is not None), None)


async def start(double, world, **options):
    interaction = await double.send_slash_command(world.guild, world.general, world.alice, "aria-jam start",
                                                  {"title": "Evening", "seconds": 6, **options})
    await double.wait_for(lambda: world.guild.threads, 20, "the jam's thread")
    return interaction.original


def _actor(user, world):
    from bot.policy import Actor

    return Actor("discord", str(world.guild.id), str(world.general.id), str(user.id))


async def test_three_members_contribute_and_the_host_finishes_one_piece(double, tmp_path):
    world = make_world(double)
    async with running_bot(double, tmp_path) as running:
        board = await start(double, world)
        assert board_says(board, "Contributions: 0 of 12") and "Jam: Evening" in board.embeds[0]["title"]
        thread = thread_of(world)
        for n, (user, colour) in enumerate(((world.bob, (240, 200, 40)), (world.admin, (20, 20, 60))), start=1):
            image = double.add_attachment(picture(colour), "pic.png")
            await double.send_slash_command(world.guild, thread, user, "aria-jam add", {"image": image})
            await double.wait_for(lambda: board_says(board, f"Contributions: {n} of 12"), 30, f"picture {n}")
        mood = await double.send_slash_command(world.guild, thread, world.moderator, "aria-jam add-mood",
                                               {"valence": 0.5, "arousal": -0.2, "caption": "calm sea"})
        await double.wait_for(lambda: board_says(board, "Contributions: 3 of 12"), 30, "three contributions")
        assert "valence +0.50 (pleasant)  arousal -0.20 (calm)  -> content" in mood.original.text()
        assert board.file("jam.trajectory.png") is not None and '"calm sea"' in board.embeds[0]["description"]

        finish = next(i for i in board.custom_ids() if i.startswith("aria-jam:f:"))
        refused = await double.click_button(board, finish, world.bob)
        assert "Only the host" in (await ephemeral_answer(double, refused)).text()
        await double.click_button(board, finish, world.alice)
        result = await double.wait_for(lambda: jam_result(double, thread), 60, "the jam's piece")
        markers = [t for _, t in markers_of(result.file(".mid").data)]
        assert len(markers) == 3 and markers[2].startswith(f"3. <@{world.moderator.id}>: content")
        assert result.file(".ogg") is not None and result.file(".emotion.png") is not None
        assert "credits" in result.text() and f"1. <@{world.bob.id}>" in result.text()
        assert "restarted" not in result.text()

        late = await double.send_slash_command(world.guild, thread, world.bob, "aria-jam add-mood",
                                               {"valence": 0.1, "arousal": 0.1})
        assert "closed" in (await ephemeral_answer(double, late)).text()

        await double.wait_for(lambda: running.store.uses_since(_actor(world.alice, world), 0) == 1, 10, "the host's use")
        extend = await double.send_slash_command(world.guild, thread, world.bob, "aria-jam extend",
                                                 {"valence": 0.8, "arousal": 0.8, "caption": "sunrise"})
        await double.wait_for(lambda: [m for m in extend.messages if not m.loading], 20, "the extend's answer")
        longer = await double.wait_for(
            lambda: next((m for m in double.bot_messages(channel=thread)[::-1] if m.file(".mid") is not None
                          and m is not result), None), 60, "the extended piece")
        markers = [t for _, t in markers_of(longer.file(".mid").data)]
        assert len(markers) == 4 and markers[3] == f"4. <@{world.bob.id}>: joyful"
        assert "Extending the jam" in " ".join(m.text() for m in extend.messages)

        # the Extend button under the jam's latest piece grows the jam too: its board says so
        click = await double.click_button(longer, next(i for i in longer.custom_ids() if i.startswith("aria:e:")),
                                          world.admin)
        await double.wait_for(lambda: click.modal or click.callbacks, 10, "the Extend form")
        assert click.modal, click.callbacks
        await double.submit_modal(click, {"valence": "-0.5", "arousal": "0.6"})
        await double.wait_for(lambda: board_says(board, "Contributions: 5 of 12"), 60, "the board after Extend")


async def test_the_deadline_finishes_a_jam_after_a_restart_and_a_moderator_removes_one(double, tmp_path):
    world = make_world(double)
    clock = Clock(1_800_000_000.0)
    async with running_bot(double, tmp_path, jam_watch_s=0.05) as running:
        running.service.policy.clock = clock
        board = await start(double, world, minutes=5)
        thread = thread_of(world)
        for user, (v, a) in ((world.bob, (0.4, 0.4)), (world.alice, (-0.6, 0.6))):
            await double.send_slash_command(world.guild, thread, user, "aria-jam add-mood", {"valence": v, "arousal": a})
        await double.wait_for(lambda: board_says(board, "Contributions: 2 of 12"), 30, "two moods")
        refused = await double.send_slash_command(world.guild, thread, world.bob, "aria-jam remove", {"number": 2})
        assert "Only a moderator" in (await ephemeral_answer(double, refused)).text()
        await double.send_slash_command(world.guild, thread, world.admin, "aria-jam remove", {"number": 2},
                                        roles=(world.admin_role,))  # Manage Server
        await double.wait_for(lambda: board_says(board, "Contributions: 1 of 12"), 30, "the removal")

    async with running_bot(double, tmp_path, jam_watch_s=0.05) as running:  # a restart mid-jam
        running.service.policy.clock = clock
        await double.send_slash_command(world.guild, thread, world.admin, "aria-jam add-mood",
                                        {"valence": 0.8, "arousal": -0.5})
        await double.wait_for(lambda: board_says(board, "Contributions: 2 of 12"), 30, "after the restart")
        clock.now += 5 * 60 + 1
        result = await double.wait_for(lambda: jam_result(double, thread), 60, "the jam's piece at its deadline")
        assert len(markers_of(result.file(".mid").data)) == 2 and "credits" in result.text()


def test_the_invite_asks_for_the_thread_permissions_jams_need_and_no_more():
    import re
    from pathlib import Path

    import discord

    readme = (Path(__file__).resolve().parents[1] / "adapters" / "discord" / "README.md").read_text()
    wanted = discord.Permissions(view_channel=True, send_messages=True, embed_links=True, attach_files=True,
                                 create_public_threads=True, send_messages_in_threads=True)
    assert set(re.findall(r"permissions=(\d+)", readme)) == {str(wanted.value)}
    assert f"permissions integer {wanted.value}" in readme


VALENCE, AROUSAL = "Valence (-1 unpleasant .. +1 pleasant)", "Arousal (-1 calm .. +1 energetic)"  # MoodForm's labels


def board_edits(double, board) -> list[str]:
    """Every description the board was edited to, in order (the double keeps only the last)."""
    seen: list[str] = []

    def hook(request) -> None:
        if request.method == "PATCH" and request.path.endswith(f"/messages/{board.id}") and request.json:
            seen.extend((e.get("description") or "") for e in request.json.get("embeds") or [])
    double.on_request.append(hook)
    return seen


async def welcome_of(double, thread):
    """The thread's first message, which carries the Add a mood button too."""
    return await double.wait_for(
        lambda: next((m for m in double.bot_messages(channel=thread)
                      if any(i.startswith("aria-jam:m:") for i in m.custom_ids())), None), 20, "the thread's welcome")


async def open_mood_form(double, message, user):
    button = next(i for i in message.custom_ids() if i.startswith("aria-jam:m:"))
    pressed = await double.click_button(message, button, user)
    await double.wait_for(lambda: any(c["type"] == 9 for c in pressed.callbacks), 20, "the mood form")
    return pressed


async def test_only_members_in_the_thread_contribute_and_the_mood_form_adds_a_mood(double, tmp_path):
    world = make_world(double)
    async with running_bot(double, tmp_path):
        intents = double.identifies[-1]["intents"]
        assert not intents & (1 << 15) and not intents & (1 << 9)  # no Message Content, no guild messages
        board = await start(double, world)
        thread = thread_of(world)

        # the board's form, from the channel, by a member who has not joined the thread
        form = await open_mood_form(double, board, world.bob)
        outside = await double.submit_modal(form, {VALENCE: "0.5", AROUSAL: "-0.2"})
        assert "Join the jam's thread to contribute to it." in (await ephemeral_answer(double, outside)).text()

        # a picture posted in the thread is not read without the option (Discord sends no message)
        image = double.add_attachment(picture(), "sun.png")
        await double.send_message(thread, world.bob, "the beach", [image])

        # the same form from the thread's own button, with a bad number, then a good one
        bad = await double.submit_modal(await open_mood_form(double, await welcome_of(double, thread), world.alice),
                                        {VALENCE: "lots", AROUSAL: "0"})
        assert "two numbers" in (await ephemeral_answer(double, bad)).text()
        good = await double.submit_modal(await open_mood_form(double, await welcome_of(double, thread), world.alice),
                                         {VALENCE: "0.5", AROUSAL: "-0.2", "Caption": "calm sea"})
        await double.wait_for(lambda: board_says(board, "Contributions: 1 of 12"), 30, "the form's mood")
        readout = await double.wait_for(lambda: good.original and not good.original.ephemeral and good.original, 10,
                                        "the readout")
        assert f"1. <@{world.alice.id}>  valence +0.50 (pleasant)  arousal -0.20 (calm)  -> content" in readout.text()
        assert '"calm sea"' in board.embeds[0]["description"] and board.file("jam.trajectory.png") is not None

        # bob joins the thread (posting there did so too): the board's form now takes his mood
        form = await open_mood_form(double, board, world.bob)
        await double.submit_modal(form, {VALENCE: "-0.6", AROUSAL: "0.6"})
        await double.wait_for(lambda: board_says(board, "Contributions: 2 of 12"), 30, "bob's mood from the board")
        assert f"2. <@{world.bob.id}>: " in board.embeds[0]["description"]  # the picture never counted


async def test_with_message_content_a_picture_posted_in_the_thread_joins_and_the_board_shows_progress(double, tmp_path):
    world = make_world(double)
    async with running_bot(double, tmp_path, message_content=True, progress_interval_s=0.2,
                           settings={"jam_contributions_per_member": 1}) as running:
        running.config.notice_lifetime_s = 0.5
        intents = double.identifies[-1]["intents"]
        assert intents & (1 << 15) and intents & (1 << 9)
        board = await start(double, world)
        thread = thread_of(world)
        welcome = await welcome_of(double, thread)
        assert "Post pictures here" in welcome.text()

        await double.send_message(thread, world.bob, "just chatting")  # no picture: ignored
        image = double.add_attachment(picture(), "sun.png")
        posted = await double.send_message(thread, world.bob, "  golden hour  ", [image])
        await double.wait_for(lambda: board_says(board, "Contributions: 1 of 12"), 30, "the posted picture")
        assert '"golden hour"' in board.embeds[0]["description"] and board.file("jam.trajectory.png") is not None
        readout = await double.wait_for(
            lambda: next((m for m in double.bot_messages(channel=thread) if m.content.startswith("1. ")), None),
            10, "the picture's readout")
        assert readout.content.startswith(f"1. <@{world.bob.id}>  valence ")

        again = double.add_attachment(picture((20, 20, 60)), "night.png")
        await double.send_message(thread, world.bob, "", [again])  # over the per-member limit
        refusal = await double.wait_for(
            lambda: next((m for m in double.bot_messages(channel=thread, include_deleted=True)
                          if "contributions each member" in m.content), None), 30, "the refusal")
        assert refusal.content.startswith(f"<@{world.bob.id}> ")
        await double.wait_for(lambda: refusal.deleted, 10, "the refusal deleting itself")
        assert board_says(board, "Contributions: 1 of 12") and posted.id

        await double.send_slash_command(world.guild, thread, world.alice, "aria-jam add-mood",
                                        {"valence": -0.5, "arousal": 0.5})
        await double.wait_for(lambda: board_says(board, "Contributions: 2 of 12"), 30, "the host's mood")
        edits = board_edits(double, board)
        finish = next(i for i in board.custom_ids() if i.startswith("aria-jam:f:"))
        await double.click_button(board, finish, world.alice)
        await double.wait_for(lambda: jam_result(double, thread), 60, "the jam's piece")
        await double.wait_for(lambda: board_says(board, "Finished: see the reply in the thread"), 20, "the ending")
        progress = [e.splitlines()[1] for e in edits if "Progress: " in e]
        assert progress, edits
        assert any("%" in line or "line" in line for line in progress), progress
