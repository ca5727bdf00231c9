"""Status messages change at most every 2 s, and the latest status always gets shown."""

from __future__ import annotations

import asyncio

from bot.service import Throttle


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_throttle_spaces_updates_and_keeps_the_latest():
    clock, shown = Clock(), []

    async def show(text):
        shown.append((clock.now, text))

    throttle = Throttle(show, interval_s=2.0, clock=clock)
    await throttle.update("queued")  # the first shows at once
    clock.now = 0.5
    await throttle.update("started")  # too soon: kept
    clock.now = 1.0
    await throttle.update("composing 10%")  # replaces "started"
    assert shown == [(0.0, "queued")]
    clock.now = 2.0
    await asyncio.sleep(1.6)  # the flush waits the 1.5 s the interval had left when it was set (real time)
    assert shown == [(0.0, "queued"), (2.0, "composing 10%")]
    clock.now = 4.5
    await throttle.update("composing 50%")  # the interval has passed: at once
    await throttle.update("composing 50%")  # the same text again: nothing
    assert [t for _, t in shown] == ["queued", "composing 10%", "composing 50%"]
    await throttle.update("rendering")
    await throttle.close()  # the result is about to replace the status: the pending text is dropped
    await asyncio.sleep(0.1)
    assert [t for _, t in shown] == ["queued", "composing 10%", "composing 50%"]


async def test_a_failing_status_edit_does_not_stop_the_job():
    async def broken(text):
        raise RuntimeError("Discord said no")

    throttle = Throttle(broken, interval_s=0.0)
    await throttle.update("queued")
    await throttle.update("started")
    assert throttle.shown == 2


async def test_a_slow_edit_delays_the_next_instead_of_racing_it():
    in_flight, overlaps, shown = 0, 0, []

    async def slow(text):
        nonlocal in_flight, overlaps
        in_flight += 1
        overlaps += in_flight > 1
        await asyncio.sleep(0.3)  # slower than the interval
        shown.append(text)
        in_flight -= 1

    throttle = Throttle(slow, interval_s=0.1)
    first = asyncio.create_task(throttle.update("queued"))
    await asyncio.sleep(0.15)  # the interval has passed, but "queued" is still on its way
    await throttle.update("started")
    await throttle.update("composing 10%")
    await first
    await asyncio.sleep(0.6)
    assert overlaps == 0
    assert shown == ["queued", "composing 10%"]


async def test_close_waits_for_an_edit_on_its_way_and_then_ignores_updates():
    finished = []

    async def slow(text):
        await asyncio.sleep(0.2)
        finished.append(text)

    throttle = Throttle(slow, interval_s=0.05)
    await throttle.update("queued")
    await throttle.update("started")  # too soon: the flush sends it after 0.05 s
    await asyncio.sleep(0.1)  # now "started" is on its way
    await throttle.close()  # must not cut it off: it would land after the result otherwise
    assert finished == ["queued", "started"]
    await throttle.update("rendering")
    await asyncio.sleep(0.1)
    assert finished == ["queued", "started"] and throttle.shown == 2


async def test_close_during_an_edit_from_update_does_not_wait_out_the_interval():
    async def slow(text):
        await asyncio.sleep(0.2)

    throttle = Throttle(slow, interval_s=5.0)
    first = asyncio.create_task(throttle.update("queued"))  # shown at once, from update() itself
    await asyncio.sleep(0.05)
    await throttle.update("started")  # kept for a flush, which waits for "queued" to land
    began = asyncio.get_running_loop().time()
    await throttle.close()
    await first
    assert asyncio.get_running_loop().time() - began < 1.0  # not the 5 s interval
    assert throttle.shown == 1
