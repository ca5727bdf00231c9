"""A local Slack double: Web API, file hosting, Socket Mode and the Events endpoint's client side.

The real slack_sdk / slack_bolt clients talk to it over 127.0.0.1: point `AsyncWebClient(base_url=...)`
at `api_base`; `apps.connections.open` hands out a `ws://127.0.0.1` Socket Mode URL. It keeps the
little world a Slack app sees (workspaces, users, channels, messages and threads, files, views),
records every call the app makes, and lets a test act as Slack's users: post messages (an
`@mention` becomes an `app_mention` event), run slash commands, use message shortcuts, click
buttons, pick from selects and submit modals. Each of those is delivered either as a Socket
Mode envelope or as a signed HTTP POST to the app's `/slack/events` endpoint (`transport`).

It keeps the rules of Slack's that matter to an app:
- every Web API call needs the right token (bot token; the app token for `apps.connections.open`);
- `url_private` serves a file only with the bot token, else an HTML login page with status 200;
- an envelope or HTTP request must be acknowledged within 3 s (`Delivery.late` says if not);
- `trigger_id`s expire after 3 s (`views.open` then answers `expired_trigger_id`);
- a method needs its scope: a test may revoke one (`revoked_scopes`), and the call gets `missing_scope`;
- `chat.update` only edits the bot's own messages; blocks are checked (count, text sizes,
  image blocks whose `slack_file` must exist);
- ack payloads and `response_url` posts show up as ephemeral messages, as in the Slack client.

The bot's user and bot id are the same in every workspace, as for an org-wide app; one bot token
works for all of them.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import itertools
import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qsl, urlencode

import aiohttp
from aiohttp import WSMsgType, web

ACK_DEADLINE_S = 3.0
TRIGGER_LIFETIME_S = 3.0
MAX_BLOCKS_MESSAGE = 50
MAX_BLOCKS_MODAL = 100
MAX_TEXT = 40_000
MAX_SECTION_TEXT = 3_000
LOGIN_PAGE = (b"<!DOCTYPE html><html><head><title>Slack</title></head>"
              b"<body><h1>Sign in to your workspace</h1></body></html>")
BLOCK_TYPES = {"section", "divider", "image", "actions", "context", "input", "header", "file", "rich_text",
               "video", "markdown"}


class SlackDoubleError(AssertionError):
    """The app did something Slack would refuse in a way a test should notice."""


# -- the world ------------------------------------------------------------------------------------


@dataclass
class Team:
    id: str
    name: str

    @property
    def domain(self) -> str:
        return re.sub(r"[^a-z0-9-]", "-", self.name.lower())


@dataclass
class User:
    id: str
    team_id: str
    name: str
    is_admin: bool = False
    is_owner: bool = False
    is_bot: bool = False

    def payload(self) -> dict:
        return {"id": self.id, "team_id": self.team_id, "name": self.name, "real_name": self.name,
                "deleted": False, "is_admin": self.is_admin, "is_owner": self.is_owner,
                "is_primary_owner": self.is_owner, "is_bot": self.is_bot, "tz": "UTC",
                "profile": {"display_name": self.name, "real_name": self.name}}

    def ref(self) -> dict:
        return {"id": self.id, "username": self.name, "name": self.name, "team_id": self.team_id}


@dataclass
class UserGroup:
    """A workspace's user group (@designers): what Slack calls a subteam, id "S..."."""

    id: str
    team_id: str
    handle: str
    users: list[str] = field(default_factory=list)

    def payload(self, include_users: bool) -> dict:
        data = {"id": self.id, "team_id": self.team_id, "is_usergroup": True, "name": self.handle.title(),
                "handle": self.handle, "description": "", "date_delete": 0, "user_count": len(self.users)}
        if include_users:
            data["users"] = list(self.users)
        return data

    @property
    def mention(self) -> str:
        """How a Slack client sends "@designers" typed in a slash command (with should_escape)."""
        return f"<!subteam^{self.id}|@{self.handle}>"


@dataclass
class Channel:
    id: str
    team_id: str
    name: str
    bot_member: bool = True  # the bot was invited (it may post and read history only then)
    dm_with: str | None = None  # a direct-message channel ("D..."): the user the bot talks to there
    messages: list[dict] = field(default_factory=list)  # every message, roots and replies, oldest first


@dataclass
class Delivery:
    """One envelope or HTTP request sent to the app, and how it was acknowledged."""

    kind: str  # events_api, slash_commands, interactive
    payload: dict
    transport: str  # socket or http
    sent_at: float
    envelope_id: str | None = None
    acked_at: float | None = None
    ack_payload: Any = None  # what the ack carried (Socket Mode payload or HTTP body)
    status: int | None = None  # HTTP status (socket: 200 once acked)
    raw: tuple[str, dict] | None = None  # HTTP: the exact body and headers sent (for `SlackDouble.replay`)
    _acked: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def ack_s(self) -> float | None:
        return None if self.acked_at is None else self.acked_at - self.sent_at

    @property
    def late(self) -> bool:
        return self.ack_s is None or self.ack_s > ACK_DEADLINE_S


