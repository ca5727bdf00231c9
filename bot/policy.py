"""Who may compose what, and how often: a server's settings applied to one request.

Checks run in this order, so a member first hears about what they can fix themselves:
channel/server enabled, role, mode, length, duration, daily quota, cooldown.

Admins (the platform says so via `Actor.is_admin`, or the server lists them in
`admin_user_ids`) skip the role restriction, so a moderator can always try a setting they just
changed. They keep the cooldown and the daily quota unless the server turns on
`admins_bypass_limits`: one shared GPU is everybody's. A disabled channel is disabled for all.

Usage is counted per user per server. The daily quota counts accepted jobs since the last UTC
midnight; the cooldown runs from the last accepted job. Refused attempts never count:
`try_acquire` checks and records in one transaction (a burst of clicks cannot overshoot the
quota) and `release` refunds a use whose job never ran (engine busy, unreadable image).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable

from aria_engine.options import GenerationOptions

from bot.settings import Scope, Settings, server_key
from bot.store import DAY_S, Store

OK = "ok"
DISABLED = "disabled"
ROLE = "role"
MODE = "mode"
LENGTH = "length"
DURATION = "duration"
QUOTA = "quota"
COOLDOWN = "cooldown"
BLOCKED = "blocked"
SERVER_BUSY = "server_busy"
SERVER_BUDGET = "server_budget"

# What each platform calls the groups `allowed_roles` lists (Discord: roles).
GROUP_WORDS = {"slack": "user groups"}

USAGE_KEPT_S = 2 * DAY_S  # usage rows matter for today's quota and a cooldown of at most an hour
AUDIT_KEPT_DAYS = 365  # admin actions are kept a year, whatever a server keeps results for


@dataclass(frozen=True)
class Actor:
    """Who is asking, and where. Ids are the platform's own strings."""

    platform: str
    server_id: str
    channel_id: str
    user_id: str
    role_ids: tuple[str, ...] = ()  # Discord roles; Slack user groups (those allowed_roles names)
    is_admin: bool = False
    age_restricted: bool = False  # the platform marks the channel so (Discord's NSFW flag)
    is_moderator: bool = False  # the platform's own moderator sign (Discord: Manage Messages)

    @property
    def server_key(self) -> str:
        return server_key(self.platform, self.server_id)


@dataclass(frozen=True)
class Decision:
    """The answer to "may this actor run this now?"; `message` is ready to show them."""

    allowed: bool
    reason_code: str
    message: str
    retry_after_s: float | None = None
    use_id: int | None = None  # set by try_acquire when it recorded a use (for release/attach_job)


@dataclass(frozen=True)
class Usage:
    """Where a member stands today, for `/aria-queue` and help views."""

    used_today: int
    daily_quota: int  # 0: unlimited
    resets_in_s: float
    cooldown_left_s: float

    @property
    def remaining(self) -> int | None:
        return None if self.daily_quota == 0 else max(0, self.daily_quota - self.used_today)


