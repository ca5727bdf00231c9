"""Where one request's status and result go, and how a `Reply` looks on Discord.

While the interaction token lives (15 minutes) the status message is the interaction's own
response, edited in place (throttled), and the result replaces it. After that the token is
useless, so the result goes to the channel as a normal message mentioning the requester (a
private result goes to their DMs instead). A piece picked up again after a restart has no
interaction at all and ends the same way. The clock is the config's, so tests can move it.
"""

from __future__ import annotations

import io
import logging
from dataclasses import replace
from typing import Any

import discord

from adapters.discord.config import DiscordConfig
from adapters.discord.views import result_view, status_view
from bot import endings
from bot.outcomes import Finished, Ticket
from bot.reply import Reply

log = logging.getLogger(__name__)

QUADRANT_COLOURS = {(1, 1): 0xF5B041, (-1, 1): 0xE74C3C, (-1, -1): 0x5D6D7E, (1, -1): 0x48C9B0}
TOO_LARGE = 40005  # Discord's "Request entity too large"


def reply_embed(reply: Reply, *, valence: float, arousal: float) -> discord.Embed:
    """The readout: label, valence and arousal with their words, backend and seed; pictures inline."""
    colour = QUADRANT_COLOURS[(1 if valence >= 0 else -1, 1 if arousal >= 0 else -1)]
    embed = discord.Embed(title=reply.headline.capitalize(), description=f"{reply.valence_line}\n{reply.arousal_line}",
                          colour=colour)
    embed.add_field(name="made by", value=reply.backend, inline=False)
    for name, value in reply.details:
        embed.add_field(name=name, value=_clip(value, 1024), inline=name != "instruments")
    if reply.notes:
        embed.add_field(name="notes", value=_clip("\n".join(f"- {n}" for n in reply.notes), 1024), inline=False)
    chart, roll = reply.file("emotion_chart"), reply.file("piano_roll")
    if reply.spoiler:  # the pictures stay behind their spoiler files, not inline in the embed
        chart = roll = None
    if chart is not None:
        embed.set_thumbnail(url=f"attachment://{chart.filename}")
    if roll is not None:
        embed.set_image(url=f"attachment://{roll.filename}")
    return embed


def reply_files(reply: Reply) -> list[discord.File]:
    """The reply's files; spoilered (Discord blurs them until clicked) when the image-safety check
    flagged the picture on a server that asks for spoilers."""
    return [discord.File(io.BytesIO(f.data), filename=f.filename, spoiler=reply.spoiler) for f in reply.files]


def midi_only(reply: Reply, why: str) -> Reply:
    """The same reply with just the MIDI, saying why (a last resort when an upload is refused)."""
    return replace(reply, files=[f for f in reply.files if f.kind == "midi"], notes=reply.notes + [why])


