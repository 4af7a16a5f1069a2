"""The Lua scripts behind every state change (:mod:`butterfly_mq.script_calls` runs them).

Each queue script receives the ten keys of one queue (:data:`butterfly_mq.keys.KEY_NAMES`
order), all under one hashtag, so one script runs atomically on one server
through Twemproxy, Redis Cluster or a single Redis. Time comes from the server
(``redis.call('TIME')``), so instances with skewed clocks agree on leases.

Message metadata (``info``) is a small JSON object edited inside Lua with cjson;
the handler's params and its result are opaque JSON strings that Lua never
decodes, so cjson's number precision and empty-array quirks cannot corrupt them.

Most scripts are written here, each after :data:`PRELUDE` (``lua/prelude.lua``); the enqueue
scripts live in ``lua/`` files, each after the start they share (``lua/enqueue_start.lua``).
A file that starts another is not a script by itself.
"""

from __future__ import annotations

from importlib import resources

from butterfly_mq.script_calls import Script


def lua_source(name: str) -> str:
    """The source of ``butterfly_mq/lua/<name>.lua`` (scripts kept in files of their own)."""
    return resources.files("butterfly_mq").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


#: The start every queue script but the enqueue ones shares: the ten keys by name, the
#: server's time, reading and saving a message's metadata, counting, recovering expired
#: leases, promoting due messages (``lua/prelude.lua``).
PRELUDE = lua_source("prelude")

#: The start the enqueue scripts share: the server's time, the closing fields of a new
#: message's metadata, the per-call store (``lua/enqueue_start.lua``).
ENQUEUE_START = lua_source("enqueue_start")
# PERF: the hot producer path gets its own short script (``lua/enqueue.lua``) with only the
# five keys it touches (queued, scheduled, info, params, stats).
# ARGV: id, params_json, info_json (an object without state/enqueued_at), delay_ms
#   →  1 enqueued, 0 already there (idempotent msg_id)
ENQUEUE = ENQUEUE_START + lua_source("enqueue")
#: ENQUEUE and its ready mark in one script (``lua/enqueue_marked.lua``).
ENQUEUE_MARKED = ENQUEUE_START + lua_source("enqueue_marked")
#: A batch of messages of one queue in one script (``lua/enqueue_many.lua``).
ENQUEUE_MANY = ENQUEUE_START + lua_source("enqueue_many")
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


SCRIPTS = {
    name: Script(name.lower(), source)
    for name, source in {
        "ENQUEUE": ENQUEUE,
        "ENQUEUE_MANY": ENQUEUE_MANY,
        "ENQUEUE_MARKED": ENQUEUE_MARKED,
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
