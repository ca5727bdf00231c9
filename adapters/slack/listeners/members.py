"""`/aria forget-me` and `/aria admin purge @member|#channel`: a member's (or a channel's) data
deleted on request (bot.members), with ARIA's messages that held the pieces (`chat.delete`) and
the files it uploaded for them (`files.delete`; both need only the scopes ARIA has already:
chat:write, files:write). Both arrive through listeners/command.py."""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_sdk.errors import SlackApiError

from adapters.slack.delivery import Tell
from bot.members import Forgotten
from bot.policy import Actor

log = logging.getLogger(__name__)

_USER = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")
_CHANNEL = re.compile(r"^<#([CG][A-Z0-9]+)(?:\|[^>]*)?>$")
PURGE_USAGE = "Use `/aria admin purge @member` or `/aria admin purge #channel`."


class Members:
    def __init__(self, adapter: Any) -> None:
        self.adapter = adapter
        self.service = adapter.service

    def register(self, app) -> None:
        """Nothing of its own to listen to: the commands arrive through listeners/command.py."""

    async def forget_me(self, actor: Actor, tell: Tell) -> None:
        forgotten = await self.service.members.forget(actor)
        await tell(await self.finish(forgotten))

    async def purge(self, admin: Actor, words: tuple[str, ...], tell: Tell) -> None:
        """`purge @member` or `purge #channel` (the Admin listener checked the admin already)."""
        target = words[0] if len(words) == 1 else ""
        user, channel = _USER.match(target), _CHANNEL.match(target)
        if not (user or channel):
            await tell(PURGE_USAGE)
            return
        members = self.service.members
        try:
            forgotten = await (members.purge_member(admin, user[1]) if user else members.purge_channel(admin, channel[1]))
        except PermissionError as error:
            await tell(str(error))
            return
        confirmation = await self.finish(forgotten)
        await tell(confirmation)
        audit_channel = self.service.settings.get("audit_channel", server=admin.server_key)
        if audit_channel:
            try:
                await self.adapter.client.chat_postMessage(channel=audit_channel, text=members.audit_text(admin, forgotten))
            except SlackApiError as error:
                log.warning("could not post to the audit channel: %s", error.response.get("error"))

    async def finish(self, forgotten: Forgotten) -> str:
        """Delete the messages and files that held the pieces; the confirmation, saying what went."""
        client, removed, kept = self.adapter.client, 0, 0
        for channel, ts in dict.fromkeys(forgotten.messages):
            try:
                await client.chat_delete(channel=channel, ts=ts)
                removed += 1
            except SlackApiError as error:
                if error.response.get("error") == "message_not_found":
                    removed += 1  # already gone
                else:
                    log.info("could not delete %s in %s: %s", ts, channel, error.response.get("error"))
                    kept += 1
        for file_id in dict.fromkeys(forgotten.files):
            try:
                await client.files_delete(file=file_id)
            except SlackApiError as error:
                if error.response.get("error") != "file_not_found":
                    log.info("could not delete file %s: %s", file_id, error.response.get("error"))
                    kept += 1
        return forgotten.confirmation(removed, kept)
