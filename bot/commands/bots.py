"""`aria bot discord` (and, later, `aria bot slack`): run a chat bot on this machine.

Out of the box it runs the embedded defaults (palette encoder, procedural composer, SoundFont
synth) in-process, with its settings, usage and results in a SQLite file in the data directory;
a fresh data directory is all it needs. Each platform registers one sub-subcommand here and
shares `add_service_arguments` and `open_service`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from pathlib import Path

from bot.commands.devices import add_device_argument, check_device

from bot.store import StoreError

log = logging.getLogger(__name__)


def default_data_dir() -> Path:
    """$ARIA_DATA_DIR, else `<user data dir>/aria/bot`."""
    configured = os.environ.get("ARIA_DATA_DIR")
    if configured:
        return Path(configured)
    from platformdirs import user_data_dir

    return Path(user_data_dir()) / "aria" / "bot"


def register(subparsers) -> None:
    bot = subparsers.add_parser("bot", help="run a chat bot (discord, slack)", description="Run ARIA as a chat bot.")
    platforms = bot.add_subparsers(dest="platform", metavar="PLATFORM", required=True)
    register_discord(platforms)
    register_slack(platforms)


def add_service_arguments(parser: argparse.ArgumentParser) -> None:
    """What every platform's bot shares: where it keeps its data, and how it runs the engine."""
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="settings, usage and results (default: $ARIA_DATA_DIR or the user data dir)")
    parser.add_argument("--models-dir", type=Path, help="model weights (default: ARIA_MODELS_DIR or the user data dir)")
    parser.add_argument("--concurrency", type=int, default=2, help="model worker threads (default: 2)")
    parser.add_argument("--redis", default=os.environ.get("ARIA_REDIS_URL"), metavar="URL",
                        help="hand jobs to `aria worker` processes through this Redis instead of running "
                             "models here (default: $ARIA_REDIS_URL)")
    parser.add_argument("--prefix", default="aria", help="Redis key prefix shared with the workers (default: aria)")
    parser.add_argument("--metrics-port", type=int, help="serve /metrics and /healthz on this port (127.0.0.1)")
    parser.add_argument("--metrics-host", default="127.0.0.1", help="address for --metrics-port")
    add_device_argument(parser)


def register_discord(platforms) -> None:
    discord = platforms.add_parser(
        "discord", help="run the Discord bot (token from ARIA_DISCORD_TOKEN)",
        description="Run the Discord bot. The token comes from ARIA_DISCORD_TOKEN; ARIA_DISCORD_API_BASE "
                    "and ARIA_DISCORD_GATEWAY_URL point it at another REST base and gateway.")
    add_service_arguments(discord)
    discord.add_argument("--test-guild", type=int, help="sync commands to this guild only (instant; for development)")
    shards = discord.add_mutually_exclusive_group()
    shards.add_argument("--auto-shard", action="store_true", help="AutoShardedClient with Discord's recommended count")
    shards.add_argument("--shards", type=int, help="AutoShardedClient with this many shards")
    discord.set_defaults(func=run_discord)


@contextlib.asynccontextmanager
async def open_service(args: argparse.Namespace, name: str = "aria"):
    """The store, engine (and metrics endpoint, if asked for) and the service over them."""
    from aria_engine.engine import MetricsServer
    from bot.service import AriaService
    from bot.store import Store

    data_dir = args.data_dir or default_data_dir()
    store = Store(data_dir / "aria.db")
    engine = _engine(args)
    metrics = None
    try:
        await engine.start()
        if args.metrics_port is not None:
            metrics = MetricsServer(engine.metrics.registry, engine.health, port=args.metrics_port,
                                    host=args.metrics_host).start()
            log.info("metrics on %s/metrics", metrics.url)
        service = AriaService(engine, store, name=name)
        await service.start()  # retention and backups on a schedule, for every platform
        try:
            yield service
        finally:
            await service.close()
    finally:
        if metrics is not None:
            metrics.close()
        await engine.close()
        store.close()


def _store_refused(error: Exception) -> int:
    """A store that cannot be used is bad input, not a crash: one line, exit 2, and under a
    restart policy the same line again rather than a traceback loop."""
    print(f"aria: {error}", file=sys.stderr)
    return 2


def _device_refused(args: argparse.Namespace) -> bool:
    """A --device that cannot be used here is refused at start, in one line."""
    from aria_engine.device import DeviceError

    try:
        check_device(args)
    except DeviceError as error:
        print(f"aria: {error}", file=sys.stderr)
        return True
    return False


