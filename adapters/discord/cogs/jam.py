"""`/aria-jam start|add|add-mood|finish|cancel|remove|extend`: community jams on Discord.

`start` answers with the jam board (title, host, deadline, contributions, the trajectory chart,
buttons Add a mood / Finish / Cancel) and opens a public thread on it: the jam. In the thread,
`/aria-jam add image:` and `/aria-jam add-mood` (or the Add a mood button's form) contribute;
each gets its readout in the thread and the board is redrawn. The host's Finish, the deadline
(a watch this cog runs) or the last allowed contribution composes one piece, posted in the
thread as any result is. Moderators (Manage Messages, Manage Server, or ARIA's admins) may
`remove` a contribution and cancel. `/aria-jam extend` in the thread of a finished jam continues
it with one more picture or mood (the whole longer piece, the new section marked). The rules are
bot/jams.py's.

Contributions count only from inside the jam's thread: a command used there (in a private
thread, by a member of it), or the board's *Add a mood* form by a member who has joined the
thread (Discord's thread members); anyone else is told privately to join it. None of this needs
a privileged intent. With `message_content` (ARIA_DISCORD_MESSAGE_CONTENT=1, and the Message
Content intent switched on in the Developer Portal), a picture simply posted in an open jam's
thread is a contribution too (its text the caption); a refusal for one cannot be ephemeral, so
it is a reply mentioning the member that deletes itself after `notice_lifetime_s`.
While the piece is made, the board shows its progress (the same throttled status every piece
gets), then how it ended.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
from typing import Optional

import discord
from discord import app_commands
from discord.ext import commands

from adapters.discord.actors import actor_of
from adapters.discord.attachments import AttachmentRefused
from adapters.discord.cogs.moderation import post_audit
from adapters.discord.delivery import Conversation
from aria_engine import visuals
from aria_engine.emotion import Emotion
from bot.flow import StatusAlsoShown
from bot.jam_store import Jam, JamBook
from bot.jams import JamRefused, JamService, board_text, piece_progress, reader_for, watch_deadlines
from bot.policy import Actor

log = logging.getLogger(__name__)

Axis = app_commands.Range[float, -1.0, 1.0]
JAM_TEMPLATE = re.compile(r"aria-jam:(?P<action>[mfc]):(?P<jid>[0-9a-f]{1,32})")  # not "aria:": views.py owns those
ACTIONS = {"m": ("Add a mood", discord.ButtonStyle.secondary), "f": ("Finish", discord.ButtonStyle.primary),
           "c": ("Cancel", discord.ButtonStyle.danger)}
CHART = "jam.trajectory.png"


class JamButton(discord.ui.DynamicItem[discord.ui.Button], template=JAM_TEMPLATE):
    """The board's buttons, keyed by jam id so they work after a restart."""

    def __init__(self, action: str, jam_id: str) -> None:
        label, style = ACTIONS[action]
        super().__init__(discord.ui.Button(label=label, style=style, custom_id=f"aria-jam:{action}:{jam_id}"))
        self.action, self.jam_id = action, jam_id

    @classmethod
    async def from_custom_id(cls, interaction, item, match):
        return cls(match["action"], match["jid"])

    async def callback(self, interaction: discord.Interaction) -> None:
        cog = interaction.client.get_cog("Jams")
        if self.action == "m":
            await interaction.response.send_modal(MoodForm(cog, self.jam_id))
        elif self.action == "f":
            await cog.finish(interaction, self.jam_id)
        else:
            await cog.cancel(interaction, self.jam_id)


class MoodForm(discord.ui.Modal, title="Add a mood"):
    valence = discord.ui.TextInput(label="Valence (-1 unpleasant .. +1 pleasant)", max_length=6)
    arousal = discord.ui.TextInput(label="Arousal (-1 calm .. +1 energetic)", max_length=6)
    caption = discord.ui.TextInput(label="Caption", required=False, max_length=120)

    def __init__(self, cog: "Jams", jam_id: str) -> None:
        super().__init__()
        self.cog, self.jam_id = cog, jam_id

    async def on_submit(self, interaction: discord.Interaction) -> None:
        try:
            valence, arousal = float(self.valence.value), float(self.arousal.value)
        except ValueError:
            await interaction.response.send_message("A mood is two numbers, each between -1 and 1.", ephemeral=True)
            return
        await self.cog.add_mood_to(interaction, self.jam_id, valence, arousal, self.caption.value or "")


