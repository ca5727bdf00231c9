"""Running the Slack app: Socket Mode (the default: no public URL needed) or HTTP.

Socket Mode opens a websocket to Slack with the app-level token and acknowledges each envelope
on it. HTTP serves `POST /slack/events` for Events, slash commands and interactivity; bolt checks
each request's signature (a bad, stale or missing one gets 401 before any listener runs). Both
start with `await runner.start()` and stop with `await runner.close()`; `serve()` runs until
SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_sdk.errors import SlackApiError

from adapters.slack.app import SlackAdapter, create_app
from adapters.slack.config import SlackConfig

log = logging.getLogger(__name__)


class SlackSetupError(RuntimeError):
    """The tokens or the endpoint are wrong; the message says which, for the command line."""


async def check_bot_token(adapter: SlackAdapter) -> dict:
    try:
        return await adapter.client.auth_test()
    except SlackApiError as error:
        raise SlackSetupError(f"Slack refused the bot token (ARIA_SLACK_BOT_TOKEN): "
                              f"{error.response.get('error')}") from None
    except OSError as error:
        raise SlackSetupError(f"cannot reach Slack's Web API at {adapter.config.web_api_base}: {error}") from None


class SocketModeRunner:
    def __init__(self, adapter: SlackAdapter) -> None:
        self.adapter = adapter
        self.handler = AsyncSocketModeHandler(adapter.app, app_token=adapter.config.app_token,
                                              web_client=adapter.client)

    async def start(self) -> None:
        """Check both tokens (a clear error now beats endless reconnecting), then connect."""
        await check_bot_token(self.adapter)
        try:
            opened = await self.adapter.client.apps_connections_open(app_token=self.adapter.config.app_token)
        except SlackApiError as error:
            raise SlackSetupError(f"Slack refused the app-level token (ARIA_SLACK_APP_TOKEN): "
                                  f"{error.response.get('error')}") from None
        self.handler.client.wss_uri = opened["url"]
        await self.adapter.pick_up_unfinished()
        await self.handler.connect_async()
        log.info("connected to Slack over Socket Mode")

    async def close(self) -> None:
        await self.handler.close_async()
        await self.handler.client.aiohttp_client_session.close()
        await self.adapter.close()


class HttpRunner:
    """`POST {path}` for everything Slack sends; `GET /healthz` for load balancers."""

    def __init__(self, adapter: SlackAdapter) -> None:
        self.adapter = adapter
        self.web = web.Application(client_max_size=4 * 1024 * 1024)
        self.web.router.add_post(adapter.config.path, self._handle)
        self.web.router.add_get("/healthz", self._health)
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        bolt_request = await to_bolt_request(request)
        bolt_response = await self.adapter.app.async_dispatch(bolt_request)
        return await to_aiohttp_response(bolt_response)

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def start(self) -> None:
        await check_bot_token(self.adapter)
        await self.adapter.pick_up_unfinished()
        config = self.adapter.config
        self._runner = web.AppRunner(self.web, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, config.host, config.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        log.info("serving Slack requests on http://%s:%d%s", config.host, self.port, config.path)

    @property
    def url(self) -> str:
        host = self.adapter.config.host
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{self.port}{self.adapter.config.path}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        await self.adapter.close()


def make_runner(config: SlackConfig, service: Any) -> SocketModeRunner | HttpRunner:
    adapter = create_app(config, service)
    return HttpRunner(adapter) if config.http else SocketModeRunner(adapter)


async def serve(config: SlackConfig, service: Any) -> None:
    """Run until SIGINT or SIGTERM."""
    problems = config.problems()
    if problems:
        raise ValueError("; ".join(problems))
    runner = make_runner(config, service)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    await runner.start()
    try:
        await stop.wait()
    finally:
        await runner.close()