def _clip(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


class Conversation:
    """One request's messages (a `bot.flow.ChatSink`): the interaction's response while its token
    lives, then the channel.

    `Conversation.resumed(client, config, service, record)` is one for a piece picked up again
    after a restart: no interaction any more, so its ending goes to the channel (or the DMs) at once.
    """

    def __init__(self, interaction: discord.Interaction | None, config: DiscordConfig, service: Any, *,
                 received_at: float, private: bool, client: discord.Client | None = None,
                 user: discord.abc.Snowflake | None = None, channel_id: int | None = None,
                 guild_id: int | None = None, picked_up: bool = True) -> None:
        self.interaction = interaction
        self.picked_up = picked_up  # without an interaction: a piece a restart interrupted (not a jam's)
        self.config = config
        self.service = service
        self.received_at = received_at
        self.private = private
        self.client = interaction.client if interaction is not None else client
        self.user = interaction.user if interaction is not None else user
        self.channel_id = interaction.channel_id if interaction is not None else channel_id
        self.guild_id = interaction.guild_id if interaction is not None else guild_id
        self.requester = str(self.user.id)

    @classmethod
    def resumed(cls, client: discord.Client, config: DiscordConfig, service: Any, record: Any) -> "Conversation":
        return cls(None, config, service, received_at=config.clock(), private=bool(record.extra.get("private")),
                   client=client, user=discord.Object(int(record.user_id)), channel_id=int(record.channel_id),
                   guild_id=int(record.server_id))

    @property
    def mention(self) -> str:
        return f"<@{self.user.id}>"

    # -- the token ---------------------------------------------------------------------------

    @property
    def token_alive(self) -> bool:
        if self.interaction is None:
            return False
        age = self.config.clock() - self.received_at
        return age < self.config.token_lifetime_s - self.config.token_margin_s

    # -- status ----------------------------------------------------------------------------------

    @property
    def closing(self) -> bool:
        """The bot is shutting down: unfinished jobs are reported at the next start instead."""
        return self.client.is_closed()

    async def show_status(self, text: str, result_id: str | None = None) -> None:
        if not self.token_alive or self.closing:
            return  # the token is dead or nearly so: the result will go to the channel
        view = status_view(result_id) if result_id else None
        await self.interaction.edit_original_response(content=text, embed=None, view=view)

    async def started(self, ticket: Ticket) -> None:
        """Nothing to remember yet: the result's message is known when it is posted."""

    # -- endings -----------------------------------------------------------------------------

    async def deliver(self, finished: Finished) -> None:
        record = finished.record
        view = result_view(record.result_id, record.options.get("mode"), offer_modes=finished.reply.offers_modes)

        def embed_for(reply: Reply) -> discord.Embed:
            return reply_embed(reply, valence=record.valence or 0.0, arousal=record.arousal or 0.0)

        message = None
        if self.token_alive:
            message = await self._send_fitting(finished.reply, embed_for, self._edit_response, view)
        if message is None:
            message = await self._send_fitting(finished.reply, embed_for, self._post_result, view)
        if message is not None:
            self.service.attach_message(record.result_id, str(message.channel.id), str(message.id))

    async def _send_fitting(self, reply: Reply, embed_for, send, view: discord.ui.View):
        """Send the whole reply; if Discord says it is too large after all, just the MIDI."""
        for attempt in (reply, midi_only(reply, "only the MIDI fitted the upload limit")):
            try:
                return await send(attempt, embed_for(attempt), view)
            except discord.HTTPException as error:
                if error.code == TOO_LARGE and attempt is reply:
                    continue
                log.info("could not deliver result via %s: %s", send.__name__, error)
                return None
        return None

    async def _edit_response(self, reply: Reply, embed: discord.Embed, view: discord.ui.View):
        return await self.interaction.edit_original_response(
            content=None, embed=embed, attachments=reply_files(reply), view=view)

    async def _post_result(self, reply: Reply, embed: discord.Embed, view: discord.ui.View):
        """The channel (or, for a private result, the requester's DMs), mentioning the requester."""
        ready = endings.ready(self.requester, private=self.private, resumed=self.interaction is None and self.picked_up)
        if self.private:
            return await (await self._dm()).send(content=ready, embed=embed, files=reply_files(reply), view=view)
        return await self._channel().send(
            content=ready, embed=embed, files=reply_files(reply), view=view,
            allowed_mentions=discord.AllowedMentions(users=[self.user], roles=False, everyone=False))

    def _channel(self) -> discord.PartialMessageable:
        return self.client.get_partial_messageable(self.channel_id, guild_id=self.guild_id)

    async def _dm(self) -> discord.abc.Messageable:
        """The requester's direct messages (works for a bare id too, after a restart)."""
        return await self.client.create_dm(self.user)

    async def say(self, text: str) -> None:
        """A public (or, for private requests, private) ending without a result."""
        if self.token_alive:
            try:
                await self.interaction.edit_original_response(content=text, embed=None, view=None)
                return
            except discord.HTTPException as error:
                log.info("could not edit the interaction response: %s", error)
        await self._post_text(text)

    async def refuse(self, text: str) -> None:
        """Only the requester sees this: the public "thinking" message goes, an ephemeral one comes."""
        if self.token_alive:
            try:
                if self.private:
                    await self.interaction.edit_original_response(content=text, embed=None, view=None)
                else:
                    await self.interaction.delete_original_response()
                    await self.interaction.followup.send(text, ephemeral=True)
                return
            except discord.HTTPException as error:
                log.info("could not refuse through the interaction: %s", error)
        await self._post_text(text)

    async def withdraw(self, text: str) -> None:
        """The engine refused the job: only the requester hears why."""
        await self.refuse(text)

    async def audit(self, channel: str, text: str) -> None:
        """A line in the server's audit channel, mentioning nobody (an image-safety refusal)."""
        try:
            await self.client.get_partial_messageable(int(channel), guild_id=self.guild_id).send(
                text, allowed_mentions=discord.AllowedMentions.none())
        except (discord.HTTPException, ValueError) as error:
            log.warning("could not post to the audit channel %s: %s", channel, error)

    async def _post_text(self, text: str) -> None:
        try:
            if self.private:
                await (await self._dm()).send(text)
                return
            await self._channel().send(f"{self.mention} {text}",
                                       allowed_mentions=discord.AllowedMentions(users=[self.user]))
        except discord.HTTPException as error:
            log.warning("could not tell %s: %s", self.user.id, error)
