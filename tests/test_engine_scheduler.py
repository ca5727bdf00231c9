"""The fair queue: servers share fairly, users take turns, each user's jobs keep their order."""

from __future__ import annotations

import pytest

from aria_engine.engine.scheduler import Busy, FairQueue, Limits, round_robin_position

UNLIMITED = Limits(max_running_per_server=None, max_running_per_user=None)


def drain(queue: FairQueue, n: int | None = None) -> list:
    """Pop one at a time, finishing each at once (a machine with one slot)."""
    order = []
    while n is None or len(order) < n:
        batch = queue.pop_batch(1)
        if not batch:
            break
        item = batch[0]
        order.append(item)
        queue.finished(item[0], item[1])
    return order


def push(queue: FairQueue, server: str, user: str, tag: str, cost: float = 1.0, key=None):
    item = (server, user, tag)
    queue.push(item, server=server, user=user, cost=cost, key=key)
    return item


def test_a_new_server_goes_ahead_of_a_flood():
    queue = FairQueue(UNLIMITED)
    for i in range(500):
        push(queue, "flood", f"u{i % 7}", str(i))
    first = drain(queue, 1)
    push(queue, "quiet", "q", "mine")
    assert drain(queue, 1) == [("quiet", "q", "mine")]
    assert first[0][0] == "flood"


def test_servers_alternate_and_each_users_jobs_stay_in_order():
    queue = FairQueue(UNLIMITED)
    for i in range(4):
        push(queue, "a", "ann", f"a{i}")
        push(queue, "b", "bob", f"b{i}")
    push(queue, "a", "amy", "amy0")
    order = [tag for _, _, tag in drain(queue)]
    servers = [tag[0] for tag in order]
    assert servers[:8] == ["a", "b"] * 4
    ann = [t for t in order if t.startswith("a") and t != "amy0"]
    assert ann == ["a0", "a1", "a2", "a3"]
    # users inside server a take turns: amy is served right after ann's first job
    a_order = [t for t in order if t.startswith("a")]
    assert a_order.index("amy0") == 1


def test_a_server_that_keeps_one_job_waiting_gets_its_share_and_no_more():
    queue = FairQueue(UNLIMITED)
    for server in "abc":
        for i in range(20):
            push(queue, server, "u", f"{server}{i}")
    served = {"a": 0, "b": 0, "c": 0, "x": 0}
    push(queue, "x", "u", "x0")
    for step in range(40):
        item = drain(queue, 1)[0]
        served[item[0]] += 1
        if item[0] == "x":  # x submits its next job as soon as the last one starts
            push(queue, "x", "u", f"x{step + 1}")
    assert max(served.values()) - min(served.values()) <= 1, served


def test_cost_weighs_machine_time_not_job_count():
    queue = FairQueue(UNLIMITED)
    for i in range(12):
        push(queue, "long", "u", f"L{i}", cost=4.0)
        push(queue, "short", "u", f"S{i}", cost=1.0)
    order = drain(queue, 10)
    longs = sum(1 for s, _, _ in order if s == "long")
    shorts = sum(1 for s, _, _ in order if s == "short")
    assert shorts >= 3 * longs - 1 and longs >= 1, order


def test_running_limits_hold_back_a_user_but_not_others():
    queue = FairQueue(Limits(max_running_per_user=1, max_running_per_server=2))
    push(queue, "s", "ann", "ann0")
    push(queue, "s", "ann", "ann1")
    push(queue, "s", "bob", "bob0")
    push(queue, "s", "cat", "cat0")
    push(queue, "t", "tom", "tom0")
    first = queue.pop_batch(1) + queue.pop_batch(1) + queue.pop_batch(1)
    assert {tag for _, _, tag in first} == {"ann0", "bob0", "tom0"}
    assert queue.pop_batch(1) == []  # server s runs two jobs: its limit
    queue.finished("s", "ann")
    assert [tag for _, _, tag in queue.pop_batch(1)] in (["cat0"], ["ann1"])


def test_a_batch_takes_the_fair_next_job_then_waiting_jobs_with_its_key():
    queue = FairQueue(UNLIMITED)
    push(queue, "a", "u", "a-proc", key="procedural")
    push(queue, "b", "u", "b-trans", key="transformer")
    push(queue, "c", "u", "c-proc", key="procedural")
    push(queue, "d", "u", "d-proc", key="procedural")
    batch = queue.pop_batch(8)
    assert [tag for _, _, tag in batch] == ["a-proc", "c-proc", "d-proc"]
    assert [tag for _, _, tag in queue.pop_batch(8)] == ["b-trans"]


def test_peek_shows_the_next_job_by_fairness_without_taking_it():
    queue = FairQueue(Limits(max_running_per_user=1, max_running_per_server=None))
    push(queue, "a", "ann", "a0", key="transformer")
    push(queue, "a", "ann", "a1", key="transformer")
    push(queue, "b", "bob", "b0", key="procedural")
    assert queue.peek()[2] == "a0" and len(queue) == 3
    assert [tag for _, _, tag in queue.pop_batch(8)] == ["a0"]  # ann runs one at a time
    assert queue.peek()[2] == "b0"
    queue.pop_batch(8)
    assert queue.peek() is None and len(queue) == 1  # a1 waits for ann's running job
    queue.finished("a", "ann")
    assert queue.peek()[2] == "a1"


def test_positions_estimate_turns_and_limits_refuse_with_a_position():
    queue = FairQueue(Limits(max_queued=5, max_queued_per_user=3))
    for i in range(3):
        push(queue, "a", "ann", f"a{i}")
    assert queue.refusal("a", "ann") == ("user_queue_full", 4)
    mine = push(queue, "b", "bob", "b0")
    assert queue.position(mine) == 2  # after a's first job, before a's second
    push(queue, "c", "cy", "c0")
    assert queue.refusal("d", "dee") == ("queue_full", 6)
    assert round_robin_position(3, iter([10, 1])) == 3 + 3 + 1


def test_removing_a_waiting_item_keeps_the_books_straight():
    queue = FairQueue(UNLIMITED)
    keep = push(queue, "a", "u", "keep")
    gone = push(queue, "a", "u", "gone")
    assert queue.remove(gone) and not queue.remove(gone)
    assert len(queue) == 1 and queue.depth("a") == 1
    assert drain(queue) == [keep]
    assert len(queue) == 0 and queue.depth("a") == 0


def test_busy_says_where_and_how_long_politely():
    busy = Busy("queue_full", 1001, 754.0)
    assert busy.position == 1001 and busy.eta_s == 754.0
    assert str(busy) == "I'm busy right now: 1000 pieces are waiting (about 13 min). Please try again in a little while."
    with pytest.raises(ValueError):
        Limits(max_queued=0)
