"""What the service hands an adapter: refusals and admissions, tickets, the updates of a
job (`Queued`, `Started`, `Progressed`, then one of `Finished`, `Failed`, `Cancelled`), and the
answers to queue, delete and admin requests. Plain data, no chat library: see bot/service.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from aria_engine.options import GenerationOptions
from bot.endings import CANCELLED
from bot.policy import Actor, format_wait
from bot.reply import Reply
from bot.store import ResultRecord

@dataclass(frozen=True)
class Refusal:
    """Not now, and why: show `message` to the requester only."""

    code: str  # the policy's reason code, "busy", "unknown_result", "not_allowed", ...
    message: str
    retry_after_s: float | None = None


@dataclass(frozen=True)
class Admission:
    """The policy said yes and counted one use; `options` are fitted to this place's limits."""

    actor: Actor
    options: GenerationOptions
    use_id: int | None
    kind: str = "compose"


@dataclass
class Ticket:
    """A submitted job and its record."""

    job: Any  # aria_engine.engine.jobs.Job
    record: ResultRecord
    admission: Admission
    upload_limit: int | None = None

    @property
    def result_id(self) -> str:
        return self.record.result_id


@dataclass(frozen=True)
class Queued:
    position: int
    eta_s: float | None
    terminal = False

    @property
    def text(self) -> str:
        wait = f", about {format_wait(self.eta_s)}" if self.eta_s else ""
        if self.position <= 1:
            return f"Next in line{wait}."
        return f"Waiting in line: position {self.position}{wait}."


@dataclass(frozen=True)
class Started:
    terminal = False
    text = "Started: reading the mood and composing..."


@dataclass(frozen=True)
class Progressed:
    fraction: float  # of the whole job, 0..1
    detail: str
    terminal = False

    @property
    def text(self) -> str:
        return f"{self.detail[:1].upper()}{self.detail[1:]} ({round(self.fraction * 100)}%)"


@dataclass(frozen=True)
class Finished:
    reply: Reply
    record: ResultRecord
    cached: bool = False
    terminal = True

    @property
    def text(self) -> str:
        return self.reply.text()


@dataclass(frozen=True)
class Failed:
    message: str
    refusal: bool = False  # the input was at fault: show privately, like a refusal
    log_id: str | None = None
    audit_channel: str | None = None  # where to log it (the image-safety gate's refusals), with audit_text
    audit_text: str | None = None
    terminal = True

    @property
    def text(self) -> str:
        return self.message


@dataclass(frozen=True)
class Cancelled:
    by: str
    terminal = True

    @property
    def text(self) -> str:
        return CANCELLED  # who cancelled it is said by bot.endings.cancelled, which knows the requester


Update = Union[Queued, Started, Progressed, Finished, Failed, Cancelled]


@dataclass
class Resumption:
    """What `resume_unfinished` found: jobs to follow again, and records of jobs that were lost."""

    tickets: list[Ticket]
    lost: list[ResultRecord]


@dataclass(frozen=True)
class Deletion:
    allowed: bool
    message: str
    record: ResultRecord | None = None


@dataclass(frozen=True)
class QueueEntry:
    result_id: str
    state: str  # queued or running
    position: int | None
    eta_s: float | None
    what: str  # "a picture" / "mood +0.50 / -0.20"

    @property
    def text(self) -> str:
        if self.state == "running":
            return f"{self.what}: being composed now"
        if self.position is None:
            return f"{self.what}: waiting"
        wait = f", about {format_wait(self.eta_s)}" if self.eta_s else ""
        return f"{self.what}: position {self.position} in line{wait}"


@dataclass(frozen=True)
class QueueView:
    entries: list[QueueEntry]
    usage_line: str


@dataclass(frozen=True)
class SettingChange:
    """An admin's change, done and audited. `audit_channel` (an id) wants `audit_text` posted."""

    message: str
    audit_text: str
    audit_channel: str | None
