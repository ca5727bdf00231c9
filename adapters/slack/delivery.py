"""One request's public side in Slack (a `bot.flow.ChatSink`): a status message in a thread,
edited as the job moves, then turned into the result, with the files uploaded into the same thread.

    status = StatusMessage(client, service, channel, thread_ts, requester, tell)
    await status.post("Got it...", result_id)       # chat.postMessage, with a Cancel button
    await flow.run(ticket, status)                  # chat.update (throttled by the flow), then
                                                    # the result, or how the job ended
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.blocks import context, result_blocks, section, status_blocks, without_images
from bot import endings
from bot.outcomes import Finished, Ticket
from bot.members import remember_files
from bot.reply import Attachment, Reply

log = logging.getLogger(__name__)

Tell = Callable[[str], Awaitable[Any]]  # a message only the requester sees

FILE_TITLES = {"midi": "MIDI", "audio": "Audio", "emotion_chart": "Emotion chart", "piano_roll": "Piano roll"}


SLACK_SPOILER_NOTE = "Slack cannot hide pictures behind a spoiler, so the emotion chart and piano roll were left out"


class StatusMessage:
    """The bot's message for one request, and the thread its files go into."""

    def __init__(self, client: AsyncWebClient, service: Any, channel: str, thread_ts: str | None, requester: str,
                 tell: Tell) -> None:
        self.client = client
        self.service = service
        self.channel = channel
        self.thread_ts = thread_ts  # None: the status message starts its own thread
        self.requester = requester
        self.tell = tell  # what only the requester sees
        self.ts: str | None = None
        self.closing = False  # Slack keeps nothing to close: an ending can always be sent

    @property
    def thread(self) -> str | None:
        return self.thread_ts or self.ts

    async def post(self, text: str, result_id: str | None) -> str:
        response = await self.client.chat_postMessage(
            channel=self.channel, thread_ts=self.thread_ts, text=text,
            blocks=status_blocks(text, result_id, requester=self.requester))
        self.ts = response["ts"]
        return self.ts

    async def withdraw(self, text: str) -> None:
        """Take the status message back (the engine refused the job) and tell the requester why."""
        try:
            await self.client.chat_delete(channel=self.channel, ts=self.ts)
        except SlackApiError as error:
            log.warning("could not delete a status message: %s", error.response.get("error"))
        await self.tell(text)

    async def started(self, ticket: Ticket) -> None:
        """Remember where the status message is, so that a restart finds it again."""
        self.service.attach_message(ticket.result_id, self.channel, self.ts)

    async def show_status(self, text: str, result_id: str | None = None) -> None:
        await self.client.chat_update(channel=self.channel, ts=self.ts, text=text,
                                      blocks=status_blocks(text, result_id, requester=self.requester))

    async def say(self, text: str) -> None:
        """The ending without a result: the text, and no buttons."""
        await self.client.chat_update(channel=self.channel, ts=self.ts, text=text,
                                      blocks=[section(text), context(f"for <@{self.requester}>")])

    async def refuse(self, text: str) -> None:
        """The channel hears that the picture was unusable; only the requester hears why."""
        await self.say(f"{endings.mention(self.requester)} {endings.REFUSED_IN_PUBLIC}")
        await self.tell(text)

    async def audit(self, channel: str, text: str) -> None:
        """A line in the workspace's audit channel (an image-safety refusal; never the picture)."""
        try:
            await self.client.chat_postMessage(channel=channel, text=text)
        except SlackApiError as error:
            log.warning("could not post to the audit channel: %s", error.response.get("error"))

    async def deliver(self, finished: Finished) -> None:
        """Upload the files into the thread, then turn the status message into the readout."""
        reply, record = finished.reply, finished.record
        if reply.spoiler:  # Slack has no spoilers: the pictures stay out of the channel, the note says why
            reply.files = [f for f in reply.files if f.kind in ("midi", "audio")]
            reply.notes.append(SLACK_SPOILER_NOTE)
        file_ids, upload_note = await self._upload(reply)
        remember_files(self.service.store, record.result_id, list(file_ids.values()))  # for a forget-me
        if upload_note:
            reply.notes.append(upload_note)
        blocks = result_blocks(reply, record.result_id, requester=self.requester, mode=record.options.get("mode"),
                               chart_file_id=file_ids.get("emotion_chart"))
        text = f"{reply.headline}: {reply.valence_line}, {reply.arousal_line}"
        try:
            await self.client.chat_update(channel=self.channel, ts=self.ts, text=text, blocks=blocks)
        except SlackApiError as error:
            if error.response.get("error") != "invalid_blocks":
                raise
            # A freshly uploaded picture may not be ready to show yet; the chart is in the thread anyway.
            await self.client.chat_update(channel=self.channel, ts=self.ts, text=text, blocks=without_images(blocks))

    async def _upload(self, reply: Reply) -> tuple[dict[str, str], str | None]:
        """(file id by kind, a note if the upload failed)."""
        if not reply.files:
            return {}, None
        try:
            response = await self.client.files_upload_v2(
                file_uploads=[_upload_item(f) for f in reply.files], channel=self.channel, thread_ts=self.thread,
                initial_comment=endings.files_comment(self.requester, reply.headline))
        except SlackApiError as error:
            code = error.response.get("error", "error")
            log.warning("upload failed: %s", code)
            return {}, f"the files could not be uploaded ({code}); press Variation to try again"
        uploaded = response.get("files") or []
        return {f.kind: u["id"] for f, u in zip(reply.files, uploaded)}, None


def _upload_item(attachment: Attachment) -> dict:
    return {"content": attachment.data, "filename": attachment.filename,
            "title": f"{FILE_TITLES.get(attachment.kind, attachment.kind)}: {attachment.filename}"}
