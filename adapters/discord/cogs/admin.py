"""`/aria-admin ...`: a server's ARIA settings, for members with Manage Server.

Discord shows the group only to members with Manage Server by default (servers may change that
in their integration settings), so every subcommand checks again: the platform's permission,
or a user id the server listed in `admin_user_ids`. Each change is audited in the store and, if
the server set one, posted to its audit-log channel.
"""

from __future__ import annotations

import logging
from typing import Optional

import discord
from discord import app_commands
from discord.ext import commands

from adapters.discord.actors import actor_of
from aria_engine.options import MODES
from bot.outcomes import SettingChange
from bot.stats import server_stats
from bot.texts import sentence, setting_value

log = logging.getLogger(__name__)

RESETTABLE = ("enabled", "allowed_roles", "cooldown_s", "daily_quota", "max_length", "max_duration_s",
              "allowed_modes", "private_by_default", "audit_channel", "admin_user_ids", "admins_bypass_limits",
              "image_safety", "image_safety_threshold", "moderator_roles", "role_quotas", "server_max_jobs",
              "server_daily_budget")
CHANNEL_HELP = "Only this channel (default: the whole server)"


class Admin(commands.Cog):
    group = app_commands.Group(name="aria-admin", description="ARIA's settings for this server",
                               default_permissions=discord.Permissions(manage_guild=True), guild_only=True)

    def __init__(self, bot) -> None:
        self.bot = bot

    # -- doing a change -------------------------------------------------------------------------

    async def _change(self, interaction: discord.Interaction, name: str, value, channel=None, *,
                      reset: bool = False) -> None:
        service = self.bot.service
        actor = actor_of(interaction)
        channel_id = str(channel.id) if channel is not None else None
        try:
            if reset:
                change = service.reset_setting(actor, name, channel=channel_id)
            else:
                change = service.change_setting(actor, name, value, channel=channel_id)
        except (PermissionError, ValueError) as error:
            await interaction.response.send_message(sentence(str(error)), ephemeral=True)
            return
        await interaction.response.send_message(change.message, ephemeral=True)
        await self._audit(change)

    async def _audit(self, change: SettingChange) -> None:
        if not change.audit_channel:
            return
        try:
            channel = self.bot.get_partial_messageable(int(change.audit_channel))
            await channel.send(change.audit_text, allowed_mentions=discord.AllowedMentions.none())
        except (discord.HTTPException, ValueError) as error:
            log.warning("could not post to the audit channel %s: %s", change.audit_channel, error)

    # -- the subcommands -----------------------------------------------------------------------

    @group.command(name="enable", description="Let members use ARIA in a channel (default: this one)")
    @app_commands.describe(channel="The channel (default: this one)", everywhere="The whole server instead")
    async def enable(self, interaction: discord.Interaction, channel: Optional[discord.TextChannel] = None,
                     everywhere: bool = False) -> None:
        await self._change(interaction, "enabled", True, None if everywhere else (channel or interaction.channel))

    @group.command(name="disable", description="Turn ARIA off in a channel (default: this one)")
    @app_commands.describe(channel="The channel (default: this one)", everywhere="The whole server instead")
    async def disable(self, interaction: discord.Interaction, channel: Optional[discord.TextChannel] = None,
                      everywhere: bool = False) -> None:
        await self._change(interaction, "enabled", False, None if everywhere else (channel or interaction.channel))

    @group.command(name="roles", description="Limit ARIA to some roles, or open it to everyone")
    @app_commands.describe(action="Allow a role, remove one, or let everyone use ARIA", role="The role")
    @app_commands.choices(action=[app_commands.Choice(name=n, value=n) for n in ("allow", "remove", "everyone")])
    async def roles(self, interaction: discord.Interaction, action: app_commands.Choice[str],
                    role: Optional[discord.Role] = None) -> None:
        current = list(self.bot.service.limits(actor_of(interaction))["allowed_roles"])
        if action.value == "everyone":
            await self._change(interaction, "allowed_roles", [])
            return
        if role is None:
            await interaction.response.send_message("Please pick the role too.", ephemeral=True)
            return
        if action.value == "allow":
            current = current + [str(role.id)] if str(role.id) not in current else current
        else:
            current = [r for r in current if r != str(role.id)]
        await self._change(interaction, "allowed_roles", current)

    @group.command(name="cooldown", description="Seconds each member waits between pieces")
    @app_commands.describe(seconds="0 to 3600", channel=CHANNEL_HELP)
    async def cooldown(self, interaction: discord.Interaction, seconds: app_commands.Range[float, 0, 3600],
                       channel: Optional[discord.TextChannel] = None) -> None:
        await self._change(interaction, "cooldown_s", seconds, channel)

    @group.command(name="quota", description="Pieces per member per day (UTC); 0 is unlimited")
    @app_commands.describe(per_day="0 to 10000", channel=CHANNEL_HELP)
    async def quota(self, interaction: discord.Interaction, per_day: app_commands.Range[int, 0, 10000],
                    channel: Optional[discord.TextChannel] = None) -> None:
        await self._change(interaction, "daily_quota", per_day, channel)

    @group.command(name="max-length", description="Longest piece members may ask for, in tokens")
    @app_commands.describe(tokens="1 to 8192", channel=CHANNEL_HELP)
    async def max_length(self, interaction: discord.Interaction, tokens: app_commands.Range[int, 1, 8192],
                         channel: Optional[discord.TextChannel] = None) -> None:
        await self._change(interaction, "max_length", tokens, channel)

    @group.command(name="max-duration", description="Longest piece members may ask for, in seconds")
    @app_commands.describe(seconds="1 to 600", channel=CHANNEL_HELP)
    async def max_duration(self, interaction: discord.Interaction, seconds: app_commands.Range[float, 1, 600],
                           channel: Optional[discord.TextChannel] = None) -> None:
        await self._change(interaction, "max_duration_s", seconds, channel)

    @group.command(name="modes", description="Which conditioning modes members may pick")
    @app_commands.describe(continuous_concat="Allow continuous_concat", continuous_token="Allow continuous_token",
                           discrete_token="Allow discrete_token", channel=CHANNEL_HELP)
    async def modes(self, interaction: discord.Interaction, continuous_concat: bool, continuous_token: bool,
                    discrete_token: bool, channel: Optional[discord.TextChannel] = None) -> None:
        picked = dict(continuous_concat=continuous_concat, continuous_token=continuous_token,
                      discrete_token=discrete_token)
        allowed = [m for m in MODES if picked[m]]
        if not allowed:
            await interaction.response.send_message("Please allow at least one mode.", ephemeral=True)
            return
        await self._change(interaction, "allowed_modes", allowed, channel)

    @group.command(name="privacy", description="Whether results are private to the requester by default")
    @app_commands.describe(private_by_default="On: only the requester sees results unless they ask otherwise")
    async def privacy(self, interaction: discord.Interaction, private_by_default: bool) -> None:
        await self._change(interaction, "private_by_default", private_by_default)

    @group.command(name="audit-channel", description="Where admin changes are logged (leave empty to stop)")
    @app_commands.describe(channel="The log channel; leave it out to turn logging off")
    async def audit_channel(self, interaction: discord.Interaction,
                            channel: Optional[discord.TextChannel] = None) -> None:
        await self._change(interaction, "audit_channel", str(channel.id) if channel else None)

    @group.command(name="image-safety", description="What ARIA does with pictures its safety check flags")
    @app_commands.describe(mode="refuse them (default), spoiler the reply, or off (default in NSFW channels)",
                           threshold="Score from 0 to 1 at which a picture is flagged (default 0.5)",
                           channel=CHANNEL_HELP)
    @app_commands.choices(mode=[app_commands.Choice(name=n, value=n) for n in ("refuse", "spoiler", "off")])
    async def image_safety(self, interaction: discord.Interaction, mode: app_commands.Choice[str],
                           threshold: Optional[app_commands.Range[float, 0, 1]] = None,
                           channel: Optional[discord.TextChannel] = None) -> None:
        if threshold is not None:
            actor, channel_id = actor_of(interaction), str(channel.id) if channel is not None else None
            try:  # both changes, one answer
                change = self.bot.service.change_setting(actor, "image_safety_threshold", threshold, channel=channel_id)
            except (PermissionError, ValueError) as error:
                await interaction.response.send_message(sentence(str(error)), ephemeral=True)
                return
            await self._audit(change)
        await self._change(interaction, "image_safety", mode.value, channel)

    @group.command(name="moderator-role", description="Roles whose members moderate ARIA (block, cancel, delete)")
    @app_commands.describe(action="Add a role, or remove one", role="The role")
    @app_commands.choices(action=[app_commands.Choice(name=n, value=n) for n in ("add", "remove")])
    async def moderator_role(self, interaction: discord.Interaction, action: app_commands.Choice[str],
                             role: discord.Role) -> None:
        current = list(self.bot.service.limits(actor_of(interaction))["moderator_roles"])
        wanted = (current + [str(role.id)] if str(role.id) not in current else current) if action.value == "add" \
            else [r for r in current if r != str(role.id)]
        await self._change(interaction, "moderator_roles", wanted)

    @group.command(name="role-quota", description="A daily quota for one role (leave per_day out to remove it)")
    @app_commands.describe(role="The role", per_day="Pieces per member per UTC day (0: unlimited)")
    async def role_quota(self, interaction: discord.Interaction, role: discord.Role,
                         per_day: Optional[app_commands.Range[int, 0, 10000]] = None) -> None:
        quotas = dict(self.bot.service.limits(actor_of(interaction))["role_quotas"])
        if per_day is None:
            quotas.pop(str(role.id), None)
        else:
            quotas[str(role.id)] = per_day
        await self._change(interaction, "role_quotas", quotas)

    @group.command(name="server-limits", description="This server's share of ARIA: pieces at once, and per day")
    @app_commands.describe(at_once="Pieces waiting or being made at once (0: no cap)",
                           per_day="Pieces per UTC day for the whole server (0: no budget)")
    async def server_limits(self, interaction: discord.Interaction,
                            at_once: Optional[app_commands.Range[int, 0, 1000]] = None,
                            per_day: Optional[app_commands.Range[int, 0, 1000000]] = None) -> None:
        if at_once is None and per_day is None:
            await interaction.response.send_message("Please give at_once, per_day or both.", ephemeral=True)
            return
        if at_once is not None and per_day is not None:
            try:  # both changes, one answer
                change = self.bot.service.change_setting(actor_of(interaction), "server_max_jobs", at_once)
            except (PermissionError, ValueError) as error:
                await interaction.response.send_message(sentence(str(error)), ephemeral=True)
                return
            await self._audit(change)
        if per_day is not None:
            await self._change(interaction, "server_daily_budget", per_day)
        else:
            await self._change(interaction, "server_max_jobs", at_once)

    @group.command(name="purge", description="Delete ARIA's data for a member, or for a channel")
    @app_commands.describe(member="Everything ARIA keeps about this member here", channel="Every piece asked for in this channel")
    async def purge(self, interaction: discord.Interaction, member: Optional[discord.User] = None,
                    channel: Optional[discord.TextChannel] = None) -> None:
        if (member is None) == (channel is None):
            await interaction.response.send_message("Please pick a member or a channel (one of them).", ephemeral=True)
            return
        members, actor = self.bot.service.members, actor_of(interaction)
        try:
            if member is not None:
                forgotten = await members.purge_member(actor, str(member.id))
            else:
                forgotten = await members.purge_channel(actor, str(channel.id))
        except PermissionError as error:
            await interaction.response.send_message(str(error), ephemeral=True)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        confirmation = await self.bot.get_cog("Members").finish(forgotten)
        await interaction.followup.send(confirmation, ephemeral=True)
        await self._audit(SettingChange(confirmation, members.audit_text(actor, forgotten),
                                        self.bot.service.settings.get("audit_channel", server=actor.server_key)))

    @group.command(name="reset", description="Put a setting back to its default")
    @app_commands.describe(setting="The setting", channel=CHANNEL_HELP)
    @app_commands.choices(setting=[app_commands.Choice(name=n, value=n) for n in RESETTABLE])
    async def reset(self, interaction: discord.Interaction, setting: app_commands.Choice[str],
                    channel: Optional[discord.TextChannel] = None) -> None:
        await self._change(interaction, setting.value, None, channel, reset=True)

    @group.command(name="show", description="ARIA's settings here, and where each comes from")
    @app_commands.describe(channel="Show them for this channel (default: this one)")
    async def show(self, interaction: discord.Interaction, channel: Optional[discord.TextChannel] = None) -> None:
        actor = actor_of(interaction)
        try:
            views = self.bot.service.describe_settings(actor, str(channel.id) if channel else None)
        except PermissionError as error:
            await interaction.response.send_message(str(error), ephemeral=True)
            return
        # Every setting, one line each (an embed holds at most 25 fields, and there are more settings).
        lines = [f"{view.name}: {setting_value(view.name, view.value, group=role_mention)} ({view.source_label})"
                 for view in views]
        embed = discord.Embed(title="ARIA settings",
                              description=f"for <#{channel.id if channel else interaction.channel_id}> "
                                          "(where each comes from: default, global, server or channel)\n"
                              + "\n".join(lines))
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @group.command(name="stats", description="The last 7 days: pieces, refusals by reason, top users, queue times")
    async def stats(self, interaction: discord.Interaction) -> None:
        try:
            stats = server_stats(self.bot.service, actor_of(interaction))
        except PermissionError as error:
            await interaction.response.send_message(str(error), ephemeral=True)
            return
        embed = discord.Embed(title=f"ARIA, the last {stats.days} days", description="\n".join(stats.lines()))
        await interaction.response.send_message(embed=embed, ephemeral=True)


def role_mention(role_id: str) -> str:
    return f"<@&{role_id}>"


async def setup(bot) -> None:
    await bot.add_cog(Admin(bot))
