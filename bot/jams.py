"""Community jams, as both bots run them: start one in a channel, members add pictures or moods
(each read at once, for its readout), and the host's Finish, the deadline or the last allowed
contribution composes ONE piece (`aria_engine.jam.JamScore`, one engine job).

The rules, from the settings (`register_jam_settings`, same scopes as the others):
- who may start: `jam_starters` (roles / user groups; empty: whoever may use ARIA);
- open jams: `jam_open_per_channel` (1), `jam_open_per_server` (5);
- contributions: `jam_contributions_per_member` (2) per jam, `jam_max_contributions` (12) per jam;
- `jam_longest_minutes` (1440: 24 h) caps the deadline.
A jam's piece lasts its seconds per section (6..120) times its sections, whatever
`max_duration_s` says for single pieces, but at most `jam_longest_piece_s` (600): the sections
are shortened to fit (`fit_section`).
Finishing costs the host one use (the policy's quota and cooldown apply when the host finishes;
a deadline finishes regardless and still counts the host's use). Adding costs nothing but waits
out the cooldown since the member's last use or contribution. A refusal is a `JamRefused` whose
message is for the member alone; the jam goes on. A moderator (an ARIA admin) may remove a
contribution and cancel a jam; the host may cancel their own.

Jams run on either engine (on a Redis worker pool the score travels whole, and the workers read
the pictures: `reader_for`). Jams live in the store (`bot.jam_store`): after a restart an open jam is still open, `due()`
still finds it when its deadline passes (on the injected clock), and `JamBook.claim` lets only
one finisher compose it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Awaitable, Callable

from aria_engine.emotion import Emotion
from aria_engine.jam import JAM_MODES, MAX_CONTRIBUTIONS, SECONDS_RANGE, JamScore, Part
from aria_engine.options import GenerationOptions
from aria_engine.pipeline import Origin, Request
from bot.jam_store import CANCELLED, DONE, FAILED, Jam, JamBook
from bot.outcomes import Admission, Refusal, SettingChange, Ticket
from bot.policy import Actor, format_wait
from bot.service import unsafe_picture_notice
from bot.settings import Scope, SettingsRegistry, id_list, whole

# Reads a contribution's picture: (bytes, the image-safety options here) -> (emotion, encoder).
# Raises ImageUnsafe when the gate refuses it, ValueError when it cannot be read.
ReadEmotion = Callable[[bytes, dict], Awaitable[tuple[Emotion, str]]]
"""A picture's bytes -> (its emotion, the encoder that read it); raises ValueError for a bad one."""

DEFAULT_MINUTES = 10
CAPTION_CHARS = 120


class JamRefused(Exception):
    """Why a jam action was not done, in words for the member who asked (privately). `audit`,
    when set, is a line for the server's audit channel too (the image-safety gate's refusals)."""

    def __init__(self, message: str, audit: SettingChange | None = None) -> None:
        super().__init__(message)
        self.audit = audit


def register_jam_settings(r: SettingsRegistry) -> None:
    g, s, c = Scope.GLOBAL, Scope.SERVER, Scope.CHANNEL
    r.register("jam_starters", default=[], parse=id_list(), scopes={s, c},
               description="Roles (Discord) or user groups (Slack) that may start jams; empty means whoever may use ARIA.")
    r.register("jam_open_per_channel", default=1, parse=whole(1, 20, "jams"), scopes={g, s, c},
               description="Jams open at once in one channel.")
    r.register("jam_open_per_server", default=5, parse=whole(1, 100, "jams"), scopes={g, s},
               description="Jams open at once on one server.")
    r.register("jam_contributions_per_member", default=2, parse=whole(1, MAX_CONTRIBUTIONS, "contributions"),
               scopes={g, s, c}, description="Contributions each member may add to one jam.")
    r.register("jam_max_contributions", default=MAX_CONTRIBUTIONS, parse=whole(2, MAX_CONTRIBUTIONS, "contributions"),
               scopes={g, s, c}, description="Most contributions one jam takes; the jam finishes when it has them.")
    r.register("jam_longest_minutes", default=1440, parse=whole(1, 1440, "minutes"), scopes={g, s, c},
               description="Longest a jam may stay open, in minutes.")
    r.register("jam_longest_piece_s", default=600, parse=whole(6 * MAX_CONTRIBUTIONS, 600, "seconds"),
               scopes={g, s, c}, description="Longest a jam's or extended piece lasts, in seconds (sections shorten to fit).")


