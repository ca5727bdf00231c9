"""One request's public side in Slack: a status message in a thread, edited as the job moves,
then turned into the result, with the files uploaded into the same thread.

    status = StatusMessage(client, channel, thread_ts, requester, interval_s)
    await status.post("Got it...", result_id)       # chat.postMessage, with a Cancel button
    await status.follow(service, ticket, tell)      # chat.update at most every interval_s
                                                    # then the result, or how the job ended
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.blocks import context, result_blocks, section, status_blocks, without_images
from bot.reply import Attachment, Reply
from bot.service import SHUTDOWN, Cancelled, Failed, Finished, Throttle, Ticket

log = logging.getLogger(__name__)

Tell = Callable[[str], Awaitable[Any]]  # a message only the requester sees

FILE_TITLES = {"midi": "MIDI", "audio": "Audio", "emotion_chart": "Emotion chart", "piano_roll": "Piano roll"}


class StatusMessage:
    """The bot's message for one request, and the thread its files go into."""

    def __init__(self, client: AsyncWebClient, channel: str, thread_ts: str | None, requester: str,
                 interval_s: float = 2.0) -> None:
        self.client = client
        self.channel = channel
        self.thread_ts = thread_ts  # None: the status message starts its own thread
        self.requester = requester
        self.interval_s = interval_s
        self.ts: str | None = None

    @property
    def thread(self) -> str | None:
        return self.thread_ts or self.ts

    async def post(self, text: str, result_id: str | None) -> str:
        response = await self.client.chat_postMessage(
            channel=self.channel, thread_ts=self.thread_ts, text=text,
            blocks=status_blocks(text, result_id, requester=self.requester))
        self.ts = response["ts"]
        return self.ts

    async def withdraw(self) -> None:
        """Take the status message back (the job was refused after all)."""
        try:
            await self.client.chat_delete(channel=self.channel, ts=self.ts)
        except SlackApiError as error:
            log.warning("could not delete a status message: %s", error.response.get("error"))

    async def show(self, text: str, result_id: str | None = None) -> None:
        await self.client.chat_update(channel=self.channel, ts=self.ts, text=text,
                                      blocks=status_blocks(text, result_id, requester=self.requester))

    async def follow(self, service: Any, ticket: Ticket, tell: Tell) -> None:
        """Status edits (throttled) until the job ends, then its ending. Never raises."""
        throttle = Throttle(lambda text: self.show(text, ticket.result_id), self.interval_s)
        ending = None
        try:
            async for update in service.follow(ticket):
                if update.terminal:
                    ending = update
                    break
                await throttle.update(update.text)
        except Exception:  # the engine or the store failed us: say so rather than spin forever
            log.exception("following %s failed", ticket.result_id)
        finally:
            await throttle.close()
        try:
            await self._end(service, ending, tell)
        except SlackApiError as error:
            log.warning("could not show the end of %s: %s", ticket.result_id, error.response.get("error"))

    async def _end(self, service: Any, ending: Any, tell: Tell) -> None:
        if isinstance(ending, Finished):
            await self.deliver(service, ending)
        elif isinstance(ending, Failed) and ending.refusal:
            await self._final(f"<@{self.requester}> I couldn't use that picture; I've told you why privately.")
            await tell(ending.message)
        elif isinstance(ending, Failed):
            await self._final(ending.message)
        elif isinstance(ending, Cancelled) and ending.by == SHUTDOWN:
            return  # ARIA is stopping, not the job: the next start picks it up or says what became of it
        elif isinstance(ending, Cancelled):
            who = "" if ending.by in ("", self.requester) else f" by <@{ending.by}>"
            await self._final(f"Cancelled{who}." if who else ending.text)
        else:
            await self._final("This piece was lost on the way. Sorry! Please ask again.")

    async def _final(self, text: str) -> None:
        """The ending without a result: the text, and no buttons."""
        await self.client.chat_update(channel=self.channel, ts=self.ts, text=text,
                                      blocks=[section(text), context(f"for <@{self.requester}>")])

    async def deliver(self, service: Any, finished: Finished) -> None:
        """Upload the files into the thread, then turn the status message into the readout."""
        reply, record = finished.reply, finished.record
        file_ids, upload_note = await self._upload(reply)
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
                initial_comment=f"<@{self.requester}> your music: {reply.headline}")
        except SlackApiError as error:
            code = error.response.get("error", "error")
            log.warning("upload failed: %s", code)
            return {}, f"the files could not be uploaded ({code}); press Variation to try again"
        uploaded = response.get("files") or []
        return {f.kind: u["id"] for f, u in zip(reply.files, uploaded)}, None


def _upload_item(attachment: Attachment) -> dict:
    return {"content": attachment.data, "filename": attachment.filename,
            "title": f"{FILE_TITLES.get(attachment.kind, attachment.kind)}: {attachment.filename}"}
