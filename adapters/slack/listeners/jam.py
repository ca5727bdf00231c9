"""Jams on Slack: `/aria jam start ...` or `@ARIA jam start ...` posts the jam board in the
channel; the board's thread is the jam. Members post pictures in the thread (the `message`
events of the manifest), or `@ARIA jam mood V A [caption]` there, or press *Add a mood*; each
contribution gets its readout in the thread and the board is redrawn (with the trajectory chart).
The host's *Finish* (or `@ARIA jam finish`), the deadline or the last allowed contribution
composes the piece, delivered in the thread as any result is; `@ARIA jam extend V A [caption]`
there continues a finished jam (the whole longer piece, the new section marked). A moderator (a workspace admin or
an ARIA admin) may `@ARIA jam remove N` and cancel. The rules are bot/jams.py's.

A contribution counts only when it comes in the jam's thread: a message whose `thread_ts` is the
board's, or the board's own *Add a mood* (the board heads the thread). `/aria jam mood ...` has
no thread, so in a channel with an open jam it gets the rules' private refusal ("Join the jam's
thread"), not a contribution. While the piece is made, the board shows its progress (the same
throttled status the thread's status message gets), then how it ended.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

from slack_sdk.errors import SlackApiError

from adapters.slack import blocks as ui
from adapters.slack.app import PLATFORM
from adapters.slack.delivery import StatusMessage, Tell
from adapters.slack.files import FileRefused, download, first_image
from aria_engine import visuals
from aria_engine.emotion import Emotion
from bot.flow import StatusAlsoShown
from bot.jam_store import Jam, JamBook
from bot.jams import JamRefused, JamService, board_text, piece_progress, reader_for, watch_deadlines
from bot.policy import Actor
from bot.texts import sentence

log = logging.getLogger(__name__)

FINISH, CANCEL, ADD_MOOD, MOOD_VIEW = "aria_jam_finish", "aria_jam_cancel", "aria_jam_mood", "aria_jam_mood_view"
MOOD_INPUTS = ("valence", "arousal", "caption")
_MENTION = re.compile(r"<@[UW][A-Z0-9]+(?:\|[^>]*)?>")
_SETTING = re.compile(r"^(minutes|max|seconds)=(\d+(?:\.\d+)?)$")
USAGE = ("Start a jam with `/aria jam start TITLE [minutes=10] [max=12] [seconds=15]`; in its thread, post "
         "pictures or `@ARIA jam mood VALENCE AROUSAL [caption]`.")


def parse_jam(words: list[str]) -> tuple[str, dict]:
    """The words after `jam`: (verb, its arguments). Raises ValueError with a usage hint."""
    verb = words[0].lower() if words else ""
    rest = words[1:]
    if verb == "start":
        settings = {m.group(1): float(m.group(2)) for m in map(_SETTING.match, rest) if m}
        title = " ".join(w for w in rest if not _SETTING.match(w))
        return "start", {"title": title, **settings}
    if verb in ("mood", "extend"):
        try:
            valence, arousal = float(rest[0]), float(rest[1])
        except (IndexError, ValueError):
            raise ValueError(f"jam {verb} takes two numbers, valence and arousal (each -1..1), then a caption") from None
        return verb, {"valence": valence, "arousal": arousal, "caption": " ".join(rest[2:])}
    if verb == "remove" and len(rest) == 1 and rest[0].isdigit():
        return "remove", {"number": int(rest[0])}
    if verb in ("finish", "cancel"):
        return verb, {}
    raise ValueError(USAGE)


def board_blocks(jam: Jam, chart_file_id: str | None, clock, progress: str | None = None) -> list[dict]:
    lines = board_text(jam, clock, progress).splitlines()
    blocks: list[dict] = [{"type": "header", "text": {"type": "plain_text", "text": lines[0][:150], "emoji": True}},
                          ui.section("\n".join(lines[1:]))]
    if chart_file_id and jam.entries:
        blocks.append({"type": "image", "slack_file": {"id": chart_file_id},
                       "alt_text": "The jam's path on the valence-arousal plane"})
    if jam.is_open:
        blocks.append(ui.context("Post pictures in this thread, or `@ARIA jam mood VALENCE AROUSAL [caption]`."))
        blocks.append({"type": "actions", "block_id": f"jam:{jam.jam_id}",
                       "elements": [ui.button("Add a mood", ADD_MOOD, jam.jam_id),
                                    ui.button("Finish", FINISH, jam.jam_id, "primary"),
                                    ui.button("Cancel", CANCEL, jam.jam_id, "danger")]})
    return blocks


def mood_modal(jam_id: str, channel: str, thread: str | None) -> dict:
    def number(name: str, label: str) -> dict:
        return {"type": "input", "block_id": name, "label": {"type": "plain_text", "text": label},
                "element": {"type": "number_input", "action_id": name, "is_decimal_allowed": True,
                            "min_value": "-1", "max_value": "1"}}
    return {"type": "modal", "callback_id": MOOD_VIEW, "title": {"type": "plain_text", "text": "Add a mood"},
            "submit": {"type": "plain_text", "text": "Add"},
            "private_metadata": json.dumps({"jam_id": jam_id, "channel": channel, "thread": thread}),
            "blocks": [number("valence", "Valence (-1 unpleasant .. +1 pleasant)"),
                       number("arousal", "Arousal (-1 calm .. +1 energetic)"),
                       {"type": "input", "block_id": "caption", "optional": True,
                        "label": {"type": "plain_text", "text": "Caption"},
                        "element": {"type": "plain_text_input", "action_id": "caption", "max_length": 120}}]}


class PieceOnTheBoard(StatusAlsoShown, StatusMessage):
    """The jam's piece: its status message in the thread, and the same throttled status on the
    board (the flow calls `show_status` at most every interval)."""


class JamListener:
    def __init__(self, adapter: Any) -> None:
        self.adapter = adapter
        self._jams: JamService | None = None
        self._watch: asyncio.Task | None = None

    @property
    def jams(self) -> JamService:
        if self._jams is None:
            service = self.adapter.service
            self._jams = JamService(service, JamBook(service.store), reader_for(service),
                                    clock=lambda: service.policy.clock())
        return self._jams

    def register(self, app) -> None:
        app.event("message")(ack=self._ack, lazy=[self.on_thread_message])
        app.action(FINISH)(ack=self._ack, lazy=[self.on_finish])
        app.action(CANCEL)(ack=self._ack, lazy=[self.on_cancel])
        app.action(ADD_MOOD)(ack=self._ack, lazy=[self.on_add_mood])
        app.view_submission(MOOD_VIEW)(ack=self._ack, lazy=[self.on_mood_submitted])

    async def _ack(self, ack) -> None:
        await ack()

    # -- the deadline --------------------------------------------------------------------------

    def start_watch(self) -> None:
        if self._watch is None and self.adapter.service is not None:
            self._watch = asyncio.ensure_future(watch_deadlines(self.jams, self._deliver,
                                                                interval_s=self.adapter.config.jam_watch_s))

    async def stop_watch(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
            self._watch = None

    # -- entry points ----------------------------------------------------------------------------

    async def command(self, actor: Actor, words: list[str], tell: Tell, *, name: str, thread_ts: str | None) -> None:
        """`/aria jam ...` (thread_ts None) or `@ARIA jam ...` (in a jam's thread, or not)."""
        try:
            verb, args = parse_jam(words)
        except ValueError as error:
            await tell(sentence(error))
            return
        if verb == "start":
            await self.start(actor, tell, name=name, **args)
            return
        jam = self._jam_of_thread(actor.channel_id, thread_ts)
        if jam is None and verb == "mood":  # the slash command has no thread: the rules refuse it
            jam = next((j for j in self.jams.open_jams(PLATFORM) if j.channel_id == actor.channel_id), None)
        if jam is None:
            await tell("Do that in a jam's thread. " + USAGE)
            return
        try:
            if verb == "mood":
                added = self.jams.add_mood(actor, name, jam.jam_id, args["valence"], args["arousal"], args["caption"],
                                           in_thread=thread_ts is not None and thread_ts == jam.board.get("ts"))
                await self._contributed(added, tell)
            elif verb == "remove":
                await self.redraw(self.jams.remove(actor, jam.jam_id, args["number"]))
                await tell(f"Contribution {args['number']} removed.")
            elif verb == "finish":
                await self.finish(actor, jam, tell)
            elif verb == "extend":
                jam, added, ticket = await self.jams.extend(
                    actor, name, jam.jam_id, emotion=Emotion(args["valence"], args["arousal"]),
                    caption=args["caption"], upload_limit=self.adapter.config.upload_limit_bytes)
                await self._say_in_thread(jam, f"{added.readout}\nExtending the jam: the longer piece follows.")
                await self._deliver(jam, ticket)
            elif verb == "cancel":
                await self._cancelled(self.jams.cancel(actor, jam.jam_id), name)
        except JamRefused as refused:
            await tell(str(refused))

    async def start(self, actor: Actor, tell: Tell, *, name: str, title: str, minutes: float = 10,
                    max: float | None = None, seconds: float | None = None) -> None:
        try:
            jam = self.jams.start(actor, name, title=title or "Jam", minutes=minutes,
                                  max_contributions=int(max) if max else None, seconds=seconds)
        except JamRefused as refused:
            await tell(str(refused))
            return
        client = self.adapter.client
        try:
            posted = await client.chat_postMessage(channel=actor.channel_id, text=board_text(jam, self.jams.clock),
                                                   blocks=board_blocks(jam, None, self.jams.clock))
        except SlackApiError as error:
            self.jams.book.claim(jam.jam_id, self.jams.clock(), to="cancelled")
            await tell(f"I couldn't post the jam here ({error.response.get('error')}).")
            return
        self.jams.book.set_board(jam.jam_id, {"channel": actor.channel_id, "ts": posted["ts"]}, self.jams.clock())

    async def on_thread_message(self, body: dict, event: dict) -> None:
        """A picture posted in a jam's thread (no mention: mentions are `app_mention`'s)."""
        if event.get("bot_id") or event.get("subtype") not in (None, "file_share") or not event.get("thread_ts"):
            return
        if f"<@{self.adapter_bot_id(body)}>" in event.get("text", ""):
            return
        file = first_image(event.get("files"))
        if file is None:
            return
        channel, user = event["channel"], event["user"]
        jam = self._jam_of_thread(channel, event["thread_ts"])
        if jam is None:
            return
        tell = self.adapter.ephemeral(channel, user, event["thread_ts"])
        actor = await self.adapter.actor(body.get("team_id") or event.get("team"), channel, user)
        try:
            image = await download(self.adapter.downloads, file, token=self.adapter.config.bot_token,
                                   max_bytes=self.adapter.config.max_download_bytes, allowed=self.adapter.file_origins)
        except FileRefused as refused:
            await tell(str(refused))
            return
        caption = _MENTION.sub("", event.get("text", "")).strip()
        try:
            added = await self.jams.add_picture(actor, f"<@{user}>", jam.jam_id, image, caption,
                                                in_thread=event["thread_ts"] == jam.board.get("ts"))
        except JamRefused as refused:
            await tell(str(refused))
            await self.adapter.listener("Moderation").post_audit(refused.audit)  # the image-safety gate's
            return
        await self._contributed(added, tell)

    @staticmethod
    def adapter_bot_id(body: dict) -> str:
        auth = (body.get("authorizations") or [{}])[0]
        return auth.get("user_id", "")

    async def on_finish(self, body: dict) -> None:
        actor, tell, jam = await self._clicked(body)
        if jam is not None:
            await self.finish(actor, jam, tell)

    async def on_cancel(self, body: dict) -> None:
        actor, tell, jam = await self._clicked(body)
        if jam is None:
            return
        try:
            await self._cancelled(self.jams.cancel(actor, jam.jam_id), f"<@{actor.user_id}>")
        except JamRefused as refused:
            await tell(str(refused))

    async def on_add_mood(self, body: dict) -> None:
        actor, tell, jam = await self._clicked(body)
        if jam is None:
            return
        try:
            container = body.get("container") or {}
            thread = container.get("thread_ts") or container.get("message_ts")  # the board heads its thread
            await self.adapter.client.views_open(trigger_id=body["trigger_id"],
                                                 view=mood_modal(jam.jam_id, actor.channel_id, thread))
        except SlackApiError as error:
            await tell(f"I couldn't open the form ({error.response.get('error')}).")

    async def on_mood_submitted(self, body: dict, view: dict) -> None:
        meta = json.loads(view.get("private_metadata") or "{}")
        values = view.get("state", {}).get("values", {})
        read = {name: (values.get(name, {}).get(name) or {}).get("value") for name in MOOD_INPUTS}
        user, channel = body["user"]["id"], meta.get("channel", "")
        jam = self.jams.book.get(meta.get("jam_id", ""))
        tell = self.adapter.ephemeral(channel, user, (jam.board.get("ts") if jam else None))
        try:
            valence, arousal = float(read["valence"]), float(read["arousal"])
        except (TypeError, ValueError):
            await tell("A mood needs a valence and an arousal, each between -1 and 1.")
            return
        actor = await self.adapter.actor(body["team"]["id"], channel, user)
        try:
            added = self.jams.add_mood(actor, f"<@{user}>", meta.get("jam_id", ""), valence, arousal, read["caption"] or "",
                                       in_thread=jam is not None and meta.get("thread") == jam.board.get("ts"))
        except JamRefused as refused:
            await tell(str(refused))
            return
        await self._contributed(added, tell)

    # -- what they do ------------------------------------------------------------------------------

    async def finish(self, actor: Actor | None, jam: Jam, tell: Tell) -> None:
        try:
            finished, ticket = await self.jams.finish(actor, jam.jam_id, upload_limit=self.adapter.config.upload_limit_bytes)
        except JamRefused as refused:
            await tell(str(refused))
            return
        await self._deliver(finished, ticket)

    async def _deliver(self, jam: Jam, ticket) -> None:
        """The piece into the jam's thread, as any result is; the board says how it went."""
        channel, thread = jam.board.get("channel", jam.channel_id), jam.board.get("ts")
        await self.redraw(jam)

        async def show_on_board(text: str) -> None:
            await self.redraw(jam, progress=piece_progress("composing", text))

        status = PieceOnTheBoard(self.adapter.client, self.adapter.service, channel, thread, jam.host_id,
                                 self.adapter.ephemeral(channel, jam.host_id, thread), on_status=show_on_board)
        try:
            await status.post(f"Composing the jam *{jam.title}*: {len(jam.entries)} sections...", ticket.result_id)
        except SlackApiError as error:
            log.warning("could not post a jam's status: %s", error.response.get("error"))
        await self.adapter.flow.run(ticket, status)
        ended, line = self.jams.settle(jam.jam_id, ticket.result_id)
        await self.redraw(ended, progress=line)

    async def _contributed(self, added, tell: Tell) -> None:
        jam = added.jam
        channel, thread = jam.board.get("channel", jam.channel_id), jam.board.get("ts")
        chart = await self._upload_chart(jam, channel, thread, added.readout)
        await self.redraw(jam, chart)
        if added.full:
            await self.finish(None, jam, tell)

    async def _upload_chart(self, jam: Jam, channel: str, thread: str | None, comment: str) -> str | None:
        png = visuals.trajectory_chart([(e.user_name, e.emotion) for e in jam.entries])
        try:
            response = await self.adapter.client.files_upload_v2(
                file_uploads=[{"content": png, "filename": "jam.trajectory.png", "title": "The jam so far"}],
                channel=channel, thread_ts=thread, initial_comment=comment)
        except SlackApiError as error:
            log.warning("could not upload a jam chart: %s", error.response.get("error"))
            return None
        files = response.get("files") or []
        return files[0]["id"] if files else None

    async def redraw(self, jam: Jam | None, chart_file_id: str | None = None, *, progress: str | None = None) -> None:
        if jam is None or not jam.board.get("ts"):
            return
        board = dict(jam.board)
        if chart_file_id:
            board["chart"] = chart_file_id
            self.jams.book.set_board(jam.jam_id, board, self.jams.clock())
        try:
            await self.adapter.client.chat_update(channel=board["channel"], ts=board["ts"],
                                                  text=board_text(jam, self.jams.clock, progress),
                                                  blocks=board_blocks(jam, board.get("chart"), self.jams.clock, progress))
        except SlackApiError as error:
            log.warning("could not redraw a jam board: %s", error.response.get("error"))

    async def _say_in_thread(self, jam: Jam, text: str) -> None:
        try:
            await self.adapter.client.chat_postMessage(channel=jam.board["channel"], thread_ts=jam.board["ts"], text=text)
        except SlackApiError as error:
            log.warning("could not post in a jam's thread: %s", error.response.get("error"))

    async def _cancelled(self, jam: Jam, by: str) -> None:
        await self.redraw(jam)
        try:
            await self.adapter.client.chat_postMessage(channel=jam.board["channel"], thread_ts=jam.board["ts"],
                                                       text=f"{by} cancelled this jam.")
        except SlackApiError as error:
            log.warning("could not say a jam was cancelled: %s", error.response.get("error"))

    async def _clicked(self, body: dict) -> tuple[Actor, Tell, Jam | None]:
        channel, user = body["channel"]["id"], body["user"]["id"]
        action = body["actions"][0]
        jam = self.jams.book.get(action.get("value", ""))
        tell = self.adapter.ephemeral(channel, user, jam.board.get("ts") if jam else None)
        actor = await self.adapter.actor(body["team"]["id"], channel, user)
        if jam is None:
            await tell("That jam no longer exists.")
        return actor, tell, jam

    def _jam_of_thread(self, channel: str, thread_ts: str | None) -> Jam | None:
        """The jam (open or not) whose board heads this thread."""
        return self.jams.book.by_board(PLATFORM, channel, thread_ts) if thread_ts else None
