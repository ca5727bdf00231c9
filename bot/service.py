"""What every chat adapter does between "someone asked" and "here is your music", minus the chat.

An adapter (Discord, Slack) turns a platform event into an `Actor` and a request, calls this
service, and turns what comes back into platform messages. Nothing here imports a chat library;
every message it returns is plain text fit to show a chat user.

Composing, in three steps (the adapter acknowledges the platform between 1 and 2):

    admission = service.admit(actor, options, explicit={"mode"})   # policy: may they, now?
    if isinstance(admission, Refusal): show admission.message privately; stop
    ticket = await service.submit(admission, image=data, upload_limit=limit, image_ref={...})
    if isinstance(ticket, Refusal): show it privately (engine busy); stop
    async for update in service.follow(ticket):                    # ends with a terminal update
        Queued(position, eta_s) | Started() | Progressed(fraction, detail)
        | Finished(reply, record) | Failed(message, refusal) | Cancelled(by)
        each has `.text` (one line for a status message) and `.terminal`.

`Failed.refusal` is True when the user's input was at fault (an unreadable picture): show it
privately, as a refusal, not as a public failure. Uses that never ran are refunded to the quota.
`release(admission)` refunds one by hand (say the picture could not be downloaded). When the
audio cannot fit the upload limit at any quality, the pipeline keeps the whole clip and the
reply keeps what fits, the MIDI at least, saying what it left out (bot.reply.build_reply).

Buttons on a result carry its `result_id` (the engine's job id); they survive restarts because
the record is in the store:

    service.variation(actor, result_id) / service.another_mode(actor, result_id, mode)
        -> (Admission, Request) | Refusal; then `submit_request(admission, request, ...)`
        (Another mode only where `Reply.offers_modes`: the procedural composer has no modes,
        and a click on an older message's mode select gets NO_MODES, the reason in words)
    service.cancel(actor, result_id, moderator=...) -> str      (what happened, in words)
    service.delete(actor, result_id, moderator=...) -> Deletion (allowed, message, record)
    service.parameters(result_id) -> list[(name, value)] | None
    service.attach_message(result_id, channel_id, message_id)  (where the result was posted)

After a restart: `await resume_unfinished(platform)` -> Resumption(tickets, lost). Follow each
ticket as usual (a Redis worker pool kept making it; the engine attaches to it again) and tell
each lost record's requester `bot.endings.lost(record)`. Jobs that end because the engine is closing
(Cancelled by "shutdown") stay unfinished in the store for exactly this.

Lifecycle: `await start()` begins the housekeeping every bot process needs (retention and store
backups on a schedule, bot.housekeeping) and `await close()` ends it; bot/commands/bots.py
does both for every platform.

Also: `queue(actor)` (their unfinished jobs with positions and ETA, and today's usage),
`private_by_default(actor)`, and admin settings with audit: `is_admin`, `change_setting`,
`reset_setting`, `describe_settings`. `Throttle` spaces out status-message edits.

About 500 lines on purpose: one class, the whole API the adapters call (its data types are in
bot/outcomes.py, the chat flow in bot/flow.py); `Throttle` stays here while its clock is reworked.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import replace
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable

from aria_engine.emotion import Emotion
from aria_engine.engine import Busy, jobs
from aria_engine.options import MODES, GenerationOptions
from aria_engine.pipeline import STAGES, Origin, Request
from bot.endings import LOST_IN_PROCESS, LOST_RESUMABLE, LOST_UNDELIVERED
from bot.housekeeping import Housekeeping
from bot.members import MemberData
from bot.moderation import Moderation
from bot.outcomes import (Admission, Cancelled, Deletion, Failed, Finished, Progressed, Queued, QueueEntry,
                          QueueView, Refusal, Resumption, SettingChange, Started, Ticket, Update)
from bot.policy import Actor, Policy, format_wait
from bot.reply import build_reply
from bot.settings import Scope, Settings, SettingView
from bot.store import UNFINISHED, ResultRecord, Store
from bot.texts import mention, setting_value

log = logging.getLogger(__name__)

# Composers whose pieces depend on the conditioning mode. The procedural composer has no modes:
# "another mode" of its piece would sound the same, so adapters offer it only for these.
COMPOSERS_WITH_MODES = ("transformer",)
NO_MODES = ("This piece was made by the built-in procedural composer, which has no conditioning modes, "
            "so another mode would sound just the same. Modes belong to the neural models; whoever runs "
            "ARIA can install them with `aria models pull`. For a new take on the same mood, try Variation.")

SHUTDOWN = "shutdown"  # who "cancelled" the jobs of an engine that is closing
CANNOT_START = "Sorry, I couldn't start on that just now. Please try again in a moment."

# How much of a job each stage is, roughly, so one progress fraction moves evenly.
_STAGE_WEIGHTS = {"decoding image": 0.05, "safety": 0.0, "reading emotion": 0.1, "composing": 0.6, "drawing": 0.05, "rendering": 0.2}
_STAGE_STARTS = {stage: sum(_STAGE_WEIGHTS[s] for s in STAGES[: STAGES.index(stage)]) for stage in STAGES}


# -- the service ---------------------------------------------------------------------------------


class AriaService:
    """Policy, engine and store behind one small API (see the module docstring)."""

    def __init__(self, engine: Any, store: Store, *, settings: Settings | None = None,
                 policy: Policy | None = None, name: str = "aria",
                 housekeeping: Housekeeping | None = None) -> None:
        self.engine = engine
        self.store = store
        self.settings = settings or Settings(store)
        self.policy = policy or Policy(self.settings, store)
        self.name = name
        self.members = MemberData(self)  # forget-me, purges, the retention of jam contributions
        self.moderation = Moderation(self)  # moderators, block and unblock
        self.housekeeping = housekeeping or Housekeeping(self.policy, store, clock=self.policy.clock,
                                                         members=self.members)

    async def start(self) -> None:
        """Start retention and backups on their schedule (the process owns the store)."""
        self.housekeeping.start()

    async def close(self) -> None:
        await self.housekeeping.stop()

    # -- composing ---------------------------------------------------------------------------

    def admit(self, actor: Actor, options: GenerationOptions, *, explicit: Iterable[str] = (),
              kind: str = "compose") -> Admission | Refusal:
        """Fit the defaults to this place and ask the policy; a yes counts one use."""
        options = self.policy.fit_defaults(actor, options, explicit)
        options = options.replace(**self.image_safety(actor))
        decision = self.policy.try_acquire(actor, options, kind=kind)
        if not decision.allowed:
            self.store.record_refusal(actor, decision.reason_code)  # for the stats (bot/stats.py)
            return Refusal(decision.reason_code, decision.message, decision.retry_after_s)
        # The seed is fixed now, so the record can show it from the start and a remake is the same piece.
        return Admission(actor, options.with_seed(), decision.use_id, kind)

    def release(self, admission: Admission) -> None:
        """Give back a use whose job will never run (the adapter could not fetch the picture)."""
        if admission.use_id is not None:
            self.policy.release(admission.use_id)

    async def submit(self, admission: Admission, *, image: bytes | None = None, emotion: Emotion | None = None,
                     upload_limit: int | None = None, image_ref: dict | None = None,
                     extra: dict | None = None) -> Ticket | Refusal:
        """Hand an admitted request to the engine and record it (status queued)."""
        actor = admission.actor
        try:
            request = Request(image=image, emotion=emotion, options=admission.options,
                              origin=Origin(actor.platform, actor.server_id, actor.channel_id, actor.user_id),
                              max_upload_bytes=upload_limit)
        except Exception:  # admitted options that still make no request: a bug, but the use goes back
            log.exception("could not build a request from admitted options")
            self.release(admission)
            return Refusal("error", CANNOT_START)
        return await self.submit_request(admission, request, image_ref=image_ref, extra=extra)

    async def submit_request(self, admission: Admission, request: Request, *, image_ref: dict | None = None,
                             extra: dict | None = None) -> Ticket | Refusal:
        try:
            job = await self.engine.submit(request)
        except Busy as busy:
            self.release(admission)
            self.store.record_refusal(admission.actor, "busy")
            return Refusal("busy", str(busy))
        except Exception:
            log.exception("the engine refused a request unexpectedly")
            self.release(admission)
            return Refusal("error", CANNOT_START)
        actor = admission.actor
        extra = dict(extra or {})
        if request.max_upload_bytes is not None:
            extra.setdefault("upload_limit", request.max_upload_bytes)  # for a delivery after a restart
        record = ResultRecord(
            result_id=job.id, platform=actor.platform, server_id=actor.server_id, channel_id=actor.channel_id,
            user_id=actor.user_id, source_kind="image" if request.image is not None else "mood",
            options=request.options.as_dict(), seed=request.options.seed,
            # A gated picture's hash is kept only once the image-safety gate passed it (see _on_event).
            image_sha256=_sha256(request.image) if request.options.image_safety == "off" else None,
            image_ref=image_ref or {}, extra=extra,
        )
        if request.emotion is not None and isinstance(request.emotion, Emotion):
            record.valence, record.arousal = request.emotion.valence, request.emotion.arousal
        self.store.save_result(record)
        if admission.use_id is not None:
            self.policy.attach_job(admission.use_id, job.id)
        return Ticket(job, record, admission, request.max_upload_bytes)

    async def follow(self, ticket: Ticket) -> AsyncIterator[Update]:
        """The job's story as updates, saving each turn in the store; ends after a terminal one."""
        async for event in ticket.job.events():
            update = self._on_event(ticket, event)
            if update is not None:
                yield update
                if update.terminal:
                    return

    def _on_event(self, ticket: Ticket, event: Any) -> Update | None:
        rid = ticket.result_id
        if isinstance(event, jobs.Queued):
            return Queued(event.position, event.eta_s)
        if isinstance(event, jobs.Started):
            current = self.store.get_result(rid) or ticket.record
            waited = max(0.0, self.store.clock() - current.created_at)  # the queue time, for the stats
            self.store.update_result(rid, status="running", extra={**current.extra, "queued_s": round(waited, 3)})
            return Started()
        if isinstance(event, jobs.Progress):
            fraction = _STAGE_STARTS.get(event.stage, 0.0) + _STAGE_WEIGHTS.get(event.stage, 0.0) * event.fraction
            return Progressed(min(1.0, fraction), event.detail or event.stage)
        if isinstance(event, jobs.Done):
            result = event.result
            record = self.store.update_result(
                rid, status="done", seed=result.options.seed, valence=result.emotion.valence,
                arousal=result.emotion.arousal, composer=result.composition.composer, encoder=result.encoder,
                options=result.options.as_dict(),
                **({"image_sha256": _sha256(getattr(getattr(ticket.job, "request", None), "image", None))}
                   if ticket.record.image_sha256 is None else {}),
            ) or ticket.record
            self.store.save_midi(rid, result.midi)  # what Extend continues (bot/extend.py)
            if record.extra.get("extends"):  # an extension is done: its jam record holds the longer piece
                from bot.jam_store import DONE, JamBook

                JamBook(self.store).set_outcome(record.extra["jam_id"], DONE, self.store.clock(), rid)
            reply = build_reply(result, name=self.name, upload_limit=ticket.upload_limit)
            return Finished(reply, record, event.cached)
        if isinstance(event, jobs.Failed):
            if event.kind == "image_unsafe":
                return self._refused_unsafe(ticket, event)
            self.store.update_result(rid, status="failed", error=event.reason)
            refusal = event.kind == "image_rejected"
            if refusal:
                self.release(ticket.admission)
                self.store.record_refusal(ticket.admission.actor, event.kind)
            return Failed(event.reason, refusal, event.log_id)  # the engine words it for the user
        if isinstance(event, jobs.Cancelled) and event.by == SHUTDOWN:
            # This process stops, not necessarily the job: the record stays unfinished, and the
            # next start picks it up again or tells its requester (`resume_unfinished`).
            return Cancelled(event.by)
        if isinstance(event, jobs.Cancelled):
            self.store.update_result(rid, status="cancelled")
            if ticket.job.started_at is None:
                self.release(ticket.admission)
            return Cancelled(event.by)
        return None

    def image_safety(self, actor: Actor) -> dict[str, Any]:
        """The image-safety gate's options here: the channel's, else the server's, else the default
        (refuse), which is off in an age-restricted channel (the platform's flag, or listed in
        age_restricted_channels)."""
        where = dict(server=actor.server_key, channel=actor.channel_id)
        mode = self.settings.lookup("image_safety", **where)
        value = mode.value
        if mode.source is None and (actor.age_restricted or actor.channel_id in self.settings.get(
                "age_restricted_channels", server=actor.server_key)):
            value = "off"
        return {"image_safety": value,
                "image_safety_threshold": float(self.settings.get("image_safety_threshold", **where))}

    def _refused_unsafe(self, ticket: Ticket, event: Any) -> Failed:
        """A picture the image-safety gate turned down: the use goes back, the record keeps no trace
        of the picture (no hash, nothing to fetch it again by), and the refusal is audited without it."""
        actor = ticket.admission.actor
        self.release(ticket.admission)
        self.store.record_refusal(actor, "image_unsafe")
        self.store.update_result(ticket.result_id, status="failed", error="image_unsafe", image_ref={})
        threshold = ticket.admission.options.image_safety_threshold
        self.store.audit(actor, "image_refused", {"channel": actor.channel_id, "result_id": ticket.result_id,
                                                  "threshold": threshold})
        return Failed(event.reason, True, None, self._audit_channel(actor), unsafe_picture_notice(actor, threshold))

    # -- after a restart -----------------------------------------------------------------------

    @property
    def can_resume(self) -> bool:
        """Whether jobs outlive this process: a Redis worker pool carries on while a bot restarts
        (the engine can `attach` to a job again); in-process models stop with it."""
        return callable(getattr(self.engine, "attach", None))

    async def resume_unfinished(self, platform: str) -> Resumption:
        """Call at start-up. Jobs left queued or running by the last process come back as tickets
        to follow (their endings saved as usual) when the engine can follow them again; the
        others end failed, their uses refunded, and come back as records whose requesters
        should hear `bot.endings.lost(record)`. Either way, none is left hanging."""
        resumption = Resumption([], [])
        for record in self.store.unfinished_results(platform):
            job = await self._attach(record.result_id) if self.can_resume else None
            if job is None:
                resumption.lost.append(self._lose(record))
                continue
            actor = Actor(record.platform, record.server_id, record.channel_id, record.user_id)
            admission = Admission(actor, record.generation_options(), self.store.use_of_job(record.result_id))
            resumption.tickets.append(Ticket(job, record, admission, record.extra.get("upload_limit")))
        return resumption

    async def _attach(self, job_id: str) -> Any:
        try:
            return await self.engine.attach(job_id)
        except Exception:  # the engine cannot rebuild it: treat it as lost, never crash the start
            log.warning("could not pick job %s up again", job_id, exc_info=True)
            return None

    def undelivered(self, result_id: str) -> None:
        """The job ended but the adapter, stopping, could not pass its ending on: keep the record
        unfinished so the next start settles it (a Redis worker pool's result is fetched again)."""
        record = self.store.get_result(result_id)
        if record is not None:
            self.store.update_result(result_id, status="running", extra={**record.extra, "undelivered": True})

    def _lose(self, record: ResultRecord) -> ResultRecord:
        reason = LOST_RESUMABLE if self.can_resume else LOST_IN_PROCESS
        if record.extra.get("undelivered"):
            reason = LOST_UNDELIVERED
        use_id = self.store.use_of_job(record.result_id)
        if use_id is not None:
            self.policy.release(use_id)
        return self.store.update_result(record.result_id, status="failed", error=reason) or record

    # -- result buttons ------------------------------------------------------------------------

    def result(self, result_id: str) -> ResultRecord | None:
        record = self.store.get_result(result_id)
        return None if record is None or record.deleted else record

    def variation(self, actor: Actor, result_id: str, *, upload_limit: int | None = None
                  ) -> tuple[Admission, Request] | Refusal:
        """Same emotion, a new seed; through the same policy and quota as a new request."""
        return self._again(actor, result_id, {"seed": None}, "variation", upload_limit)

    def another_mode(self, actor: Actor, result_id: str, mode: str, *, upload_limit: int | None = None
                     ) -> tuple[Admission, Request] | Refusal:
        """Same emotion and settings in another conditioning mode, with a new seed."""
        if mode not in MODES:
            return Refusal("bad_mode", f"There is no mode called {mode!r}; pick one of {', '.join(MODES)}.")
        record = self.result(result_id)
        if record is not None and not composer_has_modes(record.composer):
            return Refusal("no_modes", NO_MODES)
        return self._again(actor, result_id, {"seed": None, "mode": mode}, "another_mode", upload_limit,
                           explicit={"mode"})

    def _again(self, actor: Actor, result_id: str, changes: dict, kind: str, upload_limit: int | None,
               explicit: Iterable[str] = ()) -> tuple[Admission, Request] | Refusal:
        record = self.result(result_id)
        if record is None:
            return Refusal("unknown_result", "That result is gone (deleted, or older than this server keeps results).")
        if record.valence is None or record.arousal is None:
            return Refusal("not_ready", "That piece isn't finished yet; try again once it is.")
        base = record.generation_options().replace(**changes)
        admission = self.admit(actor, base, explicit=set(explicit) | _explicit_fields(record), kind=kind)
        if isinstance(admission, Refusal):
            return admission
        emotion = Emotion.clamped(record.valence, record.arousal)
        if record.extra.get("jam_id"):  # a jam's piece: the same contributions again (bot/jams.py)
            from bot.jams import score_of_jam

            emotion = score_of_jam(self.store, record.extra["jam_id"])
            if emotion is None:
                self.release(admission)
                return Refusal("unknown_result", "That jam is gone (older than this server keeps results).")
        request = Request(emotion=emotion, options=admission.options,
                          origin=Origin(actor.platform, actor.server_id, actor.channel_id, actor.user_id),
                          max_upload_bytes=upload_limit)
        return admission, request

    def cancel(self, actor: Actor, result_id: str, *, moderator: bool = False) -> str:
        """Cancel a queued or running job of one's own (moderators: anyone's); says what happened."""
        record = self.store.get_result(result_id)
        if record is None:
            return "I can't find that piece any more."
        if record.user_id != actor.user_id and not (moderator or self.policy.is_moderator(actor)):
            return "Only the person who asked (or a moderator) can cancel this piece."
        job = self.engine.job(result_id)
        if record.status not in UNFINISHED or job is None or job.done:
            return f"That piece isn't waiting or being composed any more (it is {record.status})."
        if not self.engine.cancel(result_id, by=actor.user_id):
            return "Too late: that piece had just finished."
        if record.user_id != actor.user_id:
            self.store.audit(actor, "cancel", {"result_id": result_id, "requester": record.user_id})
        return "Cancelled."

    def delete(self, actor: Actor, result_id: str, *, moderator: bool = False) -> Deletion:
        """Whether this actor may delete a result (the requester, moderators); marks it deleted."""
        record = self.store.get_result(result_id)
        if record is None or record.deleted:
            return Deletion(False, "That result is already gone.")
        own = record.user_id == actor.user_id
        if not (own or moderator or self.policy.is_moderator(actor)):
            return Deletion(False, "Only the person who asked (or a moderator) can delete this result.")
        self.store.mark_result_deleted(result_id)
        if not own:
            self.store.audit(actor, "delete_result", {"result_id": result_id, "requester": record.user_id})
        return Deletion(True, "Deleted.", record)

    def parameters(self, result_id: str) -> list[tuple[str, str]] | None:
        """Everything needed to make this piece again, as (name, value) pairs."""
        record = self.result(result_id)
        if record is None:
            return None
        o = record.generation_options()
        rows = []
        if record.valence is not None and record.arousal is not None:
            rows += [("valence", f"{record.valence:+.2f}"), ("arousal", f"{record.arousal:+.2f}")]
        rows += [("source", "a picture" if record.source_kind == "image" else "an explicit mood"),
                 ("seed", str(record.seed if record.seed is not None else o.seed)),
                 ("composer", record.composer or o.composer), ("encoder", record.encoder or o.encoder),
                 ("mode", o.mode), ("length", f"{o.length} tokens"), ("duration", f"{o.duration_s:g} s"),
                 ("note temperature", f"{o.note_temperature:g}"), ("rest temperature", f"{o.rest_temperature:g}"),
                 ("top-p", f"{o.top_p:g}"), ("minimum instruments", str(o.min_instruments))]
        return rows

    def attach_message(self, result_id: str, channel_id: str, message_id: str) -> None:
        self.store.update_result(result_id, message_channel_id=str(channel_id), message_id=str(message_id))

    # -- queue and help ----------------------------------------------------------------------

    def queue(self, actor: Actor) -> QueueView:
        """This member's unfinished jobs here (with positions while this process runs them)."""
        entries = []
        for record in self.store.list_user_jobs(actor.platform, actor.server_id, actor.user_id,
                                                statuses=UNFINISHED, limit=10):
            job = self.engine.job(record.result_id)
            if job is None or job.done:
                continue  # from before a restart (marked failed at start-up), or just ended
            position, eta = _latest_position(job)
            what = "a picture" if record.source_kind == "image" else (
                f"mood {record.valence:+.2f} / {record.arousal:+.2f}" if record.valence is not None else "a mood")
            entries.append(QueueEntry(record.result_id, job.state, position, eta, what))
        usage = self.policy.usage(actor)
        if usage.daily_quota:
            line = (f"{usage.remaining} of {usage.daily_quota} compositions left today "
                    f"(resets in {format_wait(usage.resets_in_s)}).")
        else:
            line = "No daily limit here."
        if usage.cooldown_left_s > 0:
            line += f" Next one possible in {format_wait(usage.cooldown_left_s)}."
        return QueueView(entries, line)

    def private_by_default(self, actor: Actor) -> bool:
        return bool(self.settings.get("private_by_default", server=actor.server_key,
                                      channel=actor.channel_id, user=actor.user_id))

    def limits(self, actor: Actor) -> dict[str, Any]:
        return self.settings.effective(actor.server_key, actor.channel_id, actor.user_id)

    # -- admin ---------------------------------------------------------------------------------

    def is_admin(self, actor: Actor) -> bool:
        return self.policy.is_admin(actor)

    def change_setting(self, actor: Actor, name: str, value: Any, *, channel: str | None = None) -> SettingChange:
        """Set a server-wide value, or one channel's (raises ValueError with an admin-fit message)."""
        self._require_admin(actor)
        scope = Scope.CHANNEL if channel else Scope.SERVER
        stored = self.settings.set(name, value, scope=scope, server=actor.server_key, channel=channel)
        where = f"in <#{channel}>" if channel else "on this server"  # a channel mention on Discord and Slack
        message = f"{name} is now {setting_value(name, stored)} {where}."
        self.store.audit(actor, "setting_changed", {"name": name, "value": stored, "channel": channel})
        return SettingChange(message, f"{_who(actor)} changed a setting: {message}", self._audit_channel(actor))

    def reset_setting(self, actor: Actor, name: str, *, channel: str | None = None) -> SettingChange:
        self._require_admin(actor)
        scope = Scope.CHANNEL if channel else Scope.SERVER
        removed = self.settings.reset(name, scope=scope, server=actor.server_key, channel=channel)
        now = self.settings.get(name, server=actor.server_key, channel=channel)
        shown = setting_value(name, now)
        message = (f"{name} reset; it is {shown} here now." if removed
                   else f"{name} had no value of its own there; it is {shown}.")
        self.store.audit(actor, "setting_reset", {"name": name, "channel": channel})
        return SettingChange(message, f"{_who(actor)} reset a setting: {message}", self._audit_channel(actor))

    def describe_settings(self, actor: Actor, channel: str | None = None) -> list[SettingView]:
        """Every setting in force here and where it comes from; image_safety as it applies here
        (its default is off in an age-restricted channel)."""
        self._require_admin(actor)
        views = self.settings.describe(actor.server_key, channel or actor.channel_id)
        if channel in (None, actor.channel_id):
            safety = self.image_safety(actor)["image_safety"]
        else:
            safety = self.image_safety(replace(actor, channel_id=channel, age_restricted=False))["image_safety"]
        return [view._replace(value=safety) if view.name == "image_safety" else view for view in views]

    def _require_admin(self, actor: Actor) -> None:
        if not self.policy.is_admin(actor):
            raise PermissionError("Only server admins (Manage Server) or configured ARIA admins can change ARIA's settings.")

    def _audit_channel(self, actor: Actor) -> str | None:
        return self.settings.get("audit_channel", server=actor.server_key)