def format_wait(seconds: float) -> str:
    """A wait in words people read at a glance: "12 s", "4 min 5 s", "3 h 12 min"."""
    total = max(1, math.ceil(seconds))
    if total < 60:
        return f"{total} s"
    if total < 3600:
        minutes, secs = divmod(total, 60)
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(math.ceil(total / 60), 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def next_utc_midnight(now: float) -> float:
    """POSIX time has no leap seconds, so UTC days are exactly 86 400 s long."""
    return (math.floor(now / DAY_S) + 1) * DAY_S


def _allowed() -> Decision:
    return Decision(True, OK, "OK")


class Policy:
    """A server's settings and its members' usage, turned into yes-or-no answers."""

    def __init__(self, settings: Settings, store: Store, clock: Callable[[], float] = time.time):
        self.settings = settings
        self.store = store
        self.clock = clock

    def is_admin(self, actor: Actor, limits: dict[str, Any] | None = None) -> bool:
        """The platform's admin flag, or a user id listed in the server's `admin_user_ids`."""
        if actor.is_admin:
            return True
        if limits is None:
            limits = self._limits(actor)
        return actor.user_id in limits["admin_user_ids"]

    def is_moderator(self, actor: Actor, limits: dict[str, Any] | None = None) -> bool:
        """Admins, the platform's moderator sign, or a role (user group) in `moderator_roles`."""
        if limits is None:
            limits = self._limits(actor)
        return (actor.is_moderator or self.is_admin(actor, limits)
                or bool(set(actor.role_ids) & set(limits["moderator_roles"])))

    def daily_quota(self, actor: Actor, limits: dict[str, Any] | None = None) -> int:
        """The member's quota: the most generous of their roles' in `role_quotas` (0 is
        unlimited), else `daily_quota`."""
        if limits is None:
            limits = self._limits(actor)
        theirs = [limits["role_quotas"][r] for r in actor.role_ids if r in limits["role_quotas"]]
        if not theirs:
            return limits["daily_quota"]
        return 0 if 0 in theirs else max(theirs)

    def check(self, actor: Actor, options: GenerationOptions, *, kind: str = "compose") -> Decision:
        """Whether this request may run now; records nothing. `kind` (compose, variation,
        mood...) only labels the recorded use: every kind counts the same."""
        return self._check(actor, options, self.clock())

    def try_acquire(
        self, actor: Actor, options: GenerationOptions, *, kind: str = "compose", job_id: str | None = None
    ) -> Decision:
        """Check and, when allowed, record the use, atomically. Keep `use_id` for `release`."""
        with self.store.transaction():
            now = self.clock()
            decision = self._check(actor, options, now)
            if not decision.allowed:
                return decision
            use_id = self.store.add_use(actor, kind=kind, at=now, job_id=job_id)
        return replace(decision, use_id=use_id)

    def attach_job(self, use_id: int, job_id: str) -> None:
        """Link a recorded use to the engine's job id once the job exists."""
        self.store.attach_job(use_id, job_id)

    def release(self, use_id: int) -> bool:
        """Refund a use whose job never ran; True if it was still recorded."""
        return self.store.delete_use(use_id)

    def usage(self, actor: Actor) -> Usage:
        limits = self._limits(actor)
        now = self.clock()
        last = self.store.last_use_at(actor)
        cooldown_left = 0.0 if last is None else max(0.0, last + limits["cooldown_s"] - now)
        return Usage(
            used_today=self.store.uses_since(actor, next_utc_midnight(now) - DAY_S),
            daily_quota=self.daily_quota(actor, limits),
            resets_in_s=next_utc_midnight(now) - now,
            cooldown_left_s=cooldown_left,
        )

    def fit_defaults(
        self, actor: Actor, options: GenerationOptions, explicit: Iterable[str] = ()
    ) -> GenerationOptions:
        """Bring the options the member did not choose within this place's limits.

        A default length above `max_length` is lowered and a default mode that is not allowed
        becomes the first allowed one; values the member typed are left for `check` to refuse.
        """
        limits = self._limits(actor)
        explicit = set(explicit)
        changes: dict[str, Any] = {}
        if "length" not in explicit and options.length > limits["max_length"]:
            changes["length"] = limits["max_length"]
        if "duration_s" not in explicit and options.duration_s > limits["max_duration_s"]:
            changes["duration_s"] = max(1.0, float(limits["max_duration_s"]))
        if "mode" not in explicit and options.mode not in limits["allowed_modes"]:
            changes["mode"] = limits["allowed_modes"][0]
        return options.replace(**changes) if changes else options

    def purge_expired(self) -> int:
        """Forget results past each server's `results_retention_days`, usage rows past the
        quota's window and audit entries past AUDIT_KEPT_DAYS; returns the results removed.
        bot.housekeeping calls it on a schedule in every bot."""
        now = self.clock()
        removed = 0
        for platform, server_id in self.store.result_servers():
            days = self.settings.get("results_retention_days", server=server_key(platform, server_id))
            removed += self.store.purge_older_than(days, platform=platform, server_id=server_id, now=now)
        self.store.purge_usage_before(now - USAGE_KEPT_S)
        self.store.purge_audit_older_than(AUDIT_KEPT_DAYS, now=now)
        return removed

    # -- the checks ------------------------------------------------------------------------

    def _limits(self, actor: Actor) -> dict[str, Any]:
        return self.settings.effective(actor.server_key, actor.channel_id, actor.user_id)

    def _check(self, actor: Actor, options: GenerationOptions, now: float) -> Decision:
        limits = self._limits(actor)
        admin = self.is_admin(actor, limits)
        refusal = (
            self._disabled(actor, limits)
            or _blocked_refusal(actor, limits, admin)
            or _role_refusal(actor, limits, admin)
            or _mode_refusal(options, limits)
            or _length_refusal(options, limits)
            or _duration_refusal(options, limits)
        )
        if refusal is None and not (admin and limits["admins_bypass_limits"]):
            refusal = self._quota_refusal(actor, limits, now) or self._cooldown_refusal(actor, limits, now)
        return refusal or self._server_refusal(actor, limits, now) or _allowed()

    def _server_refusal(self, actor: Actor, limits: dict, now: float) -> Decision | None:
        """The whole server's share of the engine: pieces at once, and pieces a day (for everyone)."""
        cap = limits["server_max_jobs"]
        if cap and self.store.server_unfinished(actor.platform, actor.server_id) >= cap:
            return Decision(False, SERVER_BUSY,
                            f"This server already has {cap} {'piece' if cap == 1 else 'pieces'} waiting or being "
                            "composed, its limit at once; please try again when one is done.")
        budget = limits["server_daily_budget"]
        midnight = next_utc_midnight(now)
        if budget and self.store.server_uses_since(actor.platform, actor.server_id, midnight - DAY_S) >= budget:
            wait = midnight - now
            return Decision(False, SERVER_BUDGET,
                            f"This server has used all {budget} of today's pieces. ARIA is back for everyone here "
                            f"in {format_wait(wait)} (midnight UTC).", retry_after_s=wait)
        return None

    def _disabled(self, actor: Actor, limits: dict) -> Decision | None:
        if limits["enabled"]:
            return None
        source = self.settings.lookup("enabled", server=actor.server_key, channel=actor.channel_id).source
        where = {
            Scope.CHANNEL: "in this channel; ask a moderator to turn it on, or try another channel",
            Scope.SERVER: "on this server; ask a moderator if you'd like it back",
        }.get(source, "for now; please try again later")
        return Decision(False, DISABLED, f"ARIA is turned off {where}.")

    def _quota_refusal(self, actor: Actor, limits: dict, now: float) -> Decision | None:
        quota = self.daily_quota(actor, limits)
        if quota == 0:
            return None
        midnight = next_utc_midnight(now)
        if self.store.uses_since(actor, midnight - DAY_S) < quota:
            return None
        wait = midnight - now
        plural = "composition" if quota == 1 else "compositions"
        return Decision(
            False, QUOTA,
            f"You've used all {quota} of today's {plural} here. "
            f"Your quota resets in {format_wait(wait)} (midnight UTC).",
            retry_after_s=wait,
        )

    def _cooldown_refusal(self, actor: Actor, limits: dict, now: float) -> Decision | None:
        cooldown = limits["cooldown_s"]
        last = self.store.last_use_at(actor)
        if last is None or now >= last + cooldown:
            return None
        wait = last + cooldown - now
        return Decision(
            False, COOLDOWN,
            f"Just a moment: you can compose again in {format_wait(wait)} "
            f"(there's a {format_wait(cooldown)} cooldown here).",
            retry_after_s=wait,
        )


def _blocked_refusal(actor: Actor, limits: dict, admin: bool) -> Decision | None:
    if admin or actor.user_id not in limits["blocked_user_ids"]:
        return None
    return Decision(False, BLOCKED, "A moderator has paused your use of ARIA on this server. "
                                    "If you'd like to talk about it, please ask the moderators.")


def _role_refusal(actor: Actor, limits: dict, admin: bool) -> Decision | None:
    allowed = limits["allowed_roles"]
    if not allowed or admin or set(actor.role_ids) & set(allowed):
        return None
    return Decision(
        False, ROLE,
        f"ARIA is limited to certain {GROUP_WORDS.get(actor.platform, 'roles')} here, and none of yours "
        "is among them; ask a moderator if you'd like access.",
    )


def _mode_refusal(options: GenerationOptions, limits: dict) -> Decision | None:
    allowed = limits["allowed_modes"]
    if options.mode in allowed:
        return None
    return Decision(False, MODE, f"The {options.mode} mode isn't allowed here; please pick {_one_of(allowed)}.")


def _length_refusal(options: GenerationOptions, limits: dict) -> Decision | None:
    most = limits["max_length"]
    if options.length <= most:
        return None
    return Decision(
        False, LENGTH,
        f"A length of {options.length} tokens is above the limit here of {most}; "
        f"please ask for {most} tokens or fewer.",
    )


def _duration_refusal(options: GenerationOptions, limits: dict) -> Decision | None:
    most = limits["max_duration_s"]
    if options.duration_s <= most:
        return None
    return Decision(
        False, DURATION,
        f"A piece of {options.duration_s:g} s is longer than the limit here of {most:g} s; "
        f"please ask for {most:g} s or less.",
    )


def _one_of(names: list[str]) -> str:
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " or " + names[-1]