def board_view(jam: Jam) -> discord.ui.View | None:
    if not jam.is_open:
        return None
    view = discord.ui.View(timeout=None)
    for action in ACTIONS:
        view.add_item(JamButton(action, jam.jam_id))
    return view


def board_embed(jam: Jam, clock, progress: str | None = None) -> discord.Embed:
    lines = board_text(jam, clock, progress).splitlines()
    embed = discord.Embed(title=lines[0][:256], description="\n".join(lines[1:])[:4096], colour=0x7B5EA7)
    if jam.entries:
        embed.set_image(url=f"attachment://{CHART}")
    return embed


def actor_of_message(message: discord.Message) -> Actor:
    """Who posted a picture in a jam's thread, as `actor_of` says it for an interaction (the
    member's server-wide permissions: a message carries none for its channel)."""
    member = message.author
    permissions = getattr(member, "guild_permissions", discord.Permissions.none())
    return Actor(platform="discord", server_id=str(message.guild.id), channel_id=str(message.channel.id),
                 user_id=str(member.id),
                 role_ids=tuple(str(r.id) for r in getattr(member, "roles", ()) if not r.is_default()),
                 is_admin=permissions.manage_guild or permissions.administrator,
                 age_restricted=bool(getattr(message.channel, "nsfw", False)),
                 is_moderator=permissions.manage_messages or permissions.manage_guild or permissions.administrator)


def mood_view(jam: Jam) -> discord.ui.View:
    """The Add a mood button alone, for the thread's first message (pressed there, in the thread)."""
    view = discord.ui.View(timeout=None)
    view.add_item(JamButton("m", jam.jam_id))
    return view


class CommandAnswer:
    """Answers a picture's contribution made with `/aria-jam add`: privately until it is taken."""

    def __init__(self, interaction: discord.Interaction) -> None:
        self.interaction = interaction

    async def working(self) -> None:
        await self.interaction.response.defer(thinking=True)

    async def refuse(self, text: str) -> None:
        if not self.interaction.response.is_done():
            await self.interaction.response.send_message(text, ephemeral=True)
            return
        await self.interaction.followup.send(text, ephemeral=True)
        await self.interaction.delete_original_response()

    async def readout(self, text: str) -> None:
        await self.interaction.followup.send(text)


class MessageAnswer:
    """Answers a picture posted in the jam's thread. A message's refusal cannot be ephemeral: it
    is a reply that mentions the member (and no one else) and deletes itself shortly after."""

    def __init__(self, message: discord.Message, notice_lifetime_s: float) -> None:
        self.message = message
        self.notice_lifetime_s = notice_lifetime_s

    async def working(self) -> None:
        """Nothing to acknowledge: the readout is the answer."""

    async def refuse(self, text: str) -> None:
        await self.message.reply(f"{self.message.author.mention} {text}", delete_after=self.notice_lifetime_s,
                                 mention_author=True,
                                 allowed_mentions=discord.AllowedMentions(users=[self.message.author], everyone=False,
                                                                          roles=False, replied_user=True))

    async def readout(self, text: str) -> None:
        await self.message.reply(text, mention_author=False)


class PieceOnTheBoard(StatusAlsoShown, Conversation):
    """The jam's piece: delivered in the thread as any result, its status shown on the board
    (the flow calls `show_status` throttled, as for every piece's status message)."""


