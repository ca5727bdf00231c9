"""A clock the test moves by hand (`clock.now += 3600`), for the store, policy and jam rules."""

from __future__ import annotations


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
