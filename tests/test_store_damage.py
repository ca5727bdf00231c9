"""A damaged store stops `aria bot discord|slack` with one line and exit 2 (not a traceback, so
no crash loop under `restart: unless-stopped`), the file is left byte for byte as it was, and
`aria admin restore` puts the backup the bots keep beside it back."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("discord")
pytest.importorskip("slack_bolt")

from bot.store import ResultRecord, Store  # noqa: E402
from tests.doubles.discord_api import DiscordDouble  # noqa: E402
from tests.doubles.slack_api import SlackDouble  # noqa: E402

pytestmark = pytest.mark.timeout(300)
ROOT = Path(__file__).resolve().parents[1]
PAGE = 4096


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + ".backup")  # beside the store


def a_store(path: Path, *, backup: bool = False) -> None:
    """A store with enough rows to span many pages."""
    with Store(path) as store:
        for i in range(300):
            store.save_result(ResultRecord(f"r{i}", "discord", "1", "2", "3", "mood", {"pad": "x" * 500}))
        if backup:
            store.backup()


def bad_header(data: bytes) -> bytes:
    return b"NOT A DATABASE!\x00" + data[16:]


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 3 + 100]


def damaged_pages(data: bytes) -> bytes:
    damaged = bytearray(data)
    for page in (2, 5, 9):
        damaged[page * PAGE + 8 : page * PAGE + 400] = bytes(range(256)) + bytes(136)
    return bytes(damaged)


DAMAGE = {"bad header": bad_header, "truncated": truncated, "damaged pages": damaged_pages}


def sqlite_sees_damage(path: Path) -> bool:
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return connection.execute("PRAGMA quick_check").fetchall() != [("ok",)]
        finally:
            connection.close()
    except sqlite3.DatabaseError:
        return True


def damaged_store(tmp_path: Path, kind: str, *, backup: bool = False) -> tuple[Path, bytes]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    path = data_dir / "aria.db"
    a_store(path, backup=backup)
    for leftover in ("-wal", "-shm"):
        Path(str(path) + leftover).unlink(missing_ok=True)
    path.write_bytes(DAMAGE[kind](path.read_bytes()))
    assert sqlite_sees_damage(path)
    return data_dir, path.read_bytes()


async def run_bot(platform: str, data_dir: Path, tmp_path: Path) -> tuple[int, str]:
    """`aria bot PLATFORM` against the platform's double; its exit code and stderr."""
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
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        try:
            _, stderr = await asyncio.wait_for(process.communicate(), 60)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    return process.returncode, stderr.decode(errors="replace")


@pytest.mark.parametrize("platform", ["discord", "slack"])
@pytest.mark.parametrize("kind", list(DAMAGE))
async def test_a_damaged_store_stops_the_bot_with_one_line(tmp_path, platform, kind):
    data_dir, damaged = damaged_store(tmp_path, kind)
    code, stderr = await run_bot(platform, data_dir, tmp_path)
    assert code == 2, stderr
    assert "Traceback" not in stderr
    [line] = stderr.strip().splitlines()
    assert line.startswith("aria: the store ") and "is damaged" in line, line
    assert "move the file away" in line  # no backup here: says what to do instead
    assert (data_dir / "aria.db").read_bytes() == damaged


async def test_the_refusal_points_at_the_backup_and_restore_brings_it_back(tmp_path):
    data_dir, damaged = damaged_store(tmp_path, "damaged pages", backup=True)
    code, stderr = await run_bot("discord", data_dir, tmp_path)
    assert code == 2 and "aria admin restore --data-dir" in stderr, stderr
    assert (data_dir / "aria.db").read_bytes() == damaged

    aria = Path(sys.executable).with_name("aria")
    run = subprocess.run([str(aria), "admin", "restore", "--data-dir", str(data_dir)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    [kept] = [p for p in data_dir.glob("aria.db.damaged-*") if p.name[-1].isdigit()]
    assert kept.read_bytes() == damaged  # kept, never deleted
    with Store(data_dir / "aria.db") as store:
        assert store.get_result("r299") is not None

    again = subprocess.run([str(aria), "admin", "restore", "--data-dir", str(data_dir)],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "not damaged" in again.stderr and "--force" in again.stderr


def test_a_backup_is_refreshed_only_with_a_sound_copy(tmp_path):
    path = tmp_path / "aria.db"
    a_store(path, backup=True)
    first = backup_path(path).read_bytes()
    with Store(path) as store:
        store.save_result(ResultRecord("new", "slack", "T", "C", "U", "mood", {}))
        store.backup()
    with Store(backup_path(path)) as copy:
        assert copy.get_result("new") is not None
    assert backup_path(path).read_bytes() != first
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize("platform", ["discord", "slack"])
async def test_a_data_dir_that_is_a_file_is_one_line(tmp_path, platform):
    not_a_folder = tmp_path / "data"
    not_a_folder.write_text("a file")
    code, stderr = await run_bot(platform, not_a_folder, tmp_path)
    assert code == 2 and "Traceback" not in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1