@dataclass(frozen=True)
class Added:
    """A contribution taken: its readout, and whether it filled the jam (compose now)."""

    jam: Jam
    readout: str
    full: bool


class JamService:
    def __init__(self, service, book: JamBook, read_emotion: ReadEmotion, clock: Callable[[], float] = time.time):
        self.service = service  # bot.service.AriaService: settings, policy, admission, engine
        self.book = book
        self.read_emotion = read_emotion
        self.clock = clock
        from bot.extend import Extender

        self.extender = Extender(service, book, self.read_picture, clock)

    # -- settings -------------------------------------------------------------------------

    def _limit(self, name: str, actor: Actor):
        return self.service.settings.get(name, server=actor.server_key, channel=actor.channel_id)

    def is_moderator(self, actor: Actor) -> bool:
        """An ARIA admin, or a platform moderator where the adapter says so (Discord's Manage Messages)."""
        return self.service.is_admin(actor) or bool(getattr(actor, "is_moderator", False))

    # -- starting -------------------------------------------------------------------------

    def start(self, actor: Actor, host_name: str, *, title: str, minutes: float = DEFAULT_MINUTES,
              max_contributions: int | None = None, seconds: float | None = None,
              options: GenerationOptions | None = None) -> Jam:
        starters = self._limit("jam_starters", actor)
        if starters and not self.is_moderator(actor) and not set(starters) & set(actor.role_ids):
            raise JamRefused("Only members with a jam role may start a jam here.")
        longest = self._limit("jam_longest_minutes", actor)
        if not 1 <= minutes <= longest:
            raise JamRefused(f"A jam stays open 1 to {longest} minutes here.")
        most = self._limit("jam_max_contributions", actor)
        wanted = most if max_contributions is None else max_contributions
        if not 2 <= wanted <= most:
            raise JamRefused(f"A jam here takes 2 to {most} contributions.")
        if seconds is not None and not SECONDS_RANGE[0] <= seconds <= SECONDS_RANGE[1]:
            raise JamRefused(f"Each section lasts {SECONDS_RANGE[0]:g} to {SECONDS_RANGE[1]:g} seconds.")
        options = options or GenerationOptions()
        if options.composer == "transformer" and options.mode not in JAM_MODES:
            raise JamRefused(f"The {options.mode} mode takes one emotion per piece, so it cannot follow a jam; "
                             f"pick {' or '.join(JAM_MODES)}.")
        if self.book.count_open(actor.platform, actor.server_id, actor.channel_id) >= self._limit("jam_open_per_channel", actor):
            raise JamRefused("This channel already has a jam open: join it, or wait until it finishes.")
        per_server = self.service.settings.get("jam_open_per_server", server=actor.server_key)
        if self.book.count_open(actor.platform, actor.server_id) >= per_server:
            raise JamRefused(f"This server already has {per_server} jams open; try again when one finishes.")
        now = self.clock()
        jam = Jam(uuid.uuid4().hex[:12], actor.platform, actor.server_id, actor.channel_id, actor.user_id, host_name,
                  title.strip()[:80] or "Jam", "open", now + 60 * minutes, wanted, options.as_dict(), seconds,
                  created_at=now)
        self.book.create(jam, now)
        return jam

    # -- contributing ---------------------------------------------------------------------

    def _open_jam(self, jam_id: str) -> Jam:
        jam = self.book.get(jam_id)
        if jam is None:
            raise JamRefused("That jam no longer exists.")
        if not jam.is_open or self.clock() >= jam.deadline:
            raise JamRefused("That jam has closed: it takes no more contributions.")
        return jam

    def _check_contributor(self, actor: Actor, jam: Jam, in_thread: bool) -> None:
        if not in_thread:
            raise JamRefused("Join the jam's thread to contribute to it.")
        mine = sum(1 for e in jam.entries if e.user_id == actor.user_id)
        per_member = self._limit("jam_contributions_per_member", actor)
        if mine >= per_member:
            raise JamRefused(f"You have added {mine} of the {per_member} contributions each member may give this jam.")
        cooldown = self.service.limits(actor)["cooldown_s"]
        last = max(filter(None, (self.service.store.last_use_at(actor),
                                 self.book.last_contribution_at(actor.platform, actor.server_id, actor.user_id))),
                   default=None)
        if last is not None and self.clock() < last + cooldown:
            raise JamRefused(f"Just a moment: you can add again in {format_wait(last + cooldown - self.clock())}.")

    async def add_picture(self, actor: Actor, name: str, jam_id: str, image: bytes, caption: str = "",
                          *, in_thread: bool = True) -> Added:
        jam = self._open_jam(jam_id)
        self._check_contributor(actor, jam, in_thread)
        emotion, encoder = await self.read_picture(actor, image)
        return self._add(actor, name, jam_id, "picture", emotion, encoder, caption)

    async def read_picture(self, actor: Actor, image: bytes) -> tuple[Emotion, str]:
        """The picture's emotion, after the image-safety gate the server set (as for single
        pieces): a refused picture is never kept, and the refusal is audited without it."""
        from aria_engine.safety import ImageUnsafe

        try:
            return await self.read_emotion(image, self.service.image_safety(actor))
        except ImageUnsafe as refused:
            self.service.store.record_refusal(actor, "image_unsafe")
            self.service.store.audit(actor, "image_refused", {"channel": actor.channel_id, "jam": True,
                                                               "threshold": refused.threshold})
            notice = SettingChange(refused.message, unsafe_picture_notice(actor, refused.threshold),
                                   self.service.settings.get("audit_channel", server=actor.server_key))
            raise JamRefused(refused.message, audit=notice) from None
        except ValueError as error:
            raise JamRefused(f"That picture could not be read: {error}") from None

    def add_mood(self, actor: Actor, name: str, jam_id: str, valence: float, arousal: float, caption: str = "",
                 *, in_thread: bool = True) -> Added:
        jam = self._open_jam(jam_id)
        self._check_contributor(actor, jam, in_thread)
        try:
            emotion = Emotion(valence, arousal)
        except ValueError as error:
            raise JamRefused(str(error).capitalize() + ".") from None
        return self._add(actor, name, jam_id, "mood", emotion, "explicit", caption)

    def _add(self, actor, name, jam_id, kind, emotion, encoder, caption) -> Added:
        jam = self._open_jam(jam_id)  # again: it may have closed while the picture was read
        if len(jam.entries) >= jam.max_contributions:
            raise JamRefused("That jam is full: it takes no more contributions.")
        self.book.add(jam_id, actor.user_id, name, kind, emotion, encoder, caption.strip()[:CAPTION_CHARS], self.clock())
        jam = self.book.get(jam_id)
        return Added(jam, f"{len(jam.entries)}. {name}  {emotion.readout()}", len(jam.entries) >= jam.max_contributions)

    # -- moderation -----------------------------------------------------------------------

    def remove(self, actor: Actor, jam_id: str, number: int) -> Jam:
        """A moderator removes contribution `number` (1-based, as the board shows it)."""
        if not self.is_moderator(actor):
            raise JamRefused("Only a moderator may remove a contribution.")
        jam = self._open_jam(jam_id)
        if not 1 <= number <= len(jam.entries):
            raise JamRefused(f"That jam has no contribution {number}.")
        self.book.remove(jam_id, jam.entries[number - 1].entry_id)
        self.service.store.audit(actor, "jam_remove", {"jam_id": jam_id, "number": number})
        return self.book.get(jam_id)

    def cancel(self, actor: Actor, jam_id: str) -> Jam:
        jam = self.book.get(jam_id)
        if jam is None or not jam.is_open:
            raise JamRefused("That jam is not open.")
        if actor.user_id != jam.host_id and not self.is_moderator(actor):
            raise JamRefused("Only the host or a moderator may cancel this jam.")
        if not self.book.claim(jam_id, self.clock(), to=CANCELLED):
            raise JamRefused("That jam is not open.")
        if actor.user_id != jam.host_id:
            self.service.store.audit(actor, "jam_cancel", {"jam_id": jam_id})
        return self.book.get(jam_id)

    # -- finishing ------------------------------------------------------------------------

    def due(self) -> list[Jam]:
        """Open jams whose deadline has passed (the adapters finish them)."""
        now = self.clock()
        return [jam for jam in self.book.open_jams() if jam.deadline <= now]

    def open_jams(self, platform: str) -> list[Jam]:
        return self.book.open_jams(platform)

    def score(self, jam: Jam) -> JamScore:
        return score_of_jam(self.book.store, jam.jam_id)

    async def finish(self, actor: Actor | None, jam_id: str, *, upload_limit: int | None = None) -> tuple[Jam, Ticket]:
        """Compose the jam: `actor` is the host pressing Finish, None for the deadline or a full
        jam. Only one caller gets past the claim; a refused host leaves the jam open."""
        jam = self.book.get(jam_id)
        if jam is None or not jam.is_open:
            raise JamRefused("That jam has already finished.")
        if actor is not None and actor.user_id != jam.host_id:
            raise JamRefused("Only the host may finish this jam.")
        if not jam.entries:
            raise JamRefused("That jam has no contributions yet.")
        now = self.clock()
        if not self.book.claim(jam_id, now):
            raise JamRefused("That jam has already finished.")
        host = actor or Actor(jam.platform, jam.server_id, jam.channel_id, jam.host_id)
        options = GenerationOptions(**jam.options)
        score = self.score(jam)
        score = JamScore.of(score.parts, fit_section(score.seconds, len(score.parts),
                                                     self._limit("jam_longest_piece_s", host)))
        if options.composer != "transformer":
            options = options.replace(duration_s=score.seconds * len(score.parts))
        if actor is not None:
            admission = self.service.admit(host, options, kind="jam")
            if isinstance(admission, Refusal):
                self.book.reopen(jam_id, now)
                raise JamRefused(admission.message)
        else:  # the deadline always finishes; the host's use still counts
            use_id = self.service.store.add_use(host, kind="jam", at=now)
            admission = Admission(host, options.with_seed(), use_id, "jam")
        request = Request(emotion=score, options=admission.options,
                          origin=Origin(host.platform, host.server_id, host.channel_id, host.user_id),
                          max_upload_bytes=upload_limit)
        ticket = await self.service.submit_request(admission, request, extra={"jam_id": jam_id})
        if isinstance(ticket, Refusal):
            self.book.reopen(jam_id, now)
            raise JamRefused(ticket.message)
        self.book.set_outcome(jam_id, "composing", now, ticket.record.result_id)
        return self.book.get(jam_id), ticket

    async def extend(self, actor: Actor, name: str, jam_id: str, *, image: bytes | None = None,
                     emotion: Emotion | None = None, caption: str = "",
                     upload_limit: int | None = None) -> tuple[Jam, Added, Ticket]:
        """`/aria-jam extend` in a finished jam's thread: continue the jam's latest piece with one
        more picture or mood (`bot.extend`); the jam takes the new part."""
        jam = self.book.get(jam_id)
        if jam is None or jam.status != DONE or not jam.result_id:
            raise JamRefused("Only a finished jam can be extended.")
        extension = await self.extend_result(actor, name, jam.result_id, image=image, emotion=emotion,
                                             caption=caption, upload_limit=upload_limit)
        return extension.jam, Added(extension.jam, extension.readout, False), extension.ticket

    async def extend_result(self, actor: Actor, name: str, result_id: str, *, image: bytes | None = None,
                            emotion: Emotion | None = None, caption: str = "", upload_limit: int | None = None,
                            extra: dict | None = None):
        """The Extend button under any piece: see `bot.extend.Extender.extend`."""
        return await self.extender.extend(actor, name, result_id, image=image, emotion=emotion, caption=caption,
                                          upload_limit=upload_limit, extra=extra)

    def finished(self, jam_id: str, ok: bool) -> None:
        """The composed jam was delivered (or failed): its record says so."""
        jam = self.book.get(jam_id)
        if jam is not None:
            self.book.set_outcome(jam_id, DONE if ok else FAILED, self.clock(), jam.result_id)

    def settle(self, jam_id: str, result_id: str) -> tuple[Jam | None, str]:
        """After the flow delivered (or failed) a jam's piece: the jam marked as its piece ended,
        and the board's line for that ending (`piece_progress`, with why it failed)."""
        record = self.service.result(result_id)
        ok = record is not None and record.status == "done"
        self.finished(jam_id, ok)
        jam = self.book.get(jam_id)
        why = "" if ok or record is None else record.error or ""
        return jam, piece_progress(jam.status, why) if jam is not None else ""


