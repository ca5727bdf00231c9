"""/aria, /aria-mood and the message menu, end to end: the real discord.py client, the real
engine on the embedded defaults, the local Discord double."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("discord")

from tests.discord_harness import (ephemeral_answer, make_world, picture, result_of, running_bot)  # noqa: E402
from tests.doubles.discord_api import EPHEMERAL  # noqa: E402

pytestmark = pytest.mark.timeout(240)

READOUT = re.compile(r"valence [+-]\d\.\d\d \(\w[\w ]*\)")
AROUSAL = re.compile(r"arousal [+-]\d\.\d\d \(\w[\w ]*\)")


def assert_full_result(message) -> None:
    text = message.text()
    assert READOUT.search(text) and AROUSAL.search(text), text
    assert "made by" in text and "encoder" in text and "composer" in text, text
    assert re.search(r"seed: \d+", text), text
    names = sorted(a.filename for a in message.attachments)
    assert any(n.endswith(".mid") for n in names) and any(n.endswith(".ogg") for n in names), names
    assert any(n.endswith(".emotion.png") for n in names) and any(n.endswith(".pianoroll.png") for n in names)
    assert message.file(".mid").data.startswith(b"MThd")
    assert message.file(".ogg").data.startswith(b"OggS")
    ids = message.custom_ids()
    assert [i.split(":")[1] for i in ids] == ["v", "e", "p", "d"], ids  # no modes to pick: the procedural composer


async def test_aria_with_an_image(double, tmp_path):
    world = make_world(double)
    image = double.add_attachment(picture(), "sunny.png")
    async with running_bot(double, tmp_path) as running:
        interaction = await double.send_slash_command(world.guild, world.general, world.alice, "aria",
                                                      {"image": image, "seed": 7})
        callback = await double.wait_for_response(interaction)
        assert callback["type"] == 5  # deferred ("thinking") within Discord's 3 s
        assert not interaction.original.ephemeral
        message = await result_of(double, interaction)
        assert message is interaction.original and not message.ephemeral
        assert_full_result(message)
        assert "seed: 7" in message.text()
        assert "palette encoder" in message.text()
        record = running.store.get_result(message.custom_ids()[0].split(":")[2])
        assert record.status == "done" and record.seed == 7 and record.message_id == str(message.id)
        # statuses came as edits of the same message, none closer together than 2 s
        status_edits = message.edits[:-1]
        assert all(b - a >= 1.9 for a, b in zip(status_edits, status_edits[1:]))


async def test_aria_mood(double, tmp_path):
    world = make_world(double)
    async with running_bot(double, tmp_path):
        interaction = await double.send_slash_command(world.guild, world.general, world.bob, "aria-mood",
                                                      {"valence": 0.5, "arousal": -0.25})
        message = await result_of(double, interaction)
        assert_full_result(message)
        assert "valence +0.50" in message.text() and "arousal -0.25" in message.text()
        assert "explicit encoder" in message.text()


async def test_private_results_are_ephemeral(double, tmp_path):
    world = make_world(double)
    async with running_bot(double, tmp_path):
        interaction = await double.send_slash_command(world.guild, world.general, world.alice, "aria-mood",
                                                      {"valence": -0.5, "arousal": 0.5, "private": True})
        callback = await double.wait_for_response(interaction)
        assert callback["type"] == 5 and callback["data"]["flags"] & EPHEMERAL
        message = await result_of(double, interaction)
        assert message.ephemeral


async def test_context_menu_on_a_message_with_a_picture(double, tmp_path):
    world = make_world(double)
    image = double.add_attachment(picture((30, 40, 120)), "night.jpg", "image/jpeg")
    posted = double.post_message(world.general, world.bob, "look at this", [image])
    async with running_bot(double, tmp_path) as running:
        interaction = await double.send_context_menu(world.guild, world.general, world.alice,
                                                     "Compose music from image", posted)
        message = await result_of(double, interaction)
        assert_full_result(message)
        rid = message.custom_ids()[0].split(":")[2]
        assert running.store.get_result(rid).image_ref["message_id"] == str(posted.id)


async def test_context_menu_on_a_message_without_a_picture(double, tmp_path):
    world = make_world(double)
    text_only = double.post_message(world.general, world.bob, "no pictures here")
    pdf = double.add_attachment(b"%PDF-1.4", "notes.pdf", "application/pdf")
    with_pdf = double.post_message(world.general, world.bob, "a pdf", [pdf])
    async with running_bot(double, tmp_path):
        for target in (text_only, with_pdf):
            interaction = await double.send_context_menu(world.guild, world.general, world.alice,
                                                         "Compose music from image", target)
            answer = await ephemeral_answer(double, interaction)
            assert "doesn't have" in answer.content and "JPEG, PNG" in answer.content
        assert double.downloads == []


async def test_every_aria_option_is_offered_explained_and_honoured(double, tmp_path):
    world = make_world(double)
    image = double.add_attachment(picture(), "dusk.png")
    async with running_bot(double, tmp_path) as running:
        aria = next(c for c in double.commands[None] if c["name"] == "aria")
        offered = {o["name"]: o for o in aria["options"]}
        assert set(offered) == {"image", "mode", "length", "note_temperature", "rest_temperature", "top_p",
                                "min_instruments", "seed", "private", "duration"}
        assert all(o["description"] and "\n" not in o["description"] for o in offered.values())
        modes = {c["value"]: c["name"] for c in offered["mode"]["choices"]}
        assert set(modes) == {"continuous_concat", "continuous_token", "discrete_token"}
        assert "recommended" in modes["continuous_concat"]

        settings = {"mode": "continuous_token", "length": 256, "note_temperature": 0.9, "rest_temperature": 1.4,
                    "top_p": 0.8, "min_instruments": 2, "seed": 5}
        interaction = await double.send_slash_command(world.guild, world.general, world.alice, "aria",
                                                      {"image": image, **settings})
        message = await result_of(double, interaction)
        assert_full_result(message)
        record = running.store.get_result(message.custom_ids()[0].split(":")[2])
    assert {name: record.options[name] for name in settings if name != "seed"} == {
        name: value for name, value in settings.items() if name != "seed"}
    assert record.seed == 5
