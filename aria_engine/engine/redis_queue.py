"""The job queue in Redis: fair admission, at-least-once delivery, exactly one outcome.

Why Redis Streams through redis-py, and not arq or taskiq: a consumer group gives exactly
the delivery guarantees the engine needs, in the server itself. XREADGROUP hands a job to one
worker and keeps it in the group's pending list until XACK; XAUTOCLAIM lets another worker
take over entries idle past a visibility timeout (a worker that died); delivery counts stop a
job that kills every worker from looping forever; and with AOF everything survives a
restart. arq and taskiq add their own job model, retry policy and serializer on top, and
neither does fair scheduling across communities or progress streams, which we would then
build around them anyway. redis-py is Redis's own, well-kept client, with asyncio built in.

Layout (prefix `aria` by default; one Redis, not a cluster, since the scripts compute keys):

    {p}:job:{id}           hash: request JSON, image bytes, continues (a jam's earlier MIDI), server,
                           user, cost, state
    {p}:q:{server}:{user}  list: the user's waiting job ids, FIFO
    {p}:users:{server}     list: the server's users with waiting jobs, rotated for turns
    {p}:ready              zset: servers with waiting jobs, scored by their next start tag
    {p}:finish, {p}:vtime  fair queuing state (see scheduler.py: the same algorithm)
    {p}:queued             zset: every waiting job id (depth, Busy)
    {p}:depth              hash: waiting jobs per server
    {p}:work               stream + group `workers`: jobs handed out and not yet acknowledged
    {p}:events:{id}        stream: the job's Started / Progress / terminal events
    {p}:result:{id}        the Result as wire.py's envelope (with a TTL), stored before the ack
    {p}:doorbell           list: a ring on each submit, so idle workers wake at once
    {p}:workers            hash: worker name -> last heartbeat (epoch seconds)
    {p}:worker-info        hash: worker name -> JSON {device, concurrency, max_batch} (what it can take)
    {p}:completions        zset: recently finished job ids by time, for throughput
    {p}:reads              list: pictures waiting to be read for a jam's readout (ids, FIFO)
    {p}:read:{id}          hash: the reading's JSON and picture (short TTL: the bot waits that long)
    {p}:read-answer:{id}   list: the worker's one answer (JSON, short TTL)

Waiting jobs stay in the fair structures, not in the stream: a worker's claim script picks
the next job by fairness and moves it into the stream and its pending list in one atomic
step. Every state change that must not half-happen is one Lua script.

Readings are not jobs: a jam contribution's readout answers the member at once in-process, and a
worker claims jobs only when a model thread is free, so a reading queued among the jobs would wait
behind whole pieces. Workers answer them on a lane of their own (`next_reading`), as they come.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass

from aria_engine.engine.wire import MAX_RESULT_BYTES, WireError

GROUP = "workers"
TERMINAL_STATES = ("done", "failed", "cancelled")

_ENQUEUE = """
local p, id, req, has_image, image = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local server, user, cost, now = ARGV[6], ARGV[7], tonumber(ARGV[8]), ARGV[9]
local max_q, max_s, max_u = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
local has_continues, continues = ARGV[13], ARGV[14]
local depth = redis.call('ZCARD', p..':queued')
if depth >= max_q then return {'busy', 'queue_full', depth + 1} end
local sdepth = tonumber(redis.call('HGET', p..':depth', server) or '0')
if max_s > 0 and sdepth >= max_s then return {'busy', 'server_queue_full', sdepth + 1} end
local ukey = p..':q:'..server..':'..user
local udepth = redis.call('LLEN', ukey)
if max_u > 0 and udepth >= max_u then return {'busy', 'user_queue_full', udepth + 1} end
local jkey = p..':job:'..id
if redis.call('EXISTS', jkey) == 1 then return {'exists'} end
redis.call('HSET', jkey, 'request', req, 'server', server, 'user', user, 'cost', cost,
           'submitted_at', now, 'state', 'queued')
