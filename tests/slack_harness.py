"""Runs the real ARIA Slack app (real slack_bolt and slack_sdk, real engine, real SQLite) against
the local Slack double, over Socket Mode or HTTP, for the tests in tests/test_slack*.py."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from adapters.slack.config import SlackConfig
from adapters.slack.runner import HttpRunner, SocketModeRunner, make_runner
from aria_engine.engine import LocalEngine
from aria_engine.options import MODES
from aria_engine.pipeline import Pipeline
from bot.service import AriaService
from bot.settings import Scope, Settings
from bot.store import Store
from tests.doubles.slack_api import Channel, SlackDouble, Team, User

CONNECT_TIMEOUT_S = 20.0
RESULT_TIMEOUT_S = 90.0  # generous: the machine's two cores are shared


@dataclass
class RunningApp:
    runner: SocketModeRunner | HttpRunner
    service: AriaService
    engine: LocalEngine
    store: Store
    config: SlackConfig

    @property
    def adapter(self):
        return self.runner.adapter


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
    for name, value in {"max_duration_s": 4, "cooldown_s": 0, "daily_quota": 0, **values}.items():
        settings.set(name, value, scope=Scope.GLOBAL)


@contextlib.asynccontextmanager
async def running_app(double: SlackDouble, data_dir: Path, *, transport: str = "socket",
                      settings: dict | None = None, engine: LocalEngine | None = None,
                      progress_interval_s: float = 0.3, **config):
    """The app connected to the double (Socket Mode) or serving it (HTTP); closed afterwards."""
    store = Store(data_dir / "aria.db")
    quick_settings(store, **(settings or {}))
    engine = engine or LocalEngine(Pipeline(), concurrency=1, progress_interval_s=0.05)
    await engine.start()
    service = AriaService(engine, store)
    slack_config = SlackConfig(bot_token=double.bot_token, app_token=double.app_token,
                               signing_secret=double.signing_secret, api_base=double.api_base,
                               http=transport == "http", host="127.0.0.1", port=0,
                               progress_interval_s=progress_interval_s, **config)
    runner = make_runner(slack_config, service)
    try:
        await runner.start()
        double.transport = transport
        if transport == "http":
            double.events_url = runner.url
        else:
            await double.wait_for(lambda: double.connected, CONNECT_TIMEOUT_S, "the Socket Mode connection")
        yield RunningApp(runner, service, engine, store, slack_config)
    finally:
        await runner.close()
        await engine.close()
        store.close()


# -- a small world to test in -----------------------------------------------------------------------


@dataclass
class World:
    team: Team
    general: Channel
    quiet: Channel
    alice: User
    bob: User
    admin: User
    owner: User


def make_world(double: SlackDouble, name: str = "cafe") -> World:
    team = double.add_team(name)
    return World(team, double.add_channel(team, "general"), double.add_channel(team, "quiet"),
                 double.add_user(team, f"{name}-alice"), double.add_user(team, f"{name}-bob"),
                 double.add_user(team, f"{name}-admin", is_admin=True),
                 double.add_user(team, f"{name}-owner", is_owner=True))


def result_message(double: SlackDouble, channel: Channel, thread_ts: str | None = None) -> dict | None:
    """The bot's finished readout (the message with the Variation button), in a thread or anywhere."""
    for message in double.bot_messages(channel.id):
        if thread_ts and thread_ts not in (message.get("thread_ts"), message["ts"]):
            continue
        if has_action(message, "aria_variation"):
            return message
    return None


async def wait_for_result(double: SlackDouble, channel: Channel, thread_ts: str | None = None,
                          timeout: float = RESULT_TIMEOUT_S) -> dict:
    return await double.wait_for(lambda: result_message(double, channel, thread_ts), timeout,
                                 f"a result in {channel.name} (thread {thread_ts})")


async def wait_for_ephemeral(double: SlackDouble, user: User, timeout: float = 30.0, after: int = 0) -> dict:
    """The first ephemeral message this user got (after the first `after` ones)."""
    def find():
        mine = double.ephemerals_for(user)
        return mine[after] if len(mine) > after else None
    return await double.wait_for(find, timeout, f"an ephemeral message for {user.name}")


def has_action(message: dict | None, action_id: str) -> bool:
    return message is not None and any(el.get("action_id") == action_id for b in message.get("blocks") or []
                                       for el in b.get("elements", []))


async def wait_for_status(double: SlackDouble, channel: Channel, timeout: float = 30.0) -> dict:
    """The first status message in a channel once it offers Cancel (right after the job is queued)."""
    return await double.wait_for(
        lambda: next((m for m in double.bot_messages(channel.id) if has_action(m, "aria_cancel")), None),
        timeout, f"a status message with a Cancel button in {channel.name}")