async def watch_deadlines(jams: JamService, on_finished: Callable[[Jam, Ticket], Awaitable[None]], *,
                          interval_s: float = 5.0, rounds: int | None = None) -> None:
    """Finish every jam whose deadline passed (on the service's clock), every `interval_s`, and
    hand each started job to `on_finished` (the adapter follows it into the jam's thread). A jam
    another process claimed first is skipped; a failure to finish one never stops the watch.
    `rounds` bounds the loop (tests); None watches until cancelled."""
    import asyncio
    import logging

    log = logging.getLogger(__name__)
    done_rounds = 0
    while rounds is None or done_rounds < rounds:
        for jam in jams.due():
            try:
                finished, ticket = await jams.finish(None, jam.jam_id)
            except JamRefused as refused:  # claimed elsewhere, or nothing to compose
                log.info("deadline of jam %s: %s", jam.jam_id, refused)
                if not jam.entries:
                    jams.book.claim(jam.jam_id, jams.clock(), to=CANCELLED)
                continue
            except Exception:
                log.exception("could not finish jam %s at its deadline", jam.jam_id)
                continue
            await on_finished(finished, ticket)
        done_rounds += 1
        if rounds is None or done_rounds < rounds:
            await asyncio.sleep(interval_s)


def fit_section(seconds: float, sections: int, longest_s: float) -> float:
    """Seconds per section, shortened so the whole piece lasts at most `longest_s` (the
    `jam_longest_piece_s` setting), never below the shortest section."""
    return max(SECONDS_RANGE[0], min(float(seconds), longest_s / max(1, sections)))