if has_image == '1' then redis.call('HSET', jkey, 'image', image) end
if has_continues == '1' then redis.call('HSET', jkey, 'continues', continues) end
redis.call('RPUSH', ukey, id)
if udepth == 0 then redis.call('RPUSH', p..':users:'..server, user) end
if not redis.call('ZSCORE', p..':ready', server) then
  local v = tonumber(redis.call('GET', p..':vtime') or '0')
  local f = tonumber(redis.call('HGET', p..':finish', server) or '0')
  redis.call('HDEL', p..':finish', server)
  redis.call('ZADD', p..':ready', math.max(v, f), server)
end
redis.call('HINCRBY', p..':depth', server, 1)
redis.call('ZADD', p..':queued', redis.call('INCR', p..':seq'), id)
redis.call('LPUSH', p..':doorbell', '1')
redis.call('LTRIM', p..':doorbell', 0, 63)
-- Position, estimated as the local queue does: users alternate, then servers alternate.
local k = udepth + 1
local rank = 0
for _, u in ipairs(redis.call('LRANGE', p..':users:'..server, 0, -1)) do
  rank = rank + math.min(redis.call('LLEN', p..':q:'..server..':'..u), k)
end
local position = rank
local all = redis.call('HGETALL', p..':depth')
for i = 1, #all, 2 do
  if all[i] ~= server then position = position + math.min(tonumber(all[i + 1]), rank) end
end
return {'queued', position}
"""

_CLAIM = """
local p, consumer = ARGV[1], ARGV[2]
local stream = p..':work'
while true do
  local top = redis.call('ZRANGE', p..':ready', 0, 0, 'WITHSCORES')
  if #top == 0 then return false end
  local server, start = top[1], tonumber(top[2])
  local ring = p..':users:'..server
  local id = false
  for i = 1, redis.call('LLEN', ring) do
    local user = redis.call('LMOVE', ring, ring, 'LEFT', 'RIGHT')
    local ukey = p..':q:'..server..':'..user
    id = redis.call('LPOP', ukey)
    if redis.call('LLEN', ukey) == 0 then redis.call('LREM', ring, -1, user) end
    if id then break end
  end
  if not id then
    redis.call('ZREM', p..':ready', server)
    redis.call('HDEL', p..':depth', server)
  else
    local jkey = p..':job:'..id
    local cost = tonumber(redis.call('HGET', jkey, 'cost') or '1')
    local v = tonumber(redis.call('GET', p..':vtime') or '0')
    if start > v then redis.call('SET', p..':vtime', start) end
    if redis.call('HINCRBY', p..':depth', server, -1) <= 0 then
      redis.call('HDEL', p..':depth', server)
      redis.call('ZREM', p..':ready', server)
      redis.call('HSET', p..':finish', server, start + cost)
    else
      redis.call('ZADD', p..':ready', start + cost, server)
    end
    redis.call('ZREM', p..':queued', id)
    if redis.call('EXISTS', stream) == 0 then
      redis.call('XGROUP', 'CREATE', stream, 'workers', '0', 'MKSTREAM')
    end
    redis.call('XADD', stream, '*', 'job', id)
    local got = redis.call('XREADGROUP', 'GROUP', 'workers', consumer, 'COUNT', 1, 'STREAMS', stream, '>')
    redis.call('HSET', jkey, 'state', 'running', 'worker', consumer)
    return {got[1][2][1][1], id}
  end
end
"""

_CANCEL = """
local p, id, by_json, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local jkey = p..':job:'..id
local state = redis.call('HGET', jkey, 'state')
if not state then return 'missing' end
if state == 'done' or state == 'failed' or state == 'cancelled' then return state end
if state == 'queued' then
  local server = redis.call('HGET', jkey, 'server')
  local user = redis.call('HGET', jkey, 'user')
  local ukey = p..':q:'..server..':'..user
  redis.call('LREM', ukey, 1, id)
  if redis.call('LLEN', ukey) == 0 then redis.call('LREM', p..':users:'..server, 1, user) end
  if redis.call('HINCRBY', p..':depth', server, -1) <= 0 then
    redis.call('HDEL', p..':depth', server)
    local tag = redis.call('ZSCORE', p..':ready', server)
    redis.call('ZREM', p..':ready', server)
    if tag then redis.call('HSET', p..':finish', server, tag) end
  end
  redis.call('ZREM', p..':queued', id)
