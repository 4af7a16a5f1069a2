"""The Lua scripts behind every state change, and a Twemproxy-safe way to run them.

Each queue script receives the ten keys of one queue (:data:`butterfly_mq.keys.KEY_NAMES`
order), all under one hashtag, so one script runs atomically on one server
through Twemproxy, Redis Cluster or a single Redis. Time comes from the server
(``redis.call('TIME')``), so instances with skewed clocks agree on leases.

Message metadata (``info``) is a small JSON object edited inside Lua with cjson;
the handler's params and its result are opaque JSON strings that Lua never
decodes, so cjson's number precision and empty-array quirks cannot corrupt them.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import threading
from collections.abc import Sequence
from importlib import resources
from typing import Any

import redis
from redis.exceptions import NoScriptError

PRELUDE = r"""
local Q, STARTED, SCHEDULED, FINISHED, FAILED, DEAD = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local INFO, PARAMS, RESULT, STATS = KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local SETS = {started = STARTED, scheduled = SCHEDULED, finished = FINISHED, failed = FAILED, dead = DEAD}

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- nil: no such message; false: metadata is not a JSON object (never crash the caller)
local function load_info(id)
  local raw = redis.call('HGET', INFO, id)
  if not raw then return nil end
  local ok, info = pcall(cjson.decode, raw)
  if not ok or type(info) ~= 'table' then return false end
  return info
end

local function save_info(id, info)
  local encoded = cjson.encode(info)
  redis.call('HSET', INFO, id, encoded)
  return encoded
end

local function quarantine(id, now, reason)
  local raw = redis.call('HGET', INFO, id) or ''
  local info = {id = id, state = 'dead', ended_at = now, error = reason .. ': ' .. string.sub(raw, 1, 200)}
  redis.call('ZADD', DEAD, now, id)
  save_info(id, info)
end

-- throughput: a ring of ten one-minute buckets in the stats hash (tN = minute, cN = count)
local function count_done(now)
  local minute = math.floor(now / 60000)
  local slot = minute % 10
  if redis.call('HGET', STATS, 't' .. slot) ~= tostring(minute) then
    redis.call('HSET', STATS, 't' .. slot, minute, 'c' .. slot, 1)
  else
    redis.call('HINCRBY', STATS, 'c' .. slot, 1)
  end
end

