"""Retention and backups on a schedule, in every long-running process that owns the store.

Both bots start one through `AriaService.start()` (bot/commands/bots.py does it for every
platform), so no adapter has its own. Each round, on a worker thread so the event loop never
waits on SQLite:

- retention (`Policy.purge_expired`): results past each server's `results_retention_days`,
  usage rows past the quota's window, audit entries past `AUDIT_KEPT_DAYS`; at start and every
  `purge_every_s`;
- a backup (`Store.backup`, sqlite3's online backup API) to `aria.db.backup` beside the store;
  at start and every `backup_every_s`. `aria admin restore` puts it back.

The clock and the sleep are injected, so a test can run weeks of schedule in milliseconds.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Awaitable, Callable

log = logging.getLogger(__name__)

PURGE_EVERY_S = 3600.0
BACKUP_EVERY_S = 6 * 3600.0


class Housekeeping:
    """Runs what is due, sleeps until the next thing is due, again; `stop()` ends it."""

    def __init__(self, policy, store, *, purge_every_s: float = PURGE_EVERY_S,
                 backup_every_s: float | None = BACKUP_EVERY_S, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, members=None) -> None:
        self.policy = policy
        self.members = members  # bot.members.MemberData: the member data results' retention misses
        self.store = store
        self.purge_every_s = purge_every_s
        self.backup_every_s = backup_every_s if str(store.path) != ":memory:" else None
        self._clock = clock
        self._sleep = sleep
        self._next_purge = self._next_backup = None
        self._task: asyncio.Task | None = None
        self._round = threading.Lock()  # held while a round runs in its thread
        self.purged = 0  # results removed so far, for tests and logs

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="aria-housekeeping")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            # A round already in its thread goes on after the cancel: wait for it, so that the store
            # is not closed under it (a quick stop, e.g. a bad token, raced it into tracebacks).
            await asyncio.to_thread(lambda: self._round.acquire() and self._round.release())

    def run_due(self) -> None:
        """Do whatever is due now (blocking: call it on a worker thread). Each step is tried on its
        own: a purge that fails (say, the database locked by another process) must not also stop
        the backup. The first failure is raised once both were tried; any other is logged."""
        with self._round:
            self._run_due()

    def _run_due(self) -> None:
        now = self._clock()
        failures: list[Exception] = []
        if self._next_purge is None or now >= self._next_purge:
            self._next_purge = now + self.purge_every_s
            try:
                removed = self.policy.purge_expired()
                if self.members is not None:
                    self.members.purge_expired(now)
                self.purged += removed
                if removed:
                    log.info("retention: forgot %d results past their servers' retention", removed)
            except Exception as error:
                failures.append(error)
        if self.backup_every_s is not None and (self._next_backup is None or now >= self._next_backup):
            self._next_backup = now + self.backup_every_s
            try:
                log.info("backed up the store to %s", self.store.backup())
            except Exception as error:
                failures.append(error)
        for later in failures[1:]:
            log.error("housekeeping: the backup failed too", exc_info=later)
        if failures:
            raise failures[0]

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.run_due)
            except asyncio.CancelledError:
                raise
            except Exception:  # a full disk must not stop the bot; the next round tries again
                log.exception("housekeeping failed; trying again at the next round")
            due = [t for t in (self._next_purge, self._next_backup if self.backup_every_s else None) if t]
            await self._sleep(max(1.0, min(due) - self._clock()))