class SlackDouble:
    """See the module docstring. `await start()`, build a world, let the app connect, act."""

    def __init__(self, *, bot_token: str = "xoxb-aria-test", app_token: str = "xapp-aria-test",
                 signing_secret: str = "aria-signing-secret", bot_user_id: str = "UARIABOT",
                 bot_id: str = "BARIA", app_id: str = "AARIA") -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.signing_secret = signing_secret
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.transport = "socket"  # how user actions reach the app: "socket" or "http"
        self.slack_files_ready = True  # False: image blocks showing an uploaded file fail (Slack still processing)
        self.message_events = False  # True: every post also reaches the app as a `message` event (message.channels)
        self.events_url: str | None = None  # the app's /slack/events, for transport "http"

        self.teams: dict[str, Team] = {}
        self.users: dict[str, User] = {}
        self.channels: dict[str, Channel] = {}
        self.usergroups: dict[str, UserGroup] = {}
        self.revoked_scopes: set[str] = set()  # scopes the app was not granted (its calls get missing_scope)
        self.files: dict[str, dict] = {}  # file id -> file object
        self.file_data: dict[str, bytes] = {}
        self.views: dict[str, dict] = {}  # view id -> view (as opened/updated, with owner)
        self.calls: list[tuple[float, str, dict]] = []  # (time, method, args) of every Web API call
        self.ephemerals: list[dict] = []  # what only one user saw: acks, postEphemeral, response_url
        self.updates: list[dict] = []  # every chat.update: {"at", "channel", "ts", "text", "blocks"}
        self.deleted: list[dict] = []  # messages the bot deleted
        self.deleted_files: list[dict] = []  # files the bot deleted (files.delete)
        self.deliveries: list[Delivery] = []
        self.downloads: list[dict] = []  # url_private fetches: {"file_id", "authorized"}
        self.file_redirects: dict[str, str] = {}  # file id -> where its url_private answers 302 to
        self.errors: list[str] = []  # things the app got refused (for failure messages)

        self._ids = itertools.count(1)
        self._last_ts = 0.0
        self._triggers: dict[str, tuple[float, str, str]] = {}  # trigger id -> (issued, team, user)
        self._response_urls: dict[str, dict] = {}  # id -> {"team", "channel", "user"}
        self._pending_uploads: dict[str, dict] = {}
        self._hidden: set[str] = set()  # file id -> {"filename", "length", "data"}
        self._sockets: list[web.WebSocketResponse] = []
        self._tickets: set[str] = set()
        self._waiting_acks: dict[str, Delivery] = {}
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self.port: int | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> "SlackDouble":
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/files-pri/{key}/{name}", self._file)
        app.router.add_get("/files-pri/{key}/download/{name}", self._file)
        app.router.add_post("/respond/{rid}", self._respond)
        app.router.add_get("/link/", self._socket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self._http = aiohttp.ClientSession()
        return self

    async def close(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> "SlackDouble":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/api/"

    @property
    def connected(self) -> bool:
        return any(not ws.closed for ws in self._sockets)

    # -- building the world -------------------------------------------------------------------------

    def _id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):06d}"

    def _ts(self) -> str:
        """Message timestamps: strictly increasing, Slack's "seconds.micros" strings."""
        now = max(time.time(), self._last_ts + 1e-6)
        self._last_ts = now
        return f"{now:.6f}"

    def add_team(self, name: str, team_id: str | None = None) -> Team:
        team = Team(team_id or self._id("T"), name)
        self.teams[team.id] = team
        return team

    def add_user(self, team: Team, name: str, *, is_admin: bool = False, is_owner: bool = False,
                 is_bot: bool = False) -> User:
        user = User(self._id("U"), team.id, name, is_admin, is_owner, is_bot)
        self.users[user.id] = user
        return user

    def add_usergroup(self, team: Team, handle: str, users: tuple[User, ...] = ()) -> UserGroup:
        group = UserGroup(self._id("S"), team.id, handle, [u.id for u in users])
        self.usergroups[group.id] = group
        return group

    async def change_usergroup(self, group: UserGroup, users: tuple[User, ...]) -> Delivery:
        """Set a group's members and tell the app, as Slack does with `subteam_members_changed`."""
        before, group.users = set(group.users), [u.id for u in users]
        now = int(time.time())
        added, removed = sorted(set(group.users) - before), sorted(before - set(group.users))
        return await self.send_event(group.team_id, {
            "type": "subteam_members_changed", "subteam_id": group.id, "team_id": group.team_id,
            "date_previous_update": now - 60, "date_update": now, "added_users": added,
            "added_users_count": str(len(added)), "removed_users": removed,
            "removed_users_count": str(len(removed)), "event_ts": self._ts()})

    def add_channel(self, team: Team, name: str, *, bot_member: bool = True) -> Channel:
        channel = Channel(self._id("C"), team.id, name, bot_member)
        self.channels[channel.id] = channel
        return channel

    def add_file(self, user: User, name: str, data: bytes, mimetype: str, *, filetype: str | None = None,
                 size: int | None = None, hidden_from_bot: bool = False) -> dict:
        """A file as a user uploaded it; `size` may lie (to test checks made before downloading).
        A file `hidden_from_bot` (shared where the bot cannot see) is served as the login page."""
        obj = self._new_file(self._id("F"), user.id, user.team_id, name, data, mimetype,
                             filetype=filetype, size=size)
        if hidden_from_bot:
            self._hidden.add(obj["id"])
        return obj

    def _new_file(self, file_id: str, owner: str, team_id: str, name: str, data: bytes, mimetype: str, *,
                  title: str | None = None, filetype: str | None = None, size: int | None = None) -> dict:
        filetype = filetype or (name.rsplit(".", 1)[-1].lower() if "." in name else "binary")
        private = f"{self.base_url}/files-pri/{team_id}-{file_id}"
        now = int(time.time())
        obj = {"id": file_id, "created": now, "timestamp": now, "name": name, "title": title or name,
               "mimetype": mimetype, "filetype": filetype, "pretty_type": filetype.upper(), "user": owner,
               "user_team": team_id, "mode": "hosted", "editable": False, "is_external": False,
               "external_type": "", "size": len(data) if size is None else size, "is_public": True,
               "url_private": f"{private}/{name}", "url_private_download": f"{private}/download/{name}",
               "permalink": f"{self.base_url}/files/{owner}/{file_id}/{name}"}
        self.files[file_id] = obj
        self.file_data[file_id] = data
        return obj

    def dm_channel(self, user: User) -> Channel | None:
        """The bot's direct-message channel with this user, once the bot opened it."""
        return next((c for c in self.channels.values() if c.dm_with == user.id), None)

    def team_of(self, channel_id: str) -> Team:
        return self.teams[self.channels[channel_id].team_id]

    # -- reading what the app did -------------------------------------------------------------------

    def message(self, channel_id: str, ts: str) -> dict | None:
        return next((m for m in self.channels[channel_id].messages if m["ts"] == ts), None)

    def thread(self, channel_id: str, thread_ts: str) -> list[dict]:
        """The thread's messages, parent first."""
        return [m for m in self.channels[channel_id].messages
                if m["ts"] == thread_ts or m.get("thread_ts") == thread_ts]

    def bot_messages(self, channel_id: str | None = None) -> list[dict]:
        channels = [self.channels[channel_id]] if channel_id else self.channels.values()
        return [m for c in channels for m in c.messages if m.get("bot_id") == self.bot_id]

    def ephemerals_for(self, user: User, channel: Channel | None = None) -> list[dict]:
        return [e for e in self.ephemerals
                if e["user"] == user.id and (channel is None or e.get("channel") in (None, channel.id))]

    def uploaded_files(self, channel_id: str, thread_ts: str | None = None) -> list[dict]:
        """Files the bot shared into a channel (or one of its threads)."""
        found = []
        for m in self.bot_messages(channel_id):
            if thread_ts is None or m.get("thread_ts") == thread_ts or m["ts"] == thread_ts:
                found += m.get("files", [])
        return found

    def calls_to(self, method: str) -> list[dict]:
        return [args for _, name, args in self.calls if name == method]

    async def wait_for(self, find: Callable[[], Any], timeout: float = 30.0, what: str = "a condition") -> Any:
        """Poll `find()` on every change until it returns something truthy."""
        deadline = time.monotonic() + timeout
        while True:
            found = find()
            if found:
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"timed out after {timeout} s waiting for {what}; double errors: {self.errors}")
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), min(left, 0.25))
            except asyncio.TimeoutError:
                pass

    def _touch(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # -- acting as Slack's users --------------------------------------------------------------------

    async def post(self, channel: Channel, user: User, text: str, *, files: tuple[dict, ...] = (),
                   thread_ts: str | None = None, retries: int = 0) -> tuple[dict, Delivery | None]:
        """A user posts a message. If it mentions the bot, the app gets an `app_mention` event
        (and `retries` more copies of it, as Slack's retries carry the same event_id)."""
        message = {"type": "message", "user": user.id, "text": text, "ts": self._ts(), "team": user.team_id,
                   "client_msg_id": str(uuid.uuid4())}
        if files:
            message["files"] = [copy.deepcopy(f) for f in files]
            message["upload"] = True
        if thread_ts:
            message["thread_ts"] = thread_ts
        channel.messages.append(message)
        self._touch()
        if self.message_events:  # Slack sends it for mentions too, beside app_mention
            plain = {k: copy.deepcopy(v) for k, v in message.items()}
            plain.update(channel=channel.id, channel_type="channel", event_ts=message["ts"])
            if files:
                plain["subtype"] = "file_share"
            await self.send_event(user.team_id, plain)
        if f"<@{self.bot_user_id}>" not in text:
            return message, None
        event = {k: copy.deepcopy(v) for k, v in message.items() if k != "type"}
        event.update(type="app_mention", channel=channel.id, event_ts=message["ts"])
        delivery = await self.send_event(user.team_id, event)
        for attempt in range(1, retries + 1):
            delivery = await self.send_event(user.team_id, event, event_id=delivery.payload["event_id"],
                                             retry_attempt=attempt)
        return message, delivery

    def bot_posts(self, channel: Channel, text: str, *, files: tuple[dict, ...] = ()) -> dict:
        """Something in the channel the bot itself wrote earlier (as another process of it might)."""
        message = {"type": "message", "user": self.bot_user_id, "bot_id": self.bot_id, "text": text,
                   "ts": self._ts(), "team": channel.team_id}
        if files:
            message["files"] = [copy.deepcopy(f) for f in files]
        channel.messages.append(message)
        return message

    async def send_event(self, team_id: str, event: dict, *, event_id: str | None = None,
                         retry_attempt: int = 0) -> Delivery:
        body = {"token": "verification-token-unused", "team_id": team_id, "api_app_id": self.app_id,
                "event": event, "type": "event_callback", "event_id": event_id or self._id("Ev"),
                "event_time": int(time.time()),
                "authorizations": [{"enterprise_id": None, "team_id": team_id, "user_id": self.bot_user_id,
                                    "is_bot": True, "is_enterprise_install": False}],
                "is_ext_shared_channel": False, "event_context": secrets.token_hex(8)}
        return await self._deliver("events_api", body, retry_attempt=retry_attempt)

    async def slash(self, channel: Channel, user: User, text: str = "", command: str = "/aria") -> Delivery:
        team = self.teams[user.team_id]
        body = {"token": "verification-token-unused", "team_id": team.id, "team_domain": team.domain,
                "channel_id": channel.id, "channel_name": channel.name, "user_id": user.id, "user_name": user.name,
                "command": command, "text": text, "api_app_id": self.app_id, "is_enterprise_install": "false",
                "response_url": self._response_url(team.id, channel.id, user.id),
                "trigger_id": self._trigger(team.id, user.id)}
        return await self._deliver("slash_commands", body)

    async def shortcut(self, channel: Channel, user: User, message: dict,
                       callback_id: str = "compose_music") -> Delivery:
        """The message shortcut (the "..." menu on a message)."""
        team = self.teams[user.team_id]
        body = {"type": "message_action", "token": "verification-token-unused", "action_ts": self._ts(),
                "team": {"id": team.id, "domain": team.domain}, "user": user.ref(),
                "channel": {"id": channel.id, "name": channel.name}, "is_enterprise_install": False,
                "enterprise": None, "callback_id": callback_id, "trigger_id": self._trigger(team.id, user.id),
                "response_url": self._response_url(team.id, channel.id, user.id), "message_ts": message["ts"],
                "message": copy.deepcopy(message)}
        return await self._deliver("interactive", body)

    async def click(self, channel: Channel, user: User, message: dict, action_id: str, *,
                    option: str | None = None) -> Delivery:
        """Click a button (or pick `option` in a select) on a message the bot posted."""
        current = self.message(channel.id, message["ts"]) or message
        element, block_id = _find_element(current.get("blocks") or [], action_id)
        if element is None:
            raise SlackDoubleError(f"no element {action_id!r} on message {message['ts']}")
        action = {"action_id": action_id, "block_id": block_id, "type": element["type"], "action_ts": self._ts()}
        if element["type"] == "button":
            action.update(text=element["text"], value=element.get("value", ""))
        else:
            chosen = next((o for o in element.get("options", []) if o["value"] == option), None)
            if chosen is None:
                raise SlackDoubleError(f"{action_id!r} has no option {option!r}")
            action["selected_option"] = chosen
        team = self.teams[user.team_id]
        body = {"type": "block_actions", "user": user.ref(), "api_app_id": self.app_id,
                "token": "verification-token-unused",
                "container": {"type": "message", "message_ts": current["ts"], "channel_id": channel.id,
                              "is_ephemeral": False},
                "trigger_id": self._trigger(team.id, user.id), "team": {"id": team.id, "domain": team.domain},
                "enterprise": None, "is_enterprise_install": False,
                "channel": {"id": channel.id, "name": channel.name}, "message": copy.deepcopy(current),
                "state": {"values": {}}, "response_url": self._response_url(team.id, channel.id, user.id),
                "actions": [action]}
        return await self._deliver("interactive", body)

    async def submit(self, view_id: str, user: User, values: dict[str, Any] | None = None) -> Delivery:
        """Submit an open modal. `values` maps action ids to what the user entered: text for text
        and number inputs, an option value for selects, a list of file objects for a file input.
        Inputs not named keep their initial values."""
        view = self.views.get(view_id)
        if view is None:
            raise SlackDoubleError(f"no view {view_id}")
        state = _view_state(view, values or {})
        team = self.teams[user.team_id]
        submitted = {**copy.deepcopy(view), "state": {"values": state}}
        submitted.pop("_owner", None)
        body = {"type": "view_submission", "team": {"id": team.id, "domain": team.domain}, "user": user.ref(),
                "api_app_id": self.app_id, "token": "verification-token-unused",
                "trigger_id": self._trigger(team.id, user.id), "view": submitted, "response_urls": [],
                "is_enterprise_install": False, "enterprise": None}
        return await self._deliver("interactive", body)

    def views_for(self, user: User) -> list[dict]:
        return [v for v in self.views.values() if v["_owner"] == user.id]

    def _trigger(self, team_id: str, user_id: str) -> str:
        trigger = f"{next(self._ids)}.{secrets.token_hex(6)}"
        self._triggers[trigger] = (time.monotonic(), team_id, user_id)
        return trigger

    def _response_url(self, team_id: str, channel_id: str, user_id: str) -> str:
        rid = secrets.token_hex(8)
        self._response_urls[rid] = {"team": team_id, "channel": channel_id, "user": user_id}
        return f"{self.base_url}/respond/{rid}"

    # -- delivering to the app ------------------------------------------------------------------------

    async def _deliver(self, kind: str, payload: dict, *, retry_attempt: int = 0) -> Delivery:
        if self.transport == "http":
            return await self._deliver_http(kind, payload, retry_attempt)
        return await self._deliver_socket(kind, payload, retry_attempt)

    async def _deliver_socket(self, kind: str, payload: dict, retry_attempt: int) -> Delivery:
        ws = next((w for w in reversed(self._sockets) if not w.closed), None)
        if ws is None:
            raise SlackDoubleError("no Socket Mode connection is open")
        envelope_id = str(uuid.uuid4())
        envelope = {"envelope_id": envelope_id, "type": kind, "payload": payload,
                    "accepts_response_payload": kind != "events_api"}
        if kind == "events_api":
            envelope.update(retry_attempt=retry_attempt, retry_reason="timeout" if retry_attempt else "")
        delivery = Delivery(kind, payload, "socket", time.monotonic(), envelope_id=envelope_id)
        self.deliveries.append(delivery)
        self._waiting_acks[envelope_id] = delivery
        await ws.send_str(json.dumps(envelope))
        try:
            await asyncio.wait_for(delivery._acked.wait(), ACK_DEADLINE_S * 2)
        except asyncio.TimeoutError:
            self.errors.append(f"no ack for {kind} envelope {envelope_id}")
        return delivery

    async def _deliver_http(self, kind: str, payload: dict, retry_attempt: int) -> Delivery:
        if kind == "events_api":
            body, content_type = json.dumps(payload), "application/json"
        elif kind == "slash_commands":
            body, content_type = urlencode(payload), "application/x-www-form-urlencoded"
        else:
            body, content_type = urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded"
        headers = {"Content-Type": content_type, **self.signature_headers(body)}
        if retry_attempt:
            headers.update({"X-Slack-Retry-Num": str(retry_attempt), "X-Slack-Retry-Reason": "http_timeout"})
        delivery = Delivery(kind, payload, "http", time.monotonic(), raw=(body, headers))
        self.deliveries.append(delivery)
        status, answer = await self.post_raw(body, headers)
        self._on_ack(delivery, answer, status)
        return delivery

    async def replay(self, delivery: Delivery) -> Delivery:
        """Send a request again as it was: over HTTP the same bytes with the same (still fresh)
        signature, as an attacker who saw it could; over Socket Mode the same payload in a new
        envelope, as Slack does when it thinks an envelope was lost."""
        if delivery.transport == "socket":
            return await self._deliver_socket(delivery.kind, delivery.payload, 0)
        body, headers = delivery.raw
        again = Delivery(delivery.kind, delivery.payload, "http", time.monotonic(), raw=delivery.raw)
        self.deliveries.append(again)
        status, answer = await self.post_raw(body, headers)
        self._on_ack(again, answer, status)
        return again

    def signature_headers(self, body: str | bytes, *, timestamp: int | None = None,
                          secret: str | None = None) -> dict:
        """Slack's request signing: v0=HMAC-SHA256(secret, "v0:{timestamp}:{body}"), on the raw bytes."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        raw = body.encode() if isinstance(body, str) else body
        digest = hmac.new((secret or self.signing_secret).encode(), f"v0:{ts}:".encode() + raw,
                          hashlib.sha256).hexdigest()
        return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}

    async def post_raw(self, body: str | bytes, headers: dict) -> tuple[int, Any]:
        """POST exactly this to the app's events URL; (status, body as JSON or text)."""
        if not self.events_url:
            raise SlackDoubleError("set events_url to the app's /slack/events to deliver over HTTP")
        data = body.encode() if isinstance(body, str) else body
        async with self._http.post(self.events_url, data=data, headers=headers) as response:
            text = await response.text()
            try:
                return response.status, json.loads(text) if text else None
            except json.JSONDecodeError:
                return response.status, text

    def _on_ack(self, delivery: Delivery, answer: Any, status: int = 200) -> None:
        delivery.acked_at = time.monotonic()
        delivery.ack_payload = answer
        delivery.status = status
        delivery._acked.set()
        if status == 200 and answer:
            self._show_ack_payload(delivery, answer)
        self._touch()

    def _show_ack_payload(self, delivery: Delivery, answer: Any) -> None:
        """An ack with text, for a slash command, shows the user an ephemeral (or channel) message."""
        if delivery.kind != "slash_commands":
            if delivery.kind == "interactive" and isinstance(answer, dict) and "response_action" in answer:
                self._on_view_response(delivery, answer)
            return
        if isinstance(answer, str):
            answer = {"text": answer}
        p = delivery.payload
        if answer.get("response_type") == "in_channel":
            self._store_message(self.channels[p["channel_id"]], answer)
        else:
            self.ephemerals.append({"user": p["user_id"], "channel": p["channel_id"], "text": answer.get("text", ""),
                                    "blocks": answer.get("blocks"), "via": "ack", "at": time.monotonic()})

    def _on_view_response(self, delivery: Delivery, answer: dict) -> None:
        view_id = delivery.payload["view"].get("id")
        if view_id not in self.views:
            return
        if answer["response_action"] == "errors":
            self.views[view_id]["_errors"] = answer.get("errors", {})
        elif answer["response_action"] in ("update", "push"):
            self.views[view_id].update(answer["view"])
        elif answer["response_action"] == "clear":
            self.views.pop(view_id, None)

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            return web.Response(status=401, text="invalid ticket")
        self._tickets.discard(ticket)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_str(json.dumps({"type": "hello", "num_connections": len(self._sockets),
                                      "debug_info": {"host": "double", "approximate_connection_time": 18060},
                                      "connection_info": {"app_id": self.app_id}}))
        self._touch()
        try:
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                ack = json.loads(frame.data)
                delivery = self._waiting_acks.pop(ack.get("envelope_id"), None)
                if delivery is None:
                    self.errors.append(f"ack for an unknown envelope: {frame.data[:200]}")
                    continue
                self._on_ack(delivery, ack.get("payload"))
        finally:
            self._touch()
        return ws

    async def send_raw_frame(self, text: str) -> None:
        """Send exactly this text frame on the Socket Mode connection (a malformed envelope, say)."""
        ws = next((w for w in reversed(self._sockets) if not w.closed), None)
        if ws is None:
            raise SlackDoubleError("no Socket Mode connection is open")
        await ws.send_str(text)

    async def disconnect_sockets(self) -> None:
        """Ask the app to reconnect, as Slack does every few hours ("refresh_requested")."""
        for ws in list(self._sockets):
            if not ws.closed:
                await ws.send_str(json.dumps({"type": "disconnect", "reason": "refresh_requested"}))

    # -- the Web API -----------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await _request_args(request)
        token = _bearer(request) or args.pop("token", None)
        self.calls.append((time.monotonic(), method, args))
        handler = _METHODS.get(method)
        if handler is None:
            return self._fail(method, "unknown_method")
        wanted = self.app_token if method == "apps.connections.open" else self.bot_token
        if token is None:
            return self._fail(method, "not_authed")
        if token != wanted:
            return self._fail(method, "invalid_auth")
        needed = _SCOPES.get(method)
        if needed in self.revoked_scopes:
            return self._fail(method, "missing_scope", needed=needed)
        try:
            answer = handler(self, args)
        except _ApiError as error:
            return self._fail(method, error.code, error.detail)
        self._touch()
        return web.json_response({"ok": True, **answer})

    def _fail(self, method: str, code: str, detail: str = "", *, needed: str | None = None) -> web.Response:
        self.errors.append(f"{method}: {code}{' (' + detail + ')' if detail else ''}")
        self._touch()
        body = {"ok": False, "error": code, **({"detail": detail} if detail else {})}
        if needed:
            body.update(needed=needed, provided="the scopes the app was installed with")
        return web.json_response(body)

    def _channel(self, args: dict, key: str = "channel", *, member: bool = True) -> Channel:
        """The channel named in the arguments; the bot must be in it unless `member` is False."""
        channel = self.channels.get(args.get(key) or "")
        if channel is None:
            raise _ApiError("channel_not_found", str(args.get(key)))
        if member and not channel.bot_member:
            raise _ApiError("not_in_channel", channel.id)
        return channel

    def _store_message(self, channel: Channel, args: dict, *, user: str | None = None) -> dict:
        text = args.get("text") or ""
        blocks = _json_arg(args.get("blocks"))
        if not text and not blocks:
            raise _ApiError("no_text")
        if len(text) > MAX_TEXT:
            raise _ApiError("msg_too_long")
        if blocks:
            self._check_blocks(blocks, MAX_BLOCKS_MESSAGE)
        message = {"type": "message", "text": text, "ts": self._ts(), "team": channel.team_id}
        if user is None:
            message.update(user=self.bot_user_id, bot_id=self.bot_id, app_id=self.app_id)
        else:
            message["user"] = user
        if blocks:
            message["blocks"] = blocks
        thread_ts = args.get("thread_ts")
        if thread_ts:
            parent = self.message(channel.id, thread_ts)
            if parent is None:
                raise _ApiError("thread_not_found", thread_ts)
            message["thread_ts"] = parent.get("thread_ts", parent["ts"])
            parent.setdefault("reply_count", 0)
            parent["reply_count"] += 1
            parent.setdefault("thread_ts", parent["ts"])
        channel.messages.append(message)
        return message

    def _check_blocks(self, blocks: Any, most: int) -> None:
        if not isinstance(blocks, list) or len(blocks) > most:
            raise _ApiError("invalid_blocks", f"blocks must be a list of at most {most}")
        action_ids: set[str] = set()
        for block in blocks:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind not in BLOCK_TYPES:
                raise _ApiError("invalid_blocks", f"unknown block type {kind!r}")
            if kind == "section":
                text = (block.get("text") or {}).get("text", "")
                if not text and not block.get("fields"):
                    raise _ApiError("invalid_blocks", "a section needs text or fields")
                if len(text) > MAX_SECTION_TEXT or any(len(f.get("text", "")) > 2000 for f in block.get("fields", [])):
                    raise _ApiError("invalid_blocks", "section text too long")
                if len(block.get("fields", [])) > 10:
                    raise _ApiError("invalid_blocks", "more than 10 fields")
            if kind == "image":
                self._check_image_block(block)
            if kind == "header" and len(block.get("text", {}).get("text", "")) > 150:
                raise _ApiError("invalid_blocks", "header too long")
            elements = block.get("elements", []) if kind == "actions" else [block.get("element")] if kind == "input" else []
            if kind == "actions" and not 1 <= len(elements) <= 25:
                raise _ApiError("invalid_blocks", "actions need 1 to 25 elements")
            for element in elements:
                action_id = (element or {}).get("action_id")
                if action_id in action_ids:
                    raise _ApiError("invalid_blocks", f"duplicate action_id {action_id}")
                if action_id:
                    action_ids.add(action_id)
                if element and element.get("type") == "button" and len(element["text"]["text"]) > 75:
                    raise _ApiError("invalid_blocks", "button text too long")

    def _check_image_block(self, block: dict) -> None:
        if not block.get("alt_text"):
            raise _ApiError("invalid_blocks", "an image block needs alt_text")
        slack_file = block.get("slack_file")
        if slack_file is not None:
            file_id = slack_file.get("id") or _file_id_from_url(slack_file.get("url", ""))
            if file_id not in self.files:
                raise _ApiError("invalid_blocks", f"slack_file {slack_file} does not exist")
            if not self.slack_files_ready:
                raise _ApiError("invalid_blocks", f"slack_file {file_id} is not ready yet")
            if not self.files[file_id]["mimetype"].startswith("image/"):
                raise _ApiError("invalid_blocks", f"slack_file {file_id} is not an image")
        elif not block.get("image_url"):
            raise _ApiError("invalid_blocks", "an image block needs image_url or slack_file")

    def _check_view(self, view: Any) -> dict:
        if not isinstance(view, dict) or view.get("type") != "modal":
            raise _ApiError("invalid_arguments", "view must be a modal")
        title = (view.get("title") or {}).get("text", "")
        if not title or len(title) > 24:
            raise _ApiError("invalid_arguments", "modal titles are 1 to 24 characters")
        blocks = view.get("blocks") or []
        self._check_blocks(blocks, MAX_BLOCKS_MODAL)
        if any(b["type"] == "input" for b in blocks) and not view.get("submit"):
            raise _ApiError("invalid_arguments", "a modal with inputs needs a submit button")
        if len(view.get("private_metadata", "")) > 3000:
            raise _ApiError("invalid_arguments", "private_metadata is at most 3000 characters")
        return view

    # Methods. Each takes the parsed arguments and returns the reply's fields (besides "ok").

    def auth_test(self, args: dict) -> dict:
        team = next(iter(self.teams.values()), Team("T000000", "nowhere"))
        return {"url": f"https://{team.domain}.slack.test/", "team": team.name, "user": "aria",
                "team_id": team.id, "user_id": self.bot_user_id, "bot_id": self.bot_id,
                "is_enterprise_install": False}

    def apps_connections_open(self, args: dict) -> dict:
        ticket = secrets.token_hex(12)
        self._tickets.add(ticket)
        return {"url": f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}"}

    def chat_post_message(self, args: dict) -> dict:
        channel = self._channel(args)
        message = self._store_message(channel, args)
        return {"channel": channel.id, "ts": message["ts"], "message": message}

    def chat_update(self, args: dict) -> dict:
        channel = self._channel(args)
        message = self.message(channel.id, args.get("ts", ""))
        if message is None:
            raise _ApiError("message_not_found")
        if message.get("bot_id") != self.bot_id:
            raise _ApiError("cant_update_message")
        text = args.get("text")
        blocks = _json_arg(args.get("blocks"))
        if blocks is not None:
            self._check_blocks(blocks, MAX_BLOCKS_MESSAGE)
            message["blocks"] = blocks
        if text is not None:
            message["text"] = text
        message["edited"] = {"user": self.bot_user_id, "ts": self._ts()}
        self.updates.append({"at": time.monotonic(), "channel": channel.id, "ts": message["ts"],
                             "text": message["text"], "blocks": message.get("blocks")})
        return {"channel": channel.id, "ts": message["ts"], "text": message["text"]}

    def chat_delete(self, args: dict) -> dict:
        channel = self._channel(args)
        message = self.message(channel.id, args.get("ts", ""))
        if message is None:
            raise _ApiError("message_not_found")
        if message.get("bot_id") != self.bot_id:
            raise _ApiError("cant_delete_message")
        channel.messages.remove(message)
        self.deleted.append(message)
        return {"channel": channel.id, "ts": message["ts"]}

    def chat_post_ephemeral(self, args: dict) -> dict:
        channel = self._channel(args)
        user = self.users.get(args.get("user", ""))
        if user is None or user.team_id != channel.team_id:
            raise _ApiError("user_not_in_channel")
        blocks = _json_arg(args.get("blocks"))
        if blocks:
            self._check_blocks(blocks, MAX_BLOCKS_MESSAGE)
        if not args.get("text") and not blocks:
            raise _ApiError("no_text")
        self.ephemerals.append({"user": user.id, "channel": channel.id, "text": args.get("text", ""),
                                "blocks": blocks, "thread_ts": args.get("thread_ts"), "via": "chat.postEphemeral",
                                "at": time.monotonic()})
        return {"message_ts": self._ts()}

    def conversations_history(self, args: dict) -> dict:
        channel = self._channel(args)
        oldest = float(args.get("oldest") or 0)
        latest = float(args.get("latest") or "inf")
        inclusive = str(args.get("inclusive", "false")).lower() in ("1", "true")
        limit = int(args.get("limit") or 100)

        def inside(ts: float) -> bool:
            return (oldest <= ts <= latest) if inclusive else (oldest < ts < latest)

        roots = [m for m in channel.messages if m.get("thread_ts") in (None, m["ts"]) and inside(float(m["ts"]))]
        roots.sort(key=lambda m: float(m["ts"]), reverse=True)
        return {"messages": copy.deepcopy(roots[:limit]), "has_more": len(roots) > limit}

    def conversations_replies(self, args: dict) -> dict:
        channel = self._channel(args)
        thread = self.thread(channel.id, args.get("ts", ""))
        if not thread:
            raise _ApiError("thread_not_found")
        limit = int(args.get("limit") or 1000)
        return {"messages": copy.deepcopy(thread[:limit]), "has_more": len(thread) > limit}

    def views_open(self, args: dict) -> dict:
        trigger = self._triggers.pop(args.get("trigger_id", ""), None)
        if trigger is None:
            raise _ApiError("invalid_trigger_id")
        issued, team_id, user_id = trigger
        if time.monotonic() - issued > TRIGGER_LIFETIME_S:
            raise _ApiError("expired_trigger_id")
        view = self._check_view(_json_arg(args.get("view")))
        view_id = self._id("V")
        stored = {**copy.deepcopy(view), "id": view_id, "team_id": team_id, "hash": secrets.token_hex(6),
                  "private_metadata": view.get("private_metadata", ""), "callback_id": view.get("callback_id", ""),
                  "_owner": user_id}
        self.views[view_id] = stored
        return {"view": {k: v for k, v in stored.items() if not k.startswith("_")}}

    def views_update(self, args: dict) -> dict:
        view_id = args.get("view_id", "")
        if view_id not in self.views:
            raise _ApiError("not_found")
        view = self._check_view(_json_arg(args.get("view")))
        self.views[view_id].update(copy.deepcopy(view))
        return {"view": {k: v for k, v in self.views[view_id].items() if not k.startswith("_")}}

    def conversations_open(self, args: dict) -> dict:
        """A direct message between the bot and one user (the same channel every time)."""
        ids = [u for u in str(args.get("users") or "").split(",") if u]
        if len(ids) != 1 or ids[0] not in self.users:
            raise _ApiError("user_not_found" if ids else "users_list_not_supplied")
        user = self.users[ids[0]]
        if user.is_bot:
            raise _ApiError("cannot_dm_bot")
        channel = self.dm_channel(user)
        if channel is None:
            channel = Channel(self._id("D"), user.team_id, f"dm-{user.name}", dm_with=user.id)
            self.channels[channel.id] = channel
        return {"channel": {"id": channel.id}, "no_op": False, "already_open": False}

    def users_info(self, args: dict) -> dict:
        user = self.users.get(args.get("user", ""))
        if user is None:
            raise _ApiError("user_not_found")
        return {"user": user.payload()}

    def usergroups_list(self, args: dict) -> dict:
        include_users = str(args.get("include_users", "false")).lower() in ("1", "true")
        team_id = args.get("team_id")
        groups = [g for g in self.usergroups.values() if team_id in (None, g.team_id)]
        return {"usergroups": [g.payload(include_users) for g in groups]}

    def usergroups_users_list(self, args: dict) -> dict:
        group = self.usergroups.get(args.get("usergroup", ""))
        if group is None or args.get("team_id") not in (None, group.team_id):
            raise _ApiError("no_such_subteam")
        return {"users": list(group.users)}

    def files_get_upload_url_external(self, args: dict) -> dict:
        filename, length = args.get("filename"), args.get("length")
        if not filename or length is None or int(length) <= 0:
            raise _ApiError("invalid_arguments", "filename and a positive length are required")
        file_id = self._id("F")
        self._pending_uploads[file_id] = {"filename": filename, "length": int(length), "data": None}
        return {"upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}

    def files_delete(self, args: dict) -> dict:
        """A file the bot uploaded, deleted: gone from the workspace and from the messages sharing it."""
        obj = self.files.get(args.get("file", ""))
        if obj is None:
            raise _ApiError("file_not_found")
        if obj["user"] != self.bot_user_id:
            raise _ApiError("cant_delete_file")
        del self.files[obj["id"]]
        self.file_data.pop(obj["id"], None)
        for channel in self.channels.values():
            for message in channel.messages:
                if message.get("files"):
                    message["files"] = [f for f in message["files"] if f["id"] != obj["id"]]
        self.deleted_files.append(obj)
        return {}

    def files_complete_upload_external(self, args: dict) -> dict:
        items = _json_arg(args.get("files"))
        if not items:
            raise _ApiError("invalid_arguments", "files is required")
        channel = self._channel(args, "channel_id") if args.get("channel_id") else None
        done = []
        for item in items:
            pending = self._pending_uploads.pop(item.get("id", ""), None)
            if pending is None or pending["data"] is None:
                raise _ApiError("file_not_found", item.get("id", ""))
            if len(pending["data"]) != pending["length"]:
                raise _ApiError("invalid_arguments", "uploaded length differs from the announced one")
            team_id = channel.team_id if channel else ""
            obj = self._new_file(item["id"], self.bot_user_id, team_id, pending["filename"], pending["data"],
                                 _mime_of(pending["filename"]), title=item.get("title"))
            done.append(obj)
        if channel is not None:
            share = {"text": args.get("initial_comment") or "", "thread_ts": args.get("thread_ts")}
            message = self._store_message(channel, {**share, "text": share["text"] or " "})
            message["files"] = copy.deepcopy(done)
            message["upload"] = True
            for obj in done:
                obj["shares"] = {"public": {channel.id: [{"ts": message["ts"], "thread_ts": message.get("thread_ts")}]}}
        return {"files": [{"id": f["id"], "title": f["title"]} for f in done]}

    # -- uploads, downloads and response_url ------------------------------------------------------------

    async def _upload(self, request: web.Request) -> web.Response:
        pending = self._pending_uploads.get(request.match_info["file_id"])
        if pending is None:
            return web.Response(status=404, text="no such upload")
        data = await _upload_bytes(request)
        pending["data"] = data
        return web.Response(text=f"OK - {len(data)}")

    async def _file(self, request: web.Request) -> web.Response:
        file_id = request.match_info["key"].split("-", 1)[-1]
        authorized = _bearer(request) == self.bot_token
        self.downloads.append({"file_id": file_id, "authorized": authorized})
        if file_id in self.file_redirects:
            raise web.HTTPFound(self.file_redirects[file_id])
        if not authorized or file_id in self._hidden:
            return web.Response(body=LOGIN_PAGE, content_type="text/html", charset="utf-8")
        if file_id not in self.files:
            return web.Response(status=404, text="file not found")
        return web.Response(body=self.file_data[file_id], content_type=self.files[file_id]["mimetype"])

    async def _respond(self, request: web.Request) -> web.Response:
        target = self._response_urls.get(request.match_info["rid"])
        if target is None:
            return web.Response(status=404, text="no_response_url")
        body = await request.json()
        if body.get("response_type") == "in_channel":
            self._store_message(self.channels[target["channel"]], body)
        else:
            self.ephemerals.append({"user": target["user"], "channel": target["channel"],
                                    "text": body.get("text", ""), "blocks": body.get("blocks"),
                                    "via": "response_url", "at": time.monotonic()})
        self._touch()
        return web.Response(text="ok")


class _ApiError(Exception):
    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail


_METHODS: dict[str, Callable[[SlackDouble, dict], dict]] = {
    "auth.test": SlackDouble.auth_test,
    "apps.connections.open": SlackDouble.apps_connections_open,
    "chat.postMessage": SlackDouble.chat_post_message,
    "chat.update": SlackDouble.chat_update,
    "chat.delete": SlackDouble.chat_delete,
    "chat.postEphemeral": SlackDouble.chat_post_ephemeral,
    "conversations.history": SlackDouble.conversations_history,
    "conversations.replies": SlackDouble.conversations_replies,
    "views.open": SlackDouble.views_open,
    "views.update": SlackDouble.views_update,
    "users.info": SlackDouble.users_info,
    "conversations.open": SlackDouble.conversations_open,
    "usergroups.list": SlackDouble.usergroups_list,
    "usergroups.users.list": SlackDouble.usergroups_users_list,
    "files.getUploadURLExternal": SlackDouble.files_get_upload_url_external,
    "files.completeUploadExternal": SlackDouble.files_complete_upload_external,
    "files.delete": SlackDouble.files_delete,
}


# Methods whose scope a test may revoke (`revoked_scopes`), and that scope.
_SCOPES = {
    "conversations.open": "im:write",
    "usergroups.list": "usergroups:read",
    "usergroups.users.list": "usergroups:read",
}


# -- helpers ---------------------------------------------------------------------------------------


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:] if header.startswith("Bearer ") else None


async def _request_args(request: web.Request) -> dict:
    """Slack accepts arguments in the query, a form body or a JSON body; merge them."""
    args: dict[str, Any] = dict(request.query)
    if request.can_read_body:
        content_type = request.content_type
        if content_type == "application/json":
            args.update(await request.json())
        elif content_type == "multipart/form-data":
            form = await request.post()
            args.update({k: v for k, v in form.items() if isinstance(v, str)})
        else:
            args.update(dict(parse_qsl((await request.read()).decode())))
    return args


async def _upload_bytes(request: web.Request) -> bytes:
    """The upload URL takes the raw bytes, or a multipart form with one file part."""
    if request.content_type == "multipart/form-data":
        form = await request.post()
        part = next((v for v in form.values() if hasattr(v, "file")), None)
        return part.file.read() if part is not None else b""
    return await request.read()


def _json_arg(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise _ApiError("invalid_arguments", "expected JSON") from None
    return value


def _file_id_from_url(url: str) -> str:
    found = re.search(r"/files-pri/[^/-]+-([^/]+)/", url)
    return found.group(1) if found else ""


def _mime_of(name: str) -> str:
    extension = name.rsplit(".", 1)[-1].lower()
    return {"mid": "audio/midi", "midi": "audio/midi", "ogg": "audio/ogg", "mp3": "audio/mpeg",
            "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "txt": "text/plain"}.get(
        extension, "application/octet-stream")


def _find_element(blocks: list[dict], action_id: str) -> tuple[dict | None, str | None]:
    for block in blocks:
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if element.get("action_id") == action_id:
                return element, block.get("block_id")
        accessory = block.get("accessory")
        if accessory and accessory.get("action_id") == action_id:
            return accessory, block.get("block_id")
    return None, None


def _view_state(view: dict, values: dict[str, Any]) -> dict:
    """The state Slack submits: every input block's element, by block id and action id."""
    state: dict[str, dict] = {}
    for block in view.get("blocks", []):
        if block.get("type") != "input":
            continue
        element = block["element"]
        action_id, kind = element["action_id"], element["type"]
        given = values.get(action_id)
        if kind == "file_input":
            entry = {"type": kind, "files": [copy.deepcopy(f) for f in (given or [])]}
        elif kind == "static_select":
            options = {o["value"]: o for o in element.get("options", [])}
            if given is not None and given not in options:
                raise SlackDoubleError(f"{action_id!r} has no option {given!r}")
            chosen = options.get(given) if given is not None else element.get("initial_option")
            entry = {"type": kind, "selected_option": chosen}
        elif kind in ("plain_text_input", "number_input"):
            value = given if given is not None else element.get("initial_value")
            entry = {"type": kind, "value": None if value is None else str(value)}
            if kind == "number_input":
                entry["is_decimal_allowed"] = element.get("is_decimal_allowed", False)
        elif kind == "checkboxes":
            chosen = [o for o in element.get("options", []) if o["value"] in (given or [])] if given is not None \
                else element.get("initial_options", [])
            entry = {"type": kind, "selected_options": chosen}
        else:
            raise SlackDoubleError(f"the double cannot fill a {kind} input")
        empty = entry.get("value") in (None, "") and not entry.get("files") and not entry.get("selected_option") \
            and kind != "checkboxes"
        if empty and not block.get("optional", False):
            raise SlackDoubleError(f"input {action_id!r} is required (Slack would not let the user submit)")
        state.setdefault(block.get("block_id", action_id), {})[action_id] = entry
    return state
