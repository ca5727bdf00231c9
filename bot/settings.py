"""Bot settings: each registered once with a default, the scopes it may be set at and a
description; stored values resolve user over channel over server over global over default.

Ids. A server is named by a platform-namespaced string, `server_key(platform, id)`, e.g.
"discord:123" or "slack:T01", so Discord and Slack can never collide. Channel and user ids are
the platform's own strings and always live under a server: a channel row belongs to its server,
and a user row means "this user on this server".

Sync API. Every call reads or writes a few rows of a local SQLite file (well under a
millisecond), so adapters call it directly from the event loop; see `bot.store`.

Values given as text (as a Slack `/aria admin set cooldown_s 30` delivers them) are parsed:
"on"/"off", "30", "continuous_concat, continuous_token", "<@&123>", "<!subteam^S01|@designers>",
"none". A bad value raises
ValueError with a message fit to show the admin who typed it.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, Iterable, Iterator, NamedTuple

from aria_engine.options import MODES

from bot.store import Store

log = logging.getLogger(__name__)


class Scope(str, Enum):
    GLOBAL = "global"
    SERVER = "server"
    CHANNEL = "channel"
    USER = "user"


# Most specific first: the first stored value found along this order wins.
RESOLUTION_ORDER = (Scope.USER, Scope.CHANNEL, Scope.SERVER, Scope.GLOBAL)

Parser = Callable[[str, Any], Any]  # (setting name, raw value) -> normalised value, or ValueError


def server_key(platform: str, server_id: str) -> str:
    """The namespaced server id settings are keyed by: `server_key("discord", "123")`."""
    if not platform or ":" in platform or not server_id:
        raise ValueError(f"cannot make a server key from platform {platform!r} and server {server_id!r}")
    return f"{platform}:{server_id}"


# -- parsers: each takes the setting's name so its message can say which setting was wrong ----

_TRUE = {"true", "on", "yes", "1", "enable", "enabled"}
_FALSE = {"false", "off", "no", "0", "disable", "disabled"}
_NONE = {"", "none", "off", "null", "-"}
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
# Chat mentions an admin may paste: <@&123> <#123> <@!123> <@U01|name> <#C01|general>, and
# Slack's user group mention <!subteam^S01|@designers>
_MENTION = re.compile(r"^<(?:[@#][!&]?|!subteam\^)([^|>]+)(?:\|[^>]*)?>$")


def boolean() -> Parser:
    def parse(name: str, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f"{name} must be on or off (true or false)")

    return parse


def _number_or_none(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def number(low: float, high: float, unit: str) -> Parser:
    def parse(name: str, value: Any) -> float:
        number = _number_or_none(value)
        if number is None or not low <= number <= high:
            raise ValueError(f"{name} must be a number of {unit} between {low:g} and {high:g}")
        return number

    return parse


def whole(low: int, high: int, unit: str, note: str = "") -> Parser:
    def parse(name: str, value: Any) -> int:
        number = _number_or_none(value)
        if number is None or number != int(number) or not low <= number <= high:
            raise ValueError(f"{name} must be a whole number of {unit} between {low} and {high}{note}")
        return int(number)

    return parse


def _items(value: Any) -> list[str] | None:
    """A list from a list, or from comma/space separated text; None if neither."""
    if isinstance(value, str):
        return [part for part in re.split(r"[,\s]+", value.strip()) if part]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [str(item).strip() for item in value]
    return None


def _one_id(text: str) -> str | None:
    mention = _MENTION.match(text)
    if mention:
        text = mention.group(1)
    return text if _ID.match(text) else None


def id_list() -> Parser:
    def parse(name: str, value: Any) -> list[str]:
        message = f"{name} must be a list of ids separated by commas (or none)"
        if value is None or (isinstance(value, str) and value.strip().lower() in _NONE):
            return []
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # one numeric id, e.g. a Discord snowflake given as a number
        items = _items(value)
        if items is None:
            raise ValueError(message)
        ids = [_one_id(item) for item in items]
        if any(i is None for i in ids):
            raise ValueError(message)
        return list(dict.fromkeys(ids))

    return parse


def optional_id() -> Parser:
    def parse(name: str, value: Any) -> str | None:
        if value is None or (isinstance(value, str) and value.strip().lower() in _NONE):
            return None
        found = _one_id(str(value).strip()) if not isinstance(value, bool) else None
        if found is None:
            raise ValueError(f"{name} must be one id, or none to turn it off")
        return found

    return parse


def choice_list(choices: Iterable[str]) -> Parser:
    choices = tuple(choices)

    def parse(name: str, value: Any) -> list[str]:
        message = f"{name} takes one or more of {', '.join(choices)}"
        items = _items(value)
        if not items:
            raise ValueError(message)
        unknown = [item for item in items if item not in choices]
        if unknown:
            raise ValueError(f"{message}; {unknown[0]!r} is not one of them")
        return list(dict.fromkeys(items))

    return parse


def one_of(choices: Iterable[str]) -> Parser:
    choices = tuple(choices)

    def parse(name: str, value: Any) -> str:
        text = str(value).strip().lower() if isinstance(value, str) else value
        if text not in choices:
            raise ValueError(f"{name} must be one of {', '.join(choices)}")
        return text

    return parse


def quota_map() -> Parser:
    """`ROLE:N, ROLE:N` (a role or user group mention, or its id) -> {id: N}; none clears it."""
    def parse(name: str, value: Any) -> dict[str, int]:
        message = (f"{name} takes pairs of a role (or user group) and a daily quota, like "
                   "`@supporters:100, @staff:0` (0 means unlimited), or none")
        if value is None or (isinstance(value, str) and value.strip().lower() in _NONE):
            return {}
        if isinstance(value, dict):
            pairs = list(value.items())
        else:
            items = _items(value)
            if items is None:
                raise ValueError(message)
            pairs = [tuple(item.rsplit(":", 1)) if ":" in item else (item, None) for item in items]
        out: dict[str, int] = {}
        for role, quota in pairs:
            role_id = _one_id(str(role).strip())
            number = _number_or_none(quota)
            if role_id is None or number is None or number != int(number) or not 0 <= number <= 10_000:
                raise ValueError(message)
            out[role_id] = int(number)
        return out

    return parse


# -- the registry ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    scopes: frozenset[Scope]
    description: str
    parse: Parser

    def validate(self, value: Any) -> Any:
        return self.parse(self.name, value)


class SettingsRegistry:
    """The settings that exist: register each once; adapters list them for help and `show`."""

    def __init__(self) -> None:
        self._settings: dict[str, Setting] = {}

    def register(
        self, name: str, *, default: Any, parse: Parser, scopes: Iterable[Scope], description: str
    ) -> Setting:
        if name in self._settings:
            raise ValueError(f"setting {name!r} is already registered")
        setting = Setting(name, default, frozenset(scopes), description, parse)
        if not setting.scopes:
            raise ValueError(f"setting {name!r} needs at least one scope")
        if default is not None:
            setting.validate(default)  # a default that fails its own check is a bug: fail now
        self._settings[name] = setting
        return setting

    def __getitem__(self, name: str) -> Setting:
        try:
            return self._settings[name]
        except KeyError:
            raise ValueError(
                f"there is no setting called {name!r}; settings are: {', '.join(self._settings)}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._settings

    def __iter__(self) -> Iterator[Setting]:
        return iter(self._settings.values())

    def __len__(self) -> int:
        return len(self._settings)

    def names(self) -> list[str]:
        return list(self._settings)


def aria_registry() -> SettingsRegistry:
    """ARIA's settings. Their names are the contract with the adapters."""
    g, s, c, u = Scope.GLOBAL, Scope.SERVER, Scope.CHANNEL, Scope.USER
    r = SettingsRegistry()
    r.register("enabled", default=True, parse=boolean(), scopes={g, s, c},
               description="Whether ARIA answers here at all.")
    r.register("allowed_roles", default=[], parse=id_list(), scopes={s, c},
               description="Roles (Discord) or user groups (Slack) that may use ARIA; empty means everyone.")
    r.register("cooldown_s", default=20.0, parse=number(0, 3600, "seconds"), scopes={g, s, c},
               description="Seconds each member waits between compositions.")
    r.register("daily_quota", default=25, parse=whole(0, 10_000, "compositions", " (0 means unlimited)"),
               scopes={g, s, c}, description="Compositions per member per UTC day; 0 means unlimited.")
    r.register("max_length", default=1024, parse=whole(1, 8192, "tokens"), scopes={g, s, c},
               description="Longest piece a member may ask for, in tokens.")
    r.register("max_duration_s", default=60.0, parse=number(1, 600, "seconds"), scopes={g, s, c},
               description="Longest piece a member may ask for, in seconds.")
    r.register("allowed_modes", default=list(MODES), parse=choice_list(MODES), scopes={g, s, c},
               description="Conditioning modes members may pick.")
    r.register("private_by_default", default=False, parse=boolean(), scopes={g, s, c, u},
               description="Whether results are shown only to the requester unless they ask otherwise.")
    from bot.jams import register_jam_settings  # the jam rules own their settings; here for the order

    register_jam_settings(r)
    r.register("audit_channel", default=None, parse=optional_id(), scopes={s},
               description="Channel that receives a log of admin actions; none to turn it off.")
    r.register("admin_user_ids", default=[], parse=id_list(), scopes={s},
               description="Users who may change ARIA's settings besides the platform's admins.")
    r.register("admins_bypass_limits", default=False, parse=boolean(), scopes={g, s},
               description="Whether admins skip the cooldown and the daily quota.")
    r.register("results_retention_days", default=30, parse=whole(1, 3650, "days"), scopes={g, s},
               description="Days a result's buttons keep working before it is forgotten.")
    r.register("moderator_roles", default=[], parse=id_list(), scopes={s},
               description="Roles (Discord) or user groups (Slack) whose members moderate ARIA.")
    r.register("blocked_user_ids", default=[], parse=id_list(), scopes={s},
               description="Members a moderator blocked from ARIA (block and unblock).")
    r.register("role_quotas", default={}, parse=quota_map(), scopes={s},
               description="Daily quotas for some roles, like @supporters:100; others get daily_quota.")
    r.register("server_max_jobs", default=0, parse=whole(0, 1000, "pieces", " (0 means no cap)"), scopes={g, s},
               description="Pieces of one server queued or being made at once; 0 means no cap.")
    r.register("server_daily_budget", default=0, parse=whole(0, 1_000_000, "pieces", " (0 means no budget)"),
               scopes={g, s}, description="Pieces per UTC day for the whole server; 0 means no budget.")
    r.register("image_safety", default="refuse", parse=one_of(("off", "refuse", "spoiler")), scopes={g, s, c},
               description="Flagged pictures: refuse, spoiler the reply, or off (default off in age-restricted channels).")
    r.register("image_safety_threshold", default=0.5, parse=number(0, 1, "probability"), scopes={g, s, c},
               description="Image-safety score (0..1) at or above which a picture is flagged; 0 flags all.")
    r.register("age_restricted_channels", default=[], parse=id_list(), scopes={s},
               description="Channels treated as age-restricted, besides Discord's NSFW flag.")
    return r


