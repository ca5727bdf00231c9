"""What the buttons under a piece do: Variation, Another mode, Cancel.

Clicks go through the same policy and quotas as new requests. A button's value (or the select's
block id) is the result id, and the record is in the store, so buttons keep working after a
restart. Each click is acknowledged at once; the work is a lazy function.
"""

from __future__ import annotations

from typing import Any

from adapters.slack import blocks as ui
from adapters.slack.delivery import Tell
from bot.outcomes import Refusal
from bot.policy import Actor


class Results:
    def __init__(self, adapter: Any) -> None:
        self.adapter = adapter

    def register(self, app) -> None:
        app.action(ui.VARIATION)(ack=self.on_variation, lazy=[self.variation])
        app.action(ui.ANOTHER_MODE)(ack=self.on_another_mode, lazy=[self.another_mode])
        app.action(ui.CANCEL)(ack=self.on_cancel, lazy=[self.cancel])

    async def on_variation(self, ack) -> None:
        await ack()

    async def on_another_mode(self, ack) -> None:
        await ack()

    async def on_cancel(self, ack) -> None:
        await ack()

    async def variation(self, body: dict, action: dict, respond) -> None:
        result_id = ui.result_id_of(action) or ""
        actor = await self._clicker(body, result_id)
        asked = self.adapter.service.variation(actor, result_id, upload_limit=self.adapter.config.upload_limit_bytes)
        await self._again(actor, body, result_id, asked, self.adapter.responder(respond))

    async def another_mode(self, body: dict, action: dict, respond) -> None:
        result_id = ui.result_id_of(action) or ""
        actor = await self._clicker(body, result_id)
        mode = (action.get("selected_option") or {}).get("value", "")
        asked = self.adapter.service.another_mode(actor, result_id, mode,
                                                  upload_limit=self.adapter.config.upload_limit_bytes)
        await self._again(actor, body, result_id, asked, self.adapter.responder(respond))

    async def cancel(self, body: dict, action: dict, respond) -> None:
        result_id = ui.result_id_of(action) or ""
        actor = await self._clicker(body, result_id)
        message = self.adapter.service.cancel(actor, result_id)
        await self.adapter.responder(respond)(message)
        if message == "Cancelled.":  # by a moderator, for someone else: the audit channel hears of it too
            notice = self.adapter.service.moderation.notice(actor, "cancel", self.adapter.service.result(result_id))
            await self.adapter.listener("Moderation").post_audit(notice)

    async def _clicker(self, body: dict, result_id: str) -> Actor:
        """Who clicked, placed where the piece was asked for: a private piece's buttons are in a
        direct message, but the channel it came from keeps its settings (enabled, limits...)."""
        record = self.adapter.service.result(result_id)
        channel = record.channel_id if record is not None else click_channel(body)
        return await self.adapter.actor(body["team"]["id"], channel, body["user"]["id"])

    async def _again(self, actor: Actor, body: dict, result_id: str, asked, tell: Tell) -> None:
        """A variation or another mode: in the clicked piece's thread, or, if that piece was
        private (or the clicker's results are), in the clicker's direct messages."""
        if isinstance(asked, Refusal):
            await tell(asked.message)
            return
        admission, request = asked
        adapter = self.adapter
        with adapter.flow.admitted(admission) as use:
            record = adapter.service.result(result_id)
            private = bool(record and record.extra.get("private")) or adapter.service.private_by_default(actor)
            message = body.get("message") or {}
            thread_ts = message.get("thread_ts") or message.get("ts")
            what = "another mode" if admission.kind == "another_mode" else "a variation"
            compose = adapter.listener("Compose")
            status = await compose.open_status(actor, tell, use, thread_ts,
                                               f"<@{actor.user_id}> asked for {what}: on its way...",
                                               private=private, thread_channel=click_channel(body))
            if status is None:
                return
            ticket = await use.submit_request(request, extra={"thread_ts": status.thread_ts, "private": private})
        await adapter.flow.run(ticket, status)


def click_channel(body: dict) -> str | None:
    return (body.get("channel") or {}).get("id") or body.get("container", {}).get("channel_id")
