-- ENQUEUE: store and queue one message (built after enqueue_start.lua).
--
-- PERF: the hot producer path gets its own short script with only the five keys it
-- touches: fewer arguments to pack and send.
-- KEYS  queued, scheduled, info, params, stats (the queue's: ENQUEUE_KEYS in scripts.py)
-- ARGV  id, params JSON, info JSON (an object without state/enqueued_at), delay_ms
-- returns 1 enqueued, 0 already there (idempotent msg_id)
local id = ARGV[1]
local delay = tonumber(ARGV[4]) or 0
if not store_new(id, ARGV[3], delay) then return 0 end
if delay > 0 then
  redis.call('ZADD', KEYS[2], now + delay, id)
else
  redis.call('RPUSH', KEYS[1], id)
end
redis.call('HSET', KEYS[4], id, ARGV[2])
redis.call('HINCRBY', KEYS[5], 'enqueued', 1)
return 1
