"""The ready index: which topics were enqueued to since a consumer last looked.

Without blocking pops or pub/sub (Twemproxy has neither), a consumer learns about new
work by polling. Popping every consumed topic on every poll costs one script per topic —
with 100 topics, 2,000 scripts a second per instance at a 50 ms pick-up target. Instead:

* an enqueue also runs ``MARK_READY`` (in the same pipelined round trip, or in the same
  script: see below): it bumps a sequence counter and records the topic in a ZSET scored by
  that number;
* every poll of every consumer runs ``READY`` with the highest number it has seen, and
  gets back only the topics enqueued to since — usually none, a few bytes;
* the consumer pops those topics at once.

A queue's script cannot touch the index where the two tags live on different servers (its
keys carry the queue's hashtag, the index its own ``{ready}`` tag: Redis Cluster, most topics
of a Twemproxy pool), so there the producer sends the two scripts side by side. Where they
share a server (a single Redis; the producer checks once per topic with
:meth:`ReadyIndex.probe_calls`) one script, ``lua/enqueue_marked.lua``, enqueues and marks,
and marks only when needed: a message pushed onto an empty queue, a delayed one, and one in
a hundred pushed behind others (a consumer pops a marked topic until a pop comes back short,
that is until the queue was empty, so it finds the messages behind; messages put back
without a mark are found by a later mark or the sweep, as before). Sent side by side, the
two scripts may run in either order on two servers; a consumer that sees the mark first pops an empty
queue, so a topic whose pop after a fresh mark came back empty is popped once more next
round. Producers that do not mark (another language running only ``ENQUEUE``), delayed
messages and retries are covered by the consumer's own timers and by a slow sweep of
every topic (``[mq] poll_max_interval``).

Polling the index every ``pickup_interval`` costs a wake-up of the poller 20 times a second
on an idle instance. So every mark also appends to a small capped stream, the *bell*
(:mod:`butterfly_mq.bell`): where the endpoint serves ``XREAD BLOCK`` (a single Redis, Redis
Cluster) a thread of each consumer blocks on it and wakes the poller when a mark arrives, and
the poller stops polling while it is idle. Through Twemproxy (no blocking commands) the
consumer polls as above.

A ``resume:<topic>`` mark (:data:`RESUME_MARK`) is not an enqueue: it tells every consumer that
an operator resumed the topic, lifting an instance's own pause (``[mq] paused``) too.

The numbers come from one counter on one server, so no clock is involved. The counter
records when it started (its epoch); a consumer that sees a new epoch (Redis restarted
without persistence, or the keys were deleted) reads the index from the start again.
"""

from __future__ import annotations

from typing import Any

from butterfly_mq.keys import RegistryKeys
from butterfly_mq.script_calls import Call, Script

#: Most topics one READY call returns (the rest come with the next poll).
READ_LIMIT = 1000
#: Prefix of a ready-index member that says "an operator resumed this topic" (not a topic:
#: topics start with ``/``).
RESUME_MARK = "resume:"
# Both scripts: KEYS[1] = ZSET topic → sequence number of its latest enqueue, KEYS[2] = the
# sequence counter, KEYS[3] = the counter's epoch (server time when it started at 1), and for
# MARK_READY KEYS[4] = the bell stream (about the last 100 marks: ``MAXLEN ~``; only the newest
# matters); all under the {ready} hashtag.

# ARGV: topic  →  the new sequence number
MARK_READY = Script(
    "mark_ready",
    r"""
local n = redis.call('INCR', KEYS[2])
if n == 1 or redis.call('EXISTS', KEYS[3]) == 0 then
  local t = redis.call('TIME')
  redis.call('SET', KEYS[3], t[1] .. '.' .. t[2])
end
redis.call('ZADD', KEYS[1], n, ARGV[1])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', 100, '*', 'n', n)
return n
""",
)

# ARGV: cursor (-1: only tell me the counter), limit
#   →  {counter, epoch, topic, n, topic, n, ...}: topics enqueued to after the cursor, oldest first
READY = Script(
    "ready",
    r"""
local counter = tonumber(redis.call('GET', KEYS[2]) or '0')
local out = {counter, redis.call('GET', KEYS[3]) or ''}
local cursor = tonumber(ARGV[1])
if cursor >= 0 and cursor < counter then
  local rows = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. cursor, '+inf', 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
  for _, value in ipairs(rows) do out[#out + 1] = value end
end
return out
""",
)


# Where is the index? KEYS[1] = a probe key under {ready}; ARGV: token  →  1 (kept 10 s)
PROBE_SET = Script("probe_set", "redis.call('SET', KEYS[1], ARGV[1], 'PX', 10000) return 1")
# KEYS[1] = a key of the queue (routes the script to the queue's server); ARGV: the probe key, token
#   →  1: the probe set under {ready} is on this server too, 0: it is not (or not visible)
PROBE_CHECK = Script("probe_check", "if redis.call('GET', ARGV[1]) == ARGV[2] then return 1 end return 0")


class ReadyIndex:
    """The ready index of one key prefix.

    :param prefix: the MQ key prefix
    """

    def __init__(self, prefix: str) -> None:
        keys = RegistryKeys(prefix)
        self.keys = [keys.ready, keys.ready_counter, keys.ready_epoch]
        self.mark_keys = [*self.keys, keys.ready_bell]
        self.bell = keys.ready_bell
        self.probe = f"{keys.prefix}:{{ready}}:probe:"

    def mark_call(self, topic: str) -> Call:
        """The MARK_READY call recording an enqueue to ``topic`` (or a :data:`RESUME_MARK`)."""
        return MARK_READY, self.mark_keys, [topic]

    def probe_calls(self, queue_key: str, token: str) -> list[Call]:
        """Calls that tell whether the index lives on the server of ``queue_key``: the second
        returns 1 only then (a random ``token`` set under ``{ready}`` is read back from the
        queue's server; Twemproxy routes each script by its first key).

        A single Redis holds every key; a Twemproxy pool spreads hashtags over its servers. A
        lost race (a proxy reordering the two) answers 0, which only costs speed.
        """
        key = self.probe + token
        return [(PROBE_SET, [key], [token]), (PROBE_CHECK, [queue_key], [key, token])]

    def read_call(self, cursor: int, limit: int = READ_LIMIT) -> Call:
        """The READY call: topics marked after ``cursor`` (``-1``: only the counter)."""
        return READY, self.keys, [cursor, limit]

    @staticmethod
    def parse_read(reply: list[Any]) -> tuple[int, str, list[tuple[str, int]]]:
        """READY reply → ``(counter, epoch, [(topic, number), ...])``, oldest mark first."""
        counter, epoch = int(reply[0]), str(reply[1])
        marks = [(reply[i], int(float(reply[i + 1]))) for i in range(2, len(reply) - 1, 2)]
        return counter, epoch, marks

    def read(self, client: Any, cursor: int) -> tuple[int, str, list[tuple[str, int]]]:
        """Run READY once (see :meth:`parse_read`)."""
        script, keys, args = self.read_call(cursor)
        return self.parse_read(script(client, keys, args))
