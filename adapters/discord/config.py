"""How the Discord bot is set up: token, data directory, endpoints, sharding, clocks.

`DiscordConfig.from_env()` reads `ARIA_DISCORD_TOKEN`, `ARIA_DISCORD_API_BASE` and
`ARIA_DISCORD_GATEWAY_URL`. The two endpoint overrides exist for large deployments that route
REST through a rate-limit proxy, and for tests, which point both at a local Discord double.
`ARIA_DISCORD_MESSAGE_CONTENT=1` asks for the privileged Message Content intent (it must also be
switched on in the Developer Portal), so that pictures posted in a jam's thread join the jam;
without it ARIA asks for no privileged intent.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

from bot.downloads import AllowedOrigins, origin_of_base

DISCORD_ATTACHMENT_ORIGINS = ("https://cdn.discordapp.com", "https://media.discordapp.net")
TOKEN_LIFETIME_S = 15 * 60  # an interaction token's life, after which only the channel is left


@dataclass
class DiscordConfig:
    token: str
    test_guild: int | None = None  # sync commands to this guild only (instant, for development)
    auto_shard: bool = False  # AutoShardedClient with Discord's recommended shard count
    shard_count: int | None = None  # AutoShardedClient with exactly this many shards
    api_base: str | None = None  # REST base, e.g. "http://proxy:8080/api/v10"
    gateway_url: str | None = None  # gateway websocket, e.g. "ws://127.0.0.1:9000/"
    guild_ready_timeout: float = 2.0  # discord.py waits this long after the last GUILD_CREATE
    progress_interval_s: float = 2.0  # status-message edits at most this often
    jam_watch_s: float = 5.0  # how often jams past their deadline are looked for
    token_lifetime_s: float = TOKEN_LIFETIME_S
    token_margin_s: float = 30.0  # switch to a channel message this long before the token dies
    max_download_bytes: int = 25 * 1024 * 1024
    message_content: bool = False  # the privileged Message Content intent: pictures posted in a jam's thread count
    notice_lifetime_s: float = 20.0  # a refusal answering a posted message deletes itself after this long
    dedupe_window_s: float = 3600.0  # interaction ids seen are remembered this long (their tokens live 15 min)
    clock: Callable[[], float] = field(default=time.monotonic)  # tests substitute a clock they move

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> "DiscordConfig":
        env = os.environ if env is None else env
        values = {
            "token": env.get("ARIA_DISCORD_TOKEN", ""),
            "api_base": env.get("ARIA_DISCORD_API_BASE") or None,
            "gateway_url": env.get("ARIA_DISCORD_GATEWAY_URL") or None,
            "message_content": env.get("ARIA_DISCORD_MESSAGE_CONTENT", "").strip().lower() in ("1", "true", "yes", "on"),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def intents(self):
        """Guilds only (slash commands and components need nothing privileged); with
        `message_content`, the guild messages and their content too (the jam thread's pictures)."""
        import discord

        if self.message_content:
            return discord.Intents(guilds=True, guild_messages=True, message_content=True)
        return discord.Intents(guilds=True)

    @property
    def sharded(self) -> bool:
        return self.auto_shard or self.shard_count is not None

    @property
    def rest_base(self) -> str | None:
        """The REST base with the API version, whether or not the override included it."""
        if not self.api_base:
            return None
        base = self.api_base.rstrip("/")
        return base if re.search(r"/api/v\d+$", base) else base + "/api/v10"

    def attachment_origins(self) -> AllowedOrigins:
        """Where attachments may be downloaded from, by scheme, host and port: Discord's CDN and
        the configured API base's origin."""
        return AllowedOrigins([*DISCORD_ATTACHMENT_ORIGINS, *origin_of_base(self.api_base)])
