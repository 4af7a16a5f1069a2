-- ENQUEUE_MANY: store and queue a batch of messages of one queue in one script (built after
-- enqueue_start.lua).
--
-- KEYS (one queue, one hashtag): queued, scheduled, info, params, stats
-- ARGV[1]  delay in ms (0: queue now; > 0: schedule every message of the batch)
-- ARGV[2]  the metadata every message of the batch shares: a JSON object without
--          id, state and enqueued_at (topic, created_at, attempts, producer, ...)
-- ARGV[3..] pairs: message id, params JSON
-- returns  one status per message, in order: 1 stored, 0 the id was already there
--
-- Message ids match [A-Za-z0-9_.:-]{1,128} (checked by the producer), so they are
-- spliced into JSON without escaping. HSETNX both checks for the id and stores the
-- metadata; the queue push and the params are then written with one command per
-- CHUNK messages, so a batch costs about one Redis command per message.
local CHUNK = 500
local delay = tonumber(ARGV[1]) or 0
local shared = string.sub(ARGV[2], 2, -2)
if shared ~= '' then shared = shared .. ',' end
local tail = state_fields(delay)

local statuses, ids, params, stored = {}, {}, {}, 0

local function flush()
  if #ids == 0 then return end
  if delay > 0 then
    local scored = {}
    for _, id in ipairs(ids) do
      scored[#scored + 1] = now + delay
      scored[#scored + 1] = id
    end
    redis.call('ZADD', KEYS[2], unpack(scored))
  else
    redis.call('RPUSH', KEYS[1], unpack(ids))
  end
  redis.call('HSET', KEYS[4], unpack(params))
  ids, params = {}, {}
end

for i = 3, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('HSETNX', KEYS[3], id, '{"id":"' .. id .. '",' .. shared .. tail) == 1 then
    statuses[#statuses + 1] = 1
    stored = stored + 1
    ids[#ids + 1] = id
    params[#params + 1] = id
    params[#params + 1] = ARGV[i + 1]
    if #ids >= CHUNK then flush() end
  else
    statuses[#statuses + 1] = 0
  end
end
flush()
if stored > 0 then redis.call('HINCRBY', KEYS[5], 'enqueued', stored) end
return statuses