end
redis.call('HSET', jkey, 'state', 'cancelled')
local events = p..':events:'..id
redis.call('XADD', events, '*', 'type', 'cancelled', 'by', by_json)
redis.call('EXPIRE', events, ttl)
redis.call('EXPIRE', jkey, ttl)
return state
"""

# Progress from a worker: only while the job is live (an expired job must not come back).
_POST = """
local p, id = ARGV[1], ARGV[2]
local state = redis.call('HGET', p..':job:'..id, 'state')
if state ~= 'running' and state ~= 'queued' then return 0 end
local fields = {}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('XADD', p..':events:'..id, 'MAXLEN', '~', 500, '*', unpack(fields))
return 1
"""

# A job's end: the first outcome is stored (result before ack) and announced; later ones,
# from a duplicate delivery or a cancel that won the race, change nothing. Always acks.
_FINISH = """
local p, id, entry, kind, result, ttl, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local jkey = p..':job:'..id
local state = redis.call('HGET', jkey, 'state')
local wrote = 0
if state and state ~= 'done' and state ~= 'failed' and state ~= 'cancelled' then
  local events = p..':events:'..id
  if kind == 'done' then
    redis.call('SET', p..':result:'..id, result, 'EX', ttl)
    redis.call('ZADD', p..':completions', now, id)
    redis.call('ZREMRANGEBYSCORE', p..':completions', '-inf', now - 600)
  end
  redis.call('HSET', jkey, 'state', kind)
  redis.call('HDEL', jkey, 'image', 'continues')
  local fields = {}
  for i = 8, #ARGV do fields[#fields + 1] = ARGV[i] end
  redis.call('XADD', events, '*', unpack(fields))
  redis.call('EXPIRE', events, ttl)
  redis.call('EXPIRE', jkey, ttl)
  wrote = 1
end
if entry ~= '' then
  redis.call('XACK', p..':work', 'workers', entry)
  redis.call('XDEL', p..':work', entry)
