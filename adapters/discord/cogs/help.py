"""`/aria-help`: what ARIA does, its commands and options, and this channel's limits."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from adapters.discord.actors import actor_of
from adapters.discord.cogs.compose import OPTION_HELP
from bot.policy import format_wait

ABOUT = ("I read the mood of a picture (valence: unpleasant to pleasant; arousal: calm to energetic), "
         "compose a piece of music to match it and play it for you: a MIDI file, an audio clip, "
         "an emotion chart and a piano roll.")
COMMANDS = (
    ("/aria image:", "compose from a picture you attach"),
    ("Apps > Compose music from image", "right-click (long-press) any message with a picture"),
    ("/aria-mood valence: arousal:", "compose for a mood you choose, from -1 to 1 on each axis"),
    ("/aria-queue", "your pieces in the queue, and what today's quota leaves you"),
    ("/aria-forget-me", "delete everything ARIA keeps about you here, and its messages with your pieces"),
    ("/aria-admin", "server settings (Manage Server)"),
)


class Help(commands.Cog):
    def __init__(self, bot) -> None:
        self.bot = bot

    @app_commands.command(name="aria-help", description="What ARIA does and how to use it")
    @app_commands.guild_only()
    async def aria_help(self, interaction: discord.Interaction) -> None:
        embed = discord.Embed(title="ARIA", description=ABOUT)
        embed.add_field(name="commands", value="\n".join(f"`{c}`: {what}" for c, what in COMMANDS), inline=False)
        embed.add_field(name="options", value="\n".join(f"`{name}`: {text}" for name, text in OPTION_HELP.items()),
                        inline=False)
        embed.add_field(name="buttons", value="Variation (same mood, new seed), Another mode (pieces by the "
                                              "neural models; the built-in composer has no modes), Parameters, "
                                              "Delete; Cancel while a piece waits or is composed.", inline=False)
        limits = self.bot.service.limits(actor_of(interaction))
        quota = limits["daily_quota"] or "unlimited"
        embed.add_field(name="here", value=(
            f"{'on' if limits['enabled'] else 'off'} in this channel; {quota} pieces a day each; "
            f"{format_wait(limits['cooldown_s']) if limits['cooldown_s'] else 'no'} cooldown; "
            f"up to {limits['max_length']} tokens or {limits['max_duration_s']:g} s; "
            f"modes: {', '.join(limits['allowed_modes'])}"), inline=False)
        await interaction.response.send_message(embed=embed, ephemeral=True)


async def setup(bot) -> None:
    await bot.add_cog(Help(bot))
