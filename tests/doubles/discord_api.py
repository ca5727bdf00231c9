"""A local Discord double: REST API, gateway websocket and attachment CDN on 127.0.0.1.

The real discord.py client logs into it (point `discord.http.Route.BASE` at `api_base` and
`DiscordWebSocket.DEFAULT_GATEWAY` at `gateway_url`). It keeps the little world a bot sees
(guilds, channels, roles, members, messages, synced commands), records every request the bot
makes, and lets a test act as Discord's users: send slash commands, use context menus, click
buttons, pick from selects, submit the forms (modals) the bot opens.

It keeps Discord's rules that matter to a bot:
- an interaction must be answered within 3 s and only once (else 404 Unknown interaction / 400
  already acknowledged);
- an interaction token lives 15 minutes (`advance()` moves the double's clock);
- uploads over the interaction's `attachment_size_limit` (or the channel's) get 413;
- commands are invocable only once synced, and options are typed by the synced schema;
- `default_member_permissions` hides a command from members without those permissions.

Gateway frames are uncompressed JSON text; JSON replies carry `Content-Type: application/json`
exactly (discord.py checks the header verbatim).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from aiohttp import WSMsgType, web

DISCORD_EPOCH_MS = 1420070400000
EPHEMERAL = 1 << 6
LOADING = 1 << 7
TOKEN_LIFETIME_S = 15 * 60
RESPONSE_DEADLINE_S = 3.0
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024

ADMINISTRATOR = 1 << 3
MANAGE_GUILD = 1 << 5
MANAGE_MESSAGES = 1 << 13
GUILD_MESSAGES_INTENT = 1 << 9
MESSAGE_CONTENT_INTENT = 1 << 15  # privileged: without it a message's content, attachments and embeds come empty
EVERYONE_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 15) | (1 << 16) | (1 << 31)  # view, send, attach, history, use app cmds

# Application command option types (the ones the test API converts values for).
OPTION_SUBCOMMAND, OPTION_GROUP = 1, 2
OPTION_STRING, OPTION_INTEGER, OPTION_BOOLEAN = 3, 4, 5
OPTION_USER, OPTION_CHANNEL, OPTION_ROLE, OPTION_NUMBER, OPTION_ATTACHMENT = 6, 7, 8, 10, 11


_BODY = web.RequestKey("body", object)
_FILES = web.RequestKey("files", list)


def _now_iso(offset_s: float = 0.0) -> str:
    return datetime.fromtimestamp(time.time() + offset_s, timezone.utc).isoformat()


class _Snowflakes:
    """Discord ids: milliseconds since 2015 in the high bits, a counter in the low ones."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)

    def __call__(self) -> int:
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        return (ms << 22) | (next(self._counter) & 0x3FFFFF)


# -- the world ----------------------------------------------------------------------------


@dataclass
class User:
    id: int
    name: str
    bot: bool = False

    def payload(self) -> dict:
        return {"id": str(self.id), "username": self.name, "discriminator": "0", "global_name": self.name,
                "avatar": None, "bot": self.bot}

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"


@dataclass
class Role:
    id: int
    name: str
    permissions: int = 0
    position: int = 0

    def payload(self) -> dict:
        return {"id": str(self.id), "name": self.name, "permissions": str(self.permissions), "position": self.position,
                "color": 0, "hoist": False, "managed": False, "mentionable": False, "flags": 0}


@dataclass
class Channel:
    id: int
    guild_id: int
    name: str
    position: int = 0
    nsfw: bool = False  # Discord's age-restricted flag
    parent_id: int | None = None  # set for a thread (type 11): the channel it lives in
    owner_id: int = 0  # a thread's: who started it
    members: set[int] = field(default_factory=set)  # a thread's members (Discord's thread members): joined or posted

    def payload(self) -> dict:
        if self.parent_id is not None:  # a public thread
            return {"id": str(self.id), "type": 11, "guild_id": str(self.guild_id), "name": self.name,
                    "parent_id": str(self.parent_id), "owner_id": str(self.owner_id), "last_message_id": None,
                    "rate_limit_per_user": 0, "message_count": 0, "member_count": 0, "flags": 0,
                    "thread_metadata": {"archived": False, "auto_archive_duration": 1440, "locked": False,
                                        "archive_timestamp": _now_iso(0)}}
        return {"id": str(self.id), "type": 0, "guild_id": str(self.guild_id), "name": self.name,
                "position": self.position, "permission_overwrites": [], "nsfw": self.nsfw, "topic": None,
                "last_message_id": None, "rate_limit_per_user": 0, "parent_id": None, "flags": 0}


@dataclass
class Guild:
    id: int
    name: str
    owner_id: int
    channels: dict[int, Channel] = field(default_factory=dict)
    threads: dict[int, Channel] = field(default_factory=dict)  # public threads the bot started on messages
    roles: dict[int, Role] = field(default_factory=dict)
    members: dict[int, list[int]] = field(default_factory=dict)  # user id -> role ids
    upload_limit: int = DEFAULT_UPLOAD_LIMIT

    @property
    def everyone(self) -> Role:
        return self.roles[self.id]

    def channel(self, name: str) -> Channel:
        return next(c for c in self.channels.values() if c.name == name)

    def role(self, name: str) -> Role:
        return next(r for r in self.roles.values() if r.name == name)

    def permissions_of(self, user_id: int, extra: int = 0) -> int:
        value = self.everyone.permissions | extra
        for role_id in self.members.get(user_id, []):
            value |= self.roles[role_id].permissions
        if user_id == self.owner_id or value & ADMINISTRATOR:
            return (1 << 53) - 1
        return value


@dataclass
class StoredFile:
    id: int
    filename: str
    content_type: str
    data: bytes
    url: str

    def payload(self) -> dict:
        return {"id": str(self.id), "filename": self.filename, "size": len(self.data), "url": self.url,
                "proxy_url": self.url, "content_type": self.content_type}


