"""`aria loadtest`: many jobs from many simulated servers, and what became of each.

All jobs are submitted at once, from servers of very unequal appetite (server i asks for a
share proportional to 1/(i+1)), each with a few users. Then it waits for every job's ending
and reports:

  submitted, completed, failed, cancelled, refused   counts (refused = Busy at submit)
  lost         jobs with no ending by the deadline; must be 0
  duplicated   jobs that told more than one ending; must be 0
  p50_s, p95_s submit-to-result latency of completed jobs
  jobs_per_s   completed jobs over the whole run
  fairness     Jain's index of per-server throughput (jobs started per second) while every
               server still had work waiting to start (1 = equal shares; shares proportional to demand, as a FIFO
               queue gives, score about 0.55 with 10 servers)
  loop_lag_p99_ms  the submitting process's event-loop lag, while models ran
  redelivered  jobs started by more than one worker (Redis, with workers being killed)

With `--backend redis` and `--workers K`, it starts K `aria worker` processes itself, and
with `--kill-worker-every S` kills one with SIGKILL every S seconds and starts a fresh one
(counting from when the previous replacement was ready).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from aria_engine.emotion import Emotion
from aria_engine.engine import Busy, Cancelled, Done, Engine, Failed, Job, Limits, LocalEngine, Started
from aria_engine.options import GenerationOptions
from aria_engine.pipeline import Origin, Request


@dataclass
class LoadConfig:
    jobs: int = 50
    servers: int = 5
    users_per_server: int = 3
    backend: str = "local"  # or "redis"
    redis_url: str | None = None
    workers: int = 2  # Redis: worker processes to start (0 = use running ones)
    kill_worker_every: float | None = None  # seconds
    duration: float = 5.0  # seconds of music per job
    concurrency: int = 2  # local: model threads; Redis: per worker
    max_batch: int = 4
    visibility_timeout: float = 5.0  # Redis workers started here
    max_deliveries: int = 20  # workers killed on purpose here are no sign of a job that kills them
    deadline_s: float = 1800.0  # give up waiting after this
    seed: int = 0
    prefix: str | None = None  # Redis key prefix (default: a fresh one per run)


@dataclass
class _Tracked:
    server: str
    submitted: float
    job: Job | None = None
    started: float | None = None
    ended: float | None = None
    outcome: str | None = None
    endings: int = 0
    workers: set[str] = field(default_factory=set)


def plan(config: LoadConfig) -> list[Request]:
    """The jobs, in submission order: servers weighted 1/(i+1), users taking turns, random moods."""
    rng = random.Random(config.seed)
    weights = [1 / (i + 1) for i in range(config.servers)]
    servers = rng.choices(range(config.servers), weights=weights, k=config.jobs)
    requests = []
    for n, server in enumerate(servers):
        user = rng.randrange(config.users_per_server)
        options = GenerationOptions(composer="procedural", encoder="palette", duration_s=config.duration,
                                    seed=rng.randrange(2**31))
        emotion = Emotion(round(rng.uniform(-1, 1), 3), round(rng.uniform(-1, 1), 3))
        origin = Origin("loadtest", f"server{server}", "channel", f"server{server}-user{user}")
        requests.append(Request(emotion=emotion, options=options, origin=origin))
    return requests


def jain_index(values: list[float]) -> float:
    if not values or not any(values):
        return 0.0
    return sum(values) ** 2 / (len(values) * sum(v * v for v in values))


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def fairness(tracked: list[_Tracked], t0: float) -> tuple[float | None, float]:
    """Jain's index of per-server throughput, as jobs started per second, over the window in
    which every server still had work waiting: until the first server's last job started.
    Starts, not completions: they are what the scheduler decides, and a job waiting out a
    killed worker's visibility timeout is not waiting in the queue."""
    by_server: dict[str, list[float | None]] = {}
    for t in tracked:
        by_server.setdefault(t.server, []).append(t.started)
    last_starts = [max(s) if all(x is not None for x in s) else float("inf") for s in by_server.values()]
    window_end = min(last_starts, default=float("inf"))
    if window_end == float("inf") or window_end <= t0:
        return None, 0.0
    counts = [sum(1 for x in starts if x is not None and x <= window_end) for starts in by_server.values()]
    return jain_index([c / (window_end - t0) for c in counts]), window_end - t0


