"""The words for how a job ended, one place for every chat platform.

A job ends done, failed, cancelled or lost (a restart, or an engine that lost track of it); an
engine that is shutting down ends none of them in words (the next start picks them up). Both
Discord and Slack write a person as `<@id>`, so these texts are the same on both.
"""

from __future__ import annotations

from typing import Any

CANCELLED = "Cancelled."
LOST_ON_THE_WAY = "This piece was lost on the way. Sorry! Please ask again."
REFUSED_IN_PUBLIC = "I couldn't use that picture; I've told you why privately."  # the reason goes privately
RESUMED = "ARIA restarted and picked your piece up again: on its way..."
_PICKED_UP = "ARIA restarted while making it, and picked it up again"
_LATE_PRIVATE = "it took too long to answer your request privately in the channel"

# `record.error` of a job a restart lost (bot.service), and what its requester hears about it.
LOST_IN_PROCESS = "lost in a restart"  # in-process work stopped with the bot
LOST_RESUMABLE = "gone from the queue after a restart"  # the engine could not find it again
LOST_UNDELIVERED = "finished while ARIA stopped, never sent"  # see `AriaService.undelivered`


def mention(user_id: str) -> str:
    return f"<@{user_id}>"


def cancelled(by: str, requester: str) -> str:
    """A cancelled job: by its requester (or by nobody in particular), or by a moderator."""
    return CANCELLED if by in ("", requester) else f"Cancelled by {mention(by)}."


def ready(requester: str, *, private: bool, resumed: bool) -> str:
    """The line above a result posted as a new message (not in place of its status message):
    after a restart picked it up, or after the platform's window to answer in place closed."""
    if private:
        return f"Your music is ready ({_PICKED_UP if resumed else _LATE_PRIVATE})."
    return f"{mention(requester)}, your music is ready" + (f" ({_PICKED_UP})." if resumed else ".")


def files_comment(requester: str, headline: str) -> str:
    """The comment on the files of a result uploaded beside it."""
    return f"{mention(requester)} your music: {headline}"


def lost(record: Any) -> str:
    """What to tell the requester of a job a restart lost (a record from `resume_unfinished`)."""
    what = "from your picture" if record.source_kind == "image" else (
        f"for valence {record.valence:+.2f}, arousal {record.arousal:+.2f}" if record.valence is not None
        else "for your mood")
    why = {LOST_RESUMABLE: "and it was no longer in the queue when ARIA came back",
           LOST_UNDELIVERED: "and it was finished just as ARIA stopped, before it could be sent"}.get(
               record.error, "and a restart stops the pieces in progress")
    return (f"{mention(record.user_id)} ARIA restarted while your piece {what} was being made, {why}, so it was "
            "lost. Sorry! It didn't count toward your daily quota; please ask again.")
