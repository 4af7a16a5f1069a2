"""The ready index: which topics were enqueued to since a consumer last looked.

Without blocking pops or pub/sub (Twemproxy has neither), a consumer learns about new
work by polling. Popping every consumed topic on every poll costs one script per topic —
with 100 topics, 2,000 scripts a second per instance at a 50 ms pick-up target. Instead:

* every enqueue also runs ``MARK_READY`` (in the same pipelined round trip): it bumps a
  sequence counter and records the topic in a ZSET scored by that number;
* every poll of every consumer runs ``READY`` with the highest number it has seen, and
  gets back only the topics enqueued to since — usually none, a few bytes;
* the consumer pops those topics at once.

A queue's script cannot touch the index (its keys carry the queue's hashtag, the index
its own ``{ready}`` tag, and Twemproxy and Redis Cluster forbid scripts across tags), so
the producer sends the two scripts side by side. Through Twemproxy or on a cluster they
may run in either order on two servers; a consumer that sees the mark first pops an empty
queue, so a topic whose pop after a fresh mark came back empty is popped once more next
round. Producers that do not mark (another language running only ``ENQUEUE``), delayed
messages and retries are covered by the consumer's own timers and by a slow sweep of
every topic (``[mq] poll_max_interval``).

The numbers come from one counter on one server, so no clock is involved. The counter
records when it started (its epoch); a consumer that sees a new epoch (Redis restarted
without persistence, or the keys were deleted) reads the index from the start again.
"""

from __future__ import annotations

from typing import Any

from butterfly_mq.keys import RegistryKeys
from butterfly_mq.scripts import SCRIPTS, Call

#: Most topics one READY call returns (the rest come with the next poll).
READ_LIMIT = 1000


class ReadyIndex:
    """The ready index of one key prefix.

    :param prefix: the MQ key prefix
    """

    def __init__(self, prefix: str) -> None:
        keys = RegistryKeys(prefix)
        self.keys = [keys.ready, keys.ready_counter, keys.ready_epoch]

    def mark_call(self, topic: str) -> Call:
        """The MARK_READY call recording an enqueue to ``topic``."""
        return SCRIPTS["MARK_READY"], self.keys, [topic]

    def read_call(self, cursor: int) -> Call:
        """The READY call: topics marked after ``cursor`` (``-1``: only the counter)."""
        return SCRIPTS["READY"], self.keys, [cursor, READ_LIMIT]

    @staticmethod
    def parse_read(reply: list[Any]) -> tuple[int, str, list[tuple[str, int]]]:
        """READY reply → ``(counter, epoch, [(topic, number), ...])``, oldest mark first."""
        counter, epoch = int(reply[0]), str(reply[1])
        marks = [(reply[i], int(float(reply[i + 1]))) for i in range(2, len(reply) - 1, 2)]
        return counter, epoch, marks
