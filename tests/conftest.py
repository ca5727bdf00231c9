"""Fixtures that several test modules share, defined once.

Optional extras (aiohttp and the chat clients, redis, torch) are imported inside the fixtures,
never here at the top: a core install (no extras) must still collect the whole suite, and the
modules that need an extra skip themselves with `pytest.importorskip` at their top.
"""

from __future__ import annotations

import io

import pytest

PLATFORMS = ("discord", "slack")


def _platform_double(platform: str):
    """A fresh, not yet started, double of one chat platform's API (tests/doubles/)."""
    if platform == "discord":
        from tests.doubles.discord_api import DiscordDouble
        return DiscordDouble()
    from tests.doubles.slack_api import SlackDouble
    return SlackDouble()


def _module_platform(request) -> str:
    name = request.module.__name__.rsplit(".", 1)[-1]
    for platform in PLATFORMS:
        if name.startswith(f"test_{platform}_"):
            return platform
    raise pytest.UsageError(f"{name}: the `double` fixture is for test_discord_* and test_slack_* modules; "
                            "ask for discord_double or slack_double instead")


@pytest.fixture
async def double(request):
    """The running double of the platform a test_discord_* or test_slack_* module is about,
    read from the module's name, so a module's tests just say `double`."""
    async with _platform_double(_module_platform(request)) as running:
        yield running


@pytest.fixture
async def discord_double():
    """The local Discord double (REST and gateway on loopback), running."""
    async with _platform_double("discord") as running:
        yield running


@pytest.fixture
async def slack_double():
    """The local Slack double (Web API, Socket Mode and HTTP events on loopback), running."""
    async with _platform_double("slack") as running:
        yield running


def _warm_picture() -> bytes:
    """The harnesses' default picture: 64x48 warm yellow PNG (reads as pleasant)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (240, 200, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
async def elsewhere():
    """A loopback host that is not the platform, serving a picture at any path and recording
    every request, so a test can show that nothing (above all no token) was sent there."""
    from tests.doubles.elsewhere import Elsewhere

    async with Elsewhere(body=_warm_picture()) as running:
        yield running


@pytest.fixture
def redis_aof() -> bool:
    """Whether `server` keeps an append-only file. Off, as it is quicker; a module whose tests
    restart Redis and expect their jobs back overrides this fixture to return True."""
    return False


@pytest.fixture
def server(tmp_path, redis_aof):
    """A real redis-server of this test's own (free loopback port, folder under tmp_path)."""
    from tests.redis_server import RedisServer

    with RedisServer(tmp_path / "redis", aof=redis_aof) as running:
        yield running


@pytest.fixture(scope="module")
def pipeline():
    """The embedded defaults' pipeline (palette encoder, procedural composer), shared by a module's
    tests so that the renderer and composers it loads on first use load once."""
    from aria_engine.pipeline import Pipeline

    return Pipeline()


MUSIC_MODES = ("none", "discrete_token", "continuous_token", "continuous_concat")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny random-weight music model for each conditioning mode (seed 11), loaded, shared by
    a module's tests; needs torch."""
    from aria_engine.music.transformer import load_checkpoint
    from tests.factories.music import make_music_checkpoint

    root = tmp_path_factory.mktemp("music")
    return {mode: load_checkpoint(make_music_checkpoint(root / mode, mode, seed=11)) for mode in MUSIC_MODES}
