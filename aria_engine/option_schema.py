"""Every generation option's bounds, names, help and display words, written once.

`GenerationOptions` validates against it; the Discord command parameters, the Slack form and
what Slack users may type, the `aria` CLI arguments and the help texts are all made from it.
Nothing here knows a chat platform: `name` is the option's name in chat commands, `short` the
shorter word people type (and the Slack form's field), `flag` the CLI's.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NumberOption:
    field: str  # the GenerationOptions field
    kind: type  # int or float
    low: int | float
    high: int | float
    words: str  # as messages name it: "note temperature"
    label: str  # as a form labels it: "Note temperature"
    help: str  # one line, no full stop (Discord's limit is 100 characters)
    flag: str  # the CLI's
    name: str = ""  # in chat commands (default: the field)
    short: str = ""  # what people may type instead, and the Slack form's field (default: the name)
    aliases: tuple[str, ...] = ()  # more words people may type
    metavar: str = "N"
    unit: str = ""  # after the bounds in a message: "tokens"
    low_open: bool = False  # the low bound itself is not allowed
    offered: tuple[int | float, int | float] | None = None  # what chat inputs offer, if narrower
    rule: str | None = None  # the message when out of bounds, if not "X must be between A and B"

    @property
    def chat_name(self) -> str:
        return self.name or self.field

    @property
    def typed_name(self) -> str:
        return self.short or self.chat_name

    @property
    def chat_bounds(self) -> tuple[int | float, int | float]:
        """The bounds a chat input offers, as the option's type (a float option gets floats)."""
        low, high = self.offered or (self.low, self.high)
        return self.kind(low), self.kind(high)

    def accepts(self, value: int | float) -> bool:
        return (self.low < value if self.low_open else self.low <= value) and value <= self.high

    @property
    def message(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return self.rule or f"{self.words} must be between {number(self.low)} and {number(self.high)}{unit}"


MAX_SEED = 2**63 - 1
SAFE_INTEGER = 2**53 - 1  # the largest whole number Discord's and Slack's number inputs keep exactly

NUMBERS = (  # in the order validation checks them
    NumberOption("length", int, 1, 8192, "length", "Length (tokens)",
                 "Tokens the model writes: more tokens, a longer piece (default 512)", "--length",
                 aliases=("tokens",), metavar="TOKENS", unit="tokens"),
    NumberOption("duration_s", float, 1, 600, "duration", "Duration (seconds)",
                 "Length of the piece in seconds, for the built-in composer", "--duration", name="duration",
                 aliases=("seconds",), metavar="SECONDS", unit="seconds"),
    NumberOption("note_temperature", float, 0.05, 5, "note temperature", "Note temperature",
                 "Higher is more adventurous note choice (default 1.2)", "--note-temp", short="note_temp",
                 metavar="T"),
    NumberOption("rest_temperature", float, 0.05, 5, "rest temperature", "Rest temperature",
                 "Higher is more varied rhythm and rests (default 1.2)", "--rest-temp", short="rest_temp",
                 metavar="T"),
    NumberOption("top_p", float, 0, 1, "top-p", "Top-p",
                 "Only the likeliest notes making up this share are sampled (default 0.7)", "--top-p",
                 metavar="P", low_open=True, offered=(0.01, 1), rule="top-p must be in (0, 1]"),
    NumberOption("top_k", int, 0, 100_000, "top-k", "Top-k", "Sample only the k likeliest tokens (0: off)", "--top-k",
                 rule="top-k must be 0 (off) or a positive count"),
    NumberOption("window", int, 8, 2048, "window", "Window", "The reference's max_input_len", "--window",
                 unit="tokens"),
    NumberOption("min_instruments", int, 1, 5, "minimum instruments", "Minimum instruments",
                 "At least this many instruments play (1-5, default 1)", "--min-instruments", short="instruments"),
    NumberOption("seed", int, 0, MAX_SEED, "seed", "Seed (optional)",
                 "The same seed and settings give the same piece (default: random, and shown)", "--seed",
                 offered=(0, SAFE_INTEGER)),
)
NUMBER = {option.field: option for option in NUMBERS}
# What chat offers, in this order (the rest are for the CLI).
CHAT_NUMBERS = tuple(NUMBER[f] for f in ("length", "duration_s", "note_temperature", "rest_temperature", "top_p",
                                         "min_instruments", "seed"))

MODE_HELP = "How the mood steers the model; continuous_concat is the recommended one"
MODE_LABELS = {
    "continuous_concat": "continuous_concat (recommended)",
    "continuous_token": "continuous_token",
    "discrete_token": "discrete_token",
}
MODE_DESCRIPTIONS = {
    "continuous_concat": "emotion vector joined to every note: the smoothest mood control",
    "continuous_token": "emotion fed as two leading tokens of continuous value",
    "discrete_token": "emotion rounded to one of 5 x 5 bins, as tokens",
}
MODE_ALIASES = {**{m: m for m in MODE_LABELS}, "concat": "continuous_concat", "token": "continuous_token",
                "discrete": "discrete_token"}
PRIVATE_HELP = "Show the result only to you"


def chat_help() -> dict[str, str]:
    """Each chat option's name and its one line of help, in the order chat offers them."""
    return {"mode": MODE_HELP, **{o.chat_name: o.help for o in CHAT_NUMBERS}, "private": PRIVATE_HELP}


def typed_field(word: str) -> str | None:
    """The GenerationOptions field a word people typed names (`note_temp` -> note_temperature)."""
    if word == "mode":
        return "mode"
    for option in CHAT_NUMBERS:
        if word in (option.field, option.chat_name, option.typed_name, *option.aliases):
            return option.field
    return None


def typed_forms() -> str:
    """`length=TOKENS, duration=SECONDS, ...`: how to type each chat option."""
    order = ("length", "duration_s", "seed", "note_temperature", "rest_temperature", "top_p", "min_instruments")
    return ", ".join(f"{NUMBER[f].typed_name}={NUMBER[f].metavar}" for f in order)


def number(value: int | float) -> str:
    """A bound as people write it: 8192, 0.05, 5 (not 5.0)."""
    if isinstance(value, int) or not float(value).is_integer():
        return str(value) if isinstance(value, int) else f"{value:g}"
    return str(int(value))
