-- The start every enqueue script shares: butterfly_mq.scripts puts this file in front of
-- enqueue.lua (ENQUEUE), enqueue_marked.lua (ENQUEUE_MARKED) and enqueue_many.lua
-- (ENQUEUE_MANY) when it builds them; it is not a script by itself (for redis-cli --eval:
-- cat enqueue_start.lua enqueue.lua > /tmp/enqueue.lua).
--
-- t, now                 the server's TIME reply and the time in ms from it (instances with
--                        skewed clocks agree)
-- state_fields(delay)    the fields a new message's metadata JSON ends with (the caller
--                        writes the comma before them): its state and when it was enqueued
--                        (and is due: delay in ms > 0), and the closing brace
-- store_new(id, info, delay)  the per-call scripts' store: the producer's metadata object
--                        (KEYS[3], the info hash) completed by state_fields; false when the
--                        id is already there
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function state_fields(delay)
  if delay > 0 then
    return '"state":"scheduled","enqueued_at":' .. now .. ',"due_at":' .. (now + delay) .. '}'
  end
  return '"state":"queued","enqueued_at":' .. now .. '}'
end

-- PERF: the producer's info object is completed by splicing, not by a cjson round trip;
-- HSETNX both stores it and finds an id that is already there. The two functions (closures
-- made on every run, and their calls) cost about 0.1 us a script, next to about 5 us of its
-- redis.calls: the price of writing the splice once.
local function store_new(id, info, delay)
  return redis.call('HSETNX', KEYS[3], id, string.sub(info, 1, -2) .. ',' .. state_fields(delay)) == 1
end