class Throttle:
    """Shows status text at most once per `interval_s`; the latest text always gets shown.

    `update(text)` shows at once when the last showing is old enough, else keeps the text and
    shows it when the interval is up (intermediate texts are dropped). One showing at a time:
    an edit slower than the interval delays the next instead of racing it. `close()` drops
    whatever is pending and waits for an edit already on its way (cancelling it could let it
    land after the result that replaces the status); after it, updates are ignored.

    `clock` and `sleep` go together: a test passes a fake clock and a sleep that waits on that
    clock, so the interval passes when the test moves time, not in real time.
    """

    def __init__(self, show: Callable[[str], Awaitable[Any]], interval_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        self._show = show
        self.interval_s = interval_s
        self._clock = clock
        self._sleep = sleep
        self._last_shown: float | None = None
        self._last_text: str | None = None
        self._pending: str | None = None
        self._flush: asyncio.Task | None = None
        self._showing = asyncio.Lock()
        self._closed = False
        self.shown = 0

    async def update(self, text: str) -> None:
        if self._closed or (text == self._last_text and self._pending is None):
            return
        if not self._showing.locked() and self._due():
            self._pending = None
            await self._emit(text)
            return
        self._pending = text
        if self._flush is None or self._flush.done():
            self._flush = asyncio.create_task(self._later())

    def _due(self) -> bool:
        return self._last_shown is None or self._clock() - self._last_shown >= self.interval_s

    async def _later(self) -> None:
        while True:
            async with self._showing:  # an edit in flight ends before the interval is measured
                pass
            if self._closed:  # closed while that edit was on its way: nothing more to show
                return
            if self._due():
                break
            await self._sleep(self._last_shown + self.interval_s - self._clock())
        text, self._pending = self._pending, None
        if text is not None:
            await self._emit(text)

    async def _emit(self, text: str) -> None:
        async with self._showing:
            self._last_text = text
            self.shown += 1
            try:
                await self._show(text)
            except Exception:  # a status edit that fails must never sink the job's delivery
                log.warning("status update failed", exc_info=True)
            finally:
                # The interval runs from when the platform has the edit, so slow requests never bunch up.
                self._last_shown = self._clock()

    async def close(self) -> None:
        self._closed = True
        self._pending = None
        flush = self._flush
        if flush is not None and not flush.done():
            if not self._showing.locked():  # only waiting for its turn: nothing sent yet
                flush.cancel()
            try:
                await flush
            except asyncio.CancelledError:
                pass
        async with self._showing:  # an edit sent from update() itself
            pass


# -- helpers -------------------------------------------------------------------------------------


def composer_has_modes(composer: str | None) -> bool:
    """Whether Another mode changes a piece by this composer (unknown, e.g. unfinished: assume so)."""
    return composer is None or composer in COMPOSERS_WITH_MODES


def _latest_position(job: Any) -> tuple[int | None, float | None]:
    for event in reversed(job.history):
        if isinstance(event, jobs.Queued):
            return event.position, event.eta_s
    return None, None


def _explicit_fields(record: ResultRecord) -> set[str]:
    """Options the requester chose themselves keep being theirs on a variation."""
    return set(record.extra.get("explicit", []))


def _sha256(image: bytes | None) -> str | None:
    return hashlib.sha256(image).hexdigest() if image is not None else None


def unsafe_picture_notice(actor: Actor, threshold: float) -> str:
    """The audit channel's line for a picture the image-safety gate turned down (never the picture)."""
    return (f"The image-safety check turned down a picture from {_who(actor)} in <#{actor.channel_id}> "
            f"(threshold {threshold:g}); the picture was not kept.")


def _who(actor: Actor) -> str:
    return mention(actor.user_id)
