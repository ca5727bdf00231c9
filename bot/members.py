"""A member's data on request, once for both platforms: `forget-me` (a member's own), `purge`
(admins: a member's or a channel's), and retention of the member data the results' retention
does not reach (jam contributions, refusals).

What ARIA keeps about a member, per server: results (the piece's settings, seed, emotion, where
its message is), usage rows (the quota's count), settings of their own (`private_by_default`), jam
contributions, refusals (for the stats), and their queued or running jobs. `forget` cancels the jobs, deletes the rows in
one transaction and hands the adapter the platform messages (and, on Slack, files) that hold the
pieces, for it to delete where the platform allows. The audit log is the server's moderation
record: it is kept (a year, see bot.housekeeping), and each purge is written to it.

    forgotten = await service.members.forget(actor)             # their own
    forgotten = await service.members.purge_member(admin, uid)  # an admin, for someone
    removed, kept = await adapter_deletes(forgotten.messages, forgotten.files)
    text = forgotten.confirmation(removed, kept)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.policy import Actor
from bot.store import ResultRecord

UNFINISHED = ("queued", "running")


@dataclass
class Forgotten:
    """What a forget or purge removed, and what the adapter still has to delete on the platform."""

    whose: str  # "you", "<@U01>", "<#C01>"
    results: int = 0
    uses: int = 0
    settings: int = 0
    contributions: int = 0
    cancelled: int = 0
    messages: list[tuple[str, str]] = field(default_factory=list)  # (channel id, message id or ts)
    files: list[str] = field(default_factory=list)  # platform file ids (Slack's uploads)

    @property
    def anything(self) -> bool:
        return bool(self.results or self.uses or self.settings or self.contributions or self.cancelled)

    def confirmation(self, removed: int = 0, kept: int = 0) -> str:
        """The answer, saying what went: `removed` of ARIA's messages deleted, `kept` it could not."""
        own = self.whose == "you"
        if not self.anything:
            return ("ARIA had nothing stored about you on this server." if own
                    else f"ARIA had nothing stored for {self.whose} on this server.")
        parts = [_count(self.results, "piece"), _count(self.uses, "use", " of the daily quota"),
                 _count(self.settings, "setting"), _count(self.contributions, "jam contribution")]
        done = ", ".join(p for p in parts if p) or "nothing stored"
        owner = ("your data" if own else f"{self.whose}'s data" if self.whose.startswith("<@")
                 else f"the data of {self.whose}")
        text = f"Deleted {owner} on this server: {done}"
        if self.cancelled:
            text += f"; cancelled {_count(self.cancelled, 'piece')} in the queue"
        if removed:
            text += f"; removed {_count(removed, 'message')} of ARIA's"
        text += "."
        if kept:
            text += (f" {_count(kept, 'message')} could not be removed (private replies and messages older than the "
                     "platform lets a bot delete); delete them by hand if you like.")
        if own:
            text += " The server's moderation audit log is kept (a year)."
        return text


def _count(n: int, noun: str, tail: str = "") -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}{tail}" if n else ""


class MemberData:
    """Forget-me, purges and the extra retention, over the service's store and engine."""

    def __init__(self, service: Any) -> None:
        self.service = service
        self.store = service.store

    async def forget(self, actor: Actor) -> Forgotten:
        """The member's own data on this server (anyone may ask for theirs)."""
        forgotten = await self._forget(actor, "you", user_id=actor.user_id)
        self.store.audit(actor, "forget_me", _details(forgotten))
        return forgotten

    async def purge_member(self, admin: Actor, user_id: str) -> Forgotten:
        """An admin's purge of one member's data on this server; audited."""
        self._require_admin(admin)
        forgotten = await self._forget(admin, f"<@{user_id}>", user_id=user_id)
        self.store.audit(admin, "purge_member", {"member": user_id, **_details(forgotten)})
        return forgotten

    async def purge_channel(self, admin: Actor, channel_id: str) -> Forgotten:
        """An admin's purge of every piece and use in one channel; audited."""
        self._require_admin(admin)
        forgotten = await self._forget(admin, f"<#{channel_id}>", channel_id=channel_id)
        self.store.audit(admin, "purge_channel", {"channel": channel_id, **_details(forgotten)})
        return forgotten

    def audit_text(self, admin: Actor, forgotten: Forgotten) -> str:
        return f"<@{admin.user_id}> purged ARIA's data for {forgotten.whose}: {forgotten.confirmation()}"

    async def _forget(self, actor: Actor, whose: str, **which: str) -> Forgotten:
        records = self.store.member_rows(actor.platform, actor.server_id, **which)
        forgotten = Forgotten(whose)
        for record in records:
            if record.status in UNFINISHED and self._cancel(record, actor):
                forgotten.cancelled += 1
            forgotten.messages += _messages(record)
            forgotten.files += [str(f) for f in record.extra.get("file_ids", [])]
        counts = self.store.forget_rows(actor.platform, actor.server_id, **which)
        forgotten.results, forgotten.uses = counts["results"], counts["uses"]
        forgotten.settings, forgotten.contributions = counts["settings"], counts["contributions"]
        return forgotten

    def _cancel(self, record: ResultRecord, actor: Actor) -> bool:
        job = self.service.engine.job(record.result_id)
        return job is not None and not job.done and bool(self.service.engine.cancel(record.result_id, by=actor.user_id))

    def _require_admin(self, actor: Actor) -> None:
        if not self.service.is_admin(actor):
            raise PermissionError("Only server admins (or configured ARIA admins) can purge other members' data.")

    # -- retention ----------------------------------------------------------------------------

    def purge_expired(self, now: float) -> int:
        """Jam contributions and refusals past each server's `results_retention_days` (results,
        usage and the audit are Policy.purge_expired's); returns how many went."""
        from bot.settings import server_key
        from bot.store import DAY_S

        removed = 0
        for platform, server_id in self.store.member_servers():
            days = self.service.settings.get("results_retention_days", server=server_key(platform, server_id))
            removed += self.store.purge_contributions_before(platform, server_id, now - days * DAY_S)
            removed += self.store.purge_refusals_before(platform, server_id, now - days * DAY_S)
        return removed


def remember_files(store: Any, result_id: str, file_ids: list[str]) -> None:
    """Keep the platform's ids of a result's uploaded files, so a forget can delete them too."""
    record = store.get_result(result_id)
    if record is not None and file_ids:
        store.update_result(result_id, extra={**record.extra, "file_ids": list(file_ids)})


def _messages(record: ResultRecord) -> list[tuple[str, str]]:
    if record.message_channel_id and record.message_id:
        return [(record.message_channel_id, record.message_id)]
    return []


def _details(forgotten: Forgotten) -> dict:
    return {"results": forgotten.results, "uses": forgotten.uses, "settings": forgotten.settings,
            "contributions": forgotten.contributions, "cancelled": forgotten.cancelled}