@dataclass
class Message:
    """A message in a channel, as the double stores it (bot-sent or posted by a test user)."""

    id: int
    channel_id: int
    guild_id: int | None
    author: User
    content: str = ""
    embeds: list[dict] = field(default_factory=list)
    components: list[dict] = field(default_factory=list)
    attachments: list[StoredFile] = field(default_factory=list)
    flags: int = 0
    interaction_id: int | None = None  # set for interaction responses and followups
    deleted: bool = False
    edits: list[float] = field(default_factory=list)  # monotonic times of each edit
    created: float = field(default_factory=time.monotonic)
    timestamp: str = field(default_factory=_now_iso)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def loading(self) -> bool:
        return bool(self.flags & LOADING)

    def file(self, suffix: str) -> StoredFile | None:
        return next((f for f in self.attachments if f.filename.endswith(suffix)), None)

    def custom_ids(self) -> list[str]:
        return [c["custom_id"] for row in self.components for c in row.get("components", []) if "custom_id" in c]

    def text(self) -> str:
        """Content and embed text together, for assertions that do not care where a word is."""
        parts = [self.content]
        for embed in self.embeds:
            parts += [embed.get("title") or "", embed.get("description") or ""]
            parts += [f"{f.get('name')}: {f.get('value')}" for f in embed.get("fields", [])]
            parts.append((embed.get("footer") or {}).get("text") or "")
        return "\n".join(p for p in parts if p)

    def payload(self) -> dict:
        data = {
            "id": str(self.id), "channel_id": str(self.channel_id), "author": self.author.payload(),
            "content": self.content, "timestamp": self.timestamp,
            "edited_timestamp": _now_iso() if self.edits else None, "tts": False, "mention_everyone": False,
            "mentions": [], "mention_roles": [], "attachments": [f.payload() for f in self.attachments],
            "embeds": copy.deepcopy(self.embeds), "components": copy.deepcopy(self.components), "pinned": False,
            "type": 0 if self.interaction_id is None else 20, "flags": self.flags,
        }
        if self.guild_id is not None:
            data["guild_id"] = str(self.guild_id)
        return data


@dataclass
class Interaction:
    """One interaction the test sent, and what the bot did with it."""

    id: int
    token: str
    type: int
    guild_id: int
    channel_id: int
    user: User
    upload_limit: int
    sent_at: float  # double clock
    payload: dict
    callbacks: list[dict] = field(default_factory=list)
    original: Message | None = None
    followups: list[Message] = field(default_factory=list)
    target_message: Message | None = None  # for components: the message clicked on
    modal: dict | None = None  # the form the bot answered with (callback type 9), for `submit_modal`

    @property
    def answered(self) -> bool:
        return bool(self.callbacks)

    @property
    def messages(self) -> list[Message]:
        return ([self.original] if self.original else []) + self.followups


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict
    json: Any
    files: list[tuple[str, str, bytes]]  # (filename, content type, data)
    at: float
    status: int = 0


@dataclass
class _GatewaySession:
    ws: web.WebSocketResponse
    session_id: str
    shard_id: int = 0
    shard_count: int = 1
    intents: int = 0
    seq: int = 0
    identified: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def owns(self, guild_id: int) -> bool:
        return (guild_id >> 22) % self.shard_count == self.shard_id


class DiscordHTTPError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


# -- the double ---------------------------------------------------------------------------


