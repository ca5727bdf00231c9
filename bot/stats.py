"""`/aria-admin stats` (Discord) and `/aria admin stats` (Slack): a server's last 7 days, once for
both platforms: pieces (by how they ended), refusals by reason, the top requesters, and queue times
(p50 and p95 of the time from asking to the piece starting; `AriaService` keeps each job's in its
record when it starts). Refusals are counted as `Policy`'s reason codes and the engine's (busy,
image_rejected, image_unsafe), in the store's `refusals` table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.policy import Actor
from bot.store import DAY_S

REASON_WORDS = {"quota": "daily quota", "cooldown": "cooldown", "role": "role or group", "mode": "mode not allowed",
                "length": "too long (tokens)", "duration": "too long (seconds)", "disabled": "ARIA off",
                "blocked": "blocked member", "server_busy": "server cap at once", "server_budget": "server daily budget",
                "busy": "engine busy", "image_rejected": "unreadable picture", "image_unsafe": "image-safety check"}


@dataclass
class Stats:
    days: int
    pieces: dict[str, int] = field(default_factory=dict)  # status -> count
    refusals: dict[str, int] = field(default_factory=dict)  # reason -> count
    top_users: list[tuple[str, int]] = field(default_factory=list)
    queue_p50_s: float | None = None
    queue_p95_s: float | None = None

    @property
    def total(self) -> int:
        return sum(self.pieces.values())

    def lines(self) -> list[str]:
        ended = ", ".join(f"{n} {status}" for status, n in sorted(self.pieces.items(), key=lambda kv: -kv[1]))
        refused = ", ".join(f"{REASON_WORDS.get(r, r)} {n}" for r, n in self.refusals.items())
        top = ", ".join(f"<@{user}> {n}" for user, n in self.top_users)
        queue = ("none started" if self.queue_p50_s is None
                 else f"p50 {_seconds(self.queue_p50_s)}, p95 {_seconds(self.queue_p95_s)}")
        return [f"Pieces: {self.total}" + (f" ({ended})" if ended else ""),
                f"Refusals: {sum(self.refusals.values())}" + (f" ({refused})" if refused else ""),
                f"Top requesters: {top or 'nobody yet'}",
                f"Queue times: {queue}"]

    def text(self) -> str:
        return f"ARIA on this server, the last {self.days} days\n" + "\n".join(f"• {line}" for line in self.lines())


def server_stats(service: Any, actor: Actor, *, days: int = 7, top: int = 5) -> Stats:
    """This server's figures over the last `days` (admins only: raises PermissionError)."""
    if not service.is_admin(actor):
        raise PermissionError("Only server admins (or configured ARIA admins) can see ARIA's stats.")
    since = service.store.clock() - days * DAY_S
    records = service.store.results_since(actor.platform, actor.server_id, since)
    stats = Stats(days)
    per_user: dict[str, int] = {}
    waits = []
    for record in records:
        stats.pieces[record.status] = stats.pieces.get(record.status, 0) + 1
        per_user[record.user_id] = per_user.get(record.user_id, 0) + 1
        if isinstance(record.extra.get("queued_s"), (int, float)):
            waits.append(float(record.extra["queued_s"]))
    stats.refusals = service.store.refusals_since(actor.platform, actor.server_id, since)
    stats.top_users = sorted(per_user.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    if waits:
        stats.queue_p50_s, stats.queue_p95_s = percentile(waits, 50), percentile(waits, 95)
    return stats


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank percentile (one of the values, so a p95 is a wait someone really had)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n p / 100)
    return ordered[int(rank) - 1]


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} s" if value < 60 else f"{value / 60:.1f} min"
