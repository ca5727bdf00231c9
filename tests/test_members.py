"""bot.members without a platform: a forget cancels the member's queued jobs in the real engine,
and retention (bot.housekeeping) reaches the member data the results' retention does not: jam
contributions past the server's results_retention_days."""

from __future__ import annotations

import asyncio

import pytest

from aria_engine.emotion import Emotion
from aria_engine.engine import LocalEngine
from aria_engine.engine.jobs import Cancelled
from aria_engine.options import GenerationOptions
from aria_engine.pipeline import Pipeline
from bot.jam_store import OPEN, Jam, JamBook
from bot.policy import Actor
from bot.service import AriaService
from bot.settings import Scope
from bot.store import DAY_S, Store

pytestmark = pytest.mark.timeout(120)
START = 1_800_000_000.0


async def test_forget_cancels_the_members_queued_jobs_and_leaves_others(tmp_path):
    store = Store(tmp_path / "aria.db")
    engine = LocalEngine(Pipeline(), concurrency=1, progress_interval_s=0.05)
    service = AriaService(engine, store)
    for name, value in {"cooldown_s": 0, "daily_quota": 0, "max_duration_s": 120}.items():
        service.settings.set(name, value, scope=Scope.GLOBAL)
    bob = Actor("slack", "T1", "C1", "UBOB")
    alice = Actor("slack", "T1", "C1", "UALICE")
    try:
        await engine.start()
        tickets = {}
        for who, seconds in ((bob, 90), (alice, 5)):
            admission = service.admit(who, GenerationOptions(duration_s=seconds), kind="mood")
            tickets[who.user_id] = await service.submit(admission, emotion=Emotion(0.2, 0.1))
        forgotten = await service.members.forget(alice)
        assert (forgotten.cancelled, forgotten.results, forgotten.uses) == (1, 1, 1)
        end = [e async for e in tickets["UALICE"].job.events()][-1]
        assert isinstance(end, Cancelled)
        assert not tickets["UBOB"].job.done  # bob's piece goes on
        assert [r.user_id for r in store.unfinished_results()] == ["UBOB"]
        engine.cancel(tickets["UBOB"].result_id, by="test")
    finally:
        await engine.close()
        store.close()


def test_retention_purges_old_jam_contributions_on_the_housekeeping_round(tmp_path):
    now = [START]
    store = Store(tmp_path / "aria.db", clock=lambda: now[0])
    service = AriaService(None, store)
    service.policy.clock = lambda: now[0]
    service.housekeeping._clock = lambda: now[0]
    service.settings.set("results_retention_days", 7, scope=Scope.SERVER, server="discord:G1")
    book = JamBook(store)
    book.create(Jam("j1", "discord", "G1", "C1", "UHOST", "host", "a jam", OPEN, START + 60, 8, {}, None), START)
    old = book.add("j1", "UOLD", "old", "mood", Emotion(0.1, 0.1), "explicit", "", START - 8 * DAY_S)
    recent = book.add("j1", "UNEW", "new", "mood", Emotion(0.2, 0.2), "explicit", "", START - 1 * DAY_S)
    service.housekeeping.run_due()
    kept = [e.entry_id for e in book.get("j1").entries]
    assert old not in kept and recent in kept
    store.close()
