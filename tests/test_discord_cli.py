"""`aria bot discord` as a user runs it: a fresh data dir, no weights, the token from the env."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.discord_harness import ephemeral_answer, make_world, result_of
from tests.doubles.discord_api import DiscordDouble

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[1]


async def test_aria_bot_discord_runs_out_of_the_box(tmp_path):
    async with DiscordDouble() as double:
        world = make_world(double)
        env = {**os.environ, "ARIA_DISCORD_TOKEN": double.token, "ARIA_DISCORD_API_BASE": double.base_url,
               "ARIA_DISCORD_GATEWAY_URL": double.gateway_url, "ARIA_MODELS_DIR": str(tmp_path / "no-models")}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "bot", "discord", "--data-dir", str(tmp_path / "data"),
            cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            await double.wait_until_connected(timeout=60)
            await double.wait_for(lambda: double.command_syncs, 30, "the command sync")
            interaction = await double.send_slash_command(world.guild, world.general, world.alice, "aria-mood",
                                                          {"valence": 0.7, "arousal": 0.7, "duration": 2})
            message = await result_of(double, interaction)
            assert "procedural composer" in message.text()
            assert (tmp_path / "data" / "aria.db").is_file()
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), 30) == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            output = (await process.stdout.read()).decode(errors="replace")
        assert "Traceback" not in output, output


async def test_without_a_token_it_says_what_to_do(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "ARIA_DISCORD_TOKEN"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "bot", "discord", "--data-dir", str(tmp_path), cwd=ROOT, env=env,
        stderr=asyncio.subprocess.PIPE)
    _, stderr = await process.communicate()
    assert process.returncode == 2 and b"ARIA_DISCORD_TOKEN" in stderr
