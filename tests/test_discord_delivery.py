"""Getting the result to people: the 15-minute token fallback and the upload size limit."""

from __future__ import annotations

import pytest

pytest.importorskip("discord")

from adapters.discord.config import TOKEN_LIFETIME_S  # noqa: E402
from tests.discord_harness import FakeClock, has_result, make_world, picture, result_of, running_bot  # noqa: E402
from tests.doubles.discord_api import DiscordDouble  # noqa: E402

pytestmark = pytest.mark.timeout(240)


def expire_token_after_deferral(double: DiscordDouble, clock: FakeClock) -> None:
    """The moment the bot defers, 15 minutes pass (for the bot and for Discord alike)."""
    def hook(request):
        if request.method == "POST" and request.path.endswith("/callback") and request.json.get("type") == 5:
            clock.advance(TOKEN_LIFETIME_S + 1)
            double.advance(TOKEN_LIFETIME_S + 1)
            double.on_request.remove(hook)
    double.on_request.append(hook)


async def test_after_15_minutes_the_result_goes_to_the_channel(double, tmp_path):
    world = make_world(double)
    clock = FakeClock()
    async with running_bot(double, tmp_path, clock=clock):
        expire_token_after_deferral(double, clock)
        interaction = await double.send_slash_command(world.guild, world.general, world.alice, "aria",
                                                      {"image": double.add_attachment(picture(), "a.png")})
        message = await double.wait_for_message(lambda m: has_result(m) and m.interaction_id is None, timeout=60)
        assert message.channel_id == world.general.id and not message.ephemeral
        assert message.content.startswith(f"<@{world.alice.id}>")
        assert "valence" in message.text() and message.custom_ids()
        # nothing was tried with the dead token after the deferral
        assert not [r for r in double.requests if interaction.token in r.path and r.method != "POST"]
        assert interaction.original.loading  # Discord shows "thinking..." until it gives up; we cannot edit it


async def test_after_15_minutes_a_private_result_goes_to_direct_messages(double, tmp_path):
    world = make_world(double)
    clock = FakeClock()
    async with running_bot(double, tmp_path, clock=clock):
        expire_token_after_deferral(double, clock)
        await double.send_slash_command(world.guild, world.general, world.alice, "aria-mood",
                                        {"valence": 0.1, "arousal": 0.1, "private": True})
        await double.wait_for(lambda: any(has_result(m) for m in double.dms_to(world.alice)), 60, "a DM")
        assert not [m for m in double.bot_messages(channel=world.general) if has_result(m)]


async def test_a_small_upload_limit_gets_a_smaller_reply_that_says_so(double, tmp_path):
    world = make_world(double)
    async with running_bot(double, tmp_path):
        # Enough for the MIDI, the pictures and some audio, not for the full-quality audio.
        interaction = await double.send_slash_command(world.guild, world.general, world.alice, "aria-mood",
                                                      {"valence": 0.4, "arousal": 0.6, "duration": 2},
                                                      attachment_size_limit=150_000)
        message = await result_of(double, interaction)
        assert sum(len(a.data) for a in message.attachments) <= 150_000
        assert message.file(".ogg") is not None
        assert "upload limit" in message.text(), message.text()


async def test_a_tiny_upload_limit_gets_the_midi_only_and_says_so(double, tmp_path):
    world = make_world(double)
    async with running_bot(double, tmp_path):
        interaction = await double.send_slash_command(world.guild, world.general, world.alice, "aria-mood",
                                                      {"valence": -0.4, "arousal": 0.6, "duration": 2},
                                                      attachment_size_limit=8_000)
        message = await result_of(double, interaction)
        assert [a.filename.rsplit(".", 1)[1] for a in message.attachments] == ["mid"]
        assert "audio left out to fit the upload limit" in message.text()
        assert "valence -0.40" in message.text()
