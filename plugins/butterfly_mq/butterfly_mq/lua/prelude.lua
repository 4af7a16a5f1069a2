-- The start every queue script shares but the enqueue ones: butterfly_mq.scripts puts this
-- file in front of each when it builds them; it is not a script by itself.
--
-- KEYS: the ten keys of one queue (butterfly_mq.keys.KEY_NAMES order), under one hashtag;
-- named here, with the helpers the scripts use to read and change a message's metadata.
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

-- the members of a sorted set that are due (score <= now), at most limit: each is removed
-- from the set and handed with its metadata to take(id, info); corrupt metadata is quarantined
local function take_due(zset, now, limit, take)
  local ids = redis.call('ZRANGEBYSCORE', zset, '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(ids) do
    redis.call('ZREM', zset, id)
    local info = load_info(id)
    if info == false then
      quarantine(id, now, 'corrupt metadata')
    elseif info then
      take(id, info)
    end
  end
  return #ids
end

-- leases that expired: back to the front of the queue, or dead after too many recoveries
local function recover(now, limit, max_recoveries)
  return take_due(STARTED, now, limit, function(id, info)
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
  end)
end

-- scheduled messages (delayed or waiting to retry) whose time has come join the queue
local function promote(now, limit)
  return take_due(SCHEDULED, now, limit, function(id, info)
    info.state = 'queued'
    save_info(id, info)
    redis.call('RPUSH', Q, id)
  end)
end
