"""The Slack app: bolt listeners for mentions, the message shortcut, `/aria`, the modal and the
buttons, all on one `AsyncApp`, whether it runs over Socket Mode or HTTP.

Every listener acknowledges first (Slack wants that within 3 s; the cheap checks that can refuse
come before it only where the refusal travels in the ack) and then does the slow part: download,
engine, status edits, uploads. Refusals are private: the ack's text for `/aria`, `response_url`
for shortcuts and buttons, `chat.postEphemeral` for mentions, the modal itself for its form.
Whatever a listener raises ends in the log and in a polite private message; never in a crash.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import re
import time
from typing import Any, Awaitable, Callable

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import blocks as ui
from adapters.slack.config import SlackConfig
from adapters.slack.delivery import StatusMessage, Tell
from adapters.slack.files import FileRefused, check_file, download, file_origins, first_image, no_image_message
from adapters.slack.groups import GroupError, UserGroups, mention, mentions
from adapters.slack.parsing import mention_options, mention_privacy, parse_admin, parse_command
from aria_engine.emotion import Emotion
from aria_engine.options import GenerationOptions
from bot.policy import Actor
from bot.service import CANNOT_START, Refusal, Resumption, Ticket
from bot.settings import server_key

log = logging.getLogger(__name__)

PLATFORM = "slack"
COMMAND = "/aria"
EVENTS = ("app_mention", "subteam_members_changed")  # the bot events the app subscribes to (manifest.yml)
SORRY = "Sorry, something went wrong on my side. Please try again."
NOT_IN_CHANNEL = ("I'm not in this channel, so I can't post here or see its pictures. "
                  "Invite me with `/invite @ARIA` and try again.")
RESUMED = "ARIA restarted and picked your piece up again: on its way..."
PRIVATE_NOTICE = ("I'm composing this just for you: your music will arrive in your direct messages with me "
                  "(under Apps in Slack's sidebar).")
NO_DM_SCOPE = ("I need the `im:write` permission to send results privately; ask a workspace admin to "
               "reinstall ARIA from its updated manifest, or ask again with `public` to have it here.")
ADMIN_ONLY = "Only workspace admins and owners (or users listed in admin_user_ids) can change ARIA's settings."


def sentence(error: Exception | str) -> str:
    """An error's message as a sentence: capital first letter, full stop."""
    text = str(error).strip()
    if not text:
        return SORRY
    first = text.split(maxsplit=1)[0]
    if first.isalpha():  # "length must be..." -> "Length must be..."; leave "cooldown_s must..." alone
        text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?", "`")) else text + "."


def guarded(listener: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Acknowledge and apologise if a listener fails before doing so; log everything."""

    @functools.wraps(listener)
    async def run(self: "SlackAdapter", **kwargs: Any) -> None:
        ack = kwargs.get("ack")
        try:
            await listener(self, **kwargs)
        except Exception:
            log.exception("listener %s failed", listener.__name__)
            if ack is not None and ack.response is None:
                await ack()
            respond = kwargs.get("respond")
            try:
                if respond is not None and kwargs.get("body", {}).get("response_url"):
                    await respond(text=SORRY, response_type="ephemeral", replace_original=False)
            except Exception:
                log.warning("could not apologise", exc_info=True)

    return run


class SlackAdapter:
    """ARIA's Slack listeners over one bot service. `app` is the bolt AsyncApp to run."""

    def __init__(self, config: SlackConfig, service: Any, *, client: AsyncWebClient | None = None) -> None:
        self.config = config
        self.service = service
        self.client = client or AsyncWebClient(token=config.bot_token, base_url=config.web_api_base)
        self._admins: dict[tuple[str, str], tuple[float, bool]] = {}
        self.groups = UserGroups(self.client, config.group_cache_s)
        self._resumed: set[asyncio.Task] = set()  # pieces from before a restart (the engine's close ends them)
        self._downloads: aiohttp.ClientSession | None = None
        self.file_origins = file_origins(config.api_base)  # where the bot token may go for a file
        self.app = self._build_app()

    def _build_app(self) -> AsyncApp:
        app = AsyncApp(client=self.client, signing_secret=self.config.signing_secret or None,
                       request_verification_enabled=self.config.http, process_before_response=False)
        app.middleware(self._deduplicate)
        app.event("app_mention")(self.on_mention)
        app.event("subteam_members_changed")(self.on_group_change)
        app.shortcut(ui.SHORTCUT)(self.on_shortcut)
        app.command(COMMAND)(self.on_command)
        app.view_submission(ui.COMPOSE_VIEW)(self.on_modal)
        app.action(ui.VARIATION)(self.on_variation)
        app.action(ui.ANOTHER_MODE)(self.on_another_mode)
        app.action(ui.CANCEL)(self.on_cancel)
        # Whatever else arrives is acknowledged, so Slack neither retries it nor shows an error.
        app.action(re.compile(".*"))(self._ack_only)
        app.view(re.compile(".*"))(self._ack_only)
        app.shortcut(re.compile(".*"))(self.on_unknown_shortcut)
        app.event(re.compile(".*"))(self._ignore)
        app.error(self._on_error)
        return app

    async def close(self) -> None:
        if self._downloads is not None:
            await self._downloads.close()

    async def pick_up_unfinished(self) -> Resumption:
        """At start-up: pieces the last process left unfinished. Those the engine still makes (a
        Redis worker pool carries on through a restart) are followed to their end in their status
        message; the others end failed and their requesters are told why. None vanish."""
        resumption = await self.service.resume_unfinished(PLATFORM)
        for record in resumption.lost:
            await self._tell_lost(record)
        for ticket in resumption.tickets:
            task = asyncio.get_running_loop().create_task(self._follow_resumed(ticket))
            self._resumed.add(task)
            task.add_done_callback(self._resumed.discard)
        return resumption

    async def _tell_lost(self, record) -> None:
        text = f"<@{record.user_id}> {self.service.lost_notice(record)}"
        try:
            if record.message_id and record.message_channel_id:
                await self.client.chat_update(channel=record.message_channel_id, ts=record.message_id, text=text,
                                              blocks=[ui.section(text)])
            else:
                await self.client.chat_postEphemeral(channel=record.channel_id, user=record.user_id, text=text)
        except SlackApiError as error:
            log.warning("could not tell %s about a lost job: %s", record.user_id, error.response.get("error"))

    async def _follow_resumed(self, ticket: Ticket) -> None:
        """A piece from before the restart: its status message says so, then shows it through."""
        record = ticket.record
        tell = self._ephemeral(record.channel_id, record.user_id)
        status = StatusMessage(self.client, record.message_channel_id or record.channel_id,
                               record.extra.get("thread_ts"), record.user_id, self.config.progress_interval_s)
        try:
            if record.message_id:
                status.ts = record.message_id
                await status.show(RESUMED, record.result_id)
            else:  # the restart came between the job and its status message
                await status.post(RESUMED, record.result_id)
                self.service.attach_message(record.result_id, status.channel, status.ts)
        except SlackApiError as error:
            log.warning("could not show a resumed piece's status: %s", error.response.get("error"))
        await status.follow(self.service, ticket, tell)

    # -- plumbing ---------------------------------------------------------------------------------------

    async def _deduplicate(self, body: dict, next: Callable[[], Awaitable[Any]]) -> Any:
        """Do every request Slack could send again at most once: an Events API retry, or a slash
        command, shortcut, click or form submission replayed (its signature still fresh) or sent
        twice. The keys seen are kept in the store, so a restart forgets none of them."""
        key = request_key(body)
        if key and not self.service.store.first_sighting(key, keep_s=self.config.dedupe_window_s):
            log.info("ignoring a repeat of %s", key)
            return BoltResponse(status=200, body="")
        return await next()

    async def on_group_change(self, event: dict) -> None:
        """A user group's members changed: the next check asks Slack again."""
        self.groups.forget(event.get("subteam_id", ""))

    async def _ack_only(self, ack) -> None:
        await ack()

    async def _ignore(self) -> None:
        return None

    async def on_unknown_shortcut(self, ack, respond) -> None:
        await ack()
        await respond(text="I don't know that shortcut; try *Compose music*.", response_type="ephemeral")

    async def _on_error(self, error: Exception, body: dict) -> None:
        log.error("unhandled error for a %s request: %s", body.get("type") or body.get("command"), error,
                  exc_info=error)

    @property
    def downloads(self) -> aiohttp.ClientSession:
        if self._downloads is None or self._downloads.closed:
            self._downloads = aiohttp.ClientSession()
        return self._downloads

    async def actor(self, team_id: str, channel_id: str, user_id: str) -> Actor:
        """Who asks, with Slack's admin flag and, where ARIA is limited to some user groups,
        which of those groups they are in (Slack's stand-in for Discord's roles)."""
        allowed = self.service.settings.get("allowed_roles", server=server_key(PLATFORM, team_id),
                                            channel=channel_id, user=user_id)
        groups = await self.groups.groups_of(team_id, user_id, allowed) if allowed else ()
        return Actor(PLATFORM, team_id, channel_id, user_id, role_ids=groups,
                     is_admin=await self.workspace_admin(team_id, user_id))

    async def workspace_admin(self, team_id: str, user_id: str) -> bool:
        """Slack's own admin or owner flag (users.info), remembered for a few minutes."""
        key, now = (team_id, user_id), time.monotonic()
        cached = self._admins.get(key)
        if cached and now - cached[0] < self.config.admin_cache_s:
            return cached[1]
        try:
            user = (await self.client.users_info(user=user_id))["user"]
            admin = bool(user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"))
        except SlackApiError as error:
            log.warning("users.info %s failed: %s", user_id, error.response.get("error"))
            return False
        self._admins[key] = (now, admin)
        return admin

    def _ephemeral(self, channel: str, user: str, thread_ts: str | None = None) -> Tell:
        async def tell(text: str) -> None:
            try:
                await self.client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts)
            except SlackApiError as error:
                log.warning("could not tell %s privately: %s", user, error.response.get("error"))
        return tell

    @staticmethod
    def _responder(respond) -> Tell:
        async def tell(text: str) -> None:
            try:
                await respond(text=text, response_type="ephemeral", replace_original=False)
            except Exception:
                log.warning("could not answer through response_url", exc_info=True)
        return tell

    # -- composing, whatever the entry point ----------------------------------------------------------

    async def compose(self, actor: Actor, tell: Tell, *, options: GenerationOptions, explicit: frozenset[str],
                      thread_ts: str | None, file: dict | None = None, emotion: Emotion | None = None,
                      image_ref: dict | None = None, private: bool | None = None) -> None:
        """Checks, policy, then `run_admitted`. Every refusal goes to `tell`."""
        if file is not None:
            try:
                check_file(file, self.config.max_download_bytes, self.file_origins)
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
        try:
            if private is None:
                private = self.service.private_by_default(actor)
            image = None
            if file is not None:
                try:
                    image = await download(self.downloads, file, token=self.config.bot_token,
                                           max_bytes=self.config.max_download_bytes, allowed=self.file_origins)
                except FileRefused as refused:
                    self.service.release(admission)
                    await tell(str(refused))
                    return
                image_ref = image_ref or {"file_id": file.get("id")}
            status = await self.open_status(actor, tell, admission, thread_ts, first_line or _first_line(emotion),
                                            private=private)
            if status is None:
                return
            ticket = await self.service.submit(admission, image=image, emotion=emotion,
                                               upload_limit=self.config.upload_limit_bytes, image_ref=image_ref,
                                               extra={"explicit": sorted(explicit), "thread_ts": status.thread_ts,
                                                      "private": private})
        except Exception:  # a bug before the job exists: the use goes back, and the person hears why
            log.exception("could not start a piece for %s", actor.user_id)
            self.service.release(admission)
            await tell(CANNOT_START)
            return
        await self.follow(status, ticket, tell)

    async def open_status(self, actor: Actor, tell: Tell, admission: Any, thread_ts: str | None, first_line: str, *,
                          private: bool = False, thread_channel: str | None = None) -> StatusMessage | None:
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
            status = StatusMessage(self.client, channel, thread_ts, actor.user_id, self.config.progress_interval_s)
            await status.post(first_line, None)
        except SlackApiError as error:
            self.service.release(admission)
            await tell(_cannot_post(error.response.get("error"), private))
            return None
        if private and channel != (thread_channel or actor.channel_id):
            await tell(PRIVATE_NOTICE)
        return status

    async def _direct_channel(self, user_id: str) -> str:
        """The requester's direct-message channel with ARIA (conversations.open, scope im:write)."""
        response = await self.client.conversations_open(users=user_id)
        return response["channel"]["id"]

    async def follow(self, status: StatusMessage, ticket: Ticket | Refusal, tell: Tell) -> None:
        """Follow a submitted job to its end; an engine refusal takes the status message back."""
        if isinstance(ticket, Refusal):
            await status.withdraw()
            await tell(ticket.message)
            return
        self.service.attach_message(ticket.result_id, status.channel, status.ts)  # found again after a restart
        await status.follow(self.service, ticket, tell)

    # -- @ARIA mentions --------------------------------------------------------------------------------

    @guarded
    async def on_mention(self, body: dict, event: dict) -> None:
        if event.get("bot_id") or event.get("subtype") == "bot_message":
            return  # bots (ARIA included) never start a composition
        team = body.get("team_id") or event.get("team")
        channel, user, ts = event["channel"], event["user"], event["ts"]
        thread_ts = event.get("thread_ts") or ts
        tell = self._ephemeral(channel, user, thread_ts)
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
        actor = await self.actor(team, channel, user)
        await self.compose(actor, tell, options=options, explicit=explicit, thread_ts=thread_ts, file=file,
                           image_ref={"channel": channel, "ts": source_ts, "file_id": file.get("id")},
                           private=mention_privacy(event.get("text", "")))

    async def _thread_parent_image(self, channel: str, thread_ts: str) -> dict | None:
        try:
            response = await self.client.conversations_replies(channel=channel, ts=thread_ts, limit=1)
        except SlackApiError as error:
            log.info("conversations.replies failed: %s", error.response.get("error"))
            return None
        messages = response.get("messages") or []
        return first_image(messages[0].get("files")) if messages else None

    # -- the message shortcut ------------------------------------------------------------------------------

    @guarded
    async def on_shortcut(self, ack, body: dict, respond) -> None:
        await ack()
        tell = self._responder(respond)
        message = body.get("message") or {}
        file = first_image(message.get("files"))
        if file is None:
            await tell(no_image_message(message.get("files")) + " Use *Compose music* on a message with a picture.")
            return
        team, channel, user = body["team"]["id"], body["channel"]["id"], body["user"]["id"]
        actor = await self.actor(team, channel, user)
        thread_ts = message.get("thread_ts") or message.get("ts") or body.get("message_ts")
        await self.compose(actor, tell, options=GenerationOptions(), explicit=frozenset(), thread_ts=thread_ts,
                           file=file, image_ref={"channel": channel, "ts": message.get("ts"), "file_id": file.get("id")})

    # -- /aria ------------------------------------------------------------------------------------------

    @guarded
    async def on_command(self, ack, command: dict, respond, context) -> None:
        try:
            parsed = parse_command(command.get("text", ""))
        except ValueError as error:
            await ack(text=sentence(error))
            return
        team, channel, user = command["team_id"], command["channel_id"], command["user_id"]
        if parsed.kind == "help":
            await ack(text=ui.help_text(context.bot_user_id))
            return
        if parsed.kind == "compose":
            await self._open_modal(ack, command, parsed, self._responder(respond))
            return
        await ack()
        tell = self._responder(respond)
        actor = await self.actor(team, channel, user)
        if parsed.kind == "queue":
            await tell(self._queue_text(actor))
        elif parsed.kind == "admin":
            await self.admin(actor, parsed.admin, tell)
        elif parsed.kind == "mood":
            emotion = Emotion(parsed.valence, parsed.arousal)
            await self.compose(actor, tell, options=parsed.options, explicit=parsed.explicit, thread_ts=None,
                               emotion=emotion, private=parsed.private)
        elif parsed.kind == "last":
            await self._compose_last(actor, tell, parsed)

    async def _open_modal(self, ack, command: dict, parsed, tell: Tell) -> None:
        team, channel, user = command["team_id"], command["channel_id"], command["user_id"]
        actor = Actor(PLATFORM, team, channel, user)
        limits = self.service.limits(actor)
        options = self.service.policy.fit_defaults(actor, parsed.options, parsed.explicit)
        private = limits["private_by_default"] if parsed.private is None else parsed.private
        view = ui.compose_modal(channel, options, parsed.explicit, limits["allowed_modes"], private=private)
        await ack()
        try:
            await self.client.views_open(trigger_id=command["trigger_id"], view=view)
        except SlackApiError as error:
            log.warning("views.open failed: %s", error.response.get("error"))
            await tell("I couldn't open the form just now; please run `/aria` again.")

    async def _compose_last(self, actor: Actor, tell: Tell, parsed) -> None:
        """The newest picture this person posted in this channel within the window."""
        oldest = time.time() - self.config.last_image_window_s
        try:
            response = await self.client.conversations_history(channel=actor.channel_id, oldest=f"{oldest:.6f}",
                                                               limit=200)
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

    def _queue_text(self, actor: Actor) -> str:
        view = self.service.queue(actor)
        lines = [f"• {entry.text}" for entry in view.entries] or ["Nothing of yours is waiting or being composed."]
        return "\n".join(lines + [view.usage_line])

    # -- the modal ------------------------------------------------------------------------------------

    @guarded
    async def on_modal(self, ack, body: dict, view: dict) -> None:
        file, chosen, errors = ui.read_modal(view)
        if file is not None and ui.PICTURE not in errors:
            try:
                check_file(file, self.config.max_download_bytes, self.file_origins)
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
        actor = await self.actor(team, channel, user)
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
        await ack()
        await self.run_admitted(actor, self._ephemeral(channel, user), admission, explicit=explicit, thread_ts=None,
                                file=file, first_line=f"<@{user}> shared a picture: reading its mood...",
                                private=ui.read_private(view))

    # -- buttons ----------------------------------------------------------------------------------------

    @guarded
    async def on_variation(self, ack, body: dict, action: dict, respond) -> None:
        await ack()
        result_id = ui.result_id_of(action) or ""
        actor = await self._clicker(body, result_id)
        asked = self.service.variation(actor, result_id, upload_limit=self.config.upload_limit_bytes)
        await self._again(actor, body, result_id, asked, self._responder(respond))

    @guarded
    async def on_another_mode(self, ack, body: dict, action: dict, respond) -> None:
        await ack()
        result_id = ui.result_id_of(action) or ""
        actor = await self._clicker(body, result_id)
        mode = (action.get("selected_option") or {}).get("value", "")
        asked = self.service.another_mode(actor, result_id, mode, upload_limit=self.config.upload_limit_bytes)
        await self._again(actor, body, result_id, asked, self._responder(respond))

    @guarded
    async def on_cancel(self, ack, body: dict, action: dict, respond) -> None:
        await ack()
        result_id = ui.result_id_of(action) or ""
        actor = await self._clicker(body, result_id)
        await self._responder(respond)(self.service.cancel(actor, result_id))

    async def _clicker(self, body: dict, result_id: str) -> Actor:
        """Who clicked, placed where the piece was asked for: a private piece's buttons are in a
        direct message, but the channel it came from keeps its settings (enabled, limits...)."""
        record = self.service.result(result_id)
        channel = record.channel_id if record is not None else _click_channel(body)
        return await self.actor(body["team"]["id"], channel, body["user"]["id"])

    async def _again(self, actor: Actor, body: dict, result_id: str, asked, tell: Tell) -> None:
        """A variation or another mode: in the clicked piece's thread, or, if that piece was
        private (or the clicker's results are), in the clicker's direct messages."""
        if isinstance(asked, Refusal):
            await tell(asked.message)
            return
        admission, request = asked
        record = self.service.result(result_id)
        private = bool(record and record.extra.get("private")) or self.service.private_by_default(actor)
        message = body.get("message") or {}
        thread_ts = message.get("thread_ts") or message.get("ts")
        what = "another mode" if admission.kind == "another_mode" else "a variation"
        status = await self.open_status(actor, tell, admission, thread_ts,
                                        f"<@{actor.user_id}> asked for {what}: on its way...",
                                        private=private, thread_channel=_click_channel(body))
        if status is None:
            return
        ticket = await self.service.submit_request(admission, request,
                                                   extra={"thread_ts": status.thread_ts, "private": private})
        await self.follow(status, ticket, tell)

    # -- /aria admin ---------------------------------------------------------------------------------------

    async def admin(self, actor: Actor, words: tuple[str, ...], tell: Tell) -> None:
        if not self.service.is_admin(actor):
            await tell(ADMIN_ONLY)
            return
        try:
            action, name, value, channel = parse_admin(words)
            if action == "groups":
                await self.admin_groups(actor, name, value, channel, tell)
                return
            if action == "show":
                await tell(ui.settings_text(self.service.describe_settings(actor, channel)))
                return
            if action == "set":
                change = self.service.change_setting(actor, name, value, channel=channel)
            else:
                change = self.service.reset_setting(actor, name, channel=channel)
        except (ValueError, PermissionError) as error:
            await tell(sentence(error))
            return
        await tell(change.message)
        await self._audit(change)

    async def admin_groups(self, actor: Actor, verb: str | None, typed: str | None, channel: str | None,
                           tell: Tell) -> None:
        """`/aria admin groups [allow|remove GROUP... | everyone] [#channel]`: limit ARIA to members of
        some user groups (its `allowed_roles` on Slack), here or in one channel; no verb shows them."""
        where = f"in <#{channel}>" if channel else "in this workspace"
        current = list(self.service.settings.get("allowed_roles", server=actor.server_key, channel=channel))
        if verb is None:
            shown = self.service.settings.get("allowed_roles", server=actor.server_key,
                                              channel=channel or actor.channel_id)
            await tell(_groups_line(shown, f"in <#{channel or actor.channel_id}>")
                       + " Change it with `/aria admin groups allow @GROUP [#channel]`, `remove @GROUP` "
                         "or `everyone`.")
            return
        sizes: dict[str, int | None] = {}
        if verb == "everyone":
            wanted: list[str] = []
        else:
            try:
                for word in (typed or "").split():
                    group_id, size = await self.groups.resolve(actor.server_id, word, check=verb == "allow")
                    sizes[group_id] = size
            except GroupError as error:
                await tell(str(error))
                return
            wanted = (current + [g for g in sizes if g not in current] if verb == "allow"
                      else [g for g in current if g not in sizes])
        change = self.service.change_setting(actor, "allowed_roles", wanted, channel=channel)
        counts = " ".join(f"{mention(g)} has {n} member{'' if n == 1 else 's'}." for g, n in sizes.items()
                          if verb == "allow")
        await tell(" ".join(filter(None, [_groups_line(wanted, where), counts])))
        await self._audit(change)

    async def _audit(self, change) -> None:
        if change.audit_channel:
            try:
                await self.client.chat_postMessage(channel=change.audit_channel, text=change.audit_text)
            except SlackApiError as error:
                log.warning("could not post to the audit channel: %s", error.response.get("error"))


def request_key(body: dict) -> str | None:
    """What makes this request unique, for `Store.first_sighting` (None: nothing to do twice).

    Events carry an `event_id`, the same on every retry. Every interaction a person starts (slash
    command, shortcut, button or select, form submission) carries a `trigger_id` that Slack issues
    once per action; a form submitted again after an error has a new one. Anything without either
    is keyed by a digest of the whole payload, which a replay repeats byte for byte.
    """
    kind = body.get("type") or ("slash_command" if "command" in body else None)
    if kind in (None, "url_verification") or body.get("ssl_check"):
        return None
    if kind == "event_callback":
        return f"{PLATFORM}:{body['event_id']}" if body.get("event_id") else None
    if isinstance(body.get("trigger_id"), str) and body["trigger_id"]:
        return f"{PLATFORM}:{kind}:{body['trigger_id']}"
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
    return f"{PLATFORM}:{kind}:sha256:{digest}"


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


def _click_channel(body: dict) -> str | None:
    return (body.get("channel") or {}).get("id") or body.get("container", {}).get("channel_id")


def _groups_line(groups: list[str], where: str) -> str:
    if not groups:
        return f"ARIA is open to everyone {where}."
    return (f"ARIA {where} is for members of {mentions(groups)} (and workspace admins); "
            "everyone else is told it is limited to certain user groups.")


def _first_line(emotion: Emotion | None) -> str:
    if emotion is not None:
        return f"Composing for valence {emotion.valence:+.2f}, arousal {emotion.arousal:+.2f}..."
    return "Got your picture: reading its mood..."


def create_app(config: SlackConfig, service: Any, *, client: AsyncWebClient | None = None) -> SlackAdapter:
    """The adapter; run `adapter.app` with `runner.SocketModeRunner` or `runner.HttpRunner`."""
    return SlackAdapter(config, service, client=client)
