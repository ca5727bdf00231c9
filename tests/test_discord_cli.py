"""`aria bot discord` as a user runs it: a fresh data dir, no weights, the token from the env."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import pytest

pytest.importorskip("discord")
import aiohttp  # noqa: E402

from tests.discord_harness import make_world, result_of  # noqa: E402
from tests.doubles.discord_api import DiscordDouble  # noqa: E402

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[1]


async def test_aria_bot_discord_runs_out_of_the_box(tmp_path):
    async with DiscordDouble() as double:
        world = make_world(double)
        env = {**os.environ, "ARIA_DISCORD_TOKEN": double.token, "ARIA_DISCORD_API_BASE": double.base_url,
               "ARIA_DISCORD_GATEWAY_URL": double.gateway_url, "ARIA_MODELS_DIR": str(tmp_path / "no-models")}
        metrics_port = free_port()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "bot", "discord", "--data-dir", str(tmp_path / "data"),
            "--metrics-port", str(metrics_port),
            cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            await double.wait_until_connected(timeout=60)
            await double.wait_for(lambda: double.command_syncs, 30, "the command sync")
            interaction = await double.send_slash_command(world.guild, world.general, world.alice, "aria-mood",
                                                          {"valence": 0.7, "arousal": 0.7, "duration": 2})
            message = await result_of(double, interaction)
            assert "procedural composer" in message.text()
            assert (tmp_path / "data" / "aria.db").is_file()
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{metrics_port}/healthz") as health:
                    assert health.status == 200 and (await health.json())["backend"] == "local"
                async with http.get(f"http://127.0.0.1:{metrics_port}/metrics") as metrics:
                    assert 'aria_jobs_finished_total{outcome="done"} 1.0' in await metrics.text()
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), 30) == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            output = (await process.stdout.read()).decode(errors="replace")
        assert "Traceback" not in output, output


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_without_a_token_it_says_what_to_do(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "ARIA_DISCORD_TOKEN"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "bot", "discord", "--data-dir", str(tmp_path), cwd=ROOT, env=env,
        stderr=asyncio.subprocess.PIPE)
    _, stderr = await process.communicate()
    assert process.returncode == 2 and b"ARIA_DISCORD_TOKEN" in stderr
