"""`/aria-forget-me`: a member's data on this server, deleted on request (bot.members), with the
bot's messages that hold their pieces. `/aria-admin purge` (cogs/admin.py) does the same for a
member or a channel through `finish` here.

Discord does not let a command with options (`/aria image:...`) also have subcommands, so forget-me
is a command of its own beside `/aria`. Private pieces live in interaction responses that only a
live token can delete (15 minutes) and in DMs; channel and DM messages are deleted by id.
"""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from adapters.discord.actors import actor_of
from bot.members import Forgotten

log = logging.getLogger(__name__)


class Members(commands.Cog):
    def __init__(self, bot) -> None:
        self.bot = bot

    @app_commands.command(name="aria-forget-me",
                          description="Delete everything ARIA keeps about you on this server, and its messages with your pieces")
    @app_commands.guild_only()
    async def forget_me(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        forgotten = await self.bot.service.members.forget(actor_of(interaction))
        await interaction.followup.send(await self.finish(forgotten), ephemeral=True)

    async def finish(self, forgotten: Forgotten) -> str:
        """Delete the messages that held the pieces; the confirmation, saying what went."""
        removed = kept = 0
        for channel_id, message_id in dict.fromkeys(forgotten.messages):
            try:
                await self.bot.http.delete_message(int(channel_id), int(message_id), reason="ARIA: member data deleted")
                removed += 1
            except discord.NotFound:
                removed += 1  # already gone
            except (discord.HTTPException, ValueError) as error:
                log.info("could not delete message %s in %s: %s", message_id, channel_id, error)
                kept += 1
        return forgotten.confirmation(removed, kept)


async def setup(bot) -> None:
    await bot.add_cog(Members(bot))
