"""What the buttons under a piece do: Variation, Another mode, Parameters, Delete, Cancel.

Clicks go through the same policy and quotas as new requests. Everything a handler needs is
the result id in the button's custom id and the record in the store, so buttons keep working
after a restart.
"""

from __future__ import annotations

import discord
from discord.ext import commands

from adapters.discord.actors import actor_of, is_moderator
from adapters.discord.cogs.moderation import post_audit
from adapters.discord.delivery import Conversation
from bot.outcomes import Refusal


class Results(commands.Cog):
    def __init__(self, bot) -> None:
        self.bot = bot

    async def variation(self, interaction: discord.Interaction, result_id: str) -> None:
        """Same emotion, new seed: a new piece in a new message."""
        asked = self.bot.service.variation(actor_of(interaction), result_id, upload_limit=interaction.filesize_limit)
        await self._again(interaction, asked)

    async def another_mode(self, interaction: discord.Interaction, result_id: str, mode: str) -> None:
        asked = self.bot.service.another_mode(actor_of(interaction), result_id, mode,
                                              upload_limit=interaction.filesize_limit)
        await self._again(interaction, asked)

    async def _again(self, interaction: discord.Interaction, asked) -> None:
        received_at = self.bot.config.clock()
        if isinstance(asked, Refusal):
            await interaction.response.send_message(asked.message, ephemeral=True)
            return
        admission, request = asked
        private = bool(interaction.message and interaction.message.flags.ephemeral)
        with self.bot.flow.admitted(admission) as use:  # given back if the deferral fails
            await interaction.response.defer(thinking=True, ephemeral=private)
            conversation = Conversation(interaction, self.bot.config, self.bot.service, received_at=received_at,
                                        private=private)
            ticket = await use.submit_request(request, extra={"private": private})
        await self.bot.flow.run(ticket, conversation)

    async def parameters(self, interaction: discord.Interaction, result_id: str) -> None:
        rows = self.bot.service.parameters(result_id)
        if rows is None:
            await interaction.response.send_message("That result is gone.", ephemeral=True)
            return
        embed = discord.Embed(title="Parameters", description="Everything needed to make this piece again.")
        for name, value in rows:
            embed.add_field(name=name, value=value, inline=True)
        await interaction.response.send_message(embed=embed, ephemeral=True)

    async def delete(self, interaction: discord.Interaction, result_id: str) -> None:
        actor = actor_of(interaction)
        deletion = self.bot.service.delete(actor, result_id, moderator=is_moderator(interaction))
        if not deletion.allowed:
            await interaction.response.send_message(deletion.message, ephemeral=True)
            return
        await post_audit(self.bot, self.bot.service.moderation.notice(actor, "delete", deletion.record))
        await interaction.response.defer()  # a component's deferral: @original is its message
        try:
            await interaction.delete_original_response()
        except discord.NotFound:
            pass  # already gone

    async def cancel(self, interaction: discord.Interaction, result_id: str) -> None:
        actor = actor_of(interaction)
        message = self.bot.service.cancel(actor, result_id, moderator=is_moderator(interaction))
        await interaction.response.send_message(message, ephemeral=True)
        if message == "Cancelled.":  # by a moderator, for someone else: the audit channel hears of it too
            await post_audit(self.bot, self.bot.service.moderation.notice(actor, "cancel",
                                                                           self.bot.service.result(result_id)))


async def setup(bot) -> None:
    await bot.add_cog(Results(bot))
