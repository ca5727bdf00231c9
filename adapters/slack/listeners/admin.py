"""`/aria admin ...`: a workspace's ARIA settings, for workspace admins and owners (or the users
listed in `admin_user_ids`). Each change is audited in the store and, if the workspace set an
`audit_channel`, posted there. Slack has no roles: user groups stand in for them (`groups`)."""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.errors import SlackApiError

from adapters.slack import blocks as ui
from adapters.slack.delivery import Tell
from adapters.slack.groups import GroupError, mention, mentions
from adapters.slack.parsing import parse_admin
from bot.policy import Actor
from bot.stats import server_stats
from bot.texts import sentence

log = logging.getLogger(__name__)

ADMIN_ONLY = "Only workspace admins and owners (or users listed in admin_user_ids) can change ARIA's settings."


class Admin:
    def __init__(self, adapter: Any) -> None:
        self.adapter = adapter
        self.service = adapter.service

    def register(self, app) -> None:
        """Nothing of its own to listen to: `/aria admin` arrives through listeners/command.py."""

    async def admin(self, actor: Actor, words: tuple[str, ...], tell: Tell) -> None:
        if not self.service.is_admin(actor):
            await tell(ADMIN_ONLY)
            return
        if words and words[0].lower() == "stats":  # the last 7 days (bot/stats.py)
            await tell(server_stats(self.service, actor).text())
            return
        if words and words[0].lower() == "purge":
            await self.adapter.listener("Members").purge(actor, words[1:], tell)
            return
        try:
            action, name, value, channel = parse_admin(words)
            if action == "groups":
                await self.admin_groups(actor, name, value, channel, tell)
                return
            if action == "show":
                await tell(ui.settings_text(self.service.describe_settings(actor, channel)))
                return
            if action == "set":
                change = self.service.change_setting(actor, name, value, channel=channel)
            else:
                change = self.service.reset_setting(actor, name, channel=channel)
        except (ValueError, PermissionError) as error:
            await tell(sentence(error))
            return
        await tell(change.message)
        await self._audit(change)

    async def admin_groups(self, actor: Actor, verb: str | None, typed: str | None, channel: str | None,
                           tell: Tell) -> None:
        """`/aria admin groups [allow|remove GROUP... | everyone] [#channel]`: limit ARIA to members of
        some user groups (its `allowed_roles` on Slack), here or in one channel; no verb shows them."""
        where = f"in <#{channel}>" if channel else "in this workspace"
        current = list(self.service.settings.get("allowed_roles", server=actor.server_key, channel=channel))
        if verb is None:
            shown = self.service.settings.get("allowed_roles", server=actor.server_key,
                                              channel=channel or actor.channel_id)
            await tell(_groups_line(shown, f"in <#{channel or actor.channel_id}>")
                       + " Change it with `/aria admin groups allow @GROUP [#channel]`, `remove @GROUP` "
                         "or `everyone`.")
            return
        sizes: dict[str, int | None] = {}
        if verb == "everyone":
            wanted: list[str] = []
        else:
            try:
                for word in (typed or "").split():
                    group_id, size = await self.adapter.groups.resolve(actor.server_id, word, check=verb == "allow")
                    sizes[group_id] = size
            except GroupError as error:
                await tell(str(error))
                return
            wanted = (current + [g for g in sizes if g not in current] if verb == "allow"
                      else [g for g in current if g not in sizes])
        change = self.service.change_setting(actor, "allowed_roles", wanted, channel=channel)
        counts = " ".join(f"{mention(g)} has {n} member{'' if n == 1 else 's'}." for g, n in sizes.items()
                          if verb == "allow")
        await tell(" ".join(filter(None, [_groups_line(wanted, where), counts])))
        await self._audit(change)

    async def _audit(self, change) -> None:
        if change.audit_channel:
            try:
                await self.adapter.client.chat_postMessage(channel=change.audit_channel, text=change.audit_text)
            except SlackApiError as error:
                log.warning("could not post to the audit channel: %s", error.response.get("error"))


def _groups_line(groups: list[str], where: str) -> str:
    if not groups:
        return f"ARIA is open to everyone {where}."
    return (f"ARIA {where} is for members of {mentions(groups)} (and workspace admins); "
            "everyone else is told it is limited to certain user groups.")
