-- ENQUEUE_MARKED: ENQUEUE and its ready mark in one script (built after enqueue_start.lua),
-- where the queue's keys and the ready index live on the same server (a single Redis; a
-- Twemproxy backend holding both tags: the producer checks once per topic). Redis Cluster
-- never runs it (keys of two slots).
--
-- KEYS  queued, scheduled, info, params, stats (the queue's), then ready, ready_counter,
--       ready_epoch, ready_bell (the ready index's: see MARK_READY in ready.py)
-- ARGV  id, params JSON, info JSON (an object without state/enqueued_at), delay_ms, topic,
--       mark_every
-- returns 1 enqueued, 0 already there (idempotent msg_id)
--
-- The mark is only needed where no consumer would otherwise pop the message: a consumer pops a
-- marked topic until a pop comes back short, which means the queue was empty. So a message
-- pushed onto an empty queue is marked, and one pushed behind others only when the queue's
-- length is a multiple of mark_every (messages put back without a mark — returned, requeued,
-- or queued by a producer that does not mark — are found by a later enqueue's mark, or by the
-- consumers' sweep as before). A delayed message is always marked. PERF: every redis.call
-- costs about as much as the command it runs; a message pushed behind others costs five.
local id = ARGV[1]
local delay = tonumber(ARGV[4]) or 0
if not store_new(id, ARGV[3], delay) then return 0 end
local mark
if delay > 0 then
  redis.call('ZADD', KEYS[2], now + delay, id)
  mark = true
else
  local length = redis.call('RPUSH', KEYS[1], id)
  mark = length == 1 or length % tonumber(ARGV[6]) == 0
end
redis.call('HSET', KEYS[4], id, ARGV[2])
if mark then
  local n = redis.call('INCR', KEYS[7])
  if n == 1 or redis.call('EXISTS', KEYS[8]) == 0 then
    redis.call('SET', KEYS[8], t[1] .. '.' .. t[2])
  end
  redis.call('ZADD', KEYS[6], n, ARGV[5])
  redis.call('XADD', KEYS[9], 'MAXLEN', '~', 100, '*', 'n', n)
end
redis.call('HINCRBY', KEYS[5], 'enqueued', 1)
return 1
