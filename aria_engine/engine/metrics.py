"""What an engine measures: Prometheus metrics, event-loop lag, throughput; and the HTTP
endpoint (`/metrics`, `/healthz`) that the bot and the worker serve on `--metrics-port`.

Every engine gets its own CollectorRegistry, so several engines in one process (tests, the
load tool) never collide in the global registry.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import deque
from typing import Callable
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

log = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200)
_STAGE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)
_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class EngineMetrics:
    """The Prometheus series of one engine (or worker), in its own registry."""

    def __init__(self, role: str = "engine", registry: CollectorRegistry | None = None) -> None:
        self.role = role
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.queue_depth = Gauge("aria_queue_depth", "Jobs waiting to start", registry=r)
        self.running = Gauge("aria_jobs_running", "Jobs being worked on", registry=r)
        self.submitted = Counter("aria_jobs_submitted", "Jobs accepted", registry=r)
        self.refused = Counter("aria_jobs_refused", "Jobs refused as busy", ["reason"], registry=r)
        self.finished = Counter("aria_jobs_finished", "Jobs ended", ["outcome"], registry=r)
        self.failures = Counter("aria_job_failures", "Failed jobs by reason", ["reason"], registry=r)
        self.latency = Histogram(
            "aria_job_latency_seconds", "Submit to result", ["outcome"], buckets=_LATENCY_BUCKETS, registry=r
        )
        self.queue_wait = Histogram(
            "aria_queue_wait_seconds", "Submit to start", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.stage_seconds = Histogram(
            "aria_stage_seconds", "Time per pipeline stage (per batch for batched stages)", ["stage"],
            buckets=_STAGE_BUCKETS, registry=r,
        )
        self.tokens_per_s = Histogram(
            "aria_tokens_per_second", "Transformer decoding speed per piece",
            buckets=(5, 10, 25, 50, 100, 200, 400, 800, 1600, 3200), registry=r,
        )
        self.batch_size = Histogram(
            "aria_batch_size", "Jobs composed together", buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32), registry=r
        )
        self.cache = Counter("aria_cache_lookups", "Result cache lookups", ["hit"], registry=r)
        self.loop_lag = Histogram(
            "aria_event_loop_lag_seconds", "How late the event loop woke up", buckets=_LAG_BUCKETS, registry=r
        )
        self.redeliveries = Counter(
            "aria_redeliveries", "Jobs taken over from a worker that stopped answering", registry=r
        )


class LoopLagMonitor:
    """Sleeps a short interval again and again and records how late it woke: the loop's lag.

    If model work ever ran on the loop's thread, this is where it would show.
    """

    def __init__(self, interval_s: float = 0.05, window: int = 2400,
                 observe: Callable[[float], None] | None = None) -> None:
        self.interval_s = interval_s
        self.samples: deque[float] = deque(maxlen=window)  # seconds late, newest last
        self._observe = observe
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.interval_s)
            lag = max(0.0, loop.time() - before - self.interval_s)
            self.samples.append(lag)
            if self._observe is not None:
                self._observe(lag)

    def percentile(self, q: float) -> float:
        """The q-quantile (0..1) of recent lag, in seconds; 0 before any sample."""
        if not self.samples:
            return 0.0
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def reset(self) -> None:
        self.samples.clear()


class ThroughputMeter:
    """Jobs finished per second over a sliding window, for ETAs."""

    def __init__(self, window_s: float = 120.0, min_samples: int = 3) -> None:
        self.window_s = window_s
        self.min_samples = min_samples
        self._done: deque[float] = deque()
        self._started = time.monotonic()

    def record(self, now: float | None = None) -> None:
        self._done.append(time.monotonic() if now is None else now)

    def rate(self, now: float | None = None) -> float | None:
        """Jobs per second, or None until enough jobs have finished to say."""
        now = time.monotonic() if now is None else now
        while self._done and self._done[0] < now - self.window_s:
            self._done.popleft()
        if len(self._done) < self.min_samples:
            return None
        span = min(self.window_s, now - self._started)
        return len(self._done) / max(span, 1e-3)


def eta_seconds(position: int, rate: float | None) -> float | None:
    """Expected wait before a job at `position` (1 = next) starts."""
    if rate is None or rate <= 0:
        return None
    return max(0.0, (position - 1) / rate)


# -- the HTTP endpoint -------------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the stdlib's name
        log.debug("metrics endpoint: " + format, *args)


class MetricsServer:
    """`/metrics` (Prometheus text) and `/healthz` (JSON; 200 when healthy, else 503).

    `health()` is called on the server's own thread: it must only read a snapshot.
    """

    def __init__(self, registry: CollectorRegistry, health: Callable[[], dict], port: int = 0,
                 host: str = "127.0.0.1") -> None:
        metrics_app = make_wsgi_app(registry)

        def app(environ, start_response):
            path = environ.get("PATH_INFO", "/")
            if path == "/metrics":
                return metrics_app(environ, start_response)
            if path in ("/healthz", "/health"):
                report = _safe_health(health)
                status = "200 OK" if report.get("ok") else "503 Service Unavailable"
                body = json.dumps(report).encode()
                start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
                return [body]
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: try /metrics or /healthz\n"]

        self._server = make_server(host, port, app, ThreadingWSGIServer, handler_class=_QuietHandler)
        self.host = host
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-http", daemon=True)

    def start(self) -> "MetricsServer":
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def _safe_health(health: Callable[[], dict]) -> dict:
    try:
        return dict(health())
    except Exception as error:  # a broken probe reads as unhealthy, never as a crash
        log.exception("health probe failed")
        return {"ok": False, "error": type(error).__name__}
