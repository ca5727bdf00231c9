"""`/aria-queue`: your pieces waiting or being composed, and what today's quota leaves you."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from adapters.discord.actors import actor_of


class Queue(commands.Cog):
    def __init__(self, bot) -> None:
        self.bot = bot

    @app_commands.command(name="aria-queue", description="Your pieces in the queue, their positions and ETA")
    @app_commands.guild_only()
    async def aria_queue(self, interaction: discord.Interaction) -> None:
        view = self.bot.service.queue(actor_of(interaction))
        embed = discord.Embed(title="Your pieces")
        if view.entries:
            embed.description = "\n".join(f"{i}. {entry.text}" for i, entry in enumerate(view.entries, 1))
        else:
            embed.description = "Nothing waiting or being composed."
        embed.add_field(name="today", value=view.usage_line, inline=False)
        await interaction.response.send_message(embed=embed, ephemeral=True)


async def setup(bot) -> None:
    await bot.add_cog(Queue(bot))