class DiscordDouble:
    """Discord, small enough to run inside a test. Use as `async with DiscordDouble() as discord:`."""

    def __init__(self, *, token: str = "test-bot-token", recommended_shards: int = 1,
                 response_deadline_s: float = RESPONSE_DEADLINE_S) -> None:
        self.token = token
        self.recommended_shards = recommended_shards
        self.response_deadline_s = response_deadline_s
        self.snowflake = _Snowflakes()
        self.application_id = self.snowflake()
        self.bot = User(self.application_id, "ARIA", bot=True)
        self.guilds: dict[int, Guild] = {}
        self.users: dict[int, User] = {}
        self.messages: dict[int, Message] = {}
        self.interactions: dict[int, Interaction] = {}
        self.commands: dict[int | None, list[dict]] = {}  # None = global
        self.command_syncs: list[tuple[int | None, list[dict]]] = []
        self.requests: list[RecordedRequest] = []
        self.downloads: list[str] = []  # CDN paths fetched
        self.errors: list[str] = []  # requests the double refused, with why
        self.sessions: list[_GatewaySession] = []
        self.dm_channels: dict[int, User] = {}  # DM channel id -> the user at the other end
        self.identifies: list[dict] = []
        self.clock_offset = 0.0
        self.on_request: list[Callable[[RecordedRequest], None]] = []  # test hooks, called after each request
        self._cdn: dict[str, StoredFile] = {}
        self.cdn_redirects: dict[str, str] = {}  # CDN path -> where it answers 302 to (see redirect_attachment)
        self._changed = asyncio.Event()
        self._guild_counter = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> "DiscordDouble":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self._record])
        app.router.add_get("/gateway-ws", self._gateway)
        app.router.add_get("/cdn/{path:.*}", self._serve_cdn)
        app.router.add_route("*", "/api/v10/{path:.*}", self._api)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # the port the OS picked

    async def close(self) -> None:
        for session in list(self.sessions):
            await session.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway-ws"

    def now(self) -> float:
        """The double's clock (wall time plus what `advance` added)."""
        return time.time() + self.clock_offset

    def advance(self, seconds: float) -> None:
        """Move the double's clock on: interaction tokens expire after 15 minutes of it."""
        self.clock_offset += seconds

    # -- building the world ---------------------------------------------------------------

    def add_user(self, name: str) -> User:
        user = User(self.snowflake(), name)
        self.users[user.id] = user
        return user

    def add_guild(self, name: str, *, owner: User | None = None, channels: tuple[str, ...] = ("general",),
                  upload_limit: int = DEFAULT_UPLOAD_LIMIT) -> Guild:
        """A guild (with @everyone and the bot as a member). Ids spread guilds over shards."""
        owner = owner or self.add_user(f"{name}-owner")
        n = next(self._guild_counter)
        guild_id = (((int(time.time() * 1000) - DISCORD_EPOCH_MS) // 1000 * 1000 + n) << 22) | n
        guild = Guild(guild_id, name, owner.id, upload_limit=upload_limit)
        guild.roles[guild_id] = Role(guild_id, "@everyone", EVERYONE_PERMISSIONS)
        guild.members[owner.id] = []
        guild.members[self.bot.id] = []
        for position, channel_name in enumerate(channels):
            self.add_channel(guild, channel_name, position=position)
        self.guilds[guild.id] = guild
        return guild

    def add_channel(self, guild: Guild, name: str, *, position: int = 0) -> Channel:
        channel = Channel(self.snowflake(), guild.id, name, position)
        guild.channels[channel.id] = channel
        return channel

    def add_role(self, guild: Guild, name: str, permissions: int = 0) -> Role:
        role = Role(self.snowflake(), name, permissions, position=len(guild.roles))
        guild.roles[role.id] = role
        return role

    def add_member(self, guild: Guild, user: User, roles: tuple[Role, ...] = ()) -> None:
        guild.members[user.id] = [r.id for r in roles]

    def add_attachment(self, data: bytes, filename: str, content_type: str | None = "image/png",
                       *, size: int | None = None) -> dict:
        """An uploaded file on the CDN; returns its attachment payload (as Discord sends it).

        `size` overrides the size Discord reports (to test checks made before downloading).
        """
        stored = self._store_file(filename, content_type or "", data)
        payload = stored.payload()
        if content_type is None:
            payload.pop("content_type")
        if size is not None:
            payload["size"] = size
        return payload

    def post_message(self, channel: Channel, user: User, content: str = "",
                     attachments: list[dict] = ()) -> Message:
        """A message a user posted (for the message context menu)."""
        files = [self._cdn[self._cdn_path(a["url"])] for a in attachments]
        message = Message(self.snowflake(), channel.id, channel.guild_id, user, content, attachments=files)
        self.messages[message.id] = message
        return message

    def join_thread(self, thread: Channel, user: User) -> None:
        """The user joins the thread (Discord's Join Thread), as posting in it also does."""
        thread.members.add(user.id)

    async def send_message(self, channel: Channel, user: User, content: str = "",
                           attachments: list[dict] = ()) -> Message:
        """A user posts a message (in a thread, they join it): MESSAGE_CREATE goes to the sessions
        that asked for GUILD_MESSAGES, with its content, attachments and embeds only for those
        that also have the privileged MESSAGE_CONTENT intent (it does not mention the bot)."""
        message = self.post_message(channel, user, content, attachments)
        if channel.parent_id is not None:
            channel.members.add(user.id)
        guild = self.guilds[channel.guild_id]
        member = {k: v for k, v in self._member_payload(guild, user.id).items() if k != "user"}
        full = {**message.payload(), "guild_id": str(guild.id), "member": member}
        blank = {**full, "content": "", "attachments": [], "embeds": []}
        for session in [s for s in self.sessions if s.identified and s.owns(guild.id)]:
            if session.intents & GUILD_MESSAGES_INTENT:
                await self._send(session, {"op": 0, "t": "MESSAGE_CREATE",
                                           "d": full if session.intents & MESSAGE_CONTENT_INTENT else blank})
        self._notify()
        return message

    def _store_file(self, filename: str, content_type: str, data: bytes) -> StoredFile:
        file_id = self.snowflake()
        path = f"attachments/{file_id}/{filename}"
        stored = StoredFile(file_id, filename, content_type, data, f"{self.base_url}/cdn/{path}")
        self._cdn[path] = stored
        return stored

    def redirect_attachment(self, attachment: dict, to: str) -> None:
        """The attachment's CDN URL answers 302 to `to` (what a compromised or tricked URL might do)."""
        self.cdn_redirects[self._cdn_path(attachment["url"])] = to

    def _cdn_path(self, url: str) -> str:
        return url.split("/cdn/", 1)[1]

    # -- acting as users ------------------------------------------------------------------

    async def send_slash_command(
        self, guild: Guild, channel: Channel, user: User, command: str, options: dict | None = None, *,
        permissions: int = 0, roles: tuple[Role, ...] = (), attachment_size_limit: int | None = None,
        bypass_command_permissions: bool = False,
    ) -> Interaction:
        """Run `/command` (a space-separated path for subcommands: "aria-admin cooldown").

        Option values are plain Python values, typed by the synced schema; attachment options
        take the payload `add_attachment` returned. Raises LookupError for a command that was
        never synced and PermissionError for one Discord would hide from this member (unless
        `bypass_command_permissions`, as when a server overrides the command's permissions).
        """
        name, *path = command.split()
        schema = self._synced_command(guild.id, name, 1)
        member_permissions = self._member_permissions(guild, user, permissions, roles)
        self._check_command_permissions(schema, member_permissions, bypass_command_permissions)
        resolved: dict = {}
        node, wrappers = schema, []
        for part in path:
            node = next((o for o in node.get("options", []) if o["name"] == part and o["type"] in (1, 2)), None)
            if node is None:
                raise LookupError(f"/{command}: no subcommand {part!r} was synced")
            wrappers.append(node)
        option_payloads = self._typed_options(node, options or {}, resolved)
        for wrapper in reversed(wrappers):
            option_payloads = [{"name": wrapper["name"], "type": wrapper["type"], "options": option_payloads}]
        data = {"id": schema["id"], "name": name, "type": 1, "options": option_payloads}
        if schema.get("guild_id"):
            data["guild_id"] = schema["guild_id"]
        if resolved:
            data["resolved"] = resolved
        return await self._interact(2, guild, channel, user, data, member_permissions, roles, attachment_size_limit)

    async def send_context_menu(
        self, guild: Guild, channel: Channel, user: User, name: str, message: Message, *,
        permissions: int = 0, roles: tuple[Role, ...] = (), attachment_size_limit: int | None = None,
    ) -> Interaction:
        """Use a message context menu command on `message`."""
        schema = self._synced_command(guild.id, name, 3)
        member_permissions = self._member_permissions(guild, user, permissions, roles)
        self._check_command_permissions(schema, member_permissions, False)
        data = {"id": schema["id"], "name": name, "type": 3, "target_id": str(message.id),
                "resolved": {"messages": {str(message.id): message.payload()}}}
        if schema.get("guild_id"):
            data["guild_id"] = schema["guild_id"]
        return await self._interact(2, guild, channel, user, data, member_permissions, roles, attachment_size_limit)

    async def click_button(self, message: Message, custom_id: str, user: User, *, permissions: int = 0,
                           roles: tuple[Role, ...] = (), attachment_size_limit: int | None = None) -> Interaction:
        """Click the button with `custom_id` on `message` (it must be there)."""
        return await self._component(message, custom_id, 2, None, user, permissions, roles, attachment_size_limit)

    async def choose(self, message: Message, custom_id: str, values: list[str], user: User, *,
                     permissions: int = 0, roles: tuple[Role, ...] = (),
                     attachment_size_limit: int | None = None) -> Interaction:
        """Pick `values` from the string select with `custom_id` on `message`."""
        return await self._component(message, custom_id, 3, values, user, permissions, roles, attachment_size_limit)

    async def _component(self, message, custom_id, component_type, values, user, permissions, roles, limit):
        if message.deleted:
            raise LookupError("that message was deleted")
        if custom_id not in message.custom_ids():
            raise LookupError(f"no component {custom_id!r} on message {message.id}: {message.custom_ids()}")
        guild = self.guilds[message.guild_id]
        channel = self._channel(str(message.channel_id))
        data = {"custom_id": custom_id, "component_type": component_type}
        if values is not None:
            data["values"] = list(values)
        member_permissions = self._member_permissions(guild, user, permissions, roles)
        interaction = await self._interact(3, guild, channel, user, data, member_permissions, roles, limit,
                                           message=message)
        return interaction

    async def submit_modal(self, interaction: Interaction, values: dict[str, Any] | None = None, *,
                           permissions: int = 0) -> Interaction:
        """Submit the form the bot opened in answer to `interaction` (MODAL_SUBMIT, type 5), as its
        user. `values` maps a field's custom id (or its label) to text for a text input, or to a
        list of `add_attachment` payloads for a file upload (sent in `resolved.attachments`).
        Fields not named come empty; a required one left empty raises, as Discord's form would."""
        if interaction.modal is None:
            raise LookupError(f"interaction {interaction.id} was not answered with a modal")
        values = values or {}
        resolved: dict = {}

        def given(component: dict, label: str | None):
            for key in (component.get("custom_id"), label or component.get("label")):
                if key in values:
                    return values[key]
            return None

        def submitted(component: dict, label: str | None = None) -> dict:
            kind, value = component["type"], given(component, label)
            if kind == 4:  # text input
                text = "" if value is None else str(value)
                if not text and component.get("required", True):
                    raise ValueError(f"field {label or component.get('label')!r} is required")
                return {"type": 4, "custom_id": component["custom_id"], "value": text}
            if kind == 19:  # file upload
                files = list(value or [])
                if not files and component.get("required", True):
                    raise ValueError(f"field {label!r} is required")
                for file in files:
                    resolved.setdefault("attachments", {})[file["id"]] = file
                return {"type": 19, "custom_id": component["custom_id"], "values": [f["id"] for f in files]}
            raise ValueError(f"the double cannot fill a component of type {kind}")

        components = []
        for top in interaction.modal.get("components", []):
            if top["type"] == 1:  # an action row around a text input
                components.append({"type": 1, "components": [submitted(c) for c in top["components"]]})
            elif top["type"] == 18:  # a label around one component
                components.append({"type": 18, "component": submitted(top["component"], top.get("label"))})
        data = {"custom_id": interaction.modal["custom_id"], "components": components}
        if resolved:
            data["resolved"] = resolved
        guild = self.guilds[interaction.guild_id]
        channel = self._channel(str(interaction.channel_id))
        member_permissions = self._member_permissions(guild, interaction.user, permissions, ())
        return await self._interact(5, guild, channel, interaction.user, data, member_permissions, (),
                                    interaction.upload_limit, message=interaction.target_message)

    async def send_raw_interaction(self, guild: Guild, channel: Channel, user: User, type_: int, data: dict, *,
                                   message: Message | None = None, permissions: int = 0) -> Interaction:
        """An interaction with exactly this `data`, unchecked: what a stale client or an old
        message might still send (a command since removed, a button from an older version)."""
        member_permissions = self._member_permissions(guild, user, permissions, ())
        return await self._interact(type_, guild, channel, user, data, member_permissions, (), None, message=message)

    async def redeliver(self, interaction: Interaction) -> None:
        """Send an interaction's INTERACTION_CREATE again, as Discord does to every session of a
        bot that is connected twice (a rolling restart, a second replica) or after a resume."""
        await self.dispatch("INTERACTION_CREATE", interaction.payload, guild_id=interaction.guild_id)

    def _member_permissions(self, guild: Guild, user: User, extra: int, roles: tuple[Role, ...]) -> int:
        if user.id not in guild.members or roles:
            self.add_member(guild, user, roles)
        return guild.permissions_of(user.id, extra)

    def _check_command_permissions(self, schema: dict, member_permissions: int, bypass: bool) -> None:
        needed = schema.get("default_member_permissions")
        if needed is None or bypass:
            return
        needed = int(needed)
        if member_permissions & needed != needed:
            raise PermissionError(f"Discord hides /{schema['name']} from members without permissions {needed}")

    def _synced_command(self, guild_id: int, name: str, type_: int) -> dict:
        for scope in (guild_id, None):
            for command in self.commands.get(scope, []):
                if command["name"] == name and command.get("type", 1) == type_:
                    return command
        raise LookupError(f"command {name!r} (type {type_}) was never synced")

    def _typed_options(self, schema: dict, values: dict, resolved: dict) -> list[dict]:
        by_name = {o["name"]: o for o in schema.get("options", [])}
        out = []
        for name, value in values.items():
            option = by_name.get(name)
            if option is None:
                raise LookupError(f"/{schema['name']} has no option {name!r}; synced: {sorted(by_name)}")
            kind = option["type"]
            if kind == OPTION_ATTACHMENT:
                resolved.setdefault("attachments", {})[value["id"]] = value
                value = value["id"]
            elif kind in (OPTION_CHANNEL, OPTION_ROLE, OPTION_USER):
                key = {OPTION_CHANNEL: "channels", OPTION_ROLE: "roles", OPTION_USER: "users"}[kind]
                entry = value.payload()
                if kind == OPTION_CHANNEL:  # resolved channels carry the member's permissions there
                    entry["permissions"] = str(self.guilds[value.guild_id].everyone.permissions)
                resolved.setdefault(key, {})[str(value.id)] = entry
                value = str(value.id)
            elif kind == OPTION_INTEGER:
                value = int(value)
            elif kind == OPTION_NUMBER:
                value = float(value)
            elif kind == OPTION_BOOLEAN:
                value = bool(value)
            elif kind == OPTION_STRING:
                value = str(value)
            low, high = option.get("min_value"), option.get("max_value")
            if (low is not None and value < low) or (high is not None and value > high):
                raise ValueError(f"Discord's client refuses {value!r} for {name!r} (allowed {low}..{high})")
            choices = option.get("choices")
            if choices and value not in [c["value"] for c in choices]:
                raise ValueError(f"{value!r} is not one of the choices of {name!r}")
            out.append({"name": name, "type": kind, "value": value})
        missing = [o["name"] for o in by_name.values() if o.get("required") and o["name"] not in values]
        if missing:
            raise ValueError(f"/{schema['name']}: required options missing: {missing}")
        return out

    async def _interact(self, type_: int, guild: Guild, channel: Channel, user: User, data: dict,
                        permissions: int, roles: tuple[Role, ...], upload_limit: int | None,
                        message: Message | None = None) -> Interaction:
        interaction_id = self.snowflake()
        token = "aW50ZXJhY3Rpb24" + secrets.token_urlsafe(32)
        upload_limit = guild.upload_limit if upload_limit is None else upload_limit
        member = {"user": user.payload(), "roles": [str(r) for r in guild.members.get(user.id, [])],
                  "joined_at": _now_iso(-86400), "deaf": False, "mute": False, "flags": 0,
                  "permissions": str(permissions), "nick": None, "avatar": None, "pending": False}
        payload = {
            "id": str(interaction_id), "application_id": str(self.application_id), "type": type_,
            "data": data, "guild_id": str(guild.id), "channel": channel.payload(), "channel_id": str(channel.id),
            "member": member, "token": token, "version": 1, "app_permissions": str(guild.permissions_of(self.bot.id)),
            "locale": "en-US", "guild_locale": "en-US", "entitlements": [], "attachment_size_limit": upload_limit,
            "authorizing_integration_owners": {"0": str(guild.id)}, "context": 0,
        }
        if message is not None:
            payload["message"] = message.payload()
        interaction = Interaction(interaction_id, token, type_, guild.id, channel.id, user, upload_limit,
                                  self.now(), payload, target_message=message)
        self.interactions[interaction_id] = interaction
        await self.dispatch("INTERACTION_CREATE", payload, guild_id=guild.id)
        return interaction

    # -- waiting for the bot --------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
        """Wait until `predicate()` is truthy (re-checked after every request); returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}; double errors: {self.errors}")
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=min(remaining, 0.5))
            except asyncio.TimeoutError:
                pass

    async def wait_for_message(self, predicate: Callable[[Message], bool] = lambda m: True, *,
                               timeout: float = 10.0, include_deleted: bool = False) -> Message:
        """The first bot message (created or edited into a state) matching `predicate`."""
        def find():
            for message in list(self.messages.values()):
                if message.author.id == self.bot.id and (include_deleted or not message.deleted):
                    if predicate(message):
                        return message
            return None
        return await self.wait_for(find, timeout, "a matching message")

    async def wait_for_response(self, interaction: Interaction, timeout: float = 10.0) -> dict:
        """The interaction's first callback (its initial response)."""
        await self.wait_for(lambda: interaction.answered, timeout, f"a response to interaction {interaction.id}")
        return interaction.callbacks[0]

    def bot_messages(self, *, channel: Channel | None = None, include_deleted: bool = False) -> list[Message]:
        return [m for m in self.messages.values() if m.author.id == self.bot.id
                and (include_deleted or not m.deleted) and (channel is None or m.channel_id == channel.id)]

    def dms_to(self, user: User) -> list[Message]:
        """What the bot sent this user in direct messages."""
        return [m for m in self.messages.values() if self.dm_channels.get(m.channel_id) is user and not m.deleted]

    def requests_to(self, method: str, fragment: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and fragment in r.path]

    # -- gateway --------------------------------------------------------------------------

    async def dispatch(self, event: str, data: dict, *, guild_id: int | None = None) -> None:
        """Send a DISPATCH event to the session that owns `guild_id` (or every session)."""
        targets = [s for s in self.sessions if s.identified and (guild_id is None or s.owns(guild_id))]
        if not targets:
            raise RuntimeError(f"no gateway session is connected for guild {guild_id}")
        for session in targets:
            await self._send(session, {"op": 0, "t": event, "d": data})

    async def wait_until_connected(self, shards: int = 1, timeout: float = 10.0) -> None:
        await self.wait_for(lambda: sum(s.identified and not s.ws.closed for s in self.sessions) >= shards,
                            timeout, f"{shards} identified gateway session(s)")

    async def _send(self, session: _GatewaySession, frame: dict) -> None:
        async with session.lock:
            if frame.get("op") == 0:
                session.seq += 1
                frame["s"] = session.seq
            else:
                frame.setdefault("s", None)
            frame.setdefault("t", None)
            if not session.ws.closed:
                await session.ws.send_str(json.dumps(frame))

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        session = _GatewaySession(ws, secrets.token_hex(16))
        self.sessions.append(session)
        await self._send(session, {"op": 10, "d": {"heartbeat_interval": 41250}})
        try:
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                message = json.loads(frame.data)
                op = message.get("op")
                if op == 1:
                    await self._send(session, {"op": 11})
                elif op == 2:
                    await self._identify(session, message["d"])
                elif op == 6:
                    await self._send(session, {"op": 9, "d": False})  # no resuming here: identify again
        finally:
            session.identified = False
            self._notify()
        return ws

    async def _identify(self, session: _GatewaySession, data: dict) -> None:
        self.identifies.append(data)
        if data.get("token") != self.token:
            await session.ws.close(code=4004, message=b"Authentication failed.")
            return
        session.shard_id, session.shard_count = data.get("shard", [0, 1])
        session.intents = data.get("intents", 0)
        guilds = [g for g in self.guilds.values() if session.owns(g.id)]
        ready = {
            "v": 10, "user": {**self.bot.payload(), "verified": True, "mfa_enabled": False, "flags": 0},
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session.session_id, "resume_gateway_url": self.gateway_url,
            "shard": [session.shard_id, session.shard_count],
            "application": {"id": str(self.application_id), "flags": 0},
            "private_channels": [], "relationships": [], "presences": [], "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
        }
        await self._send(session, {"op": 0, "t": "READY", "d": ready})
        for guild in guilds:
            await self._send(session, {"op": 0, "t": "GUILD_CREATE", "d": self._guild_payload(guild)})
        session.identified = True
        self._notify()

    def _guild_payload(self, guild: Guild) -> dict:
        return {
            "id": str(guild.id), "name": guild.name, "owner_id": str(guild.owner_id), "unavailable": False,
            "member_count": len(guild.members), "large": False, "features": [], "emojis": [], "stickers": [],
            "roles": [r.payload() for r in guild.roles.values()],
            "channels": [c.payload() for c in guild.channels.values()],
            "members": [self._member_payload(guild, self.bot.id)],
            "threads": [], "voice_states": [], "presences": [], "stage_instances": [],
            "guild_scheduled_events": [], "soundboard_sounds": [], "joined_at": _now_iso(-86400),
            "premium_tier": 0, "preferred_locale": "en-US", "verification_level": 0,
            "default_message_notifications": 0, "explicit_content_filter": 0, "mfa_level": 0, "nsfw_level": 0,
            "system_channel_id": None, "afk_timeout": 300, "icon": None,
        }

    def _member_payload(self, guild: Guild, user_id: int) -> dict:
        user = self.bot if user_id == self.bot.id else self.users[user_id]
        return {"user": user.payload(), "roles": [str(r) for r in guild.members.get(user_id, [])],
                "joined_at": _now_iso(-86400), "deaf": False, "mute": False, "flags": 0}

    # -- REST -----------------------------------------------------------------------------

    @web.middleware
    async def _record(self, request: web.Request, handler):
        if request.path == "/gateway-ws":
            return await handler(request)
        body, files = await self._read_body(request)
        recorded = RecordedRequest(request.method, request.path, dict(request.query), body, files, time.monotonic())
        request[_BODY], request[_FILES] = body, files
        self.requests.append(recorded)
        try:
            response = await handler(request)
        except DiscordHTTPError as error:
            self.errors.append(f"{request.method} {request.path}: {error.status} {error.message}")
            response = self._json({"message": error.message, "code": error.code}, status=error.status)
        recorded.status = response.status
        for hook in list(self.on_request):
            hook(recorded)
        self._notify()
        return response

    async def _read_body(self, request: web.Request) -> tuple[Any, list[tuple[str, str, bytes]]]:
        if request.content_type == "multipart/form-data":
            body, files = None, []
            reader = await request.multipart()
            async for part in reader:
                data = await part.read(decode=False)
                if part.name == "payload_json":
                    body = json.loads(data)
                else:
                    files.append((part.filename, part.headers.get("Content-Type", ""), bytes(data)))
            return body, files
        raw = await request.read()
        return (json.loads(raw) if raw and request.content_type == "application/json" else None), []

    @staticmethod
    def _json(data: Any, status: int = 200) -> web.Response:
        # discord.py only parses JSON when the header is exactly "application/json".
        return web.Response(body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"})

    async def _serve_cdn(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        stored = self._cdn.get(path)
        self.downloads.append(path)
        if path in self.cdn_redirects:
            raise web.HTTPFound(self.cdn_redirects[path])
        if stored is None:
            return web.Response(status=404, text="Not found")
        return web.Response(body=stored.data, headers={"Content-Type": stored.content_type or "application/octet-stream"})

    async def _api(self, request: web.Request) -> web.Response:
        if request.method != "GET" or not request.path.endswith("/gateway"):
            if request.headers.get("Authorization") not in (f"Bot {self.token}", None):
                raise DiscordHTTPError(401, 0, "401: Unauthorized")
        parts = request.match_info["path"].strip("/").split("/")
        method = request.method
        body = request[_BODY]
        files = request[_FILES]
        for pattern, handler in self._routes():
            if pattern[0] == method and _match(pattern[1], parts):
                result = await handler(request, *_captures(pattern[1], parts), body=body, files=files)
                if isinstance(result, web.Response):
                    return result
                if result is None:
                    return web.Response(status=204)
                return self._json(result)
        raise DiscordHTTPError(404, 0, f"404: Not Found ({method} /{'/'.join(parts)})")

    def _routes(self):
        return [
            (("GET", "gateway"), self._get_gateway),
            (("GET", "gateway/bot"), self._get_gateway_bot),
            (("GET", "users/@me"), self._get_me),
            (("GET", "oauth2/applications/@me"), self._get_application),
            (("GET", "applications/*/commands"), self._get_global_commands),
            (("PUT", "applications/*/commands"), self._put_global_commands),
            (("GET", "applications/*/guilds/*/commands"), self._get_guild_commands),
            (("PUT", "applications/*/guilds/*/commands"), self._put_guild_commands),
            (("POST", "interactions/*/*/callback"), self._interaction_callback),
            (("GET", "webhooks/*/*/messages/*"), self._get_webhook_message),
            (("PATCH", "webhooks/*/*/messages/*"), self._edit_webhook_message),
            (("DELETE", "webhooks/*/*/messages/*"), self._delete_webhook_message),
            (("POST", "webhooks/*/*"), self._followup),
            (("POST", "users/@me/channels"), self._open_dm),
            (("POST", "channels/*/messages/*/threads"), self._start_thread),
            (("POST", "channels/*/messages"), self._create_channel_message),
            (("GET", "channels/*/messages/*"), self._get_channel_message),
            (("GET", "channels/*/thread-members/*"), self._get_thread_member),
            (("PATCH", "channels/*/messages/*"), self._edit_channel_message),
            (("DELETE", "channels/*/messages/*"), self._delete_channel_message),
            (("GET", "channels/*"), self._get_channel),
            (("GET", "guilds/*/members/*"), self._get_member),
            (("GET", "guilds/*/roles"), self._get_roles),
            (("GET", "guilds/*"), self._get_guild),
        ]

    async def _get_gateway(self, request, **_):
        return {"url": self.gateway_url}

    async def _get_gateway_bot(self, request, **_):
        return {"url": self.gateway_url, "shards": self.recommended_shards,
                "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}}

    async def _get_me(self, request, **_):
        return {**self.bot.payload(), "verified": True, "mfa_enabled": False, "flags": 0}

    async def _get_application(self, request, **_):
        owner = User(self.snowflake(), "aria-owner")
        return {"id": str(self.application_id), "name": "ARIA", "description": "", "icon": None,
                "bot_public": True, "bot_require_code_grant": False, "owner": owner.payload(),
                "verify_key": "0" * 64, "flags": 0, "team": None}

    async def _get_global_commands(self, request, app_id, **_):
        return self.commands.get(None, [])

    async def _put_global_commands(self, request, app_id, *, body, **_):
        return self._sync(None, body)

    async def _get_guild_commands(self, request, app_id, guild_id, **_):
        return self.commands.get(int(guild_id), [])

    async def _put_guild_commands(self, request, app_id, guild_id, *, body, **_):
        if int(guild_id) not in self.guilds:
            raise DiscordHTTPError(403, 50001, "Missing Access")
        return self._sync(int(guild_id), body)

    def _sync(self, scope: int | None, commands: list[dict]) -> list[dict]:
        if not isinstance(commands, list):
            raise DiscordHTTPError(400, 50035, "Invalid Form Body: expected a list of commands")
        names = [(c["name"], c.get("type", 1)) for c in commands]
        if len(set(names)) != len(names):
            raise DiscordHTTPError(400, 50035, "Invalid Form Body: duplicate command names")
        stored = []
        for command in commands:
            _check_command_schema(command)
            record = {**copy.deepcopy(command), "id": str(self.snowflake()),
                      "application_id": str(self.application_id), "version": str(self.snowflake())}
            record.setdefault("type", 1)
            record.setdefault("description", "")
            if scope is not None:
                record["guild_id"] = str(scope)
            stored.append(record)
        self.commands[scope] = stored
        self.command_syncs.append((scope, stored))
        return stored

    # interactions

    def _interaction(self, interaction_id: str, token: str) -> Interaction:
        interaction = self.interactions.get(int(interaction_id))
        if interaction is None or interaction.token != token:
            raise DiscordHTTPError(404, 10062, "Unknown interaction")
        return interaction

    def _by_token(self, app_id: str, token: str) -> Interaction:
        if int(app_id) != self.application_id:
            raise DiscordHTTPError(404, 10015, "Unknown Webhook")
        interaction = next((i for i in self.interactions.values() if i.token == token), None)
        if interaction is None:
            raise DiscordHTTPError(404, 10015, "Unknown Webhook")
        if self.now() - interaction.sent_at > TOKEN_LIFETIME_S:
            raise DiscordHTTPError(401, 50027, "Invalid Webhook Token")
        return interaction

    async def _interaction_callback(self, request, interaction_id, token, *, body, files):
        interaction = self._interaction(interaction_id, token)
        late = self.now() - interaction.sent_at
        if interaction.answered:
            raise DiscordHTTPError(400, 40060, "Interaction has already been acknowledged.")
        if late > self.response_deadline_s:
            raise DiscordHTTPError(404, 10062, f"Unknown interaction (answered after {late:.2f} s)")
        kind = body["type"]
        data = body.get("data") or {}
        interaction.callbacks.append(body)
        channel = self._channel(str(interaction.channel_id))  # a channel or a thread
        message: Message | None = None
        if kind in (4, 5):  # a message, or "thinking..."
            flags = int(data.get("flags", 0)) | (LOADING if kind == 5 else 0)
            message = self._new_message(channel, data, files, flags, interaction.upload_limit, interaction.id)
            interaction.original = message
        elif kind == 7:  # update the message the component is on
            message = interaction.target_message
            self._apply_edit(message, data, files, interaction.upload_limit)
        elif kind == 6:  # deferred update: @original is the component's message
            message = interaction.target_message
        elif kind == 9:  # modal: shown to the user, kept for `submit_modal`
            interaction.modal = copy.deepcopy(data)
        else:
            raise DiscordHTTPError(400, 50035, f"Invalid Form Body: unsupported callback type {kind}")
        if kind in (6, 7):
            interaction.original = interaction.target_message
        callback = {"interaction": {"id": str(interaction.id), "type": interaction.type}}
        if message is not None:
            callback["interaction"].update(response_message_id=str(message.id),
                                           response_message_loading=message.loading,
                                           response_message_ephemeral=message.ephemeral)
            if kind in (4, 5, 7):
                callback["resource"] = {"type": kind, "message": message.payload()}
        return callback

    def _webhook_message(self, interaction: Interaction, message_id: str) -> Message:
        if message_id == "@original":
            if interaction.original is None:
                raise DiscordHTTPError(404, 10008, "Unknown Message")
            message = interaction.original
        else:
            message = next((m for m in interaction.followups if m.id == int(message_id)), None)
            if message is None:
                raise DiscordHTTPError(404, 10008, "Unknown Message")
        if message.deleted:
            raise DiscordHTTPError(404, 10008, "Unknown Message")
        return message

    async def _get_webhook_message(self, request, app_id, token, message_id, **_):
        return self._webhook_message(self._by_token(app_id, token), message_id).payload()

    async def _edit_webhook_message(self, request, app_id, token, message_id, *, body, files):
        interaction = self._by_token(app_id, token)
        message = self._webhook_message(interaction, message_id)
        self._apply_edit(message, body or {}, files, interaction.upload_limit)
        message.flags &= ~LOADING
        return message.payload()

    async def _delete_webhook_message(self, request, app_id, token, message_id, **_):
        message = self._webhook_message(self._by_token(app_id, token), message_id)
        message.deleted = True
        return None

    async def _followup(self, request, app_id, token, *, body, files):
        interaction = self._by_token(app_id, token)
        if not interaction.answered:
            raise DiscordHTTPError(400, 40060, "Interaction has not been acknowledged.")
        channel = self._channel(str(interaction.channel_id))  # a channel or a thread
        data = body or {}
        original = interaction.original
        if original is not None and original.loading and not original.deleted and original.author.id == self.bot.id:
            # The first followup after a "thinking" defer replaces the loading message.
            message = interaction.original
            self._apply_edit(message, data, files, interaction.upload_limit)
            message.flags = int(data.get("flags", 0))
        else:
            message = self._new_message(channel, data, files, int(data.get("flags", 0)), interaction.upload_limit,
                                        interaction.id)
            interaction.followups.append(message)
        return message.payload()

    # channel messages (bot token)

    def _channel(self, channel_id: str) -> Channel:
        for guild in self.guilds.values():
            if int(channel_id) in guild.channels:
                return guild.channels[int(channel_id)]
            if int(channel_id) in guild.threads:
                return guild.threads[int(channel_id)]
        raise DiscordHTTPError(404, 10003, "Unknown Channel")

    async def _start_thread(self, request, channel_id, message_id, *, body, **_):
        """A public thread on a message (its id is the message's, as on Discord)."""
        message = self._channel_message(channel_id, message_id)
        guild = self.guilds[self._channel(channel_id).guild_id]
        thread = Channel(message.id, guild.id, (body or {}).get("name") or "thread", parent_id=int(channel_id),
                         owner_id=self.bot.id, members={self.bot.id})
        guild.threads[thread.id] = thread
        self._notify()
        return thread.payload()

    def _channel_message(self, channel_id: str, message_id: str) -> Message:
        message = self.messages.get(int(message_id))
        if message is None or message.deleted or message.channel_id != int(channel_id):
            raise DiscordHTTPError(404, 10008, "Unknown Message")
        return message

    async def _open_dm(self, request, *, body, **_):
        user = self.users.get(int(body["recipient_id"]))
        if user is None:
            raise DiscordHTTPError(400, 50007, "Cannot send messages to this user")
        channel_id = next((cid for cid, u in self.dm_channels.items() if u.id == user.id), None)
        if channel_id is None:
            channel_id = self.snowflake()
            self.dm_channels[channel_id] = user
        return {"id": str(channel_id), "type": 1, "recipients": [user.payload()], "last_message_id": None}

    async def _create_channel_message(self, request, channel_id, *, body, files):
        if int(channel_id) in self.dm_channels:
            channel = Channel(int(channel_id), 0, "dm")
            upload_limit = DEFAULT_UPLOAD_LIMIT
        else:
            channel = self._channel(channel_id)
            upload_limit = self.guilds[channel.guild_id].upload_limit
        data = body or {}
        if not data.get("content") and not data.get("embeds") and not files:
            raise DiscordHTTPError(400, 50006, "Cannot send an empty message")
        return self._new_message(channel, data, files, int(data.get("flags", 0)), upload_limit, None).payload()

    async def _get_channel_message(self, request, channel_id, message_id, **_):
        return self._channel_message(channel_id, message_id).payload()

    async def _edit_channel_message(self, request, channel_id, message_id, *, body, files):
        message = self._channel_message(channel_id, message_id)
        if message.author.id != self.bot.id:
            raise DiscordHTTPError(403, 50005, "Cannot edit a message authored by another user")
        self._apply_edit(message, body or {}, files, self.guilds[message.guild_id].upload_limit)
        return message.payload()

    async def _delete_channel_message(self, request, channel_id, message_id, **_):
        message = self._channel_message(channel_id, message_id)
        if message.author.id != self.bot.id:
            guild = self.guilds[message.guild_id]
            if not guild.permissions_of(self.bot.id) & MANAGE_MESSAGES:
                raise DiscordHTTPError(403, 50013, "Missing Permissions")
        message.deleted = True
        return None

    async def _get_thread_member(self, request, channel_id, user_id, **_):
        thread = self._channel(channel_id)
        if thread.parent_id is None:
            raise DiscordHTTPError(400, 50024, "Cannot execute action on this channel type")
        if int(user_id) not in thread.members:
            raise DiscordHTTPError(404, 10007, "Unknown Member")
        return {"id": str(thread.id), "user_id": str(user_id), "join_timestamp": _now_iso(-60), "flags": 0}

    async def _get_channel(self, request, channel_id, **_):
        return self._channel(channel_id).payload()

    async def _get_member(self, request, guild_id, user_id, **_):
        guild = self.guilds.get(int(guild_id))
        if guild is None or int(user_id) not in guild.members:
            raise DiscordHTTPError(404, 10007, "Unknown Member")
        return self._member_payload(guild, int(user_id))

    async def _get_roles(self, request, guild_id, **_):
        guild = self.guilds.get(int(guild_id))
        if guild is None:
            raise DiscordHTTPError(404, 10004, "Unknown Guild")
        return [r.payload() for r in guild.roles.values()]

    async def _get_guild(self, request, guild_id, **_):
        guild = self.guilds.get(int(guild_id))
        if guild is None:
            raise DiscordHTTPError(404, 10004, "Unknown Guild")
        payload = self._guild_payload(guild)
        payload.pop("members")
        return payload

    # message bodies

    def _files_from(self, data: dict, files: list[tuple[str, str, bytes]], upload_limit: int) -> list[StoredFile]:
        total = sum(len(d) for _, _, d in files)
        if total > upload_limit:
            raise DiscordHTTPError(413, 40005, f"Request entity too large ({total} bytes > {upload_limit})")
        return [self._store_file(name, ctype, blob) for name, ctype, blob in files]

    def _new_message(self, channel: Channel, data: dict, files, flags: int, upload_limit: int,
                     interaction_id: int | None) -> Message:
        stored = self._files_from(data, files, upload_limit)
        message = Message(self.snowflake(), channel.id, channel.guild_id or None, self.bot, data.get("content") or "",
                          embeds=list(data.get("embeds") or []), components=list(data.get("components") or []),
                          attachments=stored, flags=flags, interaction_id=interaction_id)
        _check_embeds(message.embeds)
        self.messages[message.id] = message
        return message

    def _apply_edit(self, message: Message, data: dict, files, upload_limit: int) -> None:
        new_files = self._files_from(data, files, upload_limit)
        if "content" in data:
            message.content = data["content"] or ""
        if "embeds" in data:
            message.embeds = list(data["embeds"] or [])
            _check_embeds(message.embeds)
        if "components" in data:
            message.components = list(data["components"] or [])
        if "attachments" in data:
            keep = {str(a.get("id")) for a in data["attachments"] or []}
            message.attachments = [a for a in message.attachments if str(a.id) in keep]
        message.attachments += new_files
        message.edits.append(time.monotonic())


def _check_embeds(embeds: list[dict]) -> None:
    """Discord's embed limits; a bot that breaks them gets 400, so the double does too."""
    if len(embeds) > 10:
        raise DiscordHTTPError(400, 50035, "Invalid Form Body: more than 10 embeds")
    for embed in embeds:
        if len(embed.get("title") or "") > 256 or len(embed.get("description") or "") > 4096:
            raise DiscordHTTPError(400, 50035, "Invalid Form Body: embed title or description too long")
        for f in embed.get("fields", []):
            if not f.get("name") or not f.get("value") or len(f["name"]) > 256 or len(f["value"]) > 1024:
                raise DiscordHTTPError(400, 50035, "Invalid Form Body: embed field empty or too long")


def _check_command_schema(command: dict) -> None:
    """The rules Discord enforces on a command payload (names, descriptions, counts)."""
    if command.get("type", 1) != 1:  # context menus: a display name, no description
        if not 1 <= len(command.get("name", "")) <= 32:
            raise DiscordHTTPError(400, 50035, f"Invalid Form Body: bad context menu name {command.get('name')!r}")
        return
    _check_node(command, "command")


def _check_node(node: dict, where: str) -> None:
    name = node.get("name", "")
    if not re.fullmatch(r"[-_a-z0-9]{1,32}", name):
        raise DiscordHTTPError(400, 50035, f"Invalid Form Body: bad {where} name {name!r}")
    if not 1 <= len(node.get("description", "")) <= 100:
        raise DiscordHTTPError(400, 50035, f"Invalid Form Body: {where} {name!r} needs a 1-100 character description")
    options = node.get("options", [])
    if len(options) > 25:
        raise DiscordHTTPError(400, 50035, f"Invalid Form Body: {where} {name!r} has more than 25 options")
    seen_optional = False
    for option in options:
        if option["type"] in (OPTION_SUBCOMMAND, OPTION_GROUP):
            _check_node(option, "subcommand")
            continue
        _check_node({k: v for k, v in option.items() if k != "options"}, "option")
        if option.get("required") and seen_optional:
            raise DiscordHTTPError(400, 50035, f"Invalid Form Body: required option {option['name']!r} after optional")
        seen_optional = seen_optional or not option.get("required")
        if len(option.get("choices", [])) > 25:
            raise DiscordHTTPError(400, 50035, "Invalid Form Body: more than 25 choices")


def _match(pattern: str, parts: list[str]) -> bool:
    expected = pattern.split("/")
    return len(expected) == len(parts) and all(e == "*" or e == p for e, p in zip(expected, parts))


def _captures(pattern: str, parts: list[str]) -> list[str]:
    """The path segments that the pattern's wildcards matched, in order."""
    return [p for e, p in zip(pattern.split("/"), parts) if e == "*"]