def score_of_jam(store, jam_id: str) -> JamScore | None:
    """A finished jam's score again (Variation and Another mode: same contributions, new seed)."""
    jam = JamBook(store).get(jam_id)
    if jam is None or not jam.entries:
        return None
    parts = [Part(e.user_name, e.emotion, e.caption, e.encoder) for e in jam.entries]
    return JamScore.of(parts, jam.seconds or 15.0)


def board_text(jam: Jam, clock: Callable[[], float] = time.time, progress: str | None = None) -> str:
    """The jam board's words (the adapters add the chart and the buttons). `progress`: the line
    `piece_progress` made for the jam's piece while it is composed or when it ended."""
    left = max(0.0, jam.deadline - clock())
    lines = [f"Jam: {jam.title}", f"Host: {jam.host_name}",
             f"Closes in {format_wait(left)}" if jam.is_open else progress or piece_progress(jam.status),
             f"Contributions: {len(jam.entries)} of {jam.max_contributions}"]
    for number, entry in enumerate(jam.entries, start=1):
        caption = f' "{entry.caption}"' if entry.caption else ""
        lines.append(f"{number}. {entry.user_name}: {entry.emotion.label} "
                     f"({entry.emotion.valence:+.2f}, {entry.emotion.arousal:+.2f}){caption}")
    return "\n".join(lines)


