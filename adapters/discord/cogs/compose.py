"""`/aria`, `/aria-mood` and the "Compose music from image" message menu.

Each request goes: cheap checks (attachment metadata, options, policy) answered at once and
privately; then the deferral (well within Discord's 3 s); then the download, the engine job and
its status, and the result (see `delivery.Conversation`).
"""

from __future__ import annotations

import logging
from typing import Optional

import discord
from discord import app_commands
from discord.ext import commands

from adapters.discord.actors import actor_of, chosen_options
from adapters.discord.attachments import AttachmentRefused, first_image
from adapters.discord.delivery import Conversation
from aria_engine.emotion import Emotion
from aria_engine.option_schema import MODE_LABELS, NUMBER, chat_help
from aria_engine.options import MODES
from bot.outcomes import Refusal
from bot.texts import ACCEPTED_PICTURES, sentence

log = logging.getLogger(__name__)

MODE_CHOICES = [app_commands.Choice(name=MODE_LABELS[m], value=m) for m in MODES]
OPTION_HELP = chat_help()  # the parameters' descriptions


def _range(field: str):
    """A parameter's type and bounds, from the option schema."""
    option = NUMBER[field]
    return app_commands.Range[(option.kind, *option.chat_bounds)]


Length = _range("length")
Duration = _range("duration_s")
Temperature = _range("note_temperature")  # the rest temperature has the same bounds
TopP = _range("top_p")
Instruments = _range("min_instruments")
Seed = _range("seed")
Axis = app_commands.Range[float, -1.0, 1.0]


async def refuse_now(interaction: discord.Interaction, message: str) -> None:
    """A private answer to an interaction not yet responded to."""
    await interaction.response.send_message(message, ephemeral=True)


class Compose(commands.Cog):
    def __init__(self, bot) -> None:
        self.bot = bot
        self.menu = app_commands.ContextMenu(name="Compose music from image", callback=self.compose_from_message)
        self.menu.guild_only = True
        bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    # -- the commands ----------------------------------------------------------------------------

    @app_commands.command(name="aria", description="Compose music that matches a picture's mood")
    @app_commands.describe(image=f"A {ACCEPTED_PICTURES} picture", **OPTION_HELP)
    @app_commands.choices(mode=MODE_CHOICES)
    @app_commands.guild_only()
    async def aria(
        self, interaction: discord.Interaction, image: discord.Attachment,
        mode: Optional[app_commands.Choice[str]] = None, length: Optional[Length] = None,
        duration: Optional[Duration] = None, note_temperature: Optional[Temperature] = None,
        rest_temperature: Optional[Temperature] = None, top_p: Optional[TopP] = None,
        min_instruments: Optional[Instruments] = None, seed: Optional[Seed] = None, private: Optional[bool] = None,
    ) -> None:
        chosen = dict(mode=mode.value if mode else None, length=length, duration=duration,
                      note_temperature=note_temperature, rest_temperature=rest_temperature, top_p=top_p,
                      min_instruments=min_instruments, seed=seed)
        await self.compose(interaction, chosen, private, attachment=image)

    @app_commands.command(name="aria-mood", description="Compose music for a mood you choose (no picture needed)")
    @app_commands.describe(valence="-1 unpleasant ... +1 pleasant", arousal="-1 calm ... +1 energetic", **OPTION_HELP)
    @app_commands.choices(mode=MODE_CHOICES)
    @app_commands.guild_only()
    async def aria_mood(
        self, interaction: discord.Interaction, valence: Axis, arousal: Axis,
        mode: Optional[app_commands.Choice[str]] = None, length: Optional[Length] = None,
        duration: Optional[Duration] = None, note_temperature: Optional[Temperature] = None,
        rest_temperature: Optional[Temperature] = None, top_p: Optional[TopP] = None,
        min_instruments: Optional[Instruments] = None, seed: Optional[Seed] = None, private: Optional[bool] = None,
    ) -> None:
        chosen = dict(mode=mode.value if mode else None, length=length, duration=duration,
                      note_temperature=note_temperature, rest_temperature=rest_temperature, top_p=top_p,
                      min_instruments=min_instruments, seed=seed)
        try:
            emotion = Emotion(valence, arousal)
        except ValueError as error:
            await refuse_now(interaction, sentence(str(error)))
            return
        await self.compose(interaction, chosen, private, emotion=emotion)

    async def compose_from_message(self, interaction: discord.Interaction, message: discord.Message) -> None:
        attachment = first_image(message.attachments)
        if attachment is None:
            what = "any attachments" if not message.attachments else "a picture among its attachments"
            await refuse_now(interaction, f"That message doesn't have {what}. "
                                          f"Use this on a message with a {ACCEPTED_PICTURES} image.")
            return
        await self.compose(interaction, {}, None, attachment=attachment,
                           image_ref={"message_id": str(message.id), "attachment_id": str(attachment.id)})

    # -- one request ---------------------------------------------------------------------------

    async def compose(self, interaction: discord.Interaction, chosen: dict, private: bool | None, *,
                      attachment: discord.Attachment | None = None, emotion: Emotion | None = None,
                      image_ref: dict | None = None) -> None:
        received_at = self.bot.config.clock()
        service = self.bot.service
        actor = actor_of(interaction)
        if attachment is not None:
            try:
                self.bot.check_attachment(attachment)
            except AttachmentRefused as refused:
                await refuse_now(interaction, str(refused))
                return
        try:
            options, explicit = chosen_options(**chosen)
        except ValueError as error:
            await refuse_now(interaction, sentence(str(error)))
            return
        admission = service.admit(actor, options, explicit=explicit, kind="compose" if emotion is None else "mood")
        if isinstance(admission, Refusal):
            await refuse_now(interaction, admission.message)
            return
        if private is None:
            private = service.private_by_default(actor)
        with self.bot.flow.admitted(admission) as use:  # given back if anything below fails
            await interaction.response.defer(thinking=True, ephemeral=private)
            conversation = Conversation(interaction, self.bot.config, service, received_at=received_at,
                                        private=private)
            image = None
            if attachment is not None:
                try:
                    image = await self.bot.fetch_attachment(attachment)
                except AttachmentRefused as refused:
                    use.give_back()
                    await conversation.refuse(str(refused))
                    return
                image_ref = image_ref or {"attachment_id": str(attachment.id), "url": attachment.url}
            ticket = await use.submit(image=image, emotion=emotion, upload_limit=interaction.filesize_limit,
                                      image_ref=image_ref, extra={"explicit": sorted(explicit), "private": private})
        await self.bot.flow.run(ticket, conversation)


async def setup(bot) -> None:
    await bot.add_cog(Compose(bot))
