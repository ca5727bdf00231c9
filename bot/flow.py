"""One request's life in a chat, whatever the chat: a use held while the job is set up, the job
followed to its end through a sink the adapter implements, and the pieces a restart left behind.

    flow = ChatFlow(service, "slack", interval_s=2.0)
    with flow.admitted(admission) as use:        # the use goes back unless the job is handed over
        ...download, post a status message...    # (use.give_back() to refund it early, by hand)
        ticket = await use.submit(image=data, ...)
    await flow.run(ticket, sink)                 # status edits (throttled), then the ending

An adapter says how its platform shows each step by implementing `ChatSink`; the order of the
steps, and the words of every ending (bot.endings), live here once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Protocol

from bot import endings
from bot.outcomes import Admission, Cancelled, Failed, Finished, Refusal, Resumption, Ticket
from bot.service import SHUTDOWN, Throttle
from bot.store import ResultRecord

log = logging.getLogger(__name__)


class ChatSink(Protocol):
    """Where one request's status and ending go on a platform."""

    requester: str  # the user id of who asked

    @property
    def closing(self) -> bool:
        """The adapter is stopping: an ending can no longer be sent (the next start settles it)."""

    async def started(self, ticket: Ticket) -> None:
        """The job exists (e.g. remember where its status message is, for after a restart)."""

    async def show_status(self, text: str, result_id: str | None) -> None:
        """Edit the status message (queued at position N, progress...)."""

    async def deliver(self, finished: Finished) -> None:
        """The result: readout, files and buttons."""

    async def say(self, text: str) -> None:
        """An ending without a result, where the result would have gone."""

    async def refuse(self, text: str) -> None:
        """An ending only the requester sees (their input was at fault)."""

    async def withdraw(self, text: str) -> None:
        """The job never started (the engine refused it): take the status back, tell the requester."""

    async def audit(self, channel: str, text: str) -> None:
        """Post a line to the server's audit channel (an image-safety refusal; never the picture)."""


class StatusAlsoShown:
    """A sink mixin (before the adapter's sink in the bases): every status the flow shows is
    also handed to `on_status`, e.g. a jam's board showing its piece's progress."""

    def __init__(self, *args, on_status: Callable[[str], Awaitable[None]], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.on_status = on_status

    async def show_status(self, text: str, result_id: str | None = None) -> None:
        await super().show_status(text, result_id)
        await self.on_status(text)


class AdmittedUse:
    """A use the policy granted, held while the job is set up; given back on leaving the `with`
    unless the job was handed to the engine (whose own refusals give it back, see AriaService)."""

    def __init__(self, service: Any, admission: Admission) -> None:
        self.service = service
        self.admission = admission
        self._settled = False

    def __enter__(self) -> "AdmittedUse":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.give_back()

    def give_back(self) -> None:
        """Refund the use now (before telling the requester, so that asking again at once works)."""
        if not self._settled:
            self._settled = True
            self.service.release(self.admission)

    async def submit(self, **kwargs: Any) -> Ticket | Refusal:
        self._settled = True
        return await self.service.submit(self.admission, **kwargs)

    async def submit_request(self, request: Any, **kwargs: Any) -> Ticket | Refusal:
        self._settled = True
        return await self.service.submit_request(self.admission, request, **kwargs)


class ChatFlow:
    """The platform-neutral part of a chat adapter's requests (see the module docstring)."""

    def __init__(self, service: Any, platform: str, *, interval_s: float = 2.0) -> None:
        self.service = service
        self.platform = platform
        self.interval_s = interval_s
        # Pieces from before a restart, being followed. Not cancelled on close: the engine's
        # closing ends them, and one that ends while nothing can be sent is kept for the next start.
        self._resumed: set[asyncio.Task] = set()

    def admitted(self, admission: Admission) -> AdmittedUse:
        return AdmittedUse(self.service, admission)

    async def run(self, ticket: Ticket | Refusal, sink: ChatSink) -> None:
        """A submitted job to its end; an engine refusal is withdrawn instead."""
        if isinstance(ticket, Refusal):
            await sink.withdraw(ticket.message)
            return
        await sink.started(ticket)
        await self.follow(ticket, sink)

    async def follow(self, ticket: Ticket, sink: ChatSink) -> None:
        """Status edits (throttled) until the job ends, then its ending. Never raises."""
        throttle = Throttle(lambda text: sink.show_status(text, ticket.result_id), self.interval_s)
        ending = None
        try:
            async for update in self.service.follow(ticket):
                if update.terminal:
                    ending = update
                    break
                await throttle.update(update.text)
        except Exception:  # the engine or the store failed us: say so rather than spin forever
            log.exception("following %s failed", ticket.result_id)
        finally:
            await throttle.close()
        try:
            await self._end(ticket, ending, sink)
        except Exception:
            log.warning("could not show the end of %s", ticket.result_id, exc_info=True)

    async def _end(self, ticket: Ticket, ending: Any, sink: ChatSink) -> None:
        if isinstance(ending, Cancelled) and ending.by == SHUTDOWN:
            return  # ARIA is stopping, not the job: the next start picks it up or says what became of it
        if sink.closing:  # it ended, but nothing can be sent any more: the next start settles it
            if isinstance(ending, (Finished, Failed)):
                self.service.undelivered(ticket.result_id)
            return
        if isinstance(ending, Finished):
            await sink.deliver(ending)
        elif isinstance(ending, Failed):
            await (sink.refuse(ending.message) if ending.refusal else sink.say(ending.message))
            if ending.audit_channel and ending.audit_text:
                await sink.audit(ending.audit_channel, ending.audit_text)
        elif isinstance(ending, Cancelled):
            await sink.say(endings.cancelled(ending.by, sink.requester))
        else:
            await sink.say(endings.LOST_ON_THE_WAY)

    # -- after a restart ------------------------------------------------------------------------

    async def pick_up_unfinished(self, *, tell_lost: Callable[[ResultRecord, str], Awaitable[Any]],
                                 resumed_sink: Callable[[Ticket], Awaitable[ChatSink]]) -> Resumption:
        """At start-up: pieces the last process left unfinished. Those the engine still makes (a
        Redis worker pool carries on through a restart) are followed to their end through
        `resumed_sink(ticket)`; the others end failed, and `tell_lost(record, text)` tells their
        requesters why. None vanish."""
        resumption = await self.service.resume_unfinished(self.platform)
        for record in resumption.lost:
            try:
                await tell_lost(record, endings.lost(record))
            except Exception:
                log.warning("could not tell %s about a lost job", record.user_id, exc_info=True)
        for ticket in resumption.tickets:
            task = asyncio.get_running_loop().create_task(self._follow_resumed(ticket, resumed_sink))
            self._resumed.add(task)
            task.add_done_callback(self._resumed.discard)
        return resumption

    async def _follow_resumed(self, ticket: Ticket, resumed_sink: Callable[[Ticket], Awaitable[ChatSink]]) -> None:
        await self.follow(ticket, await resumed_sink(ticket))
