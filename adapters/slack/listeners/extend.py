"""The Extend button under every piece: one more picture or mood continues it.

The click is acknowledged at once; lazily (the click's trigger_id lives 3 s, as `/aria`'s does)
a piece that cannot be extended is refused privately, else the form opens: valence, arousal, a
caption and a picture (a picture wins; otherwise both numbers). The form's submission carries
its errors in the ack (`response_action: errors`, as the compose form does); the rest is lazy:
the picture is downloaded (the token only to Slack's hosts), `JamService.extend_result`
(bot/extend.py: the policy, the use, the jam record) starts the job, and the whole longer piece
arrives in the clicked piece's thread as a variation does (a status message, then the result).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_sdk.errors import SlackApiError

from adapters.slack import blocks as ui
from adapters.slack.delivery import StatusMessage
from adapters.slack.files import FileRefused, check_file, download
from adapters.slack.listeners.compose import PRIVATE_NOTICE
from adapters.slack.listeners.results import click_channel
from aria_engine.emotion import Emotion
from bot.jams import JamRefused

log = logging.getLogger(__name__)


class Extend:
    def __init__(self, adapter: Any) -> None:
        self.adapter = adapter

    def register(self, app) -> None:
        app.action(ui.EXTEND)(ack=self.on_extend, lazy=[self.open_form])
        app.view_submission(ui.EXTEND_VIEW)(ack=self.on_extend_form, lazy=[self.extend])

    @property
    def jams(self):
        """The jam listener's service: extensions are jam records, kept by the same book."""
        return self.adapter.listener("JamListener").jams

    async def on_extend(self, ack) -> None:
        await ack()

    async def open_form(self, body: dict, action: dict, respond) -> None:
        result_id = ui.result_id_of(action) or ""
        tell = self.adapter.responder(respond)
        try:
            self.jams.extender.earlier(result_id)  # gone, unfinished, full: said before a form is filled in
        except JamRefused as refused:
            await tell(str(refused))
            return
        message = body.get("message") or {}
        meta = {"channel": click_channel(body), "thread_ts": message.get("thread_ts") or message.get("ts")}
        try:
            await self.adapter.client.views_open(trigger_id=body["trigger_id"], view=ui.extend_modal(result_id, meta))
        except SlackApiError as error:
            log.warning("views.open failed: %s", error.response.get("error"))
            await tell("I couldn't open the form just now; please click Extend again.")

    async def on_extend_form(self, ack, view: dict, context) -> None:
        """Bad numbers, no mood and no picture, or a picture we won't fetch: said in the form."""
        file, mood, caption, errors = ui.read_extend_modal(view)
        if file is not None:
            try:
                check_file(file, self.adapter.config.max_download_bytes, self.adapter.file_origins)
            except FileRefused as refused:
                errors[ui.PICTURE] = str(refused)
        meta = json.loads(view.get("private_metadata") or "{}")
        if not errors and not (meta.get("result") and meta.get("channel")):
            errors[ui.PICTURE] = "I lost track of the piece this form belongs to; please click Extend again."
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        context["extending"] = {"file": file, "mood": mood, "caption": caption, "meta": meta}
        await ack()

    async def extend(self, body: dict, context) -> None:
        asked = context.get("extending")
        if asked is None:
            return  # the ack answered it
        adapter, meta = self.adapter, asked["meta"]
        result_id, user, thread_ts = meta["result"], body["user"]["id"], meta.get("thread_ts")
        record = adapter.service.result(result_id)
        # placed where the piece was asked for (a private piece's buttons are in a DM), as a variation
        actor = await adapter.actor(body["team"]["id"], record.channel_id if record else meta["channel"], user)
        tell = adapter.ephemeral(meta["channel"], user, thread_ts)
        private = bool(record and record.extra.get("private")) or adapter.service.private_by_default(actor)
        try:
            image = None
            if asked["file"] is not None:
                image = await download(adapter.downloads, asked["file"], token=adapter.config.bot_token,
                                       max_bytes=adapter.config.max_download_bytes, allowed=adapter.file_origins)
            emotion = Emotion(*asked["mood"]) if asked["mood"] is not None else None
            extension = await self.jams.extend_result(actor, f"<@{user}>", result_id, image=image, emotion=emotion,
                                                      caption=asked["caption"],
                                                      upload_limit=adapter.config.upload_limit_bytes,
                                                      extra={"private": private})
        except (FileRefused, JamRefused) as refused:
            await tell(str(refused))
            await adapter.listener("Moderation").post_audit(getattr(refused, "audit", None))
            return
        channel = meta["channel"]
        if private:
            channel = (await adapter.client.conversations_open(users=user))["channel"]["id"]
            if channel != meta["channel"]:
                thread_ts = None
                await tell(PRIVATE_NOTICE)
        status = StatusMessage(adapter.client, adapter.service, channel, thread_ts, user, tell)
        try:  # the job exists already: without a status message the result still comes
            await status.post(f"<@{user}> is extending the piece: {extension.readout}\n"
                              "Composing the whole longer piece...", extension.ticket.result_id)
        except SlackApiError as error:
            log.warning("could not post an extension's status: %s", error.response.get("error"))
        await adapter.flow.run(extension.ticket, status)
        grown, _ = self.jams.settle(extension.jam.jam_id, extension.ticket.result_id)
        await adapter.listener("JamListener").redraw(grown)  # a jam grew: its board