def piece_progress(status: str, detail: str = "") -> str:
    """The board's line for its piece, so members watch it there as a single piece's requester
    watches its status message: `status` is the jam's (composing, done, failed, cancelled) and
    `detail` the status words every piece gets (bot.outcomes: the queue, the stage, the percent)
    or why it failed."""
    if status == "composing":
        return f"Progress: {detail}" if detail else "Progress: handed to the queue"
    if status == DONE:
        return "Finished: see the reply in the thread"
    if status == FAILED:
        return f"Failed: {detail}" if detail else "Failed: the piece could not be made"
    if status == CANCELLED:
        return "Cancelled"
    return f"Status: {status}"


def reader_for(service, encoder: str = "auto") -> ReadEmotion:
    """How this bot reads a contribution's picture: with the in-process engine's pipeline, or,
    on a Redis worker pool (no pipeline here), by the workers (`RedisEngine.read_picture`, which
    says why), so a readout is read by the same encoder and safety gate as the pieces are."""
    engine = service.engine
    pipeline = getattr(engine, "pipeline", None)
    if pipeline is not None:
        return pipeline_reader(pipeline, encoder)
    return engine_reader(engine, encoder)


def pipeline_reader(pipeline, encoder: str = "auto") -> ReadEmotion:
    """Read pictures with an in-process pipeline, in a thread (the bot's own encoder), as a
    worker reads them for a bot on the pool (`read_picture`: decode, safety gate, encoder)."""
    import asyncio

    from aria_engine.engine.stages import read_picture

    async def reader(image: bytes, safety: dict) -> tuple[Emotion, str]:
        return await asyncio.to_thread(read_picture, pipeline, image, GenerationOptions(encoder=encoder, **safety))

    return reader


def engine_reader(engine, encoder: str = "auto") -> ReadEmotion:
    """Read pictures with the worker pool (`RedisEngine.read_picture`): its encoder, its gate."""

    async def reader(image: bytes, safety: dict) -> tuple[Emotion, str]:
        return await engine.read_picture(image, GenerationOptions(encoder=encoder, **safety))

    return reader
