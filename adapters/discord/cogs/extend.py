"""The Extend button under every piece: one more picture or mood continues it.

The button (`aria:e:<result id>`, views.py) opens a form: valence and arousal, a caption and an
optional picture. A picture wins; without one both numbers are needed. The submission is
checked (the picture with the bot's own limits and origins, as `/aria-jam add`), deferred, and
handed to `JamService.extend_result` (bot/extend.py: the policy, the use, the jam record); the
longer piece, the new section marked, arrives as a variation does, in the interaction's own
message (the status lines led by the new section's readout), its credits naming every section's
author.

The form lives in memory, as every modal does: a restart between the click and the submission
loses it, and Discord tells the member the form failed (they click Extend again).
"""

from __future__ import annotations

import discord
from discord.ext import commands

from adapters.discord.actors import actor_of
from adapters.discord.attachments import AttachmentRefused
from adapters.discord.cogs.moderation import post_audit
from adapters.discord.delivery import Conversation
from aria_engine.emotion import Emotion
from bot.jams import JamRefused

ASK = "Extend with a picture, or with both a valence and an arousal (each from -1 to 1)."


class ExtendForm(discord.ui.Modal, title="Extend this piece"):
    """What the new section is made from. Custom ids are fixed so the fields read plainly."""

    valence = discord.ui.TextInput(label="Valence (-1 unpleasant .. +1 pleasant)", custom_id="valence",
                                   required=False, max_length=6)
    arousal = discord.ui.TextInput(label="Arousal (-1 calm .. +1 energetic)", custom_id="arousal",
                                   required=False, max_length=6)
    caption = discord.ui.TextInput(label="Caption", custom_id="caption", required=False, max_length=120)
    picture = discord.ui.Label(text="Picture (instead of a mood)",
                               component=discord.ui.FileUpload(custom_id="picture", required=False, max_values=1))

    def __init__(self, cog: "Extend", result_id: str) -> None:
        super().__init__()
        self.cog, self.result_id = cog, result_id

    async def on_submit(self, interaction: discord.Interaction) -> None:
        files = self.picture.component.values  # type: ignore[attr-defined]
        await self.cog.submit(interaction, self.result_id, picture=files[0] if files else None,
                              valence=self.valence.value, arousal=self.arousal.value, caption=self.caption.value)


def mood_of(valence: str, arousal: str) -> Emotion | None:
    """Both numbers, each within -1..1, or None (the member is asked again)."""
    try:
        v, a = float(valence.strip()), float(arousal.strip())
    except ValueError:
        return None
    if not (-1.0 <= v <= 1.0 and -1.0 <= a <= 1.0):
        return None
    return Emotion(v, a)


class Extending(Conversation):
    """A variation's messages, the status lines led by the new section's readout (the longer
    piece replaces them, its credits naming every section)."""

    def __init__(self, *args, readout: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.readout = readout

    async def show_status(self, text: str, result_id: str | None = None) -> None:
        await super().show_status(f"{self.readout}\n{text}", result_id)


class Extend(commands.Cog):
    def __init__(self, bot) -> None:
        self.bot = bot

    @property
    def jams(self):
        """The jam cog's service: extensions are jam records, kept by the same book."""
        cog = self.bot.get_cog("Jams")
        if cog is None:
            raise RuntimeError("the Jams cog is not loaded")
        return cog.jams

    async def open_form(self, interaction: discord.Interaction, result_id: str) -> None:
        """A piece that cannot be extended is refused at the click, before a form is filled in."""
        try:
            self.jams.extender.earlier(result_id)
        except JamRefused as refused:
            await interaction.response.send_message(str(refused), ephemeral=True)
            return
        await interaction.response.send_modal(ExtendForm(self, result_id))

    async def submit(self, interaction: discord.Interaction, result_id: str, *, picture: discord.Attachment | None,
                     valence: str, arousal: str, caption: str) -> None:
        received_at = self.bot.config.clock()
        emotion = None
        if picture is not None:
            try:
                self.bot.check_attachment(picture)
            except AttachmentRefused as refused:
                await interaction.response.send_message(str(refused), ephemeral=True)
                return
        else:
            emotion = mood_of(valence, arousal)
            if emotion is None:
                await interaction.response.send_message(ASK, ephemeral=True)
                return
        private = bool(interaction.message and interaction.message.flags.ephemeral)
        await interaction.response.defer(thinking=True, ephemeral=private)
        try:
            image = await self.bot.fetch_attachment(picture) if picture is not None else None
            extension = await self.jams.extend_result(actor_of(interaction), interaction.user.mention, result_id,
                                                      image=image, emotion=emotion, caption=caption or "",
                                                      upload_limit=interaction.filesize_limit,
                                                      extra={"private": private})
        except (AttachmentRefused, JamRefused) as refused:
            await interaction.followup.send(str(refused), ephemeral=True)
            await interaction.delete_original_response()
            await post_audit(self.bot, getattr(refused, "audit", None))  # the image-safety gate's refusals
            return
        conversation = Extending(interaction, self.bot.config, self.bot.service, received_at=received_at,
                                 private=private, readout=extension.readout)
        await conversation.show_status("Extending the piece: the longer one is on its way.")
        await self.bot.flow.run(extension.ticket, conversation)
        grown, _ = self.jams.settle(extension.jam.jam_id, extension.ticket.result_id)
        await self.bot.get_cog("Jams").redraw(grown)  # a jam grew: its board


async def setup(bot) -> None:
    await bot.add_cog(Extend(bot))