-- leases that expired: back to the front of the queue, or dead after too many recoveries
local function recover(now, limit, max_recoveries)
  local ids = redis.call('ZRANGEBYSCORE', STARTED, '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(ids) do
    redis.call('ZREM', STARTED, id)
    local info = load_info(id)
    if info == false then
      quarantine(id, now, 'corrupt metadata')
    elseif info then
      info.recoveries = (info.recoveries or 0) + 1
      info.last_worker = info.worker
      info.recovered_at = now
      if info.recoveries > max_recoveries then
        info.state = 'dead'
        info.ended_at = now
        info.stat = 'ERR_WORKER_LOST'
        info.error = 'quarantined: the worker running it died or stopped renewing its lease '
          .. info.recoveries .. ' times; last worker ' .. tostring(info.worker) .. ', reqid ' .. id
        redis.call('ZADD', DEAD, now, id)
        redis.call('HINCRBY', STATS, 'dead', 1)
      else
        info.state = 'queued'
        redis.call('LPUSH', Q, id)
        redis.call('HINCRBY', STATS, 'recovered', 1)
      end
      save_info(id, info)
    end
  end
  return #ids
end

-- scheduled messages (delayed or waiting to retry) whose time has come join the queue
local function promote(now, limit)
  local ids = redis.call('ZRANGEBYSCORE', SCHEDULED, '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(ids) do
    redis.call('ZREM', SCHEDULED, id)
    local info = load_info(id)
    if info == false then
      quarantine(id, now, 'corrupt metadata')
    elseif info then
      info.state = 'queued'
      save_info(id, info)
      redis.call('RPUSH', Q, id)
    end
  end
  return #ids
end
"""

# PERF: the hot producer path gets its own short script with only the five keys it
# touches (queued, scheduled, info, params, stats): fewer arguments to pack and send.
# ARGV: id, params_json, info_json (an object without state/enqueued_at), delay_ms
#   →  1 enqueued, 0 already there (idempotent msg_id)
ENQUEUE = r"""
local id = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local delay = tonumber(ARGV[4]) or 0
local extra
if delay > 0 then
  extra = ',"state":"scheduled","enqueued_at":' .. now .. ',"due_at":' .. (now + delay) .. '}'
else
  extra = ',"state":"queued","enqueued_at":' .. now .. '}'
end
-- PERF: the producer's info object is completed by splicing, not by a cjson round trip;
-- HSETNX both stores it and finds an id that is already there
if redis.call('HSETNX', KEYS[3], id, string.sub(ARGV[3], 1, -2) .. extra) == 0 then return 0 end
if delay > 0 then
  redis.call('ZADD', KEYS[2], now + delay, id)
else
  redis.call('RPUSH', KEYS[1], id)
end
redis.call('HSET', KEYS[4], id, ARGV[2])
redis.call('HINCRBY', KEYS[5], 'enqueued', 1)
return 1
"""
#: Positions (in the full key list) of the keys ENQUEUE takes.
ENQUEUE_KEYS = (0, 2, 6, 7, 9)

# ARGV: count, lease_ms, worker, max_recoveries
#   →  {due_in_ms, id, params, info, id, params, info, ...}; due_in_ms: how long until the
#      earliest scheduled message is due (-1: none; -2: the queue is paused)
POP = (
    PRELUDE
    + r"""
if redis.call('HGET', STATS, 'paused') == '1' then return {-2} end
local now = now_ms()
recover(now, 20, tonumber(ARGV[4]))
promote(now, 200)
local wanted, lease, worker = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local out, popped = {}, 0
while popped < wanted do
  local id = redis.call('LPOP', Q)
  if not id then break end
  local info = load_info(id)
  if info == false then
    quarantine(id, now, 'corrupt metadata')
  elseif info then
    if (tonumber(info.ttl) or 0) > 0 and now - info.enqueued_at > info.ttl then
      info.state = 'failed'
      info.ended_at = now
      info.stat = 'ERR_EXPIRED'
      info.error = 'expired: waited longer than its ttl (' .. info.ttl .. ' ms) before a worker took it'
      redis.call('ZADD', FAILED, now, id)
      save_info(id, info)
    else
      info.state = 'started'
      info.started_at = now
      info.worker = worker
      info.attempts = (info.attempts or 0) + 1
      redis.call('ZADD', STARTED, now + lease, id)
      out[#out + 1] = id
      out[#out + 1] = redis.call('HGET', PARAMS, id) or ''
      out[#out + 1] = save_info(id, info)
      popped = popped + 1
    end
  end
end
local due = redis.call('ZRANGE', SCHEDULED, 0, 0, 'WITHSCORES')
local due_in = -1
if due[2] then due_in = math.max(0, tonumber(due[2]) - now) end
table.insert(out, 1, due_in)
return out
"""
)

# ARGV: groups of (id, worker, attempt, outcome, result_json, error, stat, cost_ms, retry_delay_ms)
# → one status per group: 1 recorded, 0 message gone, -1 lease lost (someone else owns it now)
FINISH = (
    PRELUDE
    + r"""
local now = now_ms()
local statuses = {}
for i = 1, #ARGV, 9 do
  local id = ARGV[i]
  local info = load_info(id)
  if not info then
    statuses[#statuses + 1] = 0
  elseif info.state ~= 'started' or info.worker ~= ARGV[i + 1] or tostring(info.attempts) ~= ARGV[i + 2] then
    statuses[#statuses + 1] = -1
  else
    local outcome = ARGV[i + 3]
    redis.call('ZREM', STARTED, id)
    info.ended_at = now
    info.cost_ms = tonumber(ARGV[i + 7])
    info.stat = ARGV[i + 6]
    if ARGV[i + 5] ~= '' then info.error = ARGV[i + 5] else info.error = nil end
    if ARGV[i + 4] ~= '' then redis.call('HSET', RESULT, id, ARGV[i + 4]) end
    if outcome == 'finished' then
      info.state = 'finished'
      redis.call('ZADD', FINISHED, now, id)
      redis.call('HINCRBY', STATS, 'finished', 1)
      count_done(now)
    elseif outcome == 'retry' then
      info.failures = (info.failures or 0) + 1
      info.state = 'scheduled'
      info.due_at = now + tonumber(ARGV[i + 8])
      redis.call('ZADD', SCHEDULED, info.due_at, id)
      redis.call('HINCRBY', STATS, 'retried', 1)
    else
      info.failures = (info.failures or 0) + 1
      info.state = 'failed'
      redis.call('ZADD', FAILED, now, id)
      redis.call('HINCRBY', STATS, 'failed', 1)
      count_done(now)
    end
    save_info(id, info)
    statuses[#statuses + 1] = 1
  end
end
return statuses
"""
)

# ARGV: lease_ms, id...  →  number of leases renewed (messages still started)
RENEW = (
    PRELUDE
    + r"""
local due = now_ms() + tonumber(ARGV[1])
local renewed = 0
for i = 2, #ARGV do
  renewed = renewed + redis.call('ZADD', STARTED, 'XX', 'CH', due, ARGV[i])
end
return renewed
"""
)

# ARGV: worker, then (id, attempt) pairs, newest first  →  number returned to the queue front
RETURN_UNSTARTED = (
    PRELUDE
    + r"""
local returned = 0
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  local info = load_info(id)
  if info and info.state == 'started' and info.worker == ARGV[1] and tostring(info.attempts) == ARGV[i + 1] then
    redis.call('ZREM', STARTED, id)
    info.state = 'queued'
    info.attempts = info.attempts - 1
    info.worker = nil
    info.started_at = nil
    save_info(id, info)
    redis.call('LPUSH', Q, id)
    returned = returned + 1
  end
end
return returned
"""
)

# ARGV: id  →  1 requeued, 0 no such message, -1 not in a requeueable state
REQUEUE = (
    PRELUDE
    + r"""
local id = ARGV[1]
local info = load_info(id)
if info == nil then return 0 end
if info == false then return -1 end
local set = SETS[info.state]
if info.state == 'started' or not set then return -1 end
redis.call('ZREM', set, id)
info.state = 'queued'
info.recoveries = 0
info.failures = 0
info.requeued_at = now_ms()
info.last_error = info.error
info.error = nil
save_info(id, info)
redis.call('RPUSH', Q, id)
return 1
"""
)

# ARGV: id  →  1 deleted, 0 no such message
DELETE = (
    PRELUDE
    + r"""
local id = ARGV[1]
local info = load_info(id)
if info == nil then return 0 end
if info and info.state == 'queued' then redis.call('LREM', Q, 1, id) end
for _, key in pairs(SETS) do redis.call('ZREM', key, id) end
redis.call('HDEL', INFO, id)
redis.call('HDEL', PARAMS, id)
redis.call('HDEL', RESULT, id)
return 1
"""
)

# ARGV: state, limit  →  number deleted (call again until 0)
EMPTY = (
    PRELUDE
    + r"""
local state, limit = ARGV[1], tonumber(ARGV[2])
local ids
if state == 'queued' then
  ids = redis.call('LRANGE', Q, 0, limit - 1)
  redis.call('LTRIM', Q, #ids, -1)
else
  ids = redis.call('ZRANGE', SETS[state], 0, limit - 1)
  if #ids > 0 then redis.call('ZREM', SETS[state], unpack(ids)) end
end
for _, id in ipairs(ids) do
  redis.call('HDEL', INFO, id)
  redis.call('HDEL', PARAMS, id)
  redis.call('HDEL', RESULT, id)
end
return #ids
"""
)

# ARGV: state, cutoff_ms, limit  →  number of expired finished/failed/dead messages removed
PURGE = (
    PRELUDE
    + r"""
local ids = redis.call('ZRANGEBYSCORE', SETS[ARGV[1]], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  redis.call('ZREM', SETS[ARGV[1]], id)
  redis.call('HDEL', INFO, id)
  redis.call('HDEL', PARAMS, id)
  redis.call('HDEL', RESULT, id)
end
return #ids
"""
)

# ARGV: max_recoveries, limit  →  leases recovered (cleanup of queues nobody pops)
RECOVER = (
    PRELUDE
    + r"""
local now = now_ms()
local recovered = recover(now, tonumber(ARGV[2]), tonumber(ARGV[1]))
promote(now, tonumber(ARGV[2]))
return recovered
"""
)

# PERF: O(1) whatever the queue sizes: LLEN/ZCARD, one LINDEX + HGET, one HMGET of 20 fields.
# → {queued, started, scheduled, finished, failed, dead, oldest_enqueued_at|-1, now, paused,
#    enqueued_total, t0..t9, c0..c9}
COUNTS = (
    PRELUDE
    + r"""
local oldest = -1
local head = redis.call('LINDEX', Q, 0)
if head then
  local info = load_info(head)
  if info then oldest = info.enqueued_at or -1 end
end
local out = {redis.call('LLEN', Q), redis.call('ZCARD', STARTED), redis.call('ZCARD', SCHEDULED),
  redis.call('ZCARD', FINISHED), redis.call('ZCARD', FAILED), redis.call('ZCARD', DEAD), oldest, now_ms(),
  redis.call('HGET', STATS, 'paused') or '0', redis.call('HGET', STATS, 'enqueued') or '0'}
local ring = redis.call('HMGET', STATS, 't0', 't1', 't2', 't3', 't4', 't5', 't6', 't7', 't8', 't9',
  'c0', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7', 'c8', 'c9')
for i = 1, 20 do out[#out + 1] = ring[i] or '0' end
return out
"""
)

# ARGV: state, offset, limit  →  {total, id, info, id, info, ...}; newest first for ended states
PAGE = (
    PRELUDE
    + r"""
local state, offset, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local ids, total
if state == 'queued' then
  total = redis.call('LLEN', Q)
  ids = redis.call('LRANGE', Q, offset, offset + limit - 1)
elseif state == 'started' or state == 'scheduled' then
  total = redis.call('ZCARD', SETS[state])
  ids = redis.call('ZRANGE', SETS[state], offset, offset + limit - 1)
else
  total = redis.call('ZCARD', SETS[state])
  ids = redis.call('ZREVRANGE', SETS[state], offset, offset + limit - 1)
end
local out = {total}
for _, id in ipairs(ids) do
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', INFO, id) or ''
end
return out
"""
)

# KEYS[1] = instances hash; ARGV: name, instance JSON object  →  server time (ms)
HEARTBEAT = r"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], string.sub(ARGV[2], 1, -2) .. ',"last_heartbeat":' .. now .. '}')
return now
"""

# KEYS[1] = any registry key  →  server time (ms); TIME itself is not proxied by Twemproxy
SERVER_TIME = r"""
local t = redis.call('TIME')
return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS[1] = lock; ARGV: token  →  1 released, 0 someone else holds it (compare-and-delete)
RELEASE_LOCK = r"""
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Script:
    """A Lua script and its SHA1, run with EVALSHA and an EVAL fallback.

    :param name: a short name for logs
    :param source: the Lua source
    """

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode("utf-8")).hexdigest()

    def __call__(self, client: Any, keys: Sequence[str], args: Sequence[Any] = ()) -> Any:
        """Run once. NOSCRIPT (new or restarted server) falls back to EVAL, which also
        caches the script; ``SCRIPT LOAD`` is never used because Twemproxy refuses it."""
        return run_pipelined(client, [(self, keys, args)])[0]


Call = tuple[Script, Sequence[str], Sequence[Any]]
#: ``ConnectionPool.get_connection`` arguments: none since redis-py 5.3 (a command name before).
_POOL_ARGS: tuple[str, ...] = (
    ()
    if inspect.signature(redis.ConnectionPool.get_connection).parameters["command_name"].default is None
    else ("EVALSHA",)
)


#: Packed ``EVALSHA <sha> <numkeys> <keys...>`` heads, per script and key list (see :func:`pack_calls`).
_HEADS: dict[tuple[str, tuple[str, ...]], tuple[int, bytes]] = {}


def _bulk(value: Any) -> bytes:
    """One RESP bulk string, encoded like redis-py's ``Encoder`` (UTF-8; numbers by ``repr``)."""
    if isinstance(value, str):
        data = value.encode("utf-8")
    elif isinstance(value, bytes):
        data = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        data = repr(value).encode("ascii")
    else:
        raise redis.DataError(f"Invalid input of type: {type(value).__name__!r}")
    return b"$%d\r\n%s\r\n" % (len(data), data)


#: Calls with at most this many arguments are packed here (see :func:`pack_calls`).
SMALL_CALL_ARGS = 8


def pack_calls(calls: Sequence[Call], connection: Any) -> list[bytes]:
    """The ``EVALSHA`` commands of ``calls``, RESP-encoded for ``connection``.

    PERF: a script's head (its SHA and keys) is the same for every call of a queue, so for a
    call with few arguments (an enqueue, a pop) it is packed once and kept and only the
    arguments are packed per call: about a third of redis-py's ``pack_commands``. A call
    with many arguments (a batch of acks) goes to the connection's own packer (hiredis's C
    packer where installed), which is faster there.
    """
    parts: list[bytes] = []
    for script, keys, args in calls:
        if len(args) > SMALL_CALL_ARGS:
            parts.extend(connection.pack_command("EVALSHA", script.sha, len(keys), *keys, *args))
            continue
        marker = (script.sha, tuple(keys))
        head = _HEADS.get(marker)
        if head is None:
            if len(_HEADS) > 10_000:
                _HEADS.clear()
            packed = b"".join(_bulk(part) for part in ("EVALSHA", script.sha, len(keys), *keys))
            head = _HEADS[marker] = (3 + len(keys), packed)
        parts.append(b"*%d\r\n" % (head[0] + len(args)))
        parts.append(head[1])
        parts.extend(_bulk(arg) for arg in args)
    return parts


def _send_on_one_connection(client: redis.Redis, calls: Sequence[Call], connection: Any = None) -> list[Any]:
    """EVALSHA every call on one pooled connection: all commands in one write, then every reply.

    PERF: the same round trip as ``pipeline(transaction=False)``, without its per-command
    bookkeeping (and a plain command's): redis-py's pipeline costs about 15 µs of client CPU
    on top of the socket work, which is most of a producer's per-call cost. Built on the
    public connection API (``get_connection``, ``pack_command``, ``send_packed_command``, ``read_response``,
    ``release``) and the connection's own ``retry``: a broken pooled connection (a restarted
    server) is replaced and the commands sent again once, as a pipeline would.

    :param connection: a connection the caller holds (taken from ``client``'s pool and kept by
        one thread); default: one is taken from the pool for this call
    :return: one reply per call; an error reply (``ResponseError``) in its place
    """
    count = len(calls)
    pool = client.connection_pool
    borrowed = connection is None
    if borrowed:
        connection = pool.get_connection(*_POOL_ARGS)
    packed: list[bytes] = []

    def attempt() -> list[Any]:
        connection.send_packed_command(packed)
        replies: list[Any] = []
        for _ in range(count):
            try:
                replies.append(connection.read_response())
            except redis.ResponseError as exc:  # NOTE: the reply was read: the connection is in step
                replies.append(exc)
        return replies

    try:
        packed.append(b"".join(pack_calls(calls, connection)))
        return connection.retry.call_with_retry(attempt, lambda error: connection.disconnect())
    except BaseException:
        # NOTE: replies may be left unread (an interrupt, an error redis-py did not handle):
        # a held connection must not carry them into its next call
        connection.disconnect()
        raise
    finally:
        if borrowed:
            pool.release(connection)


def run_pipelined(
    client: Any, calls: Sequence[Call], *, raise_errors: bool = True, connection: Any = None
) -> list[Any]:
    """Run several scripts in one round trip (pipelined, never MULTI).

    A call that failed with NOSCRIPT did not run, so it is run again with EVAL. A single
    Redis or a Twemproxy gets every command on one connection (:func:`_send_on_one_connection`);
    on a Redis Cluster redis-py's pipeline splits them by node (one round trip per node).

    :param client: a ``redis.Redis`` or a cluster client
    :param calls: ``(script, keys, args)`` triples
    :param connection: for a single Redis or Twemproxy, a connection of ``client``'s pool the
        calling thread holds (see :func:`hold_connection`); ignored on a cluster
    :param raise_errors: raise the first error reply; ``False``: return error replies as
        exception objects in their place (a lost connection still raises)
    :return: the results in order
    :raises redis.RedisError: the first other error
    """
    if not calls:
        return []
    if isinstance(client, redis.Redis):
        results = _send_on_one_connection(client, calls, connection)
    else:
        pipe = client.pipeline(transaction=False)
        for script, keys, args in calls:
            # NOTE: redis-py's cluster pipeline has no evalsha() method (it could not load a
            # script on the node that answered NOSCRIPT); the generic command is routed by its
            # keys like any other, and NOSCRIPT is handled below, per call, with EVAL.
            pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        results = pipe.execute(raise_on_error=False)
    for index, result in enumerate(results):
        if isinstance(result, NoScriptError):
            script, keys, args = calls[index]
            try:
                results[index] = client.eval(script.source, len(keys), *keys, *args)
            except redis.ResponseError as exc:
                if raise_errors:
                    raise
                results[index] = exc
        elif isinstance(result, Exception) and raise_errors:
            raise result
    return results


def lua_source(name: str) -> str:
    """The source of ``butterfly_mq/lua/<name>.lua`` (scripts kept in files of their own)."""
    return resources.files("butterfly_mq").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


def hold_connection(client: Any) -> Any:
    """A connection of ``client``'s pool for one long-lived thread to keep (``None`` on a cluster).

    PERF: a pool checkout and return cost two ``getpid`` system calls and two lock round trips
    per call; the consumer's poller makes hundreds of calls a second. Give it back with
    :func:`release_connection`. A connection that breaks reconnects on its next use.
    """
    return client.connection_pool.get_connection(*_POOL_ARGS) if isinstance(client, redis.Redis) else None


def release_connection(client: Any, connection: Any) -> None:
    """Return a connection taken with :func:`hold_connection` to its pool."""
    if connection is not None:
        client.connection_pool.release(connection)


#: Most pools one thread keeps a connection of (:func:`thread_connection`); the oldest goes back.
THREAD_HELD_MOST = 8


class _Held:
    """A connection one thread keeps; given back to its pool when the thread ends."""

    __slots__ = ("connection", "pid", "pool")

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.pid = os.getpid()
        self.connection = pool.get_connection(*_POOL_ARGS)

    def __del__(self) -> None:
        # NOTE: after a fork the pool starts afresh by itself; the parent's socket is not ours
        if self.pid == os.getpid():
            try:
                self.pool.release(self.connection)
            except Exception:  # noqa: BLE001 - a thread's end or interpreter shutdown
                pass


class _ThreadHeld(threading.local):
    def __init__(self) -> None:
        self.by_pool: dict[int, _Held] = {}


_thread_held = _ThreadHeld()


def thread_connection(client: Any) -> Any:
    """A connection of ``client``'s pool that the calling thread keeps (``None`` on a cluster).

    PERF: redis-py's pool checkout and return (a ``getpid``, two locks, a ``poll`` of the socket
    for stray data, connection-count metrics) cost a producer about as much client CPU as
    packing and sending its scripts. A producer thread keeps one connection per pool instead
    (at most :data:`THREAD_HELD_MOST` pools); it goes back to its pool when the thread ends,
    and is not used in a forked child. A connection that broke reconnects on its next use.
    """
    if not isinstance(client, redis.Redis):
        return None
    pool = client.connection_pool
    by_pool = _thread_held.by_pool
    held = by_pool.get(id(pool))
    if held is None or held.pool is not pool or held.pid != os.getpid():
        if len(by_pool) >= THREAD_HELD_MOST:
            del by_pool[next(iter(by_pool))]
        held = by_pool[id(pool)] = _Held(pool)
    return held.connection


SCRIPTS = {
    name: Script(name.lower(), source)
    for name, source in {
        "ENQUEUE": ENQUEUE,
        "ENQUEUE_MANY": lua_source("enqueue_many"),
        "ENQUEUE_MARKED": lua_source("enqueue_marked"),
        "POP": POP,
        "FINISH": FINISH,
        "RENEW": RENEW,
        "RETURN_UNSTARTED": RETURN_UNSTARTED,
        "REQUEUE": REQUEUE,
        "DELETE": DELETE,
        "EMPTY": EMPTY,
        "PURGE": PURGE,
        "RECOVER": RECOVER,
        "COUNTS": COUNTS,
        "PAGE": PAGE,
        "HEARTBEAT": HEARTBEAT,
        "SERVER_TIME": SERVER_TIME,
        "RELEASE_LOCK": RELEASE_LOCK,
    }.items()
}
