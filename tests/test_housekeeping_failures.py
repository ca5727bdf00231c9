"""A failing purge must not stop the backups (the red-team audit of issue 9's fixes: when
Policy.purge_expired raised, say "database is locked", run_due raised before the backup step, so
no backup was ever made while purges failed). Runs the housekeeping loop on a fake clock."""

from __future__ import annotations

import asyncio
import logging
import sqlite3

import pytest

from bot.housekeeping import BACKUP_EVERY_S, PURGE_EVERY_S, Housekeeping
from bot.store import Store

DAY_S = 86400.0


class LockedPolicy:
    def __init__(self) -> None:
        self.calls = 0

    def purge_expired(self) -> int:
        self.calls += 1
        raise sqlite3.OperationalError("database is locked")


def run_for(housekeeping: Housekeeping, clock: list[float], seconds: float) -> None:
    async def fake_sleep(s: float) -> None:
        clock[0] += s
        if clock[0] > seconds:
            raise asyncio.CancelledError

    housekeeping._sleep = fake_sleep
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(housekeeping._run())


def test_backups_go_on_while_every_purge_fails(tmp_path, caplog):
    store = Store(tmp_path / "aria.db")
    clock = [0.0]
    backups = []
    real_backup = store.backup
    store.backup = lambda *args: backups.append(clock[0]) or real_backup(*args)
    policy = LockedPolicy()
    housekeeping = Housekeeping(policy, store, clock=lambda: clock[0])
    with caplog.at_level(logging.ERROR, logger="bot.housekeeping"):
        run_for(housekeeping, clock, 7 * DAY_S)
    expected = 7 * DAY_S / BACKUP_EVERY_S
    assert len(backups) >= expected - 1, f"{len(backups)} backups in a week of failing purges"
    assert policy.calls >= 7 * DAY_S / PURGE_EVERY_S - 1  # and the purge is still tried every round
    assert (tmp_path / "aria.db.backup").exists() or any(tmp_path.glob("aria.db.backup*"))
    assert any("database is locked" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)
    store.close()


def test_a_failing_backup_does_not_stop_the_purge(tmp_path):
    store = Store(tmp_path / "aria.db")

    def broken_backup(*args):
        raise OSError(28, "No space left on device")

    store.backup = broken_backup

    class Counting:
        calls = 0

        def purge_expired(self) -> int:
            Counting.calls += 1
            return 0

    clock = [0.0]
    housekeeping = Housekeeping(Counting(), store, clock=lambda: clock[0])
    run_for(housekeeping, clock, DAY_S)
    assert Counting.calls >= DAY_S / PURGE_EVERY_S - 1
    store.close()
