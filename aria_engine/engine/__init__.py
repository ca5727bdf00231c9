"""The engine: every adapter's requests go through one, which queues them fairly, batches the
model work, reports progress and ends every job in exactly one of Done, Failed or Cancelled.

Two backends share one API (`Engine`): `LocalEngine` runs the models in this process's
threads; `RedisEngine` hands jobs to `aria worker` processes through Redis and loads no model.
"""

from aria_engine.engine.base import Engine, EngineStatus
from aria_engine.engine.cache import ResultCache
from aria_engine.engine.jobs import TERMINAL, Cancelled, Done, Event, Failed, Job, Progress, Queued, Started
from aria_engine.engine.local import LocalEngine
from aria_engine.engine.metrics import EngineMetrics, MetricsServer
from aria_engine.engine.scheduler import Busy, Limits


def __getattr__(name: str):
    # The Redis backend needs the redis extra; import it only when asked for.
    if name in ("RedisEngine", "RedisQueue"):
        from aria_engine.engine import redis_backend

        return getattr(redis_backend, name)
    raise AttributeError(name)


__all__ = [
    "Busy", "Cancelled", "Done", "Engine", "EngineMetrics", "EngineStatus", "Event", "Failed", "Job",
    "Limits", "LocalEngine", "MetricsServer", "Progress", "Queued", "RedisEngine", "RedisQueue",
    "ResultCache", "Started", "TERMINAL",
]