# -- stored settings -----------------------------------------------------------------------


class Resolved(NamedTuple):
    value: Any
    source: Scope | None  # None: the registered default


class SettingView(NamedTuple):
    name: str
    value: Any
    source: Scope | None  # None: the registered default
    description: str

    @property
    def source_label(self) -> str:
        return self.source.value if self.source else "default"


_SCOPE_WORDS = {Scope.GLOBAL: "everywhere", Scope.SERVER: "for a server",
                Scope.CHANNEL: "per channel", Scope.USER: "per user"}


class Settings:
    """Registered settings stored in a `Store`. Server ids are namespaced (see module doc)."""

    def __init__(self, store: Store, registry: SettingsRegistry | None = None):
        self.store = store
        self.registry = registry if registry is not None else aria_registry()

    def get(self, name: str, *, server: str, channel: str | None = None, user: str | None = None) -> Any:
        return self.lookup(name, server=server, channel=channel, user=user).value

    def lookup(self, name: str, *, server: str, channel: str | None = None, user: str | None = None) -> Resolved:
        """The value in force here, and the scope it came from."""
        setting = self.registry[name]
        _check_server(server)
        rows = self.store.setting_rows(server_id=server, channel_id=channel, user_id=user, name=name)
        return self._resolve(setting, rows)

    def set(
        self, name: str, value: Any, *, scope: Scope, server: str | None = None,
        channel: str | None = None, user: str | None = None,
    ) -> Any:
        """Validate and store a value at one scope; returns the value as stored."""
        setting = self.registry[name]
        keys = self._keys(setting, Scope(scope), server, channel, user)
        parsed = setting.validate(value)
        self.store.put_setting(Scope(scope).value, name, parsed, **keys)
        return parsed

    def reset(
        self, name: str, *, scope: Scope, server: str | None = None,
        channel: str | None = None, user: str | None = None,
    ) -> bool:
        """Remove the value stored at this scope (the next one out applies); True if one was."""
        setting = self.registry[name]
        keys = self._keys(setting, Scope(scope), server, channel, user)
        return self.store.delete_setting(Scope(scope).value, name, **keys)

    def effective(self, server: str, channel: str | None = None, user: str | None = None) -> dict[str, Any]:
        """Every setting's value in force here."""
        return {view.name: view.value for view in self.describe(server, channel, user)}

    def describe(self, server: str, channel: str | None = None, user: str | None = None) -> list[SettingView]:
        """Every setting with its value here, where that value came from, and what it does."""
        _check_server(server)
        rows = self.store.setting_rows(server_id=server, channel_id=channel, user_id=user)
        views = []
        for setting in self.registry:
            resolved = self._resolve(setting, [row for row in rows if row.name == setting.name])
            views.append(SettingView(setting.name, resolved.value, resolved.source, setting.description))
        return views

    # -- internals -------------------------------------------------------------------------

    def _resolve(self, setting: Setting, rows) -> Resolved:
        by_scope = {Scope(row.scope): row.value for row in rows}
        for scope in RESOLUTION_ORDER:
            if scope not in by_scope or scope not in setting.scopes:
                continue
            try:
                return Resolved(setting.validate(by_scope[scope]), scope)
            except ValueError:
                # Stored under older rules (a bound tightened since): skip it rather than fail.
                log.warning("ignoring stored %s=%r at %s scope", setting.name, by_scope[scope], scope.value)
        return Resolved(_copy(setting.default), None)

    def _keys(
        self, setting: Setting, scope: Scope, server: str | None, channel: str | None, user: str | None
    ) -> dict[str, str]:
        if scope not in setting.scopes:
            allowed = ", ".join(_SCOPE_WORDS[s] for s in Scope if s in setting.scopes)
            raise ValueError(f"{setting.name} can be set {allowed}, not {_SCOPE_WORDS[scope]}")
        if scope is Scope.GLOBAL:
            return {}
        _check_server(server)
        keys = {"server_id": server}
        if scope is Scope.CHANNEL:
            if not channel:
                raise ValueError(f"setting {setting.name} per channel needs a channel")
            keys["channel_id"] = channel
        if scope is Scope.USER:
            if not user:
                raise ValueError(f"setting {setting.name} per user needs a user")
            keys["user_id"] = user
        return keys


def _check_server(server: Any) -> None:
    if not isinstance(server, str) or ":" not in server or server.startswith(":") or server.endswith(":"):
        raise ValueError(
            f"server ids are namespaced by platform, like 'discord:123' or 'slack:T01' "
            f"(see server_key); got {server!r}"
        )


def _copy(value: Any) -> Any:
    """Defaults are shared: hand out copies of mutable ones."""
    return list(value) if isinstance(value, list) else dict(value) if isinstance(value, dict) else value
