"""`aria bot slack` as a user runs it: a fresh data dir, no weights, tokens from the environment,
Socket Mode by default and `--http --port P` with request signing. Also: a restart tells the
people whose pieces were lost (tests/test_slack_restart.py: pieces picked up again)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import pytest

pytest.importorskip("slack_bolt")
import aiohttp  # noqa: E402

from bot.store import ResultRecord, Store  # noqa: E402
from tests.doubles.slack_api import SlackDouble  # noqa: E402
from tests.slack_harness import make_world, picture, running_app, wait_for_result  # noqa: E402

pytestmark = pytest.mark.timeout(150)
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def slack_env(double: SlackDouble, tmp_path: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARIA_")}
    return {**env, "ARIA_SLACK_BOT_TOKEN": double.bot_token, "ARIA_SLACK_APP_TOKEN": double.app_token,
            "ARIA_SLACK_API_BASE": double.api_base, "ARIA_MODELS_DIR": str(tmp_path / "no-models"), **extra}


async def start(args: list[str], env: dict) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "bot", "slack", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)


async def stop(process: asyncio.subprocess.Process) -> str:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            assert await asyncio.wait_for(process.wait(), 30) == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    return (await process.stdout.read()).decode(errors="replace")


async def test_socket_mode_out_of_the_box(tmp_path):
    async with SlackDouble() as double:
        world = make_world(double)
        process = await start(["--data-dir", str(tmp_path / "data")], slack_env(double, tmp_path))
        try:
            await double.wait_for(lambda: double.connected, 60, "the Socket Mode connection")
            await double.slash(world.general, world.alice, "mood 0.7 0.7 duration=4")
            result = await wait_for_result(double, world.general)
            assert "palette" not in str(result["blocks"]) and "procedural composer" in str(result["blocks"])
            assert (tmp_path / "data" / "aria.db").is_file()
        finally:
            output = await stop(process)
        assert "Traceback" not in output, output


async def test_http_mode_with_signing(tmp_path):
    async with SlackDouble() as double:
        world = make_world(double)
        port = free_port()
        env = slack_env(double, tmp_path, ARIA_SLACK_SIGNING_SECRET=double.signing_secret)
        process = await start(["--http", "--port", str(port), "--host", "127.0.0.1",
                               "--data-dir", str(tmp_path / "data")], env)
        try:
            async with aiohttp.ClientSession() as http:
                async def healthy() -> bool:
                    try:
                        async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                            return response.status == 200
                    except aiohttp.ClientError:
                        return False
                for _ in range(600):
                    if await healthy():
                        break
                    await asyncio.sleep(0.1)
            double.transport, double.events_url = "http", f"http://127.0.0.1:{port}/slack/events"
            status, _ = await double.post_raw("{}", {"Content-Type": "application/json"})
            assert status == 401
            image = double.add_file(world.alice, "sun.png", picture(), "image/png")
            message, delivery = await double.post(world.general, world.alice,
                                                  f"<@{double.bot_user_id}> duration=4", files=(image,))
            assert delivery.status == 200 and not delivery.late
            result = await wait_for_result(double, world.general, message["ts"])
            assert "palette encoder + procedural composer" in str(result["blocks"])
        finally:
            output = await stop(process)
        assert "Traceback" not in output, output


@pytest.mark.parametrize("args, env_change, expected", [
    ([], {"ARIA_SLACK_BOT_TOKEN": ""}, "set ARIA_SLACK_BOT_TOKEN"),
    (["--http"], {"ARIA_SLACK_SIGNING_SECRET": ""}, "set ARIA_SLACK_SIGNING_SECRET"),
    ([], {"ARIA_SLACK_BOT_TOKEN": "xoxb-wrong"}, "Slack refused the bot token (ARIA_SLACK_BOT_TOKEN): invalid_auth"),
    ([], {"ARIA_SLACK_APP_TOKEN": "xapp-wrong"}, "Slack refused the app-level token"),
])
async def test_setup_mistakes_are_explained(tmp_path, args, env_change, expected):
    async with SlackDouble() as double:
        env = {**slack_env(double, tmp_path), **env_change}
        process = await start([*args, "--data-dir", str(tmp_path / "data")], env)
        await asyncio.wait_for(process.wait(), 60)
        output = (await process.stdout.read()).decode(errors="replace")
    assert process.returncode in (1, 2) and expected in output, output
    assert "Traceback" not in output


async def test_restart_tells_about_lost_pieces(tmp_path):
    async with SlackDouble() as double:
        world = make_world(double)
        status = double.bot_posts(world.general, "Got your picture: reading its mood...")
        with Store(tmp_path / "aria.db") as store:
            for rid, message_id in (("lost1", status["ts"]), ("lost2", None)):
                store.save_result(ResultRecord(
                    rid, "slack", world.team.id, world.general.id, world.alice.id, "mood", {}, status="running",
                    message_channel_id=world.general.id if message_id else None, message_id=message_id))
            store.save_result(ResultRecord("other", "discord", "1", "2", "3", "mood", {}, status="queued"))
        async with running_app(double, tmp_path) as running:
            assert {r.status for r in running.store.list_user_jobs("slack", world.team.id, world.alice.id)} == {"failed"}
            assert running.store.get_result("other").status == "queued"  # another platform's bot owns it
        # The one with a status message hears it there; the other privately, in the channel.
        assert double.message(world.general.id, status["ts"])["text"].startswith(
            f"<@{world.alice.id}> ARIA restarted while your piece for your mood was being made")
        [private] = double.ephemerals_for(world.alice, world.general)
        assert "ARIA restarted while your piece for your mood was being made" in private["text"]