# -- worker processes -----------------------------------------------------------------------------


class WorkerPool:
    """`aria worker` subprocesses (run as `python -m bot.cli worker`), each logging to a file."""

    def __init__(self, url: str, count: int, *, args: list[str] = (), log_dir: Path | None = None,
                 prefix: str = "aria") -> None:
        self.url = url
        self.count = count
        self.args = list(args)
        self.prefix = prefix
        self.log_dir = Path(log_dir or tempfile.mkdtemp(prefix="aria-workers-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.processes: list[subprocess.Popen | None] = [None] * count
        self.names: list[str] = [""] * count
        self.kills = 0
        self._generation = 0

    def start(self) -> "WorkerPool":
        for index in range(self.count):
            self.spawn(index)
        return self

    def spawn(self, index: int) -> subprocess.Popen:
        self._generation += 1
        name = f"worker{index}-g{self._generation}"
        log_path = self.log_dir / f"{name}.log"
        command = [sys.executable, "-m", "bot.cli", "worker", "--redis", self.url, "--prefix", self.prefix,
                   "--name", name, *self.args]
        repo = Path(__file__).resolve().parents[1]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")]))}
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=repo)
        self.processes[index], self.names[index] = process, name
        return process

    def log(self, index: int) -> str:
        return (self.log_dir / f"{self.names[index]}.log").read_text(errors="replace")

    def ready(self, index: int) -> bool:
        return f"worker {self.names[index]} ready" in self.log(index)

    def wait_ready(self, timeout_s: float = 60.0, indices: list[int] | None = None) -> None:
        deadline = time.monotonic() + timeout_s
        for index in indices if indices is not None else range(self.count):
            while not self.ready(index):
                if self.processes[index].poll() is not None:
                    raise RuntimeError(f"{self.names[index]} exited:\n{self.log(index)[-3000:]}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.names[index]} not ready:\n{self.log(index)[-3000:]}")
                time.sleep(0.05)

    def kill(self, index: int) -> None:
        """SIGKILL: no drain, no goodbye; its jobs come back after the visibility timeout."""
        process = self.processes[index]
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()
            self.kills += 1

    def index_of(self, name: str) -> int:
        return self.names.index(name)

    def stop(self, timeout_s: float = 15.0) -> None:
        for process in self.processes:
            if process is not None and process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + timeout_s
        for process in self.processes:
            if process is None:
                continue
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> "WorkerPool":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


# -- the run ----------------------------------------------------------------------------------------


def build_engine(config: LoadConfig) -> Engine:
    limits = Limits(max_queued=config.jobs + 10, job_timeout_s=max(120.0, config.duration * 20))
    if config.backend == "local":
        return LocalEngine(concurrency=config.concurrency, max_batch=config.max_batch, limits=limits,
                           name="loadtest")
    if config.backend == "redis":
        if not config.redis_url:
            raise ValueError("--backend redis needs --redis-url")
        from aria_engine.engine.redis_backend import RedisEngine

        return RedisEngine(config.redis_url, prefix=config.prefix, limits=limits, name="loadtest")
    raise ValueError(f"unknown backend {config.backend!r}: use local or redis")


async def run_loadtest(config: LoadConfig) -> dict:
    if config.backend == "redis" and config.prefix is None:
        config.prefix = f"aria-load-{os.getpid()}-{int(time.time())}"
    pool = None
    if config.backend == "redis" and config.workers > 0:
        pool = WorkerPool(config.redis_url, config.workers, prefix=config.prefix, args=[
            "--concurrency", str(config.concurrency), "--max-batch", str(config.max_batch),
            "--visibility-timeout", str(config.visibility_timeout), "--max-deliveries", str(config.max_deliveries),
        ])
        pool.start()
        await asyncio.to_thread(pool.wait_ready)
    try:
        async with build_engine(config) as engine:
            return await _drive(engine, config, pool)
    finally:
        if pool is not None:
            await asyncio.to_thread(pool.stop)


async def _drive(engine: Engine, config: LoadConfig, pool: WorkerPool | None) -> dict:
    requests = plan(config)
    tracked: list[_Tracked] = []
    refused = 0
    engine.lag.reset()
    t0 = time.monotonic()
    for request in requests:
        entry = _Tracked(request.origin.server, time.monotonic())
        try:
            entry.job = await engine.submit(request)
        except Busy:
            refused += 1
            continue
        tracked.append(entry)
    followers = [asyncio.create_task(_follow(entry)) for entry in tracked]
    killer = asyncio.create_task(_kill_now_and_then(pool, config.kill_worker_every)) if pool and config.kill_worker_every else None
    done, pending = await asyncio.wait(followers, timeout=config.deadline_s)
    for task in pending:
        task.cancel()
    if killer is not None:
        killer.cancel()
    end = max((t.ended for t in tracked if t.ended is not None), default=time.monotonic())

    completed = [t for t in tracked if t.outcome == "done"]
    latencies = [t.ended - t.submitted for t in completed]
    fair, window = fairness(tracked, t0)
    report = {
        "backend": config.backend,
        "submitted": len(tracked),
        "completed": len(completed),
        "failed": sum(1 for t in tracked if t.outcome == "failed"),
        "cancelled": sum(1 for t in tracked if t.outcome == "cancelled"),
        "refused": refused,
        "lost": sum(1 for t in tracked if t.outcome is None),
        "duplicated": sum(1 for t in tracked if t.endings > 1),
        "p50_s": _round(percentile(latencies, 0.5)),
        "p95_s": _round(percentile(latencies, 0.95)),
        "jobs_per_s": _round(len(completed) / max(end - t0, 1e-6)),
        "fairness": _round(fair),
        "fairness_window_s": _round(window),
        "loop_lag_p99_ms": _round(engine.lag.percentile(0.99) * 1000),
        "wall_s": _round(time.monotonic() - t0),
        "servers": config.servers,
        "duration_s_per_job": config.duration,
    }
    if pool is not None:
        report.update(workers=pool.count, workers_killed=pool.kills,
                      redelivered=sum(1 for t in tracked if len(t.workers) > 1))
    failures = sorted({t.job.outcome.reason for t in tracked if t.outcome == "failed"})
    if failures:
        report["failure_reasons"] = failures[:5]
    return report


async def _follow(entry: _Tracked) -> None:
    async for event in entry.job.events():
        if isinstance(event, Started):
            entry.started = entry.started or time.monotonic()
            entry.workers.add(event.worker)
        if isinstance(event, (Done, Failed, Cancelled)):
            entry.ended = time.monotonic()
            entry.outcome = type(event).__name__.lower()
    entry.endings = sum(1 for e in entry.job.history if isinstance(e, (Done, Failed, Cancelled)))


async def _kill_now_and_then(pool: WorkerPool, every_s: float) -> None:
    """Kill the workers in turn, each `every_s` after the last replacement was ready: on a slow
    machine a worker still starting when it is killed has done no work, so killing it again
    and again would only test how long a start takes, and push every job past its delivery
    limit. The pool is never short of more than one worker."""
    index = 0
    while True:
        await asyncio.sleep(every_s)
        await asyncio.to_thread(pool.kill, index)
        pool.spawn(index)
        try:
            await asyncio.to_thread(pool.wait_ready, 120.0, [index])
        except (RuntimeError, TimeoutError) as error:  # the run goes on with the others
            print(f"loadtest: a replacement worker did not start: {error}", file=sys.stderr)
        index = (index + 1) % pool.count


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def main(config: LoadConfig, as_json: bool) -> int:
    report = asyncio.run(run_loadtest(config))
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key:>20}: {value}")
    return 0 if report["lost"] == 0 and report["failed"] == 0 and report["duplicated"] == 0 else 1

