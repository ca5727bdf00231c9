"""Who is asking, in the bot's platform-neutral terms, and which options they chose."""

from __future__ import annotations

from typing import Any

import discord

from aria_engine.option_schema import CHAT_NUMBERS
from aria_engine.options import GenerationOptions
from bot.policy import Actor

# Discord option name -> GenerationOptions field
OPTION_FIELDS = {"mode": "mode", **{option.chat_name: option.field for option in CHAT_NUMBERS}}


def actor_of(interaction: discord.Interaction) -> Actor:
    member = interaction.user
    roles = tuple(str(role.id) for role in getattr(member, "roles", ()) if not role.is_default())
    permissions = interaction.permissions
    return Actor(
        platform="discord",
        server_id=str(interaction.guild_id),
        channel_id=str(interaction.channel_id),
        user_id=str(member.id),
        role_ids=roles,
        is_admin=permissions.manage_guild or permissions.administrator,
        age_restricted=bool(getattr(interaction.channel, "nsfw", False)),  # an age-restricted channel
        is_moderator=permissions.manage_messages or permissions.manage_guild or permissions.administrator,
    )


def is_moderator(interaction: discord.Interaction) -> bool:
    """Who may delete or cancel other people's pieces: Manage Messages (or more)."""
    permissions = interaction.permissions
    return permissions.manage_messages or permissions.manage_guild or permissions.administrator


def chosen_options(**chosen: Any) -> tuple[GenerationOptions, set[str]]:
    """GenerationOptions from the command's options (None = not given); raises ValueError politely."""
    values = {OPTION_FIELDS[name]: value for name, value in chosen.items() if value is not None}
    return GenerationOptions(**values), set(values)