class Jams(commands.Cog):
    jam = app_commands.Group(name="aria-jam", description="Community jams: many pictures and moods, one piece",
                             guild_only=True)

    def __init__(self, bot) -> None:
        self.bot = bot
        service = bot.service
        self.jams = JamService(service, JamBook(service.store),
                               reader_for(service),
                               clock=lambda: service.policy.clock())
        self._watch: asyncio.Task | None = None
        self._charts: dict[str, tuple[tuple, bytes]] = {}  # jam id -> (its contributions, their chart)

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(JamButton)
        self._watch = asyncio.ensure_future(self._watch_when_ready())

    async def cog_unload(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)

    async def _watch_when_ready(self) -> None:
        await self.bot.wait_until_ready()
        await watch_deadlines(self.jams, self._deliver, interval_s=self.bot.config.jam_watch_s)

    # -- the commands ----------------------------------------------------------------------

    @jam.command(name="start", description="Open a jam in this channel: members add pictures and moods")
    @app_commands.describe(title="What the jam is called", minutes="How long it stays open (default 10)",
                           max="Most contributions (default 12)", seconds="Seconds per section (default 15)")
    async def start(self, interaction: discord.Interaction, title: str,
                    minutes: Optional[app_commands.Range[int, 1, 1440]] = None,
                    max: Optional[app_commands.Range[int, 2, 12]] = None,
                    seconds: Optional[app_commands.Range[float, 6, 120]] = None) -> None:
        actor = actor_of(interaction)
        try:
            jam = self.jams.start(actor, interaction.user.mention, title=title, minutes=minutes or 10,
                                  max_contributions=max, seconds=seconds)
        except JamRefused as refused:
            await interaction.response.send_message(str(refused), ephemeral=True)
            return
        await interaction.response.send_message(embed=board_embed(jam, self.jams.clock), view=board_view(jam))
        message = await interaction.original_response()
        thread = await message.create_thread(name=f"Jam: {jam.title}"[:100])
        self.jams.book.set_board(jam.jam_id, {"channel": str(interaction.channel_id), "message": str(message.id),
                                              "ts": str(thread.id)}, self.jams.clock())
        pictures = "Post pictures here (or use `/aria-jam add`)" if self.bot.config.message_content else \
            "Add pictures with `/aria-jam add`"
        await thread.send(f"{pictures}, or moods with `/aria-jam add-mood` or the button, here.",
                          view=mood_view(jam))

    @jam.command(name="add", description="Add a picture to this thread's jam")
    @app_commands.describe(image="A picture", caption="A few words about it")
    async def add(self, interaction: discord.Interaction, image: discord.Attachment,
                  caption: Optional[str] = None) -> None:
        jam = await self._jam_here(interaction)
        if jam is None:
            return
        await self.add_picture_to(jam, image, caption or "", actor=actor_of(interaction),
                                  name=interaction.user.mention, in_thread=await self._in_thread(interaction, jam),
                                  answer=CommandAnswer(interaction))

    @commands.Cog.listener("on_message")
    async def on_thread_picture(self, message: discord.Message) -> None:
        """A picture posted in an open jam's thread (only with the Message Content intent: without
        it Discord sends no messages, nor their attachments)."""
        if not self.bot.config.message_content or message.author.bot or message.guild is None:
            return
        image = next((a for a in message.attachments if (a.content_type or "").startswith("image/")), None)
        if image is None:
            return
        jam = next((j for j in self.jams.open_jams("discord") if j.board.get("ts") == str(message.channel.id)), None)
        if jam is None:
            return
        caption = re.sub(r"<@[!&]?\d+>", "", message.content).strip()
        await self.add_picture_to(jam, image, caption, actor=actor_of_message(message), name=message.author.mention,
                                  in_thread=True, answer=MessageAnswer(message, self.bot.config.notice_lifetime_s))

    @jam.command(name="add-mood", description="Add a mood to this thread's jam")
    @app_commands.describe(valence="-1 unpleasant ... +1 pleasant", arousal="-1 calm ... +1 energetic",
                           caption="A few words about it")
    async def add_mood(self, interaction: discord.Interaction, valence: Axis, arousal: Axis,
                       caption: Optional[str] = None) -> None:
        jam = await self._jam_here(interaction)
        if jam is not None:
            await self.add_mood_to(interaction, jam.jam_id, valence, arousal, caption or "")

    @jam.command(name="finish", description="Compose this thread's jam now (the host)")
    async def finish_command(self, interaction: discord.Interaction) -> None:
        jam = await self._jam_here(interaction)
        if jam is not None:
            await self.finish(interaction, jam.jam_id)

    @jam.command(name="cancel", description="Cancel this thread's jam (the host or a moderator)")
    async def cancel_command(self, interaction: discord.Interaction) -> None:
        jam = await self._jam_here(interaction)
        if jam is not None:
            await self.cancel(interaction, jam.jam_id)

    @jam.command(name="remove", description="Remove a contribution from this thread's jam (moderators)")
    @app_commands.describe(number="The contribution's number on the board")
    async def remove(self, interaction: discord.Interaction, number: app_commands.Range[int, 1, 12]) -> None:
        jam = await self._jam_here(interaction)
        if jam is None:
            return
        try:
            left = self.jams.remove(actor_of(interaction), jam.jam_id, number)
        except JamRefused as refused:
            await interaction.response.send_message(str(refused), ephemeral=True)
            return
        await interaction.response.send_message(f"Contribution {number} removed.", ephemeral=True)
        await self.redraw(left)

    @jam.command(name="extend", description="Continue this thread's finished jam with one more picture or mood")
    @app_commands.describe(image="A picture", valence="-1 unpleasant ... +1 pleasant (with arousal, for a mood)",
                           arousal="-1 calm ... +1 energetic", caption="A few words about it")
    async def extend(self, interaction: discord.Interaction, image: Optional[discord.Attachment] = None,
                     valence: Optional[Axis] = None, arousal: Optional[Axis] = None,
                     caption: Optional[str] = None) -> None:
        jam = await self._jam_here(interaction, finished=True)
        if jam is None:
            return
        if (image is None) == (valence is None or arousal is None):
            await interaction.response.send_message("Extend with a picture, or a valence and an arousal.",
                                                    ephemeral=True)
            return
        data = None
        if image is not None:
            try:
                self.bot.check_attachment(image)
            except AttachmentRefused as refused:
                await interaction.response.send_message(str(refused), ephemeral=True)
                return
        await interaction.response.defer(thinking=True)
        try:
            if image is not None:
                data = await self.bot.fetch_attachment(image)
            emotion = None if data is not None else Emotion(valence, arousal)
            jam, added, ticket = await self.jams.extend(actor_of(interaction), interaction.user.mention, jam.jam_id,
                                                        image=data, emotion=emotion, caption=caption or "",
                                                        upload_limit=interaction.filesize_limit)
        except (AttachmentRefused, JamRefused) as refused:
            await interaction.followup.send(str(refused), ephemeral=True)
            await interaction.delete_original_response()
            await post_audit(self.bot, getattr(refused, "audit", None))
            return
        await interaction.followup.send(f"{added.readout}\nExtending the jam: the longer piece will arrive here.")
        await self._deliver(jam, ticket)

    # -- what they do --------------------------------------------------------------------------

    async def add_picture_to(self, jam: Jam, image: discord.Attachment, caption: str, *, actor, name: str,
                             in_thread: bool, answer) -> None:
        """A picture joins the jam, from the command or posted in the thread: checked and fetched
        as the bot fetches every attachment, read, answered with its readout, the board redrawn."""
        try:
            self.bot.check_attachment(image)
        except AttachmentRefused as refused:
            await answer.refuse(str(refused))
            return
        await answer.working()
        try:
            data = await self.bot.fetch_attachment(image)
            added = await self.jams.add_picture(actor, name, jam.jam_id, data, caption, in_thread=in_thread)
        except (AttachmentRefused, JamRefused) as refused:
            await answer.refuse(str(refused))
            await post_audit(self.bot, getattr(refused, "audit", None))  # the image-safety gate's refusals
            return
        await answer.readout(added.readout)
        await self._contributed(added)

    async def add_mood_to(self, interaction: discord.Interaction, jam_id: str, valence: float, arousal: float,
                          caption: str) -> None:
        jam = self.jams.book.get(jam_id)
        try:
            added = self.jams.add_mood(actor_of(interaction), interaction.user.mention, jam_id, valence, arousal,
                                       caption, in_thread=jam is not None and await self._in_thread(interaction, jam))
        except JamRefused as refused:
            await interaction.response.send_message(str(refused), ephemeral=True)
            return
        await interaction.response.send_message(added.readout)
        await self._contributed(added)

    async def finish(self, interaction: discord.Interaction, jam_id: str) -> None:
        try:
            jam, ticket = await self.jams.finish(actor_of(interaction), jam_id,
                                                 upload_limit=interaction.filesize_limit)
        except JamRefused as refused:
            await interaction.response.send_message(str(refused), ephemeral=True)
            return
        await interaction.response.send_message("Composing the jam: the piece will arrive in its thread.",
                                                ephemeral=True)
        await self._deliver(jam, ticket)

    async def cancel(self, interaction: discord.Interaction, jam_id: str) -> None:
        try:
            jam = self.jams.cancel(actor_of(interaction), jam_id)
        except JamRefused as refused:
            await interaction.response.send_message(str(refused), ephemeral=True)
            return
        await interaction.response.send_message("The jam is cancelled.", ephemeral=True)
        await self.redraw(jam)

    async def _contributed(self, added) -> None:
        await self.redraw(added.jam)
        if added.full:
            try:
                jam, ticket = await self.jams.finish(None, added.jam.jam_id)
            except JamRefused:
                return
            await self._deliver(jam, ticket)

    async def _deliver(self, jam: Jam, ticket) -> None:
        """The piece into the jam's thread, as a channel message (no interaction to answer)."""
        await self.redraw(jam)
        thread_id = int(jam.board.get("ts") or jam.channel_id)

        async def show_on_board(status: str) -> None:
            await self.redraw(jam, piece_progress("composing", status))

        conversation = PieceOnTheBoard(None, self.bot.config, self.bot.service, received_at=self.bot.config.clock(),
                                       private=False, client=self.bot, user=discord.Object(int(jam.host_id)),
                                       channel_id=thread_id, guild_id=int(jam.server_id), picked_up=False,
                                       on_status=show_on_board)
        await self.bot.flow.run(ticket, conversation)
        await self.redraw(*self.jams.settle(jam.jam_id, ticket.result_id))

    async def redraw(self, jam: Jam | None, progress: str | None = None) -> None:
        if jam is None or not jam.board.get("message"):
            return
        channel = self.bot.get_partial_messageable(int(jam.board["channel"]), guild_id=int(jam.server_id))
        message = channel.get_partial_message(int(jam.board["message"]))
        files = [self._chart_file(jam)] if jam.entries else []
        try:
            await message.edit(embed=board_embed(jam, self.jams.clock, progress), view=board_view(jam),
                               attachments=files)
        except discord.HTTPException as error:
            log.warning("could not redraw the board of jam %s: %s", jam.jam_id, error)

    def _chart_file(self, jam: Jam) -> discord.File:
        """The board's chart, drawn again only when the contributions changed (progress edits
        redraw the board every few seconds while the piece is made)."""
        drawn = tuple((e.user_name, e.emotion.valence, e.emotion.arousal) for e in jam.entries)
        kept = self._charts.get(jam.jam_id)
        if kept is None or kept[0] != drawn:
            png = visuals.trajectory_chart([(e.user_name, e.emotion) for e in jam.entries])
            kept = self._charts[jam.jam_id] = (drawn, png)
        return discord.File(io.BytesIO(kept[1]), filename=CHART)

    async def _in_thread(self, interaction: discord.Interaction, jam: Jam) -> bool:
        """Whether this member acts from inside the jam's thread: used there (a private thread
        only by its members), or, from the board in the channel, having joined the thread."""
        thread_id = jam.board.get("ts")
        if not thread_id:
            return False
        channel = interaction.channel
        if str(interaction.channel_id) == thread_id and \
                getattr(channel, "type", None) != discord.ChannelType.private_thread:
            return True
        try:
            await self.bot.http.get_thread_member(int(thread_id), interaction.user.id)
        except discord.NotFound:
            return False
        except discord.HTTPException as error:  # cannot tell: the member is not turned away for Discord's failure
            log.warning("could not ask whether %s is in the thread of jam %s: %s", interaction.user.id, jam.jam_id,
                        error)
        return True

    async def _jam_here(self, interaction: discord.Interaction, *, finished: bool = False) -> Jam | None:
        """The jam whose thread this is; tells the member when it is none."""
        channel = interaction.channel
        parent = getattr(channel, "parent_id", None)
        jam = self.jams.book.by_board("discord", str(parent), str(interaction.channel_id)) if parent else None
        if jam is None:
            await interaction.response.send_message(
                "Use this in a jam's thread (start one with `/aria-jam start`).", ephemeral=True)
        return jam


async def setup(bot) -> None:
    await bot.add_cog(Jams(bot))
