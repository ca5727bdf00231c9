"""`/aria block @member [reason]`, `/aria unblock @member`, `/aria blocked`: ARIA's moderators
(admins, or members of a user group in `moderator_roles`) pause and restore a member's use of
ARIA, the reason in the audit log and the audit channel (bot.moderation). They may also cancel
anyone's piece (listeners/results.py posts that to the audit channel through `post_audit`).
Arrives through listeners/command.py."""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_sdk.errors import SlackApiError

from adapters.slack.delivery import Tell
from bot.outcomes import SettingChange
from bot.policy import Actor
from bot.texts import sentence

log = logging.getLogger(__name__)

_USER = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")
USAGE = "Use `/aria block @member [reason]`, `/aria unblock @member` or `/aria blocked`."


class Moderation:
    def __init__(self, adapter: Any) -> None:
        self.adapter = adapter
        self.service = adapter.service

    def register(self, app) -> None:
        """Nothing of its own to listen to: the commands arrive through listeners/command.py."""

    async def command(self, actor: Actor, verb: str, words: tuple[str, ...], tell: Tell) -> None:
        moderation = self.service.moderation
        try:
            if verb == "blocked":
                ids = moderation.blocked(actor)
                await tell(", ".join(f"<@{u}>" for u in ids) or "Nobody is blocked from ARIA here.")
                return
            member = _USER.match(words[0]) if words else None
            if member is None:
                await tell(USAGE)
                return
            change = (moderation.block(actor, member[1], " ".join(words[1:])) if verb == "block"
                      else moderation.unblock(actor, member[1]))
        except (PermissionError, ValueError) as error:
            await tell(sentence(str(error)))
            return
        await tell(change.message)
        await self.post_audit(change)

    async def post_audit(self, change: SettingChange | None) -> None:
        if change is None or not change.audit_channel or not change.audit_text:
            return
        try:
            await self.adapter.client.chat_postMessage(channel=change.audit_channel, text=change.audit_text)
        except SlackApiError as error:
            log.warning("could not post to the audit channel: %s", error.response.get("error"))
