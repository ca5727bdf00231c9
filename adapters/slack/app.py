"""The Slack app: one bolt `AsyncApp`, whether it runs over Socket Mode or HTTP, with the
listeners of adapters/slack/listeners/ (one module per feature, as the Discord cogs are).

Every listener is a bolt lazy listener: its ack function answers Slack (within 3 s; refusals
that travel in the ack, such as a form's errors, are decided there) and its lazy functions do
the slow part (download, engine, status edits, uploads). `process_before_response` makes bolt
finish the ack function before it answers, so what the ack says is final. A failure anywhere,
ack or lazy, reaches `app.error`, which logs it and apologises where Slack left a way to.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from typing import Any, Awaitable, Callable

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_bolt.kwargs_injection.async_utils import build_async_required_kwargs
from slack_bolt.lazy_listener.async_runner import AsyncLazyListenerRunner
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_bolt.util.utils import get_arg_names_of_callable
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import blocks as ui
from adapters.slack.config import SlackConfig
from adapters.slack.delivery import StatusMessage, Tell
from adapters.slack.files import file_origins
from adapters.slack.groups import UserGroups
from bot import endings
from bot.flow import ChatFlow
from bot.outcomes import Resumption, Ticket
from bot.policy import Actor
from bot.settings import server_key
from bot.texts import SORRY

log = logging.getLogger(__name__)

PLATFORM = "slack"
COMMAND = "/aria"
# The bot events the app subscribes to (manifest.yml); message.* bring pictures posted in a jam's thread.
EVENTS = ("app_mention", "subteam_members_changed", "message.channels", "message.groups")


class ReportingLazyRunner(AsyncLazyListenerRunner):
    """Bolt's asyncio lazy runner, except that a lazy function's failure goes to the app's error
    handler (`app.error`), as an ack function's does, instead of only to bolt's log."""

    def __init__(self, app: AsyncApp) -> None:
        self.app = app
        self.logger = app.logger
        self._running: set[asyncio.Task] = set()  # held, so that no lazy function is collected mid-way

    def start(self, function: Callable[..., Awaitable[None]], request: AsyncBoltRequest) -> None:
        task = asyncio.ensure_future(self._run(function, request))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, function: Callable[..., Awaitable[None]], request: AsyncBoltRequest) -> None:
        kwargs = build_async_required_kwargs(logger=self.logger, required_arg_names=get_arg_names_of_callable(function),
                                             request=request, response=None, this_func=function)
        try:
            await function(**kwargs)
        except Exception as error:
            await self.app.listener_runner.listener_error_handler.handle(error=error, request=request, response=None)


class SlackAdapter:
    """ARIA's Slack app over one bot service. `app` is the bolt AsyncApp to run."""

    def __init__(self, config: SlackConfig, service: Any, *, client: AsyncWebClient | None = None) -> None:
        from adapters.slack.listeners import LISTENERS

        self.config = config
        self.service = service
        self.client = client or AsyncWebClient(token=config.bot_token, base_url=config.web_api_base)
        self.flow = ChatFlow(service, PLATFORM, interval_s=config.progress_interval_s)
        self.groups = UserGroups(self.client, config.group_cache_s)
        self.file_origins = file_origins(config.api_base)  # where the bot token may go for a file
        self._admins: dict[tuple[str, str], tuple[float, bool]] = {}
        self._downloads: aiohttp.ClientSession | None = None
        self.app = AsyncApp(client=self.client, signing_secret=self.config.signing_secret or None,
                            request_verification_enabled=self.config.http, process_before_response=True)
        self.app.listener_runner.lazy_listener_runner = ReportingLazyRunner(self.app)
        self.app.middleware(self._deduplicate)
        self.listeners = [listener(self) for listener in LISTENERS]
        for listener in self.listeners:
            listener.register(self.app)
        self.app.error(self._on_error)

    def listener(self, name: str) -> Any:
        """One of the listener objects by class name (as discord.py's `bot.get_cog(name)`)."""
        return next(listener for listener in self.listeners if type(listener).__name__ == name)

    async def close(self) -> None:
        if self._downloads is not None:
            await self._downloads.close()

    @property
    def downloads(self) -> aiohttp.ClientSession:
        if self._downloads is None or self._downloads.closed:
            self._downloads = aiohttp.ClientSession()
        return self._downloads

    # -- plumbing -----------------------------------------------------------------------------

    async def _deduplicate(self, body: dict, next: Callable[[], Awaitable[Any]]) -> Any:
        """Do every request Slack could send again at most once: an Events API retry, or a slash
        command, shortcut, click or form submission replayed (its signature still fresh) or sent
        twice. The keys seen are kept in the store, so a restart forgets none of them."""
        key = request_key(body)
        if key and not self.service.store.first_sighting(key, keep_s=self.config.dedupe_window_s):
            log.info("ignoring a repeat of %s", key)
            return BoltResponse(status=200, body="")
        return await next()

    async def _on_error(self, error: Exception, body: dict, respond) -> None:
        """Any listener's failure: the log, and a private apology where Slack gave a way back."""
        log.error("unhandled error for a %s request: %s", body.get("type") or body.get("command"), error,
                  exc_info=error)
        if body.get("response_url"):
            try:
                await respond(text=SORRY, response_type="ephemeral", replace_original=False)
            except Exception:
                log.warning("could not apologise", exc_info=True)

    # -- who asks -------------------------------------------------------------------------------

    async def actor(self, team_id: str, channel_id: str, user_id: str) -> Actor:
        """Who asks, with Slack's admin flag and, where ARIA is limited to some user groups,
        which of those groups they are in (Slack's stand-in for Discord's roles)."""
        allowed = self.service.settings.get("allowed_roles", server=server_key(PLATFORM, team_id),
                                            channel=channel_id, user=user_id)
        # and the groups that make a moderator or carry a quota of their own (bot.moderation, bot.policy)
        server = server_key(PLATFORM, team_id)
        allowed = list(dict.fromkeys([*allowed, *self.service.settings.get("moderator_roles", server=server),
                                      *self.service.settings.get("role_quotas", server=server)]))
        groups = await self.groups.groups_of(team_id, user_id, allowed) if allowed else ()
        return Actor(PLATFORM, team_id, channel_id, user_id, role_ids=groups,
                     is_admin=await self.workspace_admin(team_id, user_id))

    async def workspace_admin(self, team_id: str, user_id: str) -> bool:
        """Slack's own admin or owner flag (users.info), remembered for a few minutes."""
        key, now = (team_id, user_id), time.monotonic()
        cached = self._admins.get(key)
        if cached and now - cached[0] < self.config.admin_cache_s:
            return cached[1]
        try:
            user = (await self.client.users_info(user=user_id))["user"]
            admin = bool(user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"))
        except SlackApiError as error:
            log.warning("users.info %s failed: %s", user_id, error.response.get("error"))
            return False
        self._admins[key] = (now, admin)
        return admin

    # -- saying things privately ----------------------------------------------------------------

    def ephemeral(self, channel: str, user: str, thread_ts: str | None = None) -> Tell:
        async def tell(text: str) -> None:
            try:
                await self.client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts)
            except SlackApiError as error:
                log.warning("could not tell %s privately: %s", user, error.response.get("error"))
        return tell

    @staticmethod
    def responder(respond) -> Tell:
        async def tell(text: str) -> None:
            try:
                await respond(text=text, response_type="ephemeral", replace_original=False)
            except Exception:
                log.warning("could not answer through response_url", exc_info=True)
        return tell

    # -- after a restart --------------------------------------------------------------------------

    async def pick_up_unfinished(self) -> Resumption:
        """At start-up: pieces the last process left unfinished (see `ChatFlow.pick_up_unfinished`);
        a resumed piece's status message says so, then shows it through."""
        return await self.flow.pick_up_unfinished(tell_lost=self._tell_lost, resumed_sink=self._resumed_status)

    async def _tell_lost(self, record, text: str) -> None:
        try:
            if record.message_id and record.message_channel_id:
                await self.client.chat_update(channel=record.message_channel_id, ts=record.message_id, text=text,
                                              blocks=[ui.section(text)])
            else:
                await self.client.chat_postEphemeral(channel=record.channel_id, user=record.user_id, text=text)
        except SlackApiError as error:
            log.warning("could not tell %s about a lost job: %s", record.user_id, error.response.get("error"))

    async def _resumed_status(self, ticket: Ticket) -> StatusMessage:
        record = ticket.record
        status = StatusMessage(self.client, self.service, record.message_channel_id or record.channel_id,
                               record.extra.get("thread_ts"), record.user_id,
                               self.ephemeral(record.channel_id, record.user_id))
        try:
            if record.message_id:
                status.ts = record.message_id
                await status.show_status(endings.RESUMED, record.result_id)
            else:  # the restart came between the job and its status message
                await status.post(endings.RESUMED, record.result_id)
                self.service.attach_message(record.result_id, status.channel, status.ts)
        except SlackApiError as error:
            log.warning("could not show a resumed piece's status: %s", error.response.get("error"))
        return status


def request_key(body: dict) -> str | None:
    """What makes this request unique, for `Store.first_sighting` (None: nothing to do twice).

    Events carry an `event_id`, the same on every retry. Every interaction a person starts (slash
    command, shortcut, button or select, form submission) carries a `trigger_id` that Slack issues
    once per action; a form submitted again after an error has a new one. Anything without either
    is keyed by a digest of the whole payload, which a replay repeats byte for byte.
    """
    kind = body.get("type") or ("slash_command" if "command" in body else None)
    if kind in (None, "url_verification") or body.get("ssl_check"):
        return None
    if kind == "event_callback":
        return f"{PLATFORM}:{body['event_id']}" if body.get("event_id") else None
    if isinstance(body.get("trigger_id"), str) and body["trigger_id"]:
        return f"{PLATFORM}:{kind}:{body['trigger_id']}"
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
    return f"{PLATFORM}:{kind}:sha256:{digest}"


def create_app(config: SlackConfig, service: Any, *, client: AsyncWebClient | None = None) -> SlackAdapter:
    """The adapter; run `adapter.app` with `runner.SocketModeRunner` or `runner.HttpRunner`."""
    return SlackAdapter(config, service, client=client)
