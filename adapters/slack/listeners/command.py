"""`/aria` and its subcommands: the form, `mood`, `last`, `queue`, `help`, `admin`, `forget-me`.

The ack answers what needs nothing slow: a typo in the options and `help` travel in the ack's
text. Everything else is acknowledged empty and done by the lazy function, which hands the
parsed command to the listener of its feature.
"""

from __future__ import annotations

from typing import Any

from adapters.slack import blocks as ui
from adapters.slack.app import COMMAND
from adapters.slack.parsing import parse_command
from aria_engine.emotion import Emotion
from bot.texts import sentence


class Command:
    def __init__(self, adapter: Any) -> None:
        self.adapter = adapter

    def register(self, app) -> None:
        app.command(COMMAND)(ack=self.on_command, lazy=[self.run_command])

    async def on_command(self, ack, command: dict, context) -> None:
        try:
            parsed = parse_command(command.get("text", ""))
        except ValueError as error:
            await ack(text=sentence(error))
            return
        if parsed.kind == "help":
            await ack(text=ui.help_text(context.bot_user_id))
            return
        context["parsed"] = parsed
        await ack()

    async def run_command(self, command: dict, respond, context) -> None:
        parsed = context.get("parsed")
        if parsed is None:
            return  # the ack answered it
        adapter = self.adapter
        tell = adapter.responder(respond)
        compose = adapter.listener("Compose")
        if parsed.kind == "compose":
            await compose.open_modal(command, parsed, tell)
            return
        actor = await adapter.actor(command["team_id"], command["channel_id"], command["user_id"])
        if parsed.kind == "queue":
            await tell(queue_text(adapter.service.queue(actor)))
        elif parsed.kind == "forget-me":
            await adapter.listener("Members").forget_me(actor, tell)
        elif parsed.kind in ("block", "unblock", "blocked"):
            await adapter.listener("Moderation").command(actor, parsed.kind, parsed.admin, tell)
        elif parsed.kind == "admin":
            await adapter.listener("Admin").admin(actor, parsed.admin, tell)
        elif parsed.kind == "mood":
            await compose.compose(actor, tell, options=parsed.options, explicit=parsed.explicit, thread_ts=None,
                                  emotion=Emotion(parsed.valence, parsed.arousal), private=parsed.private)
        elif parsed.kind == "last":
            await compose.compose_last(actor, tell, parsed)
        elif parsed.kind == "jam":
            await adapter.listener("JamListener").command(actor, list(parsed.admin), tell,
                                                          name=f"<@{actor.user_id}>", thread_ts=None)


def queue_text(view) -> str:
    """`/aria queue`: their pieces in line, and what today's quota leaves them."""
    lines = [f"• {entry.text}" for entry in view.entries] or ["Nothing of yours is waiting or being composed."]
    return "\n".join(lines + [view.usage_line])
