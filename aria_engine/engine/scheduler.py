"""Who runs next: fair queuing over servers, round-robin over users, FIFO per user.

One community flooding the queue must not delay another's request by more than the jobs
already running. Servers share the machine by start-time fair queuing (Goyal, Vin & Cheng
1996), the virtual-time form of deficit round-robin: each server's next job carries a start
tag, the job with the smallest tag runs next, and a job costing c pushes its server's next tag
c further on. A server that just arrived starts at the current virtual time, so it goes ahead
of a flood's backlog at once; a server that keeps one job waiting at a time gets its share and
no more. Costs are in units of a default piece, so a server of long pieces and a server of
short ones get the same machine time, not the same job count.

Inside a server its users take turns, and each user's own jobs run in the order they came.
The queue is plain data (no asyncio, no threads); the engines own the timing.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from dataclasses import dataclass
from typing import Callable, Generic, Hashable, Iterator, TypeVar

from aria_engine.pipeline import Request

T = TypeVar("T")



@dataclass(frozen=True)
class Limits:
    """Bounds an engine keeps. None = no limit."""

    max_queued: int = 1000  # waiting jobs in all; beyond it submit raises Busy
    max_queued_per_server: int | None = None
    max_queued_per_user: int | None = None
    max_running_per_server: int | None = 2
    max_running_per_user: int | None = 1
    job_timeout_s: float | None = 600.0  # from start to the result

    def __post_init__(self) -> None:
        for name in ("max_queued", "max_queued_per_server", "max_queued_per_user",
                     "max_running_per_server", "max_running_per_user"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 (or None for no limit)")
        if self.job_timeout_s is not None and not self.job_timeout_s > 0:
            raise ValueError("job_timeout_s must be positive (or None)")


class Busy(Exception):
    """The engine refuses a job now. `str(busy)` is fit to show the user."""

    def __init__(self, reason: str, position: int, eta_s: float | None) -> None:
        self.reason = reason  # queue_full, server_queue_full, user_queue_full or unavailable
        self.position = position  # where the job would have waited
        self.eta_s = eta_s  # expected wait at that position, when throughput is known
        super().__init__(self._sentence())

    def _sentence(self) -> str:
        if self.reason == "unavailable":
            return "I can't reach my music workers right now. Please try again in a minute."
        wait = f" (about {describe_wait(self.eta_s)})" if self.eta_s is not None else ""
        if self.reason == "user_queue_full":
            return (f"You already have {self.position - 1} pieces waiting{wait}. "
                    "Please wait for them before asking for more.")
        if self.reason == "server_queue_full":
            return (f"This server already has {self.position - 1} pieces waiting{wait}. "
                    "Please try again in a little while.")
        return (f"I'm busy right now: {self.position - 1} pieces are waiting{wait}. "
                "Please try again in a little while.")


def describe_wait(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def job_cost(request: Request) -> float:
    """Expected work in units of a default piece (30 s procedural / 512 tokens)."""
    options = request.options
    if options.composer == "procedural":
        units = options.duration_s / 30.0
    else:
        units = options.length / 512.0
    return min(8.0, max(0.1, units))


def round_robin_position(rank_in_server: int, other_server_depths: Iterator[int]) -> int:
    """Where the job `rank_in_server` (1 = its server's next) stands when servers alternate.

    Each other server gets about as many turns before it as its own server does.
    """
    return rank_in_server + sum(min(depth, rank_in_server) for depth in other_server_depths)


@dataclass(eq=False)
class _Entry(Generic[T]):
    item: T
    server: str
    user: str
    cost: float
    key: Hashable


class FairQueue(Generic[T]):
    """Waiting items by server and user, with the running counts the limits need."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._servers: OrderedDict[str, OrderedDict[str, deque[_Entry[T]]]] = OrderedDict()
        self._entries: dict[int, _Entry[T]] = {}  # id(item) -> entry
        self._depth_by_server: Counter[str] = Counter()
        self._depth_by_user: Counter[tuple[str, str]] = Counter()
        self.running_by_server: Counter[str] = Counter()
        self.running_by_user: Counter[tuple[str, str]] = Counter()
        # Fair queuing state: virtual time, each waiting server's next start tag, and the
        # finish tag each server reached (kept while it is ahead of virtual time).
        self._virtual_time = 0.0
        self._start_tag: dict[str, float] = {}
        self._finish_tag: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, item: T) -> bool:
        return id(item) in self._entries

    # -- admission --------------------------------------------------------------------------

    def refusal(self, server: str, user: str) -> tuple[str, int] | None:
        """(reason, position) if a new item from server/user would break a queue limit."""
        limits = self.limits
        if len(self) >= limits.max_queued:
            return "queue_full", len(self) + 1
        if limits.max_queued_per_server is not None and self._depth_by_server[server] >= limits.max_queued_per_server:
            return "server_queue_full", self._depth_by_server[server] + 1
        if limits.max_queued_per_user is not None and self._depth_by_user[server, user] >= limits.max_queued_per_user:
            return "user_queue_full", self._depth_by_user[server, user] + 1
        return None

    def push(self, item: T, *, server: str, user: str, cost: float = 1.0, key: Hashable = None) -> int:
        """Queue an item (the caller checked `refusal`); returns its estimated position."""
        entry = _Entry(item, server, user, cost, key)
        if server not in self._servers:
            self._start_tag[server] = max(self._virtual_time, self._finish_tag.pop(server, 0.0))
        users = self._servers.setdefault(server, OrderedDict())
        users.setdefault(user, deque()).append(entry)
        self._entries[id(item)] = entry
        self._depth_by_server[server] += 1
        self._depth_by_user[server, user] += 1
        return self.position(item)

    def remove(self, item: T) -> bool:
        """Take a waiting item out (a cancel); False if it is not waiting."""
        entry = self._entries.pop(id(item), None)
        if entry is None:
            return False
        self._servers[entry.server][entry.user].remove(entry)
        self._forget(entry)
        return True

    def position(self, item: T) -> int:
        """1 = next. An estimate: servers alternate, users alternate inside a server."""
        entry = self._entries[id(item)]
        users = self._servers[entry.server]
        index_in_user = users[entry.user].index(entry) + 1
        rank_in_server = sum(min(len(q), index_in_user) for q in users.values())
        others = (self._depth_by_server[s] for s in self._servers if s != entry.server)
        return round_robin_position(rank_in_server, others)

    def depth(self, server: str | None = None) -> int:
        return len(self) if server is None else self._depth_by_server[server]

    # -- dispatch ---------------------------------------------------------------------------

    def pop_batch(self, max_size: int, same_key: bool = True) -> list[T]:
        """The next item by fairness, then more that share its key, each in fair order.

        Every item taken counts as running until `finished` is called for it.
        """
        first = self._pop(lambda entry: True)
        if first is None:
            return []
        batch = [first]
        while len(batch) < max_size:
            more = self._pop(lambda entry: not same_key or entry.key == first.key)
            if more is None:
                break
            batch.append(more)
        return [entry.item for entry in batch]

    def peek(self) -> T | None:
        """The item `pop_batch` would take first, left waiting; None when none may run now."""
        entry = self._pick(lambda entry: True)
        return None if entry is None else entry.item

    def finished(self, server: str, user: str) -> None:
        """An item taken by `pop_batch` stopped running."""
        self.running_by_server[server] -= 1
        self.running_by_user[server, user] -= 1
        if self.running_by_server[server] <= 0:
            del self.running_by_server[server]
        if self.running_by_user[server, user] <= 0:
            del self.running_by_user[server, user]

    def _may_run(self, server: str, user: str) -> bool:
        limits = self.limits
        if limits.max_running_per_server is not None and self.running_by_server[server] >= limits.max_running_per_server:
            return False
        if limits.max_running_per_user is not None and self.running_by_user[server, user] >= limits.max_running_per_user:
            return False
        return True

    def _eligible_head(self, server: str, wanted: Callable[[_Entry[T]], bool]) -> _Entry[T] | None:
        """The first user (in turn order) of a server whose next item may run and is wanted."""
        for user, queue in self._servers[server].items():
            if wanted(queue[0]) and self._may_run(server, user):
                return queue[0]
        return None

    def _pop(self, wanted: Callable[[_Entry[T]], bool]) -> _Entry[T] | None:
        best = self._pick(wanted)
        if best is not None:
            self._take(best)
        return best

    def _pick(self, wanted: Callable[[_Entry[T]], bool]) -> _Entry[T] | None:
        """The wanted, runnable head with the smallest start tag (ties: the longest waiting)."""
        best: _Entry[T] | None = None
        for server in self._servers:
            if best is not None and self._start_tag[server] >= self._start_tag[best.server]:
                continue
            head = self._eligible_head(server, wanted)
            if head is not None:
                best = head
        return best

    def _take(self, entry: _Entry[T]) -> None:
        server, user = entry.server, entry.user
        users = self._servers[server]
        users[user].popleft()
        users.move_to_end(user)  # the user goes to the back of its server's line
        del self._entries[id(entry.item)]
        start = self._start_tag[server]
        self._virtual_time = max(self._virtual_time, start)
        self._start_tag[server] = start + entry.cost
        self._forget(entry)
        self.running_by_server[server] += 1
        self.running_by_user[server, user] += 1

    def _forget(self, entry: _Entry[T]) -> None:
        """Bookkeeping after an entry left the queue; empty lines disappear."""
        server = entry.server
        self._depth_by_server[server] -= 1
        self._depth_by_user[server, entry.user] -= 1
        if self._depth_by_user[server, entry.user] <= 0:
            del self._depth_by_user[server, entry.user]
        users = self._servers[server]
        if not users[entry.user]:
            del users[entry.user]
        if not users:
            del self._servers[server]
            del self._depth_by_server[server]
            finish = self._start_tag.pop(server)
            if finish > self._virtual_time:
                self._finish_tag[server] = finish
            self._prune_finish_tags()

    def _prune_finish_tags(self) -> None:
        """Finish tags behind virtual time no longer matter (max() would ignore them)."""
        if len(self._finish_tag) > 4 * len(self._servers) + 64:
            now = self._virtual_time
            self._finish_tag = {s: f for s, f in self._finish_tag.items() if f > now}
