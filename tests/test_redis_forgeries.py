"""What a writer to Redis can do to the bot with data alone (the red-team audit of issue 9's fixes).

Each test runs the bot's RedisEngine against a real redis-server and plays the forger with a
RedisQueue of its own: results whose MIDI is tiny on the wire and huge in pretty_midi, and bad
values in the keys every follower reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import gc
import logging
import struct

import pytest

pytest.importorskip("redis")

from aria_engine.emotion import Emotion  # noqa: E402
from aria_engine.engine import ResultCache  # noqa: E402
from aria_engine.engine.redis_backend import RedisEngine, connect  # noqa: E402
from aria_engine.engine.redis_queue import RedisQueue  # noqa: E402
from aria_engine.engine.wire import MAX_MIDI_TICKS, WireError, dump_result, load_result  # noqa: E402
from aria_engine.options import GenerationOptions  # noqa: E402
from aria_engine.pipeline import Origin, Request  # noqa: E402
from tests.redis_server import needs_redis  # noqa: E402

pytestmark = [needs_redis, pytest.mark.redis]
MB = 1024 * 1024


def mood(seed: int, valence: float = 0.3) -> Request:
    return Request(
        emotion=Emotion(valence, -0.2),
        options=GenerationOptions(composer="procedural", encoder="palette", duration_s=2.0, seed=seed),
        origin=Origin("test", "s", "c", "u"),
    )


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def long_midi(ticks: int, ppq: int, tempo_us: int) -> bytes:
    """One note `ticks` long: a few dozen bytes that pretty_midi times with a table of `ticks` entries."""
    track = (b"\x00\xff\x51\x03" + tempo_us.to_bytes(3, "big") + b"\x00\x90\x3c\x40" + _vlq(ticks)
             + b"\x80\x3c\x00\x00\xff\x2f\x00")
    return b"MThd" + struct.pack(">IHHH", 6, 1, 1, ppq) + b"MTrk" + struct.pack(">I", len(track)) + track


# The audit's forgery: 2**23 - 1 ticks at one tick a beat and the slowest tempo (44 bytes; a
# 64 MB table; 4 years of music). Before the fix it was inside the limits and pinned 64 MB a result.
AUDIT_FORGERY = long_midi(2**23 - 1, 1, 0xFFFFFF)
# The longest a piece may be in ticks, within the limit in seconds (3200 ticks a beat at 120 BPM:
# 328 s): accepted, and its 16 MB table must be counted by the cache.
AT_THE_LIMIT = long_midi(MAX_MIDI_TICKS - 1, 3200, 500_000)


def live_tick_tables_mb() -> float:
    """What every live pretty_midi object's tick table holds."""
    import pretty_midi

    gc.collect()
    tables = (getattr(o, "_PrettyMIDI__tick_to_time", None) for o in gc.get_objects()
              if isinstance(o, pretty_midi.PrettyMIDI))
    return sum(getattr(t, "nbytes", 0) for t in tables) / MB


def rss_mb() -> float:
    """Resident memory now, after handing freed heap back (big arrays freed may sit in malloc's
    heap otherwise, and read as retained)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / MB


async def forge_results(server, pipeline, midi: bytes, count: int, cache: ResultCache, prefix: str):
    """Submit `count` jobs through the bot's engine and finish each with a forged result."""
    base = pipeline.run(mood(seed=21))
    redis = connect(server.url)
    queue = RedisQueue(redis, prefix)
    ends = []
    try:
        async with RedisEngine(server.url, prefix=prefix, block_ms=50, cache=cache) as engine:
            for i in range(count):
                job = await engine.submit(mood(seed=100 + i, valence=i / (count + 1)))
                entry, job_id = await queue.claim("forger")
                forged = dataclasses.replace(base, midi=midi, options=base.options.replace(seed=100 + i))
                await queue.finish(job_id, entry, "done", {"type": "done", "cached": "false"}, dump_result(forged), 60)
                end = await asyncio.wait_for(job.wait(), 60)
                ends.append((type(end).__name__, getattr(end, "reason", "")))  # not the result itself
                del job, end, forged
            yield ends, engine
    finally:
        await redis.aclose()


async def test_a_forged_midi_of_millions_of_ticks_fails_its_job_and_pins_nothing(server, pipeline):
    """Before: each of these 44-byte forgeries came back Done, and 8 of them pinned 512 MB in a
    cache that counted them as 32 KB."""
    pipeline.run(mood(seed=21))  # the pipeline's own first-use memory is not the forgery's
    gc.collect()
    before = rss_mb()
    tables_before = live_tick_tables_mb()  # other tests' pieces may still be alive in this process
    async for ends, engine in forge_results(server, pipeline, AUDIT_FORGERY, 8, ResultCache(64 * MB), "long"):
        gc.collect()
        grown = rss_mb() - before
        assert all(kind == "Failed" for kind, _ in ends), ends
        assert "ticks" in ends[0][1] and "\n" not in ends[0][1], ends[0]
        assert len(engine.cache) == 0
        assert live_tick_tables_mb() - tables_before < 1
        assert grown < 100, f"{grown:.0f} MB retained"


