"""Runs the real ARIA Discord bot (real discord.py, real engine, real SQLite) against the local
Discord double, for the tests in tests/test_discord*.py."""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from adapters.discord.bot import create_bot
from adapters.discord.config import DiscordConfig
from aria_engine.engine import LocalEngine
from aria_engine.options import MODES
from aria_engine.pipeline import Pipeline
from bot.service import AriaService
from bot.settings import Scope, Settings
from bot.store import Store
from tests.doubles.discord_api import MANAGE_GUILD, MANAGE_MESSAGES, DiscordDouble, Interaction, Message

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


def neural_engine(models_dir: Path) -> LocalEngine:
    """An engine whose `auto` composer is the transformer in every mode: tiny random-weight
    checkpoints (a few hundred tokens take about a second). Limit pieces with max_length."""
    pytest.importorskip("torch")  # a chat-only install has no torch: these tests skip there
    from tests.factories.music import make_music_checkpoint

    for mode in MODES:
        make_music_checkpoint(models_dir / mode, mode)
    return LocalEngine(Pipeline(models_dir=models_dir), concurrency=1, progress_interval_s=0.05)


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
                      settings: dict | None = None, engine: LocalEngine | None = None, jam_watch_s: float = 5.0,
                      message_content: bool = False, progress_interval_s: float = 2.0):
    """The bot logged into the double and ready; closed (with its engine and store) afterwards."""
    clock = clock or FakeClock()
    store = Store(data_dir / "aria.db")
    quick_settings(store, **(settings or {}))
    engine = engine or LocalEngine(Pipeline(), concurrency=1, progress_interval_s=0.05)
    service = AriaService(engine, store)
    config = DiscordConfig(token=double.token, api_base=double.api_base,
                           gateway_url=double.gateway_url, guild_ready_timeout=0.05, clock=clock,
                           shard_count=shard_count, auto_shard=auto_shard, test_guild=test_guild,
                           jam_watch_s=jam_watch_s, message_content=message_content,
                           progress_interval_s=progress_interval_s)
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


# -- a small world to test in --------------------------------------------------------------------

RESULT_TIMEOUT_S = 60.0  # generous: the machine's two cores are shared


@dataclass
class World:
    guild: object
    general: object
    quiet: object
    alice: object
    bob: object
    moderator: object
    admin: object
    mod_role: object
    admin_role: object


def make_world(double: DiscordDouble, name: str = "cafe") -> World:
    guild = double.add_guild(name, channels=("general", "quiet", "audit-log"))
    mod_role = double.add_role(guild, "moderators", MANAGE_MESSAGES)
    admin_role = double.add_role(guild, "admins", MANAGE_GUILD)
    alice, bob = double.add_user(f"{name}-alice"), double.add_user(f"{name}-bob")
    moderator, admin = double.add_user(f"{name}-mod"), double.add_user(f"{name}-admin")
    double.add_member(guild, moderator, (mod_role,))
    double.add_member(guild, admin, (admin_role,))
    return World(guild, guild.channel("general"), guild.channel("quiet"), alice, bob, moderator, admin,
                 mod_role, admin_role)


def has_result(message: Message | None) -> bool:
    return message is not None and not message.deleted and message.file(".mid") is not None


async def result_of(double: DiscordDouble, interaction: Interaction, timeout: float = RESULT_TIMEOUT_S) -> Message:
    """The message that carries this interaction's piece (its response, or a channel message)."""
    def find():
        for message in interaction.messages:
            if has_result(message):
                return message
        return None
    return await double.wait_for(find, timeout, f"the result of interaction {interaction.id}")


async def ephemeral_answer(double: DiscordDouble, interaction: Interaction, timeout: float = 30.0) -> Message:
    """The first ephemeral message this interaction produced (a refusal, usually)."""
    return await double.wait_for(
        lambda: next((m for m in interaction.messages if m.ephemeral and not m.loading and not m.deleted), None),
        timeout, f"an ephemeral answer to interaction {interaction.id}")
