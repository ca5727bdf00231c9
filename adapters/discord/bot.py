"""The Discord client: cogs (extensions), persistent buttons, command sync, endpoints and error handling.

`create_bot(config, service)` returns a `commands.Bot`, or a `commands.AutoShardedBot` when
sharding is asked for. `run(config, service)` logs in and runs until stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import aiohttp
import discord
import yarl
from discord import app_commands
from discord.ext import commands

from adapters.discord.attachments import check_attachment, download
from adapters.discord.config import DiscordConfig
from adapters.discord.delivery import Conversation
from adapters.discord.sync import sync_if_changed
from adapters.discord.views import ModeSelect, ResultButton, is_known_custom_id
from bot.flow import ChatFlow

log = logging.getLogger(__name__)

PLATFORM = "discord"
# One extension per feature, loaded as discord.py loads extensions (each module's `setup(bot)`).
EXTENSIONS = tuple(f"adapters.discord.cogs.{name}" for name in ("compose", "results", "queue", "help", "admin", "members",
                                                                        "moderation", "jam", "extend"))


def use_endpoints(config: DiscordConfig) -> None:
    """Point discord.py at another REST base and gateway (they are process-wide in discord.py)."""
    if config.rest_base:
        discord.http.Route.BASE = config.rest_base
    if config.gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(config.gateway_url)


class _AriaBot:
    """What both bot classes share; mixed in before discord.py's class."""

    def _setup_aria(self, config: DiscordConfig, service) -> None:
        self.config = config
        self.service = service
        self.downloads: aiohttp.ClientSession | None = None
        self.synced: bool | None = None
        self.flow = ChatFlow(service, PLATFORM, interval_s=config.progress_interval_s)
        self._once_per_interaction()

    def _once_per_interaction(self) -> None:
        """Handle each interaction once. Discord sends INTERACTION_CREATE to every session of
        the bot, so a bot connected twice (a rolling restart, a second replica on the same
        data dir) gets each one twice; only one answer can win, and the other would spend a use
        and apologise for an "already acknowledged" error. The ids seen are kept in the store,
        checked before discord.py hands the interaction to commands, buttons or selects."""
        parsers = self._connection.parsers
        parse = parsers["INTERACTION_CREATE"]

        def first_delivery_only(data) -> None:
            interaction_id = data.get("id")
            if interaction_id and not self.service.store.first_sighting(f"discord:interaction:{interaction_id}",
                                                                         keep_s=self.config.dedupe_window_s):
                log.info("ignoring interaction %s, delivered again", interaction_id)
                return
            parse(data)

        parsers["INTERACTION_CREATE"] = first_delivery_only

    def check_attachment(self, attachment: discord.Attachment) -> None:
        """Refuse (AttachmentRefused), before a byte is fetched, a file this bot will not read."""
        check_attachment(attachment, max_bytes=self.config.max_download_bytes, origins=self.config.attachment_origins())

    async def fetch_attachment(self, attachment: discord.Attachment) -> bytes:
        """The attachment's bytes, within the size limit, from Discord's origins only."""
        return await download(self.downloads, attachment, max_bytes=self.config.max_download_bytes,
                              origins=self.config.attachment_origins())

    async def setup_hook(self) -> None:
        self.downloads = aiohttp.ClientSession()
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        self.add_dynamic_items(ResultButton, ModeSelect)
        self.tree.on_error = self.on_app_command_error
        self.synced = await sync_if_changed(self.tree, self.service.store, application_id=self.application_id,
                                            test_guild=self.config.test_guild)
        await self._pick_up_unfinished()

    async def _pick_up_unfinished(self) -> None:
        """Pieces the last process left unfinished: those the engine still makes are delivered
        when done, in the channel (or the DMs for a private one); the others' requesters are told."""
        async def resumed_sink(ticket) -> Conversation:
            return Conversation.resumed(self, self.config, self.service, ticket.record)

        await self.flow.pick_up_unfinished(tell_lost=self._tell_lost, resumed_sink=resumed_sink)

    async def _tell_lost(self, record, text: str) -> None:
        try:
            if record.extra.get("private"):
                await (await self.create_dm(discord.Object(int(record.user_id)))).send(text)
                return
            channel = self.get_partial_messageable(int(record.channel_id), guild_id=int(record.server_id))
            await channel.send(text, allowed_mentions=discord.AllowedMentions(users=True))
        except (discord.HTTPException, ValueError) as error:
            log.warning("could not tell %s about a lost job: %s", record.user_id, error)

    async def on_app_command_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        """Whatever went wrong, the person who asked hears about it and the bot keeps going."""
        if isinstance(error, app_commands.CommandNotFound):
            message = "That command isn't available any more; Discord may still be updating its list. Try /aria-help."
        elif isinstance(error, app_commands.CheckFailure):
            message = "You can't use that here."
        elif isinstance(error, app_commands.TransformerError):
            message = f"I couldn't understand {error.value!r} for that option."
        else:
            log.error("command %s failed", getattr(interaction.command, "qualified_name", "?"), exc_info=error)
            message = "Sorry, something went wrong on my side. Please try again."
        try:
            if interaction.response.is_done():
                await interaction.followup.send(message, ephemeral=True)
            else:
                await interaction.response.send_message(message, ephemeral=True)
        except discord.HTTPException:
            pass

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """Components nobody answers (an older version's buttons) still get a polite word."""
        if interaction.type is not discord.InteractionType.component:
            return
        custom_id = (interaction.data or {}).get("custom_id", "")
        if custom_id.startswith("aria:") and not is_known_custom_id(custom_id):
            await interaction.response.send_message(
                "That button is from an older version of ARIA and no longer works. Try /aria again.", ephemeral=True)

    async def on_error(self, event_method: str, /, *args, **kwargs) -> None:
        log.exception("ignoring an error in %s", event_method)

    async def close(self) -> None:
        if self.downloads is not None:
            await self.downloads.close()
        await super().close()


class AriaBot(_AriaBot, commands.Bot):
    pass


class ShardedAriaBot(_AriaBot, commands.AutoShardedBot):
    pass


def create_bot(config: DiscordConfig, service) -> commands.Bot:
    use_endpoints(config)
    options = dict(
        command_prefix=commands.when_mentioned,
        help_command=None,
        intents=config.intents(),  # no privileged intent unless message_content is asked for
        allowed_mentions=discord.AllowedMentions(everyone=False, roles=False, users=True),
        guild_ready_timeout=config.guild_ready_timeout,
    )
    if config.sharded:
        bot = ShardedAriaBot(shard_count=config.shard_count, **options)
    else:
        bot = AriaBot(**options)
    bot._setup_aria(config, service)
    return bot


async def run(config: DiscordConfig, service) -> None:
    """Log in and run until the connection ends or SIGINT/SIGTERM asks for a clean stop."""
    if not config.token:
        raise ValueError("no Discord bot token: set ARIA_DISCORD_TOKEN")
    bot = create_bot(config, service)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows, not off the main thread
            loop.add_signal_handler(signum, lambda: asyncio.ensure_future(bot.close()))
    async with bot:
        await bot.start(config.token)
