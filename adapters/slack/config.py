"""How the Slack app is set up: tokens, signing secret, transport, endpoints and limits.

`SlackConfig.from_env()` reads `ARIA_SLACK_BOT_TOKEN` (xoxb-), `ARIA_SLACK_APP_TOKEN` (xapp-,
Socket Mode), `ARIA_SLACK_SIGNING_SECRET` (HTTP mode) and `ARIA_SLACK_API_BASE`, which points
the Web API elsewhere (another Slack deployment; tests use a local double).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

SLACK_API_BASE = "https://slack.com/api/"


@dataclass
class SlackConfig:
    bot_token: str
    app_token: str = ""  # Socket Mode only
    signing_secret: str = ""  # HTTP mode only
    api_base: str | None = None
    http: bool = False  # serve /slack/events instead of Socket Mode
    host: str = "0.0.0.0"
    port: int = 3000
    path: str = "/slack/events"
    progress_interval_s: float = 2.0  # status-message edits at most this often
    jam_watch_s: float = 5.0  # how often jams past their deadline are looked for
    max_download_bytes: int = 25 * 1024 * 1024
    upload_limit_bytes: int = 50 * 1024 * 1024  # all files of one reply; Slack itself takes up to 1 GB a file
    last_image_window_s: float = 600.0  # how far back `/aria last` looks
    admin_cache_s: float = 300.0  # users.info answers (is_admin / is_owner) kept this long
    group_cache_s: float = 300.0  # user group members (allowed_roles) kept this long, unless Slack says they changed
    dedupe_window_s: float = 3600.0  # Events API retries come within minutes; remember event ids an hour

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> "SlackConfig":
        env = os.environ if env is None else env
        values = {
            "bot_token": env.get("ARIA_SLACK_BOT_TOKEN", ""),
            "app_token": env.get("ARIA_SLACK_APP_TOKEN", ""),
            "signing_secret": env.get("ARIA_SLACK_SIGNING_SECRET", ""),
            "api_base": env.get("ARIA_SLACK_API_BASE") or None,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def web_api_base(self) -> str:
        """The Web API base with the trailing slash slack_sdk needs."""
        base = self.api_base or SLACK_API_BASE
        return base if base.endswith("/") else base + "/"

    def problems(self) -> list[str]:
        """What is missing for the chosen transport, in words for the command line."""
        missing = []
        if not self.bot_token:
            missing.append("set ARIA_SLACK_BOT_TOKEN to the bot token (xoxb-...; OAuth & Permissions)")
        if self.http and not self.signing_secret:
            missing.append("set ARIA_SLACK_SIGNING_SECRET (Basic Information > Signing Secret) for --http")
        if not self.http and not self.app_token:
            missing.append("set ARIA_SLACK_APP_TOKEN to an app-level token with connections:write (xapp-...) "
                           "for Socket Mode, or use --http")
        return missing