def _safety_refused(args: argparse.Namespace) -> bool:
    """The image-safety gate is on by default (image_safety: refuse): with the models in this
    process its classifier must load now, or the bot does not start (one line, exit 2). With
    --redis the workers run it, and each checks it at its own start."""
    if args.redis:
        return False
    from aria_engine.safety import SafetyUnavailable, check_available

    try:
        check_available()
    except SafetyUnavailable as error:
        print(f"aria: the image-safety gate is on by default, and {error}", file=sys.stderr)
        return True
    return False


def _engine(args: argparse.Namespace):
    """Models in this process by default; with --redis, a pool of `aria worker` processes."""
    from aria_engine.engine import LocalEngine, ResultCache

    if args.redis:
        from aria_engine.engine import RedisEngine

        return RedisEngine(args.redis, prefix=args.prefix, cache=ResultCache(64 * 1024 * 1024))
    from aria_engine.pipeline import Pipeline

    return LocalEngine(Pipeline(models_dir=args.models_dir, device=args.device), concurrency=args.concurrency,
                       cache=ResultCache(64 * 1024 * 1024))


def run_discord(args: argparse.Namespace) -> int:
    from adapters.discord.config import DiscordConfig

    if args.shards is not None and args.shards < 1:
        print("aria: --shards must be at least 1", file=sys.stderr)
        return 2
    config = DiscordConfig.from_env(test_guild=args.test_guild,
                                    auto_shard=args.auto_shard, shard_count=args.shards)
    if not config.token:
        print("aria: set ARIA_DISCORD_TOKEN to the bot token (Discord developer portal > your app > Bot)",
              file=sys.stderr)
        return 2
    if _device_refused(args) or _safety_refused(args):
        return 2
    logging.getLogger().setLevel(min(logging.getLogger().level, logging.INFO))
    try:
        asyncio.run(_discord(args, config))
    except KeyboardInterrupt:
        pass
    except StoreError as error:
        return _store_refused(error)
    except Exception as error:  # a login failure, a bad token, an unreachable gateway
        import discord

        if isinstance(error, discord.LoginFailure):
            print("aria: Discord refused the token (ARIA_DISCORD_TOKEN)", file=sys.stderr)
            return 1
        raise
    return 0


async def _discord(args: argparse.Namespace, config) -> None:
    from adapters.discord.bot import run

    async with open_service(args) as service:
        await run(config, service)


# -- slack ---------------------------------------------------------------------------------------


def register_slack(platforms) -> None:
    slack = platforms.add_parser(
        "slack", help="run the Slack app (Socket Mode; --http for an endpoint)",
        description="Run the Slack app. Socket Mode by default: ARIA_SLACK_BOT_TOKEN (xoxb-) and "
                    "ARIA_SLACK_APP_TOKEN (xapp-, connections:write). With --http it serves /slack/events "
                    "and checks request signatures with ARIA_SLACK_SIGNING_SECRET. ARIA_SLACK_API_BASE points "
                    "the Web API elsewhere. The app manifest is adapters/slack/manifest.yml.")
    add_service_arguments(slack)
    slack.add_argument("--http", action="store_true",
                       help="serve Slack's Events/Interactivity requests at /slack/events instead of Socket Mode")
    slack.add_argument("--port", type=int, default=3000, help="port for --http (default: 3000)")
    slack.add_argument("--host", default="0.0.0.0", help="address for --http (default: 0.0.0.0)")
    slack.set_defaults(func=run_slack)


def run_slack(args: argparse.Namespace) -> int:
    from adapters.slack.config import SlackConfig
    from adapters.slack.runner import SlackSetupError

    config = SlackConfig.from_env(http=args.http, port=args.port, host=args.host)
    problems = config.problems()
    if problems:
        for problem in problems:
            print(f"aria: {problem}", file=sys.stderr)
        return 2
    if _device_refused(args) or _safety_refused(args):
        return 2
    logging.getLogger().setLevel(min(logging.getLogger().level, logging.INFO))
    try:
        asyncio.run(_slack(args, config))
    except KeyboardInterrupt:
        pass
    except SlackSetupError as error:
        print(f"aria: {error}", file=sys.stderr)
        return 1
    except StoreError as error:
        return _store_refused(error)
    return 0


async def _slack(args: argparse.Namespace, config) -> None:
    from adapters.slack.runner import serve

    async with open_service(args) as service:
        await serve(config, service)
