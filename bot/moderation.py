"""The moderator's toolbox, once for both platforms: who moderates (admins, the platform's own
sign such as Discord's Manage Messages, or a role / user group in `moderator_roles`), and blocking
or unblocking a member, with the reason kept in the audit log and posted to the audit channel.
Moderators may also cancel any job and delete any ARIA reply (`AriaService.cancel` / `delete`);
those are audited too. The per-role quotas and the server's caps are the policy's (bot/policy.py)."""

from __future__ import annotations

from typing import Any

from bot.outcomes import SettingChange
from bot.policy import Actor

NOT_A_MODERATOR = "Only ARIA's moderators (and server admins) can do that."


class Moderation:
    def __init__(self, service: Any) -> None:
        self.service = service

    def is_moderator(self, actor: Actor) -> bool:
        return self.service.policy.is_moderator(actor)

    def block(self, moderator: Actor, user_id: str, reason: str = "") -> SettingChange:
        """Stop a member from using ARIA on this server (raises PermissionError for non-moderators)."""
        self._require(moderator)
        reason = " ".join(reason.split())[:300]
        if user_id == moderator.user_id:
            raise ValueError("You can't block yourself.")
        blocked = self._blocked(moderator)
        if user_id in blocked:
            return SettingChange(f"<@{user_id}> is already blocked from ARIA here.", "", None)
        self.service.settings.set("blocked_user_ids", blocked + [user_id], scope="server", server=moderator.server_key)
        self.service.store.audit(moderator, "block", {"member": user_id, "reason": reason})
        why = f" Reason: {reason}" if reason else " No reason given."
        return SettingChange(f"<@{user_id}> can no longer use ARIA on this server.{why}",
                             f"<@{moderator.user_id}> blocked <@{user_id}> from ARIA.{why}", self._audit_channel(moderator))

    def unblock(self, moderator: Actor, user_id: str) -> SettingChange:
        self._require(moderator)
        blocked = self._blocked(moderator)
        if user_id not in blocked:
            return SettingChange(f"<@{user_id}> isn't blocked from ARIA here.", "", None)
        self.service.settings.set("blocked_user_ids", [u for u in blocked if u != user_id], scope="server",
                                  server=moderator.server_key)
        self.service.store.audit(moderator, "unblock", {"member": user_id})
        return SettingChange(f"<@{user_id}> may use ARIA again on this server.",
                             f"<@{moderator.user_id}> unblocked <@{user_id}> from ARIA.", self._audit_channel(moderator))

    def blocked(self, moderator: Actor) -> list[str]:
        self._require(moderator)
        return self._blocked(moderator)

    def notice(self, moderator: Actor, action: str, record: Any) -> SettingChange | None:
        """A moderator cancelled or deleted someone else's piece: the line for the audit channel
        (the store's audit entry is AriaService's)."""
        if record is None or record.user_id == moderator.user_id:
            return None
        what = {"cancel": "cancelled", "delete": "deleted"}[action]
        text = f"<@{moderator.user_id}> {what} a piece by <@{record.user_id}> in <#{record.channel_id}>."
        return SettingChange(text, text, self._audit_channel(moderator))

    def _blocked(self, actor: Actor) -> list[str]:
        return list(self.service.settings.get("blocked_user_ids", server=actor.server_key))

    def _audit_channel(self, actor: Actor) -> str | None:
        return self.service.settings.get("audit_channel", server=actor.server_key)

    def _require(self, actor: Actor) -> None:
        if not self.is_moderator(actor):
            raise PermissionError(NOT_A_MODERATOR)
