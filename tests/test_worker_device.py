"""Workers say in Redis what they run on and can take; a GPU that is not there is refused at start."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("redis")

from aria_engine.engine.redis_backend import connect  # noqa: E402
from aria_engine.engine.redis_queue import RedisQueue  # noqa: E402
from aria_engine.loadtest import WorkerPool  # noqa: E402
from tests.redis_server import needs_redis  # noqa: E402

pytestmark = [needs_redis, pytest.mark.redis]

REPO = Path(__file__).resolve().parents[1]


def test_a_worker_reports_its_device_and_capacity_and_clears_them_when_it_stops(server, tmp_path):
    pool = WorkerPool(server.url, 1, args=["--visibility-timeout", "2", "--device", "cpu", "--concurrency", "1"],
                      log_dir=tmp_path / "workers").start()
    try:
        pool.wait_ready()

        async def info():
            redis = connect(server.url)
            try:
                return await RedisQueue(redis, "aria").worker_info()
            finally:
                await redis.aclose()

        found = {}
        for _ in range(50):
            found = asyncio.run(info())
            if found:
                break
            time.sleep(0.1)
        (report,) = found.values()
        assert report["device"].startswith("cpu (") and report["max_batch"] == 4 and report["concurrency"] == 1
    finally:
        pool.stop()
    assert asyncio.run(info()) == {}


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_a_worker_asked_for_a_gpu_that_is_not_there_exits_2_with_one_line(server):
    run = subprocess.run([sys.executable, "-m", "bot.cli", "worker", "--redis", server.url, "--device", "cuda"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0 and "Traceback" not in run.stderr
    assert run.stderr.startswith("aria worker: --device cuda: torch sees no CUDA GPU here")
