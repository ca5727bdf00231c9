"""Composing from Slack: `@ARIA` mentions, the *Compose music* message shortcut, the `/aria`
form (its submission; `/aria` itself is listeners/command.py), and the path they all share.

Each request goes: cheap checks (the file's metadata, the options) and, where the refusal must
travel in the ack (the form), the policy; the ack; then, lazily, the download, the status
message, the engine job and its ending (bot.flow). Refusals are private: `chat.postEphemeral`
for mentions, `response_url` for shortcuts and commands, the form itself for its errors.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

from slack_sdk.errors import SlackApiError

from adapters.slack import blocks as ui
from adapters.slack.app import PLATFORM
from adapters.slack.delivery import StatusMessage, Tell
from adapters.slack.files import FileRefused, check_file, download, first_image, no_image_message
from adapters.slack.parsing import mention_options, mention_privacy
from aria_engine.emotion import Emotion
from aria_engine.options import GenerationOptions
from bot.flow import AdmittedUse
from bot.outcomes import Refusal
from bot.policy import Actor
from bot.service import CANNOT_START
from bot.texts import sentence

log = logging.getLogger(__name__)
_MENTIONS = re.compile(r"<@[UW][A-Z0-9]+(?:\|[^>]*)?>")

NOT_IN_CHANNEL = ("I'm not in this channel, so I can't post here or see its pictures. "
                  "Invite me with `/invite @ARIA` and try again.")
PRIVATE_NOTICE = ("I'm composing this just for you: your music will arrive in your direct messages with me "
                  "(under Apps in Slack's sidebar).")
NO_DM_SCOPE = ("I need the `im:write` permission to send results privately; ask a workspace admin to "
               "reinstall ARIA from its updated manifest, or ask again with `public` to have it here.")


class Compose:
    def __init__(self, adapter: Any) -> None:
        self.adapter = adapter
        self.service = adapter.service
        self.config = adapter.config

    def register(self, app) -> None:
        app.event("app_mention")(ack=self.on_mention, lazy=[self.compose_from_mention])
        app.shortcut(ui.SHORTCUT)(ack=self.on_shortcut, lazy=[self.compose_from_shortcut])
        app.view_submission(ui.COMPOSE_VIEW)(ack=self.on_modal, lazy=[self.compose_from_modal])

    # -- @ARIA mentions ---------------------------------------------------------------------------

    async def on_mention(self, ack) -> None:
        await ack()

    async def compose_from_mention(self, body: dict, event: dict) -> None:
        if event.get("bot_id") or event.get("subtype") == "bot_message":
            return  # bots (ARIA included) never start a composition
        team = body.get("team_id") or event.get("team")
        channel, user, ts = event["channel"], event["user"], event["ts"]
        thread_ts = event.get("thread_ts") or ts
        tell = self.adapter.ephemeral(channel, user, thread_ts)
        words = _MENTIONS.sub(" ", event.get("text", "")).split()
        if words and words[0].lower() == "jam":  # a jam's command (listeners/jam.py)
            actor = await self.adapter.actor(team, channel, user)
            await self.adapter.listener("JamListener").command(actor, words[1:], tell, name=f"<@{user}>",
                                                               thread_ts=event.get("thread_ts"))
            return
        try:
            options, explicit = mention_options(event.get("text", ""))
        except ValueError as error:
            await tell(sentence(error))
            return
        file, source_ts = first_image(event.get("files")), ts
        if file is None and thread_ts != ts:  # a reply in a thread: the picture the thread is under
            file, source_ts = await self._thread_parent_image(channel, thread_ts), thread_ts
        if file is None:
            await tell(no_image_message(event.get("files"), "Your message") + " (Or mention me in a thread "
                       "under a picture, or use `/aria mood VALENCE AROUSAL` for no picture at all.)")
            return
        actor = await self.adapter.actor(team, channel, user)
        await self.compose(actor, tell, options=options, explicit=explicit, thread_ts=thread_ts, file=file,
                           image_ref={"channel": channel, "ts": source_ts, "file_id": file.get("id")},
                           private=mention_privacy(event.get("text", "")))

    async def _thread_parent_image(self, channel: str, thread_ts: str) -> dict | None:
        try:
            response = await self.adapter.client.conversations_replies(channel=channel, ts=thread_ts, limit=1)
        except SlackApiError as error:
            log.info("conversations.replies failed: %s", error.response.get("error"))
            return None
        messages = response.get("messages") or []
        return first_image(messages[0].get("files")) if messages else None

    # -- the message shortcut -----------------------------------------------------------------------

    async def on_shortcut(self, ack) -> None:
        await ack()

    async def compose_from_shortcut(self, body: dict, respond) -> None:
        tell = self.adapter.responder(respond)
        message = body.get("message") or {}
        file = first_image(message.get("files"))
        if file is None:
            await tell(no_image_message(message.get("files")) + " Use *Compose music* on a message with a picture.")
            return
        team, channel, user = body["team"]["id"], body["channel"]["id"], body["user"]["id"]
        actor = await self.adapter.actor(team, channel, user)
        thread_ts = message.get("thread_ts") or message.get("ts") or body.get("message_ts")
        await self.compose(actor, tell, options=GenerationOptions(), explicit=frozenset(), thread_ts=thread_ts,
                           file=file, image_ref={"channel": channel, "ts": message.get("ts"), "file_id": file.get("id")})

    # -- /aria last ---------------------------------------------------------------------------------

    async def compose_last(self, actor: Actor, tell: Tell, parsed) -> None:
        """The newest picture this person posted in this channel within the window."""
        oldest = time.time() - self.config.last_image_window_s
        try:
            response = await self.adapter.client.conversations_history(channel=actor.channel_id,
                                                                       oldest=f"{oldest:.6f}", limit=200)
        except SlackApiError as error:
            code = error.response.get("error")
            await tell(NOT_IN_CHANNEL if code in ("not_in_channel", "channel_not_found")
                       else f"I couldn't read this channel's history ({code}).")
            return
        minutes = round(self.config.last_image_window_s / 60)
        for message in response.get("messages") or []:
            file = first_image(message.get("files")) if message.get("user") == actor.user_id else None
            if file is not None:
                thread_ts = message.get("thread_ts") or message["ts"]
                await self.compose(actor, tell, options=parsed.options, explicit=parsed.explicit, thread_ts=thread_ts,
                                   file=file, image_ref={"channel": actor.channel_id, "ts": message["ts"],
                                                         "file_id": file.get("id")}, private=parsed.private)
                return
        await tell(f"I found no picture you posted in this channel in the last {minutes} minutes. "
                   "Post one (or use `/aria` to upload one in a form) and try again.")

    # -- the /aria form -------------------------------------------------------------------------------

    async def open_modal(self, command: dict, parsed, tell: Tell) -> None:
        """`/aria` (perhaps with options): the form, pre-filled with what was typed."""
        team, channel, user = command["team_id"], command["channel_id"], command["user_id"]
        actor = Actor(PLATFORM, team, channel, user)
        limits = self.service.limits(actor)
        options = self.service.policy.fit_defaults(actor, parsed.options, parsed.explicit)
        private = limits["private_by_default"] if parsed.private is None else parsed.private
        view = ui.compose_modal(channel, options, parsed.explicit, limits["allowed_modes"], private=private)
        try:
            await self.adapter.client.views_open(trigger_id=command["trigger_id"], view=view)
        except SlackApiError as error:
            log.warning("views.open failed: %s", error.response.get("error"))
            await tell("I couldn't open the form just now; please run `/aria` again.")

    async def on_modal(self, ack, body: dict, view: dict, context) -> None:
        """The form's answer must carry its errors or the policy's refusal, so both are decided
        here, before the ack; what was admitted goes to the lazy part in `context`."""
        file, chosen, errors = ui.read_modal(view)
        if file is not None and ui.PICTURE not in errors:
            try:
                check_file(file, self.config.max_download_bytes, self.adapter.file_origins)
            except FileRefused as refused:
                errors[ui.PICTURE] = str(refused)
        meta = json.loads(view.get("private_metadata") or "{}")
        channel = meta.get("channel")
        if not errors and not channel:
            errors[ui.PICTURE] = "I lost track of the channel this form belongs to; please run /aria again."
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        team, user = body["team"]["id"], body["user"]["id"]
        actor = await self.adapter.actor(team, channel, user)
        typed = set(meta.get("explicit", []))
        fitted = self.service.policy.fit_defaults(actor, GenerationOptions(), typed)
        explicit = frozenset(k for k, v in chosen.items() if k in typed or v != getattr(fitted, k))
        try:
            options = GenerationOptions(**chosen)
        except ValueError as error:
            await ack(response_action="errors", errors={ui.MODE: sentence(error)})
            return
        admission = self.service.admit(actor, options, explicit=explicit)
        if isinstance(admission, Refusal):
            await ack(response_action="update", view=ui.notice_modal("Not right now", admission.message))
            return
        context["admitted"] = {"actor": actor, "admission": admission, "explicit": explicit, "file": file,
                               "channel": channel, "user": user, "private": ui.read_private(view)}
        await ack()

    async def compose_from_modal(self, context) -> None:
        admitted = context.get("admitted")
        if admitted is None:
            return  # the ack answered it (errors, or a refusal)
        channel, user = admitted["channel"], admitted["user"]
        await self.run_admitted(admitted["actor"], self.adapter.ephemeral(channel, user), admitted["admission"],
                                explicit=admitted["explicit"], thread_ts=None, file=admitted["file"],
                                first_line=f"<@{user}> shared a picture: reading its mood...",
                                private=admitted["private"])

    # -- composing, whatever the entry point ------------------------------------------------------------

    async def compose(self, actor: Actor, tell: Tell, *, options: GenerationOptions, explicit: frozenset[str],
                      thread_ts: str | None, file: dict | None = None, emotion: Emotion | None = None,
                      image_ref: dict | None = None, private: bool | None = None) -> None:
        """Checks, policy, then `run_admitted`. Every refusal goes to `tell`."""
        if file is not None:
            try:
                check_file(file, self.config.max_download_bytes, self.adapter.file_origins)
            except FileRefused as refused:
                await tell(str(refused))
                return
        admission = self.service.admit(actor, options, explicit=explicit, kind="mood" if emotion else "compose")
        if isinstance(admission, Refusal):
            await tell(admission.message)
            return
        await self.run_admitted(actor, tell, admission, explicit=explicit, thread_ts=thread_ts, file=file,
                                emotion=emotion, image_ref=image_ref, private=private)

    async def run_admitted(self, actor: Actor, tell: Tell, admission: Any, *, explicit: frozenset[str],
                           thread_ts: str | None, file: dict | None = None, emotion: Emotion | None = None,
                           image_ref: dict | None = None, first_line: str | None = None,
                           private: bool | None = None) -> None:
        """The slow part once the policy said yes: download, status message, engine, result.
        The use is given back whenever the job cannot run. `private` (None: this place's
        `private_by_default`) sends the status and the result to the requester's DMs instead."""
        with self.adapter.flow.admitted(admission) as use:
            try:
                if private is None:
                    private = self.service.private_by_default(actor)
                image = None
                if file is not None:
                    try:
                        image = await download(self.adapter.downloads, file, token=self.config.bot_token,
                                               max_bytes=self.config.max_download_bytes,
                                               allowed=self.adapter.file_origins)
                    except FileRefused as refused:
                        use.give_back()
                        await tell(str(refused))
                        return
                    image_ref = image_ref or {"file_id": file.get("id")}
                status = await self.open_status(actor, tell, use, thread_ts, first_line or _first_line(emotion),
                                                private=private)
                if status is None:
                    return
                ticket = await use.submit(image=image, emotion=emotion, upload_limit=self.config.upload_limit_bytes,
                                          image_ref=image_ref, extra={"explicit": sorted(explicit),
                                                                      "thread_ts": status.thread_ts,
                                                                      "private": private})
            except Exception:  # a bug before the job exists: the use goes back, and the person hears why
                log.exception("could not start a piece for %s", actor.user_id)
                use.give_back()
                await tell(CANNOT_START)
                return
        await self.adapter.flow.run(ticket, status)

    async def open_status(self, actor: Actor, tell: Tell, use: AdmittedUse, thread_ts: str | None, first_line: str,
                          *, private: bool = False, thread_channel: str | None = None) -> StatusMessage | None:
        """The status message, posted before the job exists so that a place we can't post in
        costs nobody a use; None if Slack refuses it (the use given back, then the requester
        told why, so that asking again at once is not refused by the cooldown).

        Public: in the request's channel, in the thread `thread_ts` (of `thread_channel`, by
        default the request's channel). Private: in the requester's direct messages with ARIA
        (the thread kept only if it is there), and they are told so where they asked.
        """
        channel = actor.channel_id
        try:
            if private:
                channel = await self._direct_channel(actor.user_id)
            if channel != (thread_channel or actor.channel_id):
                thread_ts = None
            status = StatusMessage(self.adapter.client, self.service, channel, thread_ts, actor.user_id, tell)
            await status.post(first_line, None)
        except SlackApiError as error:
            use.give_back()
            await tell(_cannot_post(error.response.get("error"), private))
            return None
        if private and channel != (thread_channel or actor.channel_id):
            await tell(PRIVATE_NOTICE)
        return status

    async def _direct_channel(self, user_id: str) -> str:
        """The requester's direct-message channel with ARIA (conversations.open, scope im:write)."""
        response = await self.adapter.client.conversations_open(users=user_id)
        return response["channel"]["id"]


def _cannot_post(code: str | None, private: bool) -> str:
    """Why a status message could not be posted, for the requester."""
    if code in ("not_in_channel", "channel_not_found"):
        return NOT_IN_CHANNEL
    if private and code == "missing_scope":
        return NO_DM_SCOPE
    if private:
        return (f"I couldn't send you a direct message ({code}), so I can't send this privately. "
                "Ask again with `public` to have it here.")
    return f"I couldn't post in this channel ({code})."


def _first_line(emotion: Emotion | None) -> str:
    if emotion is not None:
        return f"Composing for valence {emotion.valence:+.2f}, arousal {emotion.arousal:+.2f}..."
    return "Got your picture: reading its mood..."
