"""What no other listener takes: acknowledged, so Slack neither retries it nor shows an error;
and user group changes, which make the next membership check ask Slack again."""

from __future__ import annotations

import re
from typing import Any


class Fallbacks:
    def __init__(self, adapter: Any) -> None:
        self.adapter = adapter

    def register(self, app) -> None:
        app.event("subteam_members_changed")(ack=self._ack, lazy=[self.forget_group])
        app.action(re.compile(".*"))(self._ack)
        app.view(re.compile(".*"))(self._ack)
        app.shortcut(re.compile(".*"))(ack=self._ack, lazy=[self.unknown_shortcut])
        app.event(re.compile(".*"))(self._ack)

    async def _ack(self, ack) -> None:
        await ack()

    async def forget_group(self, event: dict) -> None:
        """A user group's members changed: the next check asks Slack again."""
        self.adapter.groups.forget(event.get("subteam_id", ""))

    async def unknown_shortcut(self, respond) -> None:
        await respond(text="I don't know that shortcut; try *Compose music*.", response_type="ephemeral")
