"""The Extend button under a piece on Discord: its form (a mood or a picture) continues the piece,
and the reply is the whole longer piece with the new section marked and credited."""

from __future__ import annotations

import pytest

pytest.importorskip("discord")

from aria_engine.jam import markers_of  # noqa: E402
from tests.discord_harness import ephemeral_answer, make_world, picture, result_of, running_bot  # noqa: E402

pytestmark = pytest.mark.timeout(240)

ROOM = {"max_duration_s": 60}  # a longer piece is longer than the 2 s the harness allows by default


def extend_id(message) -> str:
    return next(i for i in message.custom_ids() if i.startswith("aria:e:"))


def jobs_of(running, world, user) -> int:
    return len(running.store.list_user_jobs("discord", str(world.guild.id), str(user.id)))


async def a_piece(double, world):
    interaction = await double.send_slash_command(world.guild, world.general, world.alice, "aria-mood",
                                                  {"valence": -0.6, "arousal": -0.4})
    return await result_of(double, interaction)


async def open_form(double, message, user):
    click = await double.click_button(message, extend_id(message), user)
    await double.wait_for(lambda: click.modal, 10, "the Extend form")
    return click


async def test_extend_with_a_mood_then_a_picture(double, tmp_path):
    world = make_world(double)
    async with running_bot(double, tmp_path, settings=ROOM) as running:
        first = await a_piece(double, world)
        assert [i.split(":")[1] for i in first.custom_ids()] == ["v", "e", "p", "d"]
        assert markers_of(first.file(".mid").data) == []  # a single piece: one section, unmarked

        click = await open_form(double, first, world.bob)
        fields = [c["custom_id"] for top in click.modal["components"]
                  for c in top.get("components", [top.get("component")])]
        assert fields == ["valence", "arousal", "caption", "picture"]
        submit = await double.submit_modal(click, {"valence": "0.8", "arousal": "0.7", "caption": "sunrise"})
        longer = await result_of(double, submit)
        assert longer is not first and extend_id(longer) != extend_id(first)  # the longer piece can grow again
        markers = [t for _, t in markers_of(longer.file(".mid").data)]
        assert len(markers) == 2 and markers[0].startswith(f"1. <@{world.alice.id}>")
        assert markers[1].startswith(f"2. <@{world.bob.id}>")
        text = longer.text()
        assert "credits" in text and f"<@{world.alice.id}>" in text and f"<@{world.bob.id}>" in text
        statuses = [(r.json or {}).get("content") or "" for r in double.requests_to("PATCH", submit.token)]
        assert any(s.startswith(f"2. <@{world.bob.id}>  valence +0.80 (pleasant)  arousal +0.70") for s in statuses)

        click = await open_form(double, longer, world.alice)
        image = double.add_attachment(picture((240, 200, 40)), "sun.png")
        submit = await double.submit_modal(click, {"picture": [image]})
        three = await result_of(double, submit)
        markers = [t for _, t in markers_of(three.file(".mid").data)]
        assert len(markers) == 3 and markers[2].startswith(f"3. <@{world.alice.id}>")


async def test_bad_input_and_a_piece_gone_are_refused_privately(double, tmp_path):
    world = make_world(double)
    async with running_bot(double, tmp_path, settings=ROOM) as running:
        first = await a_piece(double, world)
        before = jobs_of(running, world, world.bob)
        for values in ({}, {"valence": "0.5"}, {"valence": "2", "arousal": "0"}, {"valence": "x", "arousal": "y"}):
            click = await open_form(double, first, world.bob)
            submit = await double.submit_modal(click, values)
            answer = await ephemeral_answer(double, submit)
            assert "picture, or with both a valence and an arousal" in answer.text(), values
            assert submit.callbacks[0]["type"] == 4  # refused at once, never deferred
        text_file = double.add_attachment(b"not a picture", "notes.txt", "text/plain")
        click = await open_form(double, first, world.bob)
        answer = await ephemeral_answer(double, await double.submit_modal(click, {"picture": [text_file]}))
        assert answer.ephemeral
        assert jobs_of(running, world, world.bob) == before  # nothing queued

        click = await open_form(double, first, world.bob)  # the form is open...
        delete = next(i for i in first.custom_ids() if i.startswith("aria:d:"))
        await double.click_button(first, delete, world.alice)  # ...when the piece goes
        await double.wait_for(lambda: first.deleted, 10, "the deletion")
        submit = await double.submit_modal(click, {"valence": "0.5", "arousal": "0.5"})
        answer = await ephemeral_answer(double, submit)
        assert "That piece is gone" in answer.text()
        assert jobs_of(running, world, world.bob) == before
