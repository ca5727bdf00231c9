"""What people type after `/aria` or `@ARIA`, turned into a command and generation options.

    /aria                                  a modal: pick a picture and the settings
    /aria discrete_token 256 42            the modal, filled in: mode, length, seed
    /aria last [options]                   the newest picture you posted here (10 minutes)
    /aria mood 0.6 -0.3 [options]          no picture: a valence and an arousal
    /aria help | queue
    /aria admin show | set NAME VALUE [#channel] | reset NAME [#channel]
    /aria admin groups [allow @GROUP... | remove @GROUP... | everyone] [#channel]

`private` sends the status and the result to the requester's direct messages only; `public`
keeps them in the channel even where results are private by default.

Options come as `name=value` (or `name value`) in any order: mode, length, duration, seed,
note_temp, rest_temp, top_p, instruments. A bare mode name sets the mode; bare whole numbers
are the length, then the seed, as in `/aria [mode] [length] [seed]`. Mistakes raise
`ValueError` with a sentence fit to show the person who typed it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from aria_engine.option_schema import MODE_ALIASES, NUMBER, typed_field, typed_forms
from aria_engine.options import MODES, GenerationOptions

ADMIN_ACTIONS = ("show", "set", "reset", "groups")
GROUP_VERBS = ("allow", "remove", "everyone")

PRIVACY_WORDS = {"private": True, "public": False}  # who sees the result: only the requester, or the channel
_MENTION = re.compile(r"<@[UW][A-Z0-9]+(?:\|[^>]*)?>")
_CHANNEL = re.compile(r"^<#([CG][A-Z0-9]+)(?:\|[^>]*)?>$")


@dataclass(frozen=True)
class Command:
    kind: str  # compose (the modal), last, mood, help, queue, admin, forget-me, block, unblock, blocked
    options: GenerationOptions = field(default_factory=GenerationOptions)
    explicit: frozenset[str] = frozenset()  # option fields the person typed
    valence: float | None = None
    arousal: float | None = None
    admin: tuple[str, ...] = ()  # the words after "admin" (or "jam": listeners/jam.py reads them)
    private: bool | None = None  # `private` / `public` typed; None: the place's private_by_default


def parse_command(text: str) -> Command:
    """The `/aria` text. Raises ValueError politely."""
    words = text.split()
    head = words[0].lower() if words else ""
    if head in ("help", "queue", "forget-me"):
        return Command(head)
    if head in ("block", "unblock", "blocked"):  # listeners/moderation.py reads the words
        return Command(head, admin=tuple(words[1:]))
    if head in ("admin", "jam"):
        return Command(head, admin=tuple(words[1:]))
    words, private = _privacy(words)
    head = words[0].lower() if words else ""
    if head == "mood":
        valence, arousal = _axes(words[1:3])
        options, explicit = parse_options(words[3:])
        return Command("mood", options, explicit, valence, arousal, private=private)
    if head == "last":
        options, explicit = parse_options(words[1:])
        return Command("last", options, explicit, private=private)
    options, explicit = parse_options(words)
    return Command("compose", options, explicit, private=private)


def mention_options(text: str) -> tuple[GenerationOptions, frozenset[str]]:
    """Options written next to an `@ARIA` mention; other people's mentions and words like
    "please" and bare numbers are ignored, but an option name with a bad value is an error."""
    return parse_options(_MENTION.sub(" ", text).split(), lenient=True)


def mention_privacy(text: str) -> bool | None:
    """`@ARIA private` (only me) or `@ARIA public`; None when neither word is there."""
    return _privacy(_MENTION.sub(" ", text).split())[1]


def _privacy(words: list[str]) -> tuple[list[str], bool | None]:
    """The words without `private`/`public`, and which one was there (the last one counts)."""
    rest, private = [], None
    for word in words:
        if word.lower() in PRIVACY_WORDS:
            private = PRIVACY_WORDS[word.lower()]
        else:
            rest.append(word)
    return rest, private


def parse_options(words: list[str], *, lenient: bool = False) -> tuple[GenerationOptions, frozenset[str]]:
    values: dict[str, Any] = {}
    bare_numbers: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        name, _, value = word.partition("=")
        key = name.lower().replace("-", "_")
        if key in MODE_ALIASES and not value:
            values["mode"] = MODE_ALIASES[key]
        elif typed_field(key):
            target = typed_field(key)
            if not value:
                if i + 1 >= len(words):
                    raise ValueError(f"{name} needs a value, like `{name}={_example(target)}`")
                i += 1
                value = words[i]
            values[target] = _read(target, name, value)
        elif re.fullmatch(r"\d+", word):
            if not lenient:
                bare_numbers.append(word)
        elif not lenient:
            raise ValueError(f"I don't know the option {word!r}. " + options_hint())
        i += 1
    for target, number in zip(("length", "seed"), bare_numbers):
        values.setdefault(target, _read(target, target, number))
    if len(bare_numbers) > 2:
        raise ValueError("Give at most two bare numbers (the length, then the seed). " + options_hint())
    options = GenerationOptions(**values)  # validates ranges, with its own polite messages
    return options, frozenset(values)


def parse_admin(words: tuple[str, ...]) -> tuple[str, str | None, str | None, str | None]:
    """`show [#channel]`, `set NAME VALUE... [#channel]`, `reset NAME [#channel]`,
    `groups [allow|remove GROUP... | everyone] [#channel]` -> (action, name, value, channel id);
    for `groups` the name is the verb (None: show them) and the value the groups as typed."""
    if not words or words[0].lower() not in ADMIN_ACTIONS:
        raise ValueError("Use `/aria admin show`, `/aria admin set NAME VALUE [#channel]`, "
                         "`/aria admin reset NAME [#channel]` or `/aria admin groups allow @GROUP [#channel]`.")
    action, rest = words[0].lower(), list(words[1:])
    channel = None
    least = 3 if action == "set" else 1  # `set audit_channel #log`: that channel is the value
    if len(rest) >= least and _CHANNEL.match(rest[-1]):
        channel = _CHANNEL.match(rest.pop())[1]
    if action == "groups":
        return (action, *_group_words(rest), channel)
    if action == "show":
        if rest:
            raise ValueError("`/aria admin show` takes only a channel, like `/aria admin show #general`.")
        return action, None, None, channel
    if not rest:
        raise ValueError(f"Which setting? Use `/aria admin {action} NAME{' VALUE' if action == 'set' else ''}`.")
    name = rest[0]
    if action == "reset":
        if len(rest) > 1:
            raise ValueError("`/aria admin reset` takes one setting name (and optionally a channel).")
        return action, name, None, channel
    if len(rest) < 2:
        raise ValueError(f"What value? Use `/aria admin set {name} VALUE`.")
    return action, name, " ".join(rest[1:]), channel


def _group_words(rest: list[str]) -> tuple[str | None, str | None]:
    usage = ("Use `/aria admin groups allow @GROUP [#channel]`, `/aria admin groups remove @GROUP [#channel]`, "
             "`/aria admin groups everyone [#channel]`, or `/aria admin groups` to see them.")
    if not rest:
        return None, None
    verb = rest[0].lower()
    if verb not in GROUP_VERBS:
        raise ValueError(usage)
    if verb == "everyone":
        if len(rest) > 1:
            raise ValueError(usage)
        return verb, None
    if len(rest) < 2:
        raise ValueError(f"Which user group? Use `/aria admin groups {verb} @GROUP` (type @ and pick it).")
    return verb, " ".join(rest[1:])


def options_hint() -> str:
    return ("Options: a mode (" + ", ".join(MODES) + f"), {typed_forms()}; `private` for a result only you see.")


def _axes(words: list[str]) -> tuple[float, float]:
    usage = "Use `/aria mood VALENCE AROUSAL`, each between -1 and 1, like `/aria mood 0.6 -0.3`."
    if len(words) < 2:
        raise ValueError(usage)
    try:
        valence, arousal = float(words[0]), float(words[1])
    except ValueError:
        raise ValueError(usage) from None
    for axis, value in (("valence", valence), ("arousal", arousal)):
        if not -1.0 <= value <= 1.0:  # NaN fails this too
            raise ValueError(f"{axis} must be between -1 and 1, not {words[0 if axis == 'valence' else 1]}. {usage}")
    return valence, arousal


def _read(target: str, name: str, value: str) -> Any:
    if target == "mode":
        mode = MODE_ALIASES.get(value.lower())
        if mode is None:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {value!r}")
        return mode
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {value!r}") from None
    if NUMBER[target].kind is int:
        if not number.is_integer():
            raise ValueError(f"{name} must be a whole number, not {value!r}")
        return int(number)
    return number


def _example(target: str) -> str:
    return {"mode": "continuous_token", "duration_s": "20", "seed": "42", "length": "512"}.get(target, "1")
