"""Slack user groups as ARIA's `allowed_roles`: who is in which group, and the groups admins name.

Slack has no roles; a workspace's user groups (@designers, ids "S...") take their place. Where
`allowed_roles` lists groups, members of one of them (and admins) may use ARIA; everyone else
is told it is limited to certain user groups. Memberships come from `usergroups.users.list`
(scope `usergroups:read`), are kept `cache_s` seconds, and are dropped as soon as Slack says a
group changed (the `subteam_members_changed` event), so an admin's edit counts at once.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Callable, Iterable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

_GROUP_MENTION = re.compile(r"^<!subteam\^([A-Z0-9]+)(?:\|[^>]*)?>$")
_GROUP_ID = re.compile(r"^S[A-Z0-9]{2,}$")
NEEDS_SCOPE = ("I need the `usergroups:read` permission to see user groups. Reinstall ARIA from its updated "
               "manifest (adapters/slack/manifest.yml) and try again.")


class GroupError(Exception):
    """A group an admin named that cannot be used; the message says why, fit to show them."""


def mention(group_id: str) -> str:
    """How Slack shows a group: `<!subteam^S01>` renders as @designers."""
    return f"<!subteam^{group_id}>"


def mentions(group_ids: Iterable[str]) -> str:
    return ", ".join(mention(g) for g in group_ids)


class UserGroups:
    """Group memberships for the policy's role check, and group names for `/aria admin groups`."""

    def __init__(self, client: AsyncWebClient, cache_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.cache_s = cache_s
        self.clock = clock
        self._members: dict[tuple[str, str], tuple[float, frozenset[str]]] = {}

    async def members(self, team_id: str, group_id: str) -> frozenset[str]:
        """The group's user ids (cached); raises SlackApiError."""
        key, now = (team_id, group_id), self.clock()
        cached = self._members.get(key)
        if cached and now - cached[0] < self.cache_s:
            return cached[1]
        response = await self.client.usergroups_users_list(usergroup=group_id, team_id=team_id)
        users = frozenset(response.get("users") or ())
        self._members[key] = (now, users)
        return users

    async def groups_of(self, team_id: str, user_id: str, among: Iterable[str]) -> tuple[str, ...]:
        """Which of these groups the user is in. A group Slack will not list counts as not theirs
        (and is logged: a deleted group, or a missing scope)."""
        found = []
        for group_id in among:
            try:
                if user_id in await self.members(team_id, group_id):
                    found.append(group_id)
            except SlackApiError as error:
                log.warning("usergroups.users.list %s failed: %s", group_id, error.response.get("error"))
        return tuple(found)

    def forget(self, group_id: str) -> None:
        """Slack says this group's members changed: ask again next time."""
        for key in [k for k in self._members if k[1] == group_id]:
            del self._members[key]

    async def resolve(self, team_id: str, typed: str, *, check: bool = True) -> tuple[str, int | None]:
        """(group id, member count) for a group as an admin typed it: a mention (`@designers`,
        which Slack sends as <!subteam^S01|@designers>), an id (S01...) or a bare handle.
        `check=False` skips asking for its members (removing a group Slack has since deleted)."""
        group_id = await self._group_id(team_id, typed)
        if not check:
            return group_id, None
        self.forget(group_id)  # an admin is looking: fresh members
        try:
            return group_id, len(await self.members(team_id, group_id))
        except SlackApiError as error:
            raise _group_error(error, typed) from None

    async def _group_id(self, team_id: str, typed: str) -> str:
        found = _GROUP_MENTION.match(typed)
        if found:
            return found.group(1)
        if _GROUP_ID.match(typed):
            return typed
        handle = typed.lstrip("@").lower()
        try:
            response = await self.client.usergroups_list(team_id=team_id)
        except SlackApiError as error:
            raise _group_error(error, typed) from None
        for group in response.get("usergroups") or ():
            if group.get("handle", "").lower() == handle and not group.get("date_delete"):
                return group["id"]
        raise GroupError(_unknown(typed))


def _group_error(error: SlackApiError, typed: str) -> GroupError:
    code = error.response.get("error")
    if code == "missing_scope":
        return GroupError(NEEDS_SCOPE)
    if code in ("no_such_subteam", "subteam_not_found"):
        return GroupError(_unknown(typed))
    return GroupError(f"Slack wouldn't tell me about the user group {typed} ({code}); please try again.")


def _unknown(typed: str) -> str:
    return (f"I can't find a user group called {typed} in this workspace. Type @ and pick the group "
            "(Slack turns it into a link), or give its id (like S0123ABCD).")