async def test_the_cache_counts_what_a_results_midi_object_keeps_alive(server, pipeline):
    """At the tick limit a result is accepted, and its pretty_midi table (16 MB) is counted, so a
    32 MB cache holds one of them, not all ten (before: counted as 4 KB each, 160 MB held)."""
    cache = ResultCache(32 * MB)
    async for ends, engine in forge_results(server, pipeline, AT_THE_LIMIT, 10, cache, "limit"):
        assert all(kind == "Done" for kind, _ in ends), ends
        assert cache.nbytes >= len(cache) * 8 * MAX_MIDI_TICKS, (len(cache), cache.nbytes)
        assert len(cache) <= 2
        # (the engine's recent-jobs table keeps its own references to the results: not the cache's)


def test_a_piece_longer_than_any_real_one_in_seconds_is_refused(pipeline):
    """Few ticks, but each a long time: the length in seconds is bounded too (600 s plus a tail)."""
    base = pipeline.run(mood(seed=21))
    slow = dataclasses.replace(base, midi=long_midi(100_000, 1, 0xFFFFFF))  # 100,000 beats of 16.8 s
    with pytest.raises(WireError, match="second"):
        load_result(dump_result(slow))
    real = load_result(dump_result(base))
    assert real.composition.midi.get_end_time() == pytest.approx(base.composition.midi.get_end_time(), abs=0.01)


def test_the_longest_real_piece_is_inside_both_limits():
    """The procedural composer's longest, fastest piece (600 s at 160 BPM, 480 ticks a beat)."""
    import io

    from aria_engine.engine.wire import _midi_from
    from aria_engine.music.procedural import ProceduralComposer

    piece = ProceduralComposer().compose(Emotion(0.5, 1.0), GenerationOptions(duration_s=600.0, seed=1))
    buffer = io.BytesIO()
    piece.midi.write(buffer)
    assert _midi_from(buffer.getvalue()).get_end_time() == pytest.approx(600.0, abs=1.0)


# -- bad values in the keys every follower reads ----------------------------------------------

BAD_VALUES = {
    "a heartbeat that is no number": lambda redis, p: redis.hset(f"{p}:workers", "evil", "not-a-number"),
    "a heartbeat of nan": lambda redis, p: redis.hset(f"{p}:workers", "evil", "nan"),
    "the heartbeats as a string": lambda redis, p: redis.set(f"{p}:workers", "x"),
    "the completions as a string": lambda redis, p: redis.set(f"{p}:completions", "x"),
    "the completions as a list": lambda redis, p: redis.rpush(f"{p}:completions", "x"),
    "the queue as a string": lambda redis, p: redis.set(f"{p}:queued", "x"),
}


@pytest.mark.parametrize("bad", list(BAD_VALUES))
async def test_one_bad_value_in_redis_stalls_no_followed_job(server, pipeline, caplog, bad):
    """Before: the follower read the queue's figures before every read of events, and one value
    that is no number (or a key of the wrong type) raised there: no job was delivered again, and
    a traceback was logged twice a second."""
    caplog.set_level(logging.INFO)
    result = pipeline.run(mood(seed=21))
    redis = connect(server.url)
    queue = RedisQueue(redis, "bad")
    try:
        async with RedisEngine(server.url, prefix="bad", block_ms=50) as engine:
            jobs = [await engine.submit(mood(seed=seed)) for seed in (5, 6)]
            await BAD_VALUES[bad](redis, "bad")
            await asyncio.sleep(2.5)  # past the next reading of the queue's figures
            for job in jobs:  # finished as a worker's script would (its own ZADD may now fail)
                await redis.set(queue.key("result", job.id), dump_result(result))
                await redis.xadd(queue.key("events", job.id), {"type": "done", "cached": "false"})
                end = await asyncio.wait_for(job.wait(), 10)
                assert type(end).__name__ == "Done", end
                await asyncio.sleep(2.1)  # and through another reading
            status = await engine.status()  # what /healthz and the bots show still reads
            assert status.workers == 0 and status.queued >= 0
    finally:
        await redis.aclose()
    tracebacks = [r for r in caplog.records if r.exc_info]
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and "queue's figures" in r.getMessage()]
    assert not tracebacks, tracebacks[0].getMessage()
    assert len(warnings) <= 1, [w.getMessage() for w in warnings]