end
return wrote
"""


# A worker says it still holds these entries: each one still pending on it gets its idle time
# reset. One script, so an entry another worker has just taken over is never taken back.
_HOLD = """
local stream, consumer = ARGV[1], ARGV[2]
local owned = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local pending = redis.call('XPENDING', stream, 'workers', id, id, 1, consumer)
  if #pending == 1 then
    redis.call('XCLAIM', stream, 'workers', consumer, 0, id, 'JUSTID')
    owned[#owned + 1] = id
  end
end
return owned
"""

# A stored result, unless it is no string or over the size limit: the bot never pulls more
# than one envelope's worth of bytes for a job, whatever was written under its key.
_RESULT = """
local key, limit = ARGV[1], tonumber(ARGV[2])
local kind = redis.call('TYPE', key)['ok']
if kind == 'none' then return false end
if kind ~= 'string' then return {'type', kind} end
local size = redis.call('STRLEN', key)
if size > limit then return {'size', size} end
return {'ok', redis.call('GET', key)}
"""

# A worker starts a job it claimed or took over, unless it ended meanwhile (a cancel).
_MARK_RUNNING = """
local jkey, worker = ARGV[1], ARGV[2]
local state = redis.call('HGET', jkey, 'state')
if state ~= 'queued' and state ~= 'running' then return 0 end
redis.call('HSET', jkey, 'state', 'running', 'worker', worker)
return 1
"""


@dataclass(frozen=True)
class Enqueued:
    position: int


@dataclass(frozen=True)
class Refused:
    reason: str
    position: int


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisQueue:
    """The queue's operations over one redis.asyncio client (protocol 2 replies)."""

    def __init__(self, redis, prefix: str = "aria") -> None:
        self.redis = redis
        self.prefix = prefix
        self._enqueue = redis.register_script(_ENQUEUE)
        self._claim = redis.register_script(_CLAIM)
        self._cancel = redis.register_script(_CANCEL)
        self._post = redis.register_script(_POST)
        self._finish = redis.register_script(_FINISH)
        self._hold = redis.register_script(_HOLD)
        self._mark_running = redis.register_script(_MARK_RUNNING)
        self._result = redis.register_script(_RESULT)
        self._reclaim_cursor = "0-0"  # where the next take-over scan of the pending list starts

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    @property
    def work_stream(self) -> str:
        return self.key("work")

    # -- the submitting side -------------------------------------------------------------------

    async def enqueue(self, job_id: str, request_json: str, image: bytes | None, *, server: str, user: str,
                      cost: float, max_queued: int, max_per_server: int | None,
                      max_per_user: int | None, continues: bytes | None = None) -> Enqueued | Refused:
        """`continues`: the MIDI of the earlier piece a jam continues (wire.score_continuation)."""
        reply = await self._enqueue(args=[
            self.prefix, job_id, request_json, "1" if image is not None else "0", image or b"",
            server, user, repr(float(cost)), repr(time.time()),
            max_queued, max_per_server or 0, max_per_user or 0,
            "1" if continues is not None else "0", continues or b"",
        ])
        status = _text(reply[0])
        if status == "queued":
            return Enqueued(int(reply[1]))
        if status == "busy":
            return Refused(_text(reply[1]), int(reply[2]))
        raise ValueError(f"job id {job_id} is already taken")

    async def cancel(self, job_id: str, by: str, ttl_s: int) -> str:
        """The job's state before: queued or running (now cancelled), or done/failed/cancelled/missing."""
        return _text(await self._cancel(args=[self.prefix, job_id, json.dumps(by), int(ttl_s)]))

    async def read_events(self, last_ids: dict[str, str], block_ms: int, count: int = 100):
        """[(job id, [(entry id, fields), ...]), ...] after each job's last seen entry."""
        streams = {self.key("events", job_id): last for job_id, last in last_ids.items()}
        reply = await self.redis.xread(streams, count=count, block=block_ms) or []
        head = len(self.key("events", ""))
        return [(_text(stream)[head:], [(_text(eid), fields) for eid, fields in entries]) for stream, entries in reply]

    async def result(self, job_id: str, max_bytes: int = MAX_RESULT_BYTES) -> bytes | None:
        """The stored result's bytes, None if there is none; WireError if the key holds
        something else or more than `max_bytes` (the bytes then stay in Redis)."""
        reply = await self._result(args=[self.key("result", job_id), int(max_bytes)])
        if not reply:
            return None
        status = _text(reply[0])
        if status == "type":
            raise WireError(f"the stored result is a Redis {_text(reply[1])}, not a string")
        if status == "size":
            raise WireError(f"the result is {int(reply[1])} bytes, over the {max_bytes}-byte limit")
        return reply[1]

    async def existing(self, job_ids: list[str]) -> set[str]:
        """Which of these jobs Redis still knows."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.exists(self.key("job", job_id))
            found = await pipe.execute()
        return {job_id for job_id, n in zip(job_ids, found) if n}

    async def not_streams(self, job_ids: list[str]) -> set[str]:
        """Which of these jobs have an events key that holds something other than a stream."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.type(self.key("events", job_id))
            kinds = await pipe.execute()
        return {job_id for job_id, kind in zip(job_ids, kinds) if _text(kind) not in ("stream", "none")}

    async def job_fields(self, job_id: str) -> dict[str, bytes]:
        return {_text(k): v for k, v in (await self.redis.hgetall(self.key("job", job_id))).items()}

    async def counts(self, worker_timeout_s: float, window_s: float = 120.0) -> dict:
        """Queue depth, jobs handed out, live workers and recent completion times.

        Anyone who writes to Redis can put anything under these keys: a key of the wrong type
        counts as empty and a value that is no number is skipped, so one bad entry never stops
        the bot from following its jobs (an unreachable Redis still raises)."""
        now = time.time()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(self.key("queued"))
            pipe.exists(self.work_stream)
            pipe.hgetall(self.key("workers"))
            pipe.zrangebyscore(self.key("completions"), now - window_s, "+inf", withscores=True)
            replies = await pipe.execute(raise_on_error=False)
        queued, has_stream, workers, recent = (None if isinstance(r, Exception) else r for r in replies)
        running = 0
        if has_stream:
            try:
                running = int((await self.redis.xpending(self.work_stream, GROUP))["pending"])
            except Exception:  # no group yet (or no stream): nothing handed out
                running = 0
        live = 0
        for seen in (workers or {}).values():
            beat = _finite(seen)
            if beat is not None and now - beat < worker_timeout_s:
                live += 1
        completions = [score for score in (_finite(pair[1]) for pair in _pairs(recent)) if score is not None]
        return {"queued": _count(queued), "running": running, "workers": live, "completions": completions,
                "now": now}

    # -- readings: a jam contribution's picture, read by a worker --------------------------------

    async def ask_reading(self, read_id: str, reading_json: str, image: bytes, ttl_s: int) -> None:
        """Leave a picture to read; it expires, unread or not, after `ttl_s`."""
        key = self.key("read", read_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"reading": reading_json, "image": image})
            pipe.expire(key, int(ttl_s))
            pipe.rpush(self.key("reads"), read_id)
            await pipe.execute()

    async def reading_answer(self, read_id: str, timeout_s: float) -> bytes | None:
        """The worker's answer, waiting at most `timeout_s`; None if none came."""
        reply = await self.redis.blpop([self.key("read-answer", read_id)], timeout=timeout_s)
        return None if reply is None else reply[1]

    async def forget_reading(self, read_id: str) -> None:
        """The bot stopped waiting: no worker needs to read it any more."""
        await self.redis.delete(self.key("read", read_id))

    async def next_reading(self, timeout_s: float) -> tuple[str, dict[str, bytes]] | None:
        """(id, fields) of the next picture to read, taken off the lane; None when none came in
        `timeout_s` (one whose bot stopped waiting is skipped)."""
        reply = await self.redis.blpop([self.key("reads")], timeout=timeout_s)
        if reply is None:
            return None
        read_id = _text(reply[1])[:64]
        key = self.key("read", read_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(key)
            pipe.delete(key)
            found, _ = await pipe.execute()
        if not found:
            return None
        return read_id, {_text(k): v for k, v in found.items()}

    async def answer_reading(self, read_id: str, answer_json: str, ttl_s: int) -> None:
        key = self.key("read-answer", read_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, answer_json)
            pipe.expire(key, int(ttl_s))
            await pipe.execute()

    # -- the worker side ------------------------------------------------------------------------

    async def claim(self, consumer: str) -> tuple[str, str] | None:
        """(stream entry id, job id) of the next job by fairness, now pending on `consumer`."""
        reply = await self._claim(args=[self.prefix, consumer])
        if not reply:
            return None
        return _text(reply[0]), _text(reply[1])

    async def wait_for_work(self, timeout_s: float) -> None:
        await self.redis.blpop([self.key("doorbell")], timeout=timeout_s)

    async def post(self, job_id: str, fields: dict[str, str]) -> bool:
        flat = [x for pair in fields.items() for x in pair]
        return bool(await self._post(args=[self.prefix, job_id, *flat]))

    async def finish(self, job_id: str, entry_id: str, kind: str, fields: dict[str, str],
                     result: bytes | None, ttl_s: int) -> bool:
        """Store the outcome unless one is stored already; ack the entry either way."""
        flat = [x for pair in fields.items() for x in pair]
        return bool(await self._finish(args=[
            self.prefix, job_id, entry_id, kind, result or b"", int(ttl_s), repr(time.time()), *flat,
        ]))

    async def ack(self, entry_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.work_stream, GROUP, entry_id)
            pipe.xdel(self.work_stream, entry_id)
            await pipe.execute()

    async def mark_running(self, job_id: str, worker: str) -> bool:
        """False if the job ended meanwhile (cancelled, or finished by another worker)."""
        return bool(await self._mark_running(args=[self.key("job", job_id), worker]))

    async def heartbeat(self, worker: str, entry_ids: list[str], info: dict | None = None) -> set[str]:
        """Say this worker lives (and, with `info`, what it runs on and can take), and reset
        the idle time of the entries it still owns; returns those. An entry it lost was taken
        over by another worker while this one was too slow to say it lived; taking it back
        would only make two workers do the same job."""
        await self.redis.hset(self.key("workers"), worker, repr(time.time()))
        if info is not None:
            await self.redis.hset(self.key("worker-info"), worker, json.dumps(info, sort_keys=True))
        if not entry_ids:
            return set()
        return {_text(e) for e in await self._hold(args=[self.work_stream, worker, *entry_ids])}

    async def release(self, worker: str, entry_ids: list[str], idle_ms: int) -> None:
        """Leaving: make these entries look idle long enough for another worker to take now."""
        if entry_ids:
            await self.redis.xclaim(self.work_stream, GROUP, worker, 0, entry_ids, idle=idle_ms, justid=True)
        await self.redis.hdel(self.key("workers"), worker)
        await self.redis.hdel(self.key("worker-info"), worker)

    async def worker_info(self) -> dict[str, dict]:
        """What each worker said it runs on and can take (device, concurrency, max_batch).
        Written by workers, so read as untrusted data: entries that are not small JSON objects
        are left out."""
        found = {}
        for name, raw in (await self.redis.hgetall(self.key("worker-info"))).items():
            try:
                info = json.loads(raw) if len(raw) <= 4096 else None
            except ValueError:
                info = None
            if isinstance(info, dict):
                found[_text(name)] = info
        return found

    async def states(self, job_ids: list[str]) -> dict[str, str | None]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hget(self.key("job", job_id), "state")
            found = await pipe.execute()
        return {job_id: (_text(s) if s is not None else None) for job_id, s in zip(job_ids, found)}

    async def reclaim(self, worker: str, min_idle_ms: int, count: int) -> list[tuple[str, str, int]]:
        """Take over entries idle past the visibility timeout: (entry id, job id, deliveries).

        XAUTOCLAIM looks at no more than 10 x count pending entries a call, so each call goes on
        from where the last one stopped: with many jobs in flight, a dead worker's entries
        further down the pending list are still reached."""
        if count <= 0 or not await self.redis.exists(self.work_stream):
            return []
        reply = await self.redis.xautoclaim(self.work_stream, GROUP, worker, min_idle_ms,
                                            self._reclaim_cursor, count=count)
        self._reclaim_cursor = _text(reply[0])  # "0-0" once the scan has come round
        taken = []
        for entry_id, fields in reply[1]:
            if not fields:
                continue
            entry_id = _text(entry_id)
            pending = await self.redis.xpending_range(self.work_stream, GROUP, entry_id, entry_id, 1)
            deliveries = int(pending[0]["times_delivered"]) if pending else 1
            taken.append((entry_id, _text(fields[b"job"] if b"job" in fields else fields["job"]), deliveries))
        return taken


def _finite(value) -> float | None:
    """A finite number from what Redis held, or None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _count(value) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


def _pairs(value) -> list:
    """(member, score) pairs from a ZRANGE ... WITHSCORES reply; anything else counts as none."""
    if not isinstance(value, (list, tuple)):
        return []
    return [pair for pair in value if isinstance(pair, (list, tuple)) and len(pair) == 2]
