"""Retention is enforced: results past each server's `results_retention_days`, old usage rows
and old audit entries are purged on a schedule by every bot (bot.housekeeping, started by the
shared service), and the store is backed up beside itself on the same schedule."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("discord")
pytest.importorskip("slack_bolt")

from bot.policy import Actor, Policy  # noqa: E402
from bot.service import AriaService  # noqa: E402
from bot.settings import Scope, Settings, server_key  # noqa: E402
from bot.store import DAY_S, ResultRecord, Store  # noqa: E402
from tests.doubles.discord_api import DiscordDouble  # noqa: E402
from tests.doubles.slack_api import SlackDouble  # noqa: E402

pytestmark = pytest.mark.timeout(180)
ROOT = Path(__file__).resolve().parents[1]
START = 1_800_000_000.0


class FakeTime:
    """A clock and a sleep: sleeping moves the clock on at once, and parks (until the test
    moves `until` on) rather than go past `until`."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.until = now
        self.parked = asyncio.Event()
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if self.now + seconds > self.until:
            self.parked.set()
            await asyncio.Event().wait()  # until the task is cancelled
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)

    async def run(self, housekeeping, until: float) -> None:
        """Let the schedule run, in fake time, up to `until`."""
        self.until = until
        self.parked.clear()
        housekeeping.start()
        await asyncio.wait_for(self.parked.wait(), 60)
        await housekeeping.stop()


def record(result_id: str, server: str, at: float) -> ResultRecord:
    return ResultRecord(result_id, "discord", server, "c", "u", "mood", {}, status="done", created_at=at)


async def test_the_schedule_purges_results_usage_and_audit_as_the_clock_advances(tmp_path):
    from bot.housekeeping import Housekeeping

    fake = FakeTime(START)
    store = Store(tmp_path / "aria.db", clock=fake)
    settings = Settings(store)
    policy = Policy(settings, store, clock=fake)
    backups = []
    real_backup = store.backup
    store.backup = lambda: backups.append(fake()) or real_backup()
    housekeeping = Housekeeping(policy, store, purge_every_s=6 * 3600, backup_every_s=DAY_S, clock=fake,
                                sleep=fake.sleep)
    service = AriaService(engine=None, store=store, settings=settings, policy=policy, housekeeping=housekeeping)
    settings.set("results_retention_days", 7, scope=Scope.SERVER, server=server_key("discord", "short"))
    store.save_result(record("short", "short", START))
    store.save_result(record("long", "long", START))  # the default: 30 days
    store.add_use(Actor("discord", "long", "c", "u"), kind="compose", at=START)
    store.audit(Actor("discord", "long", "c", "admin"), "setting_changed", {"name": "x"})

    await fake.run(housekeeping, START + 6.9 * DAY_S)
    assert store.get_result("short") and store.get_result("long")
    assert store.uses_since(Actor("discord", "long", "c", "u"), 0) == 0  # usage: two days

    await fake.run(housekeeping, START + 7.3 * DAY_S)
    assert store.get_result("short") is None and store.get_result("long") is not None

    await fake.run(housekeeping, START + 30.3 * DAY_S)
    assert store.get_result("long") is None
    assert store.recent_audit("discord", "long")  # the audit log is kept a year

    await fake.run(housekeeping, START + 365.3 * DAY_S)
    assert store.recent_audit("discord", "long") == []

    assert max(fake.sleeps) <= 6 * 3600  # woken for each thing due, never later
    assert backups[0] == START and len(backups) == 366  # at start, then daily
    assert (tmp_path / "aria.db.backup").is_file()
    await service.close()
    store.close()


@pytest.mark.parametrize("platform", ["discord", "slack"])
async def test_every_bot_purges_and_backs_up_its_store(tmp_path, platform):
    """Through the real entry point: rows from 40 and 400 days ago go soon after `aria bot`
    starts, recent ones stay, and a backup appears beside the store."""
    data_dir = tmp_path / "data"
    now = time.time()
    with Store(data_dir / "aria.db", clock=lambda: now - 400 * DAY_S) as store:
        store.save_result(ResultRecord("old", platform, "S", "C", "U", "mood", {}, status="done",
                                       created_at=now - 40 * DAY_S))
        store.save_result(ResultRecord("recent", platform, "S", "C", "U", "mood", {}, status="done",
                                       created_at=now - 2 * DAY_S))
        store.audit(Actor(platform, "S", "C", "admin"), "setting_changed", {"name": "x"})

    double_type = DiscordDouble if platform == "discord" else SlackDouble
    async with double_type() as double:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ARIA_")}
        env["ARIA_MODELS_DIR"] = str(tmp_path / "no-models")
        if platform == "discord":
            env.update(ARIA_DISCORD_TOKEN=double.token, ARIA_DISCORD_API_BASE=double.base_url,
                       ARIA_DISCORD_GATEWAY_URL=double.gateway_url)
        else:
            env.update(ARIA_SLACK_BOT_TOKEN=double.bot_token, ARIA_SLACK_APP_TOKEN=double.app_token,
                       ARIA_SLACK_API_BASE=double.api_base)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "bot", platform, "--data-dir", str(data_dir), cwd=ROOT, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while not _purged(data_dir / "aria.db") or not (data_dir / "aria.db.backup").is_file():
                assert process.returncode is None and time.monotonic() < deadline, "no purge or backup"
                await asyncio.sleep(0.2)
            # SIGTERM once the bot is up: its stop handler is installed when it connects
            if platform == "discord":
                await double.wait_until_connected(timeout=60)
            else:
                while not double.connected:
                    assert process.returncode is None and time.monotonic() < deadline, "never connected"
                    await asyncio.sleep(0.2)
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), 30) == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        output = (await process.stdout.read()).decode(errors="replace")
    assert "Traceback" not in output, output
    with Store(data_dir / "aria.db") as store:
        assert store.get_result("recent") is not None


def _purged(path: Path) -> bool:
    connection = sqlite3.connect(path, timeout=5)
    try:
        results = {row[0] for row in connection.execute("SELECT result_id FROM results")}
        audit = connection.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
    finally:
        connection.close()
    return results == {"recent"} and audit == 0
