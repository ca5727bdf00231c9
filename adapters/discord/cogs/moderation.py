"""`/aria-mod block|unblock|blocked`: ARIA's moderators (Manage Messages, a role in
`moderator_roles`, or an admin) pause and restore a member's use of ARIA, with the reason in the
audit log and the audit channel (bot.moderation). Moderators may also cancel and delete anyone's
pieces with the buttons (cogs/results.py); those reach the audit channel through `post_audit`.

The group carries no default permissions, because a moderator role need not have Manage
Messages; every subcommand checks who is asking itself."""

from __future__ import annotations

import logging
from typing import Optional

import discord
from discord import app_commands
from discord.ext import commands

from adapters.discord.actors import actor_of
from bot.outcomes import SettingChange
from bot.texts import sentence

log = logging.getLogger(__name__)


async def post_audit(bot, change: SettingChange | None) -> None:
    """A moderation line in the server's audit channel, mentioning nobody."""
    if change is None or not change.audit_channel or not change.audit_text:
        return
    try:
        await bot.get_partial_messageable(int(change.audit_channel)).send(
            change.audit_text, allowed_mentions=discord.AllowedMentions.none())
    except (discord.HTTPException, ValueError) as error:
        log.warning("could not post to the audit channel %s: %s", change.audit_channel, error)


class Moderation(commands.Cog):
    group = app_commands.Group(name="aria-mod", description="ARIA's moderator tools", guild_only=True)

    def __init__(self, bot) -> None:
        self.bot = bot

    @group.command(name="block", description="Stop a member from using ARIA on this server")
    @app_commands.describe(member="Who", reason="Why (kept in the audit log)")
    async def block(self, interaction: discord.Interaction, member: discord.User,
                    reason: Optional[app_commands.Range[str, 0, 300]] = None) -> None:
        await self._do(interaction, lambda m, a: m.block(a, str(member.id), reason or ""))

    @group.command(name="unblock", description="Let a blocked member use ARIA again")
    @app_commands.describe(member="Who")
    async def unblock(self, interaction: discord.Interaction, member: discord.User) -> None:
        await self._do(interaction, lambda m, a: m.unblock(a, str(member.id)))

    @group.command(name="blocked", description="Who is blocked from ARIA here")
    async def blocked(self, interaction: discord.Interaction) -> None:
        try:
            ids = self.bot.service.moderation.blocked(actor_of(interaction))
        except PermissionError as error:
            await interaction.response.send_message(str(error), ephemeral=True)
            return
        text = ", ".join(f"<@{u}>" for u in ids) or "Nobody is blocked from ARIA here."
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=discord.AllowedMentions.none())

    async def _do(self, interaction: discord.Interaction, action) -> None:
        try:
            change = action(self.bot.service.moderation, actor_of(interaction))
        except (PermissionError, ValueError) as error:
            await interaction.response.send_message(sentence(str(error)), ephemeral=True)
            return
        await interaction.response.send_message(change.message, ephemeral=True,
                                                allowed_mentions=discord.AllowedMentions.none())
        await post_audit(self.bot, change)


async def setup(bot) -> None:
    await bot.add_cog(Moderation(bot))
