"""Runs the real ARIA Discord bot (real discord.py, real engine, real SQLite) against the local
Discord double, for the tests in tests/test_discord*.py."""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from adapters.discord.bot import create_bot
from adapters.discord.config import DiscordConfig
from aria_engine.engine import LocalEngine
from aria_engine.pipeline import Pipeline
from bot.service import AriaService
from bot.settings import Scope, Settings
from bot.store import Store
from tests.doubles.discord_api import DiscordDouble

READY_TIMEOUT_S = 20.0


class FakeClock:
    """Monotonic time that a test can move forward (interaction tokens, cooldowns)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class RunningBot:
    bot: object
    service: AriaService
    engine: LocalEngine
    store: Store
    config: DiscordConfig
    task: asyncio.Task
    clock: FakeClock
    data_dir: Path


def picture(colour=(240, 200, 40), size=(64, 48), fmt="PNG") -> bytes:
    """A small real picture: warm yellow by default (reads as pleasant)."""
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format=fmt)
    return buffer.getvalue()


def quick_settings(store: Store, **values) -> None:
    """Global settings that keep pieces short and limits out of the way unless a test sets them."""
    settings = Settings(store)
    defaults = {"max_duration_s": 2, "cooldown_s": 0, "daily_quota": 0}
    for name, value in {**defaults, **values}.items():
        settings.set(name, value, scope=Scope.GLOBAL)


@contextlib.asynccontextmanager
async def running_bot(double: DiscordDouble, data_dir: Path, *, shard_count: int | None = None,
                      auto_shard: bool = False, test_guild: int | None = None, clock: FakeClock | None = None,
                      settings: dict | None = None, engine: LocalEngine | None = None):
    """The bot logged into the double and ready; closed (with its engine and store) afterwards."""
    clock = clock or FakeClock()
    store = Store(data_dir / "aria.db")
    quick_settings(store, **(settings or {}))
    engine = engine or LocalEngine(Pipeline(), concurrency=1, progress_interval_s=0.05)
    service = AriaService(engine, store)
    config = DiscordConfig(token=double.token, data_dir=data_dir, api_base=double.api_base,
                           gateway_url=double.gateway_url, guild_ready_timeout=0.05, clock=clock,
                           shard_count=shard_count, auto_shard=auto_shard, test_guild=test_guild)
    bot = create_bot(config, service)
    task = asyncio.create_task(bot.start(config.token))
    try:
        ready = asyncio.create_task(bot.wait_until_ready())
        done, _ = await asyncio.wait({ready, task}, timeout=READY_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            ready.cancel()
            task.result()  # raises what stopped the bot
            raise RuntimeError("the bot stopped before it was ready")
        if ready not in done:
            raise TimeoutError(f"the bot was not ready within {READY_TIMEOUT_S} s; double errors: {double.errors}")
        yield RunningBot(bot, service, engine, store, config, task, clock, data_dir)
    finally:
        await bot.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
        await engine.close()
        store.close()
