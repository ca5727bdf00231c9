"""`aria loadtest`, small: every job ends, none twice, on both backends (and with a worker killed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from aria_engine.loadtest import LoadConfig, _Tracked, fairness, jain_index, plan, run_loadtest
from tests.redis_server import RedisServer, needs_redis

REPO = Path(__file__).resolve().parents[1]
KEYS = ("submitted", "completed", "failed", "lost", "p50_s", "p95_s", "jobs_per_s", "fairness", "loop_lag_p99_ms")


def test_jains_index_and_the_plan():
    assert jain_index([2, 2, 2]) == pytest.approx(1.0)
    assert jain_index([1, 0, 0, 0]) == pytest.approx(0.25)
    requests = plan(LoadConfig(jobs=200, servers=4, users_per_server=2, duration=3))
    servers = [r.origin.server for r in requests]
    assert servers.count("server0") > 2 * servers.count("server3") > 0  # unequal appetites
    assert {r.origin.user.split("-")[1] for r in requests} == {"user0", "user1"}
    assert all(r.options.duration_s == 3 and r.options.seed is not None for r in requests)


def tracked(server: str, started: float, ended: float, outcome: str = "done") -> _Tracked:
    return _Tracked(server, submitted=0.0, started=started, ended=ended, outcome=outcome)


def test_fairness_compares_starts_while_every_server_still_waits():
    # a and b alternate while both wait; b's last job starts at t=3: the window is [0, 3]
    alternating = [tracked("a", i, i + 1) for i in range(0, 8, 2)] + [tracked("b", i, i + 1) for i in (1, 3)]
    assert fairness(alternating, 0.0) == (pytest.approx(1.0), 3.0)
    # first come, first served: all of a's jobs first, b's only at the end
    fifo = [tracked("a", i, i + 1) for i in range(4)] + [tracked("b", 4, 5), tracked("b", 5, 6)]
    index, window = fairness(fifo, 0.0)
    assert window == 3.0 and index == pytest.approx(0.5)  # b got nothing while both waited
    assert fairness([tracked("a", 0, 5)], 0.0) == (None, 0.0)  # one server: nothing to compare
    never = fairness([tracked("a", 1, 2), tracked("b", None, None, None)], 0.0)
    assert never == (pytest.approx(0.5), 1.0)  # b never started while a ran: the worst for two


def test_a_small_local_run_from_the_command_line():
    run = subprocess.run(
        [sys.executable, "-m", "bot.cli", "loadtest", "--jobs", "6", "--servers", "3", "--duration", "2",
         "--concurrency", "1", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout)
    assert all(key in report for key in KEYS)
    assert (report["submitted"], report["completed"], report["failed"], report["lost"]) == (6, 6, 0, 0)
    assert report["duplicated"] == 0 and 0 < report["fairness"] <= 1
    assert report["p50_s"] <= report["p95_s"]


def test_the_command_line_refuses_nonsense():
    run = subprocess.run([sys.executable, "-m", "bot.cli", "loadtest", "--backend", "redis", "--jobs", "0"],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "--jobs must be at least 1" in run.stderr and "needs --redis-url" in run.stderr


@needs_redis
async def test_a_small_redis_run_with_a_worker_killed_loses_nothing(tmp_path):
    with RedisServer(tmp_path / "redis", aof=True) as server:
        report = await run_loadtest(LoadConfig(
            jobs=24, servers=3, backend="redis", redis_url=server.url, workers=2, kill_worker_every=0.7,
            duration=3, concurrency=1, max_batch=2, visibility_timeout=2, deadline_s=240,
        ))
    assert (report["submitted"], report["completed"], report["failed"], report["lost"]) == (24, 24, 0, 0), report
    assert report["duplicated"] == 0 and report["workers_killed"] >= 1
