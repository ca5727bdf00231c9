"""Every refusal is private and specific, and no bad event brings the bot down."""

from __future__ import annotations

import pytest

pytest.importorskip("discord")

from aria_engine.engine import Limits, LocalEngine  # noqa: E402
from aria_engine.pipeline import Pipeline  # noqa: E402
from tests.discord_harness import ephemeral_answer, make_world, picture, result_of, running_bot  # noqa: E402
from tests.doubles.discord_api import EPHEMERAL  # noqa: E402

pytestmark = pytest.mark.timeout(240)


async def aria(double, world, attachment, user=None):
    return await double.send_slash_command(world.guild, world.general, user or world.alice, "aria",
                                           {"image": attachment})


async def test_attachments_refused_before_downloading(double, tmp_path):
    world = make_world(double)
    cases = [
        (double.add_attachment(b"%PDF-1.7 ...", "essay.pdf", "application/pdf"), "is not a picture"),
        (double.add_attachment(b"\x00\x00\x00\x18ftypheic", "photo.heic", "image/heic"), "HEIC image, which I can't read"),
        (double.add_attachment(picture(), "huge.png", size=30 * 1024 * 1024), "30.0 MB; pictures up to 25.0 MB"),
        (double.add_attachment(b"hello", "notes.txt", None), "doesn't look like a picture"),
        ({**double.add_attachment(picture(), "elsewhere.png"), "url": "https://example.com/elsewhere.png"},
         "isn't stored on Discord"),
    ]
    async with running_bot(double, tmp_path) as running:
        for attachment, words in cases:
            interaction = await aria(double, world, attachment)
            callback = await double.wait_for_response(interaction)
            assert callback["type"] == 4 and callback["data"]["flags"] & EPHEMERAL
            assert words in interaction.original.content, interaction.original.content
        assert double.downloads == []
        # refusals cost nothing: the quota saw no use
        assert running.service.policy.usage(_actor(world)).used_today == 0


def _actor(world):
    from bot.policy import Actor

    return Actor("discord", str(world.guild.id), str(world.general.id), str(world.alice.id))


async def test_a_file_that_is_not_really_a_picture(double, tmp_path):
    world = make_world(double)
    fake = double.add_attachment(b"<!DOCTYPE html><html><body>login</body></html>", "cat.png", "image/png")
    broken = double.add_attachment(picture()[:40], "broken.png", "image/png")
    async with running_bot(double, tmp_path) as running:
        for attachment, words in ((fake, "web page"), (broken, "damaged or incomplete")):
            interaction = await aria(double, world, attachment)
            answer = await ephemeral_answer(double, interaction)
            assert words in answer.content and answer.content, answer.content
            # the public "thinking" message is gone; only the requester saw the refusal
            assert interaction.original.deleted or interaction.original.ephemeral
        assert len(double.downloads) == 2
        assert running.service.policy.usage(_actor(world)).used_today == 0  # refunded


async def test_busy_engine(double, tmp_path):
    world = make_world(double)
    engine = LocalEngine(Pipeline(), concurrency=1, limits=Limits(max_queued=1), progress_interval_s=0.05)
    async with running_bot(double, tmp_path, engine=engine, settings={"max_duration_s": 20}) as running:
        running_one = await double.send_slash_command(world.guild, world.general, world.bob, "aria-mood",
                                                      {"valence": 0.1, "arousal": 0.1, "duration": 20})
        await double.wait_for(lambda: any(r.status == "running" for r in running.store.list_user_jobs(
            "discord", str(world.guild.id), str(world.bob.id))), 20, "the first piece to start")
        queued = await double.send_slash_command(world.guild, world.general, world.moderator, "aria-mood",
                                                 {"valence": 0.2, "arousal": 0.2})
        await double.wait_for(lambda: queued.original and queued.original.custom_ids(), 20, "the second to queue")
        refused = await double.send_slash_command(world.guild, world.general, world.alice, "aria-mood",
                                                  {"valence": 0.3, "arousal": 0.3})
        answer = await ephemeral_answer(double, refused)
        assert "busy" in answer.content and "try again" in answer.content
        assert refused.original.deleted
        await result_of(double, running_one, timeout=120)
        await result_of(double, queued, timeout=120)


async def test_bad_events_never_bring_the_bot_down(double, tmp_path):
    world = make_world(double)
    async with running_bot(double, tmp_path) as running:
        def old_message(custom_id: str):
            message = double.post_message(world.general, double.bot, "an old result")
            message.components = [{"type": 1, "components": [
                {"type": 2, "style": 1, "label": "Old", "custom_id": custom_id}]}]
            return message

        removed_command = await double.send_raw_interaction(
            world.guild, world.general, world.alice, 2, {"id": "1", "name": "aria-old", "type": 1})
        old_button = await double.send_raw_interaction(
            world.guild, world.general, world.alice, 3, {"custom_id": "aria:x:123", "component_type": 2},
            message=old_message("aria:x:123"))
        forgotten_result = await double.send_raw_interaction(
            world.guild, world.general, world.alice, 3, {"custom_id": "aria:v:doesnotexist", "component_type": 2},
            message=old_message("aria:v:doesnotexist"))
        for interaction, words in ((removed_command, "isn't available"), (old_button, "no longer works"),
                                   (forgotten_result, "is gone")):
            assert words in (await ephemeral_answer(double, interaction)).content

        # a dropped gateway connection: discord.py reconnects and identifies again
        await double.sessions[0].ws.close(code=4000)
        await double.wait_for(lambda: len(double.identifies) >= 2 and any(s.identified for s in double.sessions[1:]),
                              30, "a new gateway session")
        assert not running.task.done()
        help_ = await double.send_slash_command(world.guild, world.general, world.alice, "aria-help")
        assert (await ephemeral_answer(double, help_)).embeds
