"""The buttons and the select on ARIA's messages, as dynamic items keyed by result id.

A custom id like `aria:v:<result id>` says everything a click needs, so the components keep
working after a restart: discord.py matches the id against these templates and rebuilds the
item, and the handlers in `cogs/results.py` (Extend's in `cogs/extend.py`) find the result in
the store.
"""

from __future__ import annotations

import re
from typing import Any

import discord

from aria_engine.option_schema import MODE_DESCRIPTIONS, MODE_LABELS
from aria_engine.options import MODES

RID = r"(?P<rid>[0-9A-Za-z_-]{1,64})"

# action letter -> (label, style, handler name on the Results cog, or "Cog.handler" on another)
BUTTONS = {
    "v": ("Variation", discord.ButtonStyle.primary, "variation"),
    "e": ("Extend", discord.ButtonStyle.secondary, "Extend.open_form"),
    "p": ("Parameters", discord.ButtonStyle.secondary, "parameters"),
    "d": ("Delete", discord.ButtonStyle.danger, "delete"),
    "c": ("Cancel", discord.ButtonStyle.secondary, "cancel"),
}


def _results_cog(interaction: discord.Interaction, name: str = "Results") -> Any:
    cog = interaction.client.get_cog(name)  # type: ignore[union-attr]
    if cog is None:
        raise RuntimeError(f"the {name} cog is not loaded")
    return cog


def _handler(interaction: discord.Interaction, action: str) -> Any:
    """The cog method a button calls: Results' own, or another feature's cog (`Extend.open_form`)."""
    cog, _, method = BUTTONS[action][2].rpartition(".")
    return getattr(_results_cog(interaction, cog or "Results"), method)


BUTTON_TEMPLATE = re.compile(r"aria:(?P<action>[vepdc]):" + RID)
SELECT_TEMPLATE = re.compile(r"aria:m:" + RID)


def is_known_custom_id(custom_id: str) -> bool:
    """Whether one of ARIA's components answers this id (older versions' ids do not)."""
    return bool(BUTTON_TEMPLATE.fullmatch(custom_id) or SELECT_TEMPLATE.fullmatch(custom_id))


class ResultButton(discord.ui.DynamicItem[discord.ui.Button], template=BUTTON_TEMPLATE):
    """Variation, Extend, Parameters, Delete (on results) and Cancel (on status messages)."""

    def __init__(self, action: str, result_id: str) -> None:
        label, style, _ = BUTTONS[action]
        super().__init__(discord.ui.Button(label=label, style=style, custom_id=f"aria:{action}:{result_id}"))
        self.action = action
        self.result_id = result_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str]):
        return cls(match["action"], match["rid"])

    async def callback(self, interaction: discord.Interaction) -> None:
        await _handler(interaction, self.action)(interaction, self.result_id)


class ModeSelect(discord.ui.DynamicItem[discord.ui.Select], template=SELECT_TEMPLATE):
    """"Another mode": the same emotion composed in a conditioning mode picked from a list."""

    def __init__(self, result_id: str, current: str | None = None) -> None:
        options = [discord.SelectOption(label=MODE_LABELS[m], value=m, description=MODE_DESCRIPTIONS[m])
                   for m in MODES if m != current]
        super().__init__(discord.ui.Select(placeholder="Another mode...", options=options,
                                           custom_id=f"aria:m:{result_id}"))
        self.result_id = result_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Select, match: re.Match[str]):
        return cls(match["rid"])

    async def callback(self, interaction: discord.Interaction) -> None:
        await _results_cog(interaction).another_mode(interaction, self.result_id, self.item.values[0])


def result_view(result_id: str, mode: str | None = None, *, offer_modes: bool = True) -> discord.ui.View:
    """The components under a finished piece. The mode select only where the composer has
    modes: under a procedural piece it would make the same music again."""
    view = discord.ui.View(timeout=None)
    view.add_item(ResultButton("v", result_id))
    view.add_item(ResultButton("e", result_id))
    view.add_item(ResultButton("p", result_id))
    view.add_item(ResultButton("d", result_id))
    if offer_modes:
        select = ModeSelect(result_id, mode)
        select.row = 1
        view.add_item(select)
    return view


def status_view(result_id: str) -> discord.ui.View:
    """The component under a queued or running piece."""
    view = discord.ui.View(timeout=None)
    view.add_item(ResultButton("c", result_id))
    return view
