"""The engine's small parts: the result cache, the wire format, metrics over HTTP, job stories."""

from __future__ import annotations

import asyncio
import json
import pickle
import urllib.error
import urllib.request

import pytest

from aria_engine.emotion import Emotion, Trajectory
from aria_engine.engine import Cancelled, Done, EngineMetrics, Failed, Job, MetricsServer, Progress, Queued, Started
from aria_engine.engine.cache import ResultCache, result_nbytes
from aria_engine.engine.wire import (
    WireError, dump_result, event_from_fields, event_to_fields, load_result, request_from_json, request_to_json,
)
from aria_engine.options import GenerationOptions
from aria_engine.pipeline import Origin, Pipeline, Request


@pytest.fixture(scope="module")
def result():
    request = Request(emotion=Emotion(0.4, -0.2), options=GenerationOptions(composer="procedural", encoder="palette",
                                                                            duration_s=2, seed=11))
    return Pipeline().run(request)


def test_the_cache_is_bounded_by_bytes_and_evicts_the_least_recently_used(result):
    size = result_nbytes(result)
    cache = ResultCache(max_bytes=int(size * 2.5))
    cache.put("a", result)
    cache.put("b", result)
    assert cache.get("a") is result  # a is now the most recently used
    cache.put("c", result)
    assert "b" not in cache and "a" in cache and "c" in cache
    assert cache.nbytes == 2 * size and cache.evictions == 1
    assert cache.get(None) is None and not cache.put(None, result)
    assert not ResultCache(max_bytes=size - 1).put("x", result)  # bigger than the whole cache


def test_requests_survive_the_wire_and_are_validated_again():
    request = Request(
        emotion=Trajectory.linear([Emotion(-0.2, 0.1), Emotion(0.9, -0.7)]),
        options=GenerationOptions(duration_s=7, seed=3, mode="discrete_token", top_k=5),
        origin=Origin("discord", "g1", "c1", "u1"), max_upload_bytes=8_000_000,
    )
    assert request_from_json(request_to_json(request), None) == request
    picture = Request(image=b"\x89PNG...", options=GenerationOptions(seed=1))
    back = request_from_json(request_to_json(picture), picture.image)
    assert back == picture and back.cache_key() == picture.cache_key()
    tampered = json.loads(request_to_json(picture))
    tampered["options"]["top_p"] = 7
    with pytest.raises(ValueError, match="top-p"):
        request_from_json(json.dumps(tampered), b"x")


def test_results_survive_the_wire_and_pickles_are_never_loaded(result, tmp_path):
    back = load_result(dump_result(result))
    assert back.midi == result.midi and back.audio.data == result.audio.data
    assert back.emotion == result.emotion and back.options == result.options
    assert back.composition.midi.get_end_time() == pytest.approx(result.composition.midi.get_end_time())

    marker = tmp_path / "owned"

    class Evil:
        def __reduce__(self):
            return (marker.touch, ())

    for payload in (pickle.dumps(Evil()), pickle.dumps({"not": "a result"})):
        with pytest.raises(WireError, match="pickle"):
            load_result(payload)
    assert not marker.exists()


def test_events_survive_the_wire(result):
    for event in (Queued(3, 12.5), Started("w1", 4), Progress("composing", 0.25, "composing 3 of 12 seconds"),
                  Failed("Sorry.", "ab12", "error"), Failed("No.", None, "image_rejected"), Cancelled("u9")):
        assert event_from_fields(event_to_fields(event)) == event
    fields = {k.encode(): v.encode() for k, v in event_to_fields(Done(result)).items()}
    assert event_from_fields(fields, result) == Done(result)


async def test_a_job_has_exactly_one_ending_and_replays_for_late_followers():
    job = Job(Request(emotion=Emotion(0, 0)))
    follower = asyncio.create_task(_collect(job))
    assert job.emit(Queued(1, None)) and job.emit(Started("w"))
    await asyncio.sleep(0)
    assert job.state == "running"
    assert job.emit(Cancelled("u")) and not job.emit(Failed("late")) and not job.emit(Progress("x", 1, "x"))
    assert job.state == "cancelled" and job.outcome == Cancelled("u")
    assert await follower == await _collect(job) == [Queued(1, None), Started("w"), Cancelled("u")]


def test_metrics_and_health_are_served_over_http():
    metrics = EngineMetrics("test")
    metrics.submitted.inc(3)
    metrics.batch_size.observe(4)
    healthy = {"ok": True, "queued": 0}
    server = MetricsServer(metrics.registry, lambda: healthy).start()
    try:
        text = urllib.request.urlopen(server.url + "/metrics", timeout=5).read().decode()
        assert "aria_jobs_submitted_total 3.0" in text and "aria_batch_size_count 1.0" in text
        assert json.loads(urllib.request.urlopen(server.url + "/healthz", timeout=5).read()) == healthy
        healthy["ok"] = False
        with pytest.raises(urllib.error.HTTPError) as unhealthy:
            urllib.request.urlopen(server.url + "/healthz", timeout=5)
        assert unhealthy.value.code == 503
    finally:
        server.close()
    assert EngineMetrics("other").registry is not metrics.registry  # no clash between engines


async def _collect(job) -> list:
    return [event async for event in job.events()]
