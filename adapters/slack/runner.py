"""Running the Slack app: Socket Mode (the default: no public URL needed) or HTTP.

Socket Mode opens a websocket to Slack with the app-level token and acknowledges each envelope
on it. HTTP serves `POST /slack/events` for Events, slash commands and interactivity. Both
start with `await runner.start()` and stop with `await runner.close()`; `serve()` runs until
SIGINT/SIGTERM.

Nothing is parsed before it is trusted, and nothing malformed reaches bolt (whose parsing and
matching assume Slack's shapes and would raise): over HTTP the signature is checked on the raw
bytes first (a bad, stale or missing one gets 401), then the body must be UTF-8 and the shape
Slack sends (else 400); over Socket Mode an envelope that is not one is acknowledged and dropped.
Either way one line in the log, never a traceback, so garbage cannot flood it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import re
import signal
import time
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.socket_mode.async_internals import run_async_bolt_app, send_async_response
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

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


SIGNATURE_MAX_AGE_S = 5 * 60  # Slack's window; older requests may be replays
REQUEST_ENVELOPES = ("events_api", "slash_commands", "interactive")
_DICTS = ("event", "team", "user", "channel", "view", "message", "container", "state")


def malformed(body: Any) -> str | None:
    """Why `body` is not a request Slack sends (None if it could be): the shapes bolt relies on."""
    if not isinstance(body, dict):
        return f"the body is a {type(body).__name__}, not an object"
    for key in _DICTS:
        if key in body and not isinstance(body[key], dict):
            return f"{key} is not an object"
    kind = body.get("type")
    if kind is not None and not isinstance(kind, str):
        return "type is not a string"
    if kind == "event_callback" and not isinstance(body.get("event"), dict):
        return "an event_callback without an event"
    if kind == "block_actions":
        actions = body.get("actions")
        if not (isinstance(actions, list) and actions
                and all(isinstance(a, dict) and isinstance(a.get("action_id"), str) for a in actions)):
            return "block_actions without actions that have an action_id"
    if kind in ("view_submission", "view_closed") and not isinstance(body.get("view", {}).get("callback_id"), str):
        return f"a {kind} without a view callback_id"
    if kind in ("shortcut", "message_action") and not isinstance(body.get("callback_id"), str):
        return f"a {kind} without a callback_id"
    authorizations = body.get("authorizations")
    if authorizations is not None and not (isinstance(authorizations, list)
                                           and all(isinstance(a, dict) for a in authorizations)):
        return "authorizations is not a list of objects"
    return None


def parse_body(text: str, content_type: str) -> Any:
    """The body as bolt will read it (JSON, a form, or a form's `payload` JSON); ValueError if bad."""
    if content_type == "application/json" or text.startswith("{"):
        return json.loads(text)
    form = dict(parse_qsl(text, keep_blank_values=True))
    return json.loads(form["payload"]) if "payload" in form else form


class ScreenedSocketModeClient(SocketModeClient):
    """slack_sdk's Socket Mode client, with frames that are not well-formed envelopes dropped
    (and acknowledged, so Slack does not send them again) before slack_sdk parses them."""

    async def enqueue_message(self, message: str) -> None:
        try:
            envelope = json.loads(message)
        except ValueError:
            log.warning("dropped a Socket Mode frame that is not JSON (%d characters)", len(message))
            return
        if not isinstance(envelope, dict):
            log.warning("dropped a Socket Mode frame that is not an object")
            return
        if envelope.get("type") in REQUEST_ENVELOPES:
            problem = ("no envelope_id" if not isinstance(envelope.get("envelope_id"), str)
                       else malformed(envelope.get("payload")))
            if problem:
                log.warning("dropped a malformed %s envelope: %s", envelope["type"], problem)
                if isinstance(envelope.get("envelope_id"), str):
                    await self.acknowledge(envelope["envelope_id"])
                return
        await super().enqueue_message(message)

    async def acknowledge(self, envelope_id: str) -> None:
        """An empty ack, so that Slack does not send the envelope again."""
        await self.send_socket_mode_response(SocketModeResponse(envelope_id=envelope_id))


class ScreenedSocketModeHandler(AsyncSocketModeHandler):
    """Bolt's Socket Mode handler over `ScreenedSocketModeClient`; a request bolt still cannot
    handle is acknowledged with one line in the log."""

    def __init__(self, app, *, app_token: str, web_client) -> None:
        self.app = app
        self.app_token = app_token
        self.client = ScreenedSocketModeClient(app_token=app_token, logger=app.logger, web_client=web_client)
        self.client.socket_mode_request_listeners.append(self.handle)

    async def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:
        start = time.time()
        try:
            response = await run_async_bolt_app(self.app, req)
        except Exception as error:  # bolt's own parsing or matching; listeners' errors never get here
            log.warning("could not handle a %s envelope (%s: %s)", req.type, type(error).__name__, error)
            await self.client.acknowledge(req.envelope_id)
            return
        await send_async_response(client, req, response, start)


class SocketModeRunner:
    def __init__(self, adapter: SlackAdapter) -> None:
        self.adapter = adapter
        self.handler = ScreenedSocketModeHandler(adapter.app, app_token=adapter.config.app_token,
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
        self.adapter.listener("JamListener").start_watch()  # jams past their deadline finish
        await self.handler.connect_async()
        log.info("connected to Slack over Socket Mode")

    async def close(self) -> None:
        await self.adapter.listener("JamListener").stop_watch()
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
        """Verify on the raw bytes, then parse: 401 for a bad signature, 400 for a bad body."""
        raw = await request.read()
        if not self.signed(raw, request.headers):
            log.debug("refused a request without a valid signature (%d bytes)", len(raw))
            return web.Response(status=401, text="invalid signature")
        try:
            text = raw.decode("utf-8")
            problem = malformed(parse_body(text, request.content_type))
        except (UnicodeDecodeError, ValueError, KeyError) as error:
            problem = f"{type(error).__name__}: {error}"
        if problem:
            log.warning("refused a signed request with a malformed body: %s", problem)
            return web.Response(status=400, text="malformed request")
        try:
            bolt_request = AsyncBoltRequest(body=text, query=request.query_string, headers=request.headers)
            bolt_response = await self.adapter.app.async_dispatch(bolt_request)
        except Exception as error:  # bolt's own parsing or matching; listeners' errors never get here
            log.warning("could not handle a signed request (%s: %s)", type(error).__name__, error)
            return web.Response(status=400, text="malformed request")
        return await to_aiohttp_response(bolt_response)

    def signed(self, raw: bytes, headers) -> bool:
        """Slack's v0 signature over the exact bytes received, from the last five minutes.
        (bolt checks it again; this check comes first so that nothing unsigned is parsed.)"""
        timestamp = headers.get("X-Slack-Request-Timestamp", "")
        signature = headers.get("X-Slack-Signature", "")
        if not re.fullmatch(r"[0-9]{1,12}", timestamp) or abs(time.time() - int(timestamp)) > SIGNATURE_MAX_AGE_S:
            return False
        secret = self.adapter.config.signing_secret.encode()
        expected = "v0=" + hmac.new(secret, b"v0:" + timestamp.encode() + b":" + raw, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def start(self) -> None:
        await check_bot_token(self.adapter)
        await self.adapter.pick_up_unfinished()
        self.adapter.listener("JamListener").start_watch()  # jams past their deadline finish
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
        await self.adapter.listener("JamListener").stop_watch()
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
