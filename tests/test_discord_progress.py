"""Status messages change at most every 2 s, and the latest status always gets shown.

The Throttle runs on a virtual clock here (its `clock` and `sleep`), so the tests move time
themselves and never wait for it."""

from __future__ import annotations

import asyncio
import heapq
import itertools

from bot.service import Throttle


class VirtualClock:
    """Time that moves only when the test says so; `sleep` waits on this time, not real time."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future]] = []
        self._order = itertools.count()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        wake = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(seconds, 0.0), next(self._order), wake))
        await wake

    async def advance(self, seconds: float) -> None:
        """Move time on by `seconds`, waking each sleeper at its deadline in order and letting
        what it woke run (and sleep again) before time moves past that deadline."""
        until = self.now + seconds
        await settle()
        while self._sleepers and self._sleepers[0][0] <= until:
            deadline, _, wake = heapq.heappop(self._sleepers)
            self.now = max(self.now, deadline)
            if not wake.done():  # a cancelled sleeper
                wake.set_result(None)
            await settle()
        self.now = until
        await settle()


async def settle(turns: int = 20) -> None:
    """Let every task that can run do so, until each waits again (on the clock, a lock or the test)."""
    for _ in range(turns):
        await asyncio.sleep(0)


async def test_throttle_spaces_updates_and_keeps_the_latest():
    clock, shown = VirtualClock(), []

    async def show(text):
        shown.append((clock.now, text))

    throttle = Throttle(show, interval_s=2.0, clock=clock, sleep=clock.sleep)
    await throttle.update("queued")  # the first shows at once
    await clock.advance(0.5)
    await throttle.update("started")  # too soon: kept for when the interval is up
    await clock.advance(0.5)
    await throttle.update("composing 10%")  # replaces "started"
    await clock.advance(0.75)
    assert shown == [(0.0, "queued")]
    await clock.advance(0.25)  # 2 s after "queued": the latest text, at once
    assert shown == [(0.0, "queued"), (2.0, "composing 10%")]
    await clock.advance(2.5)
    await throttle.update("composing 50%")  # the interval has passed: at once
    await throttle.update("composing 50%")  # the same text again: nothing
    assert shown[2:] == [(4.5, "composing 50%")]
    await throttle.update("rendering")  # too soon: kept...
    await throttle.close()  # ...and dropped: the result is about to replace the status
    await clock.advance(10.0)
    assert [t for _, t in shown] == ["queued", "composing 10%", "composing 50%"]


async def test_a_failing_status_edit_does_not_stop_the_job():
    async def broken(text):
        raise RuntimeError("Discord said no")

    throttle = Throttle(broken, interval_s=0.0)
    await throttle.update("queued")
    await throttle.update("started")
    assert throttle.shown == 2


async def test_a_slow_edit_delays_the_next_instead_of_racing_it():
    clock, in_flight, overlaps, shown = VirtualClock(), 0, 0, []

    async def slow(text):
        nonlocal in_flight, overlaps
        in_flight += 1
        overlaps += in_flight > 1
        await clock.sleep(3.0)  # slower than the interval
        shown.append((clock.now, text))
        in_flight -= 1

    throttle = Throttle(slow, interval_s=1.0, clock=clock, sleep=clock.sleep)
    first = asyncio.create_task(throttle.update("queued"))
    await clock.advance(1.5)  # the interval has passed, but "queued" is still on its way
    await throttle.update("started")
    await throttle.update("composing 10%")
    await clock.advance(1.5)  # "queued" lands; the interval runs from now
    await first
    await clock.advance(0.75)
    assert shown == [(3.0, "queued")]
    await clock.advance(3.25)  # the next edit began at 4 s and took 3 s
    assert overlaps == 0
    assert shown == [(3.0, "queued"), (7.0, "composing 10%")]


async def test_close_waits_for_an_edit_on_its_way_and_then_ignores_updates():
    clock, finished = VirtualClock(), []

    async def slow(text):
        await clock.sleep(2.0)
        finished.append(text)

    throttle = Throttle(slow, interval_s=0.5, clock=clock, sleep=clock.sleep)
    first = asyncio.create_task(throttle.update("queued"))
    await clock.advance(2.0)
    await first
    await throttle.update("started")  # too soon: the flush sends it half a second later
    await clock.advance(1.0)  # now "started" is on its way; it lands at 4.5 s
    closing = asyncio.create_task(throttle.close())
    await clock.advance(1.0)
    assert not closing.done()  # must not cut it off: it would land after the result otherwise
    await clock.advance(0.5)
    await closing
    assert finished == ["queued", "started"]
    await throttle.update("rendering")
    await clock.advance(10.0)
    assert finished == ["queued", "started"] and throttle.shown == 2


async def test_close_during_an_edit_from_update_does_not_wait_out_the_interval():
    clock = VirtualClock()

    async def slow(text):
        await clock.sleep(2.0)

    throttle = Throttle(slow, interval_s=50.0, clock=clock, sleep=clock.sleep)
    first = asyncio.create_task(throttle.update("queued"))  # shown at once, from update() itself
    await clock.advance(0.5)
    await throttle.update("started")  # kept for a flush, which waits for "queued" to land
    closing = asyncio.create_task(throttle.close())
    await clock.advance(1.5)  # "queued" lands
    assert first.done() and closing.done()  # then, not after the 50 s interval
    await closing
    assert throttle.shown == 1
