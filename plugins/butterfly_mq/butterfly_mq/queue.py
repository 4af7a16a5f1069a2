"""One queue (topic ``/app/handler``): every state change is one Lua script.

:class:`Queue` is the only place that knows the Redis layout of a queue; the
producer, the consumer, the cleanup and the dashboard all go through it. Its
``*_call`` methods return ``(script, keys, args)`` triples so the consumer can put
several operations into one pipelined round trip.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from butterfly_mq.keys import STATES, TERMINAL_STATES, QueueKeys, RegistryKeys, check_topic
from butterfly_mq.script_calls import Call, run_pipelined
from butterfly_mq.scripts import ENQUEUE_KEYS, SCRIPTS

#: How many ids one EMPTY / PURGE script handles before returning (keeps Redis responsive).
CHUNK = 500
THROUGHPUT_MINUTES = 5
#: Minutes in ``throughput_series`` (the ring of one-minute buckets the scripts keep).
SERIES_MINUTES = 10


@dataclass
class Popped:
    """A message a worker took: its id, raw params JSON and metadata (``info``, decoded from
    ``info_text`` on first use)."""

    topic: str
    msg_id: str
    params_text: str
    info_text: str = "{}"

    @cached_property
    def info(self) -> dict[str, Any]:
        """The metadata (``reqid`` of the producer, ``retries``, ``attempts``, ...); ``{}`` when unreadable.

        PERF: decoded by the worker that runs the message, not by the poller, which every
        message passes through.
        """
        return decode_info(self.info_text) or {}

    @property
    def attempt(self) -> int:
        """Which run this is (1 for the first)."""
        return int(self.info.get("attempts", 1))


@dataclass
class Outcome:
    """What one run ended with, as the FINISH script wants it."""

    msg_id: str
    worker: str
    attempt: int
    outcome: str  # finished | failed | retry
    result_json: str = ""
    error: str = ""
    stat: str = ""
    cost_ms: int = 0
    retry_delay_ms: int = 0

    def args(self) -> list[Any]:
        """The nine ARGV values of this outcome."""
        return [
            self.msg_id,
            self.worker,
            self.attempt,
            self.outcome,
            self.result_json,
            self.error[:4000],
            self.stat,
            self.cost_ms,
            self.retry_delay_ms,
        ]


def decode_info(raw: str | None) -> dict[str, Any] | None:
    """Metadata JSON → dict; ``None`` when missing or unreadable."""
    if not raw:
        return None
    try:
        info = json.loads(raw)
    except ValueError:
        return None
    return info if isinstance(info, dict) else None


class Queue:
    """The Redis side of one topic.

    :param client: a ``redis.Redis`` (direct, Twemproxy or a Cluster node)
    :param topic: ``/app/handler``
    :param prefix: the key prefix
    """

    def __init__(self, client: Any, topic: str, prefix: str = "bc") -> None:
        self.client = client
        self.topic = check_topic(topic)
        self.prefix = prefix
        self.keys = QueueKeys(topic, prefix).all
        self.enqueue_keys = [self.keys[i] for i in ENQUEUE_KEYS]

    def __repr__(self) -> str:
        return f"<Queue {self.topic}>"

    # -- producing ----------------------------------------------------------------------

    def enqueue_call(self, msg_id: str, params_text: str, info: dict[str, Any] | str, delay_ms: int = 0) -> Call:
        """The ENQUEUE script call (see :meth:`enqueue`); ``info`` a dict or its JSON text."""
        info_json = info if isinstance(info, str) else json.dumps(info)
        return SCRIPTS["ENQUEUE"], self.enqueue_keys, [msg_id, params_text, info_json, int(delay_ms)]

    def enqueue_many_call(self, messages: list[tuple[str, str]], shared_info_json: str, delay_ms: int = 0) -> Call:
        """The ENQUEUE_MANY script call: several messages in one script (``lua/enqueue_many.lua``).

        :param messages: ``(msg_id, params JSON)`` pairs; ids must be valid (:func:`check_msg_id`)
        :param shared_info_json: the metadata every message shares, a JSON object without ``id``
        :param delay_ms: schedule every message this many ms from now (0: queue them now)
        """
        args: list[Any] = [int(delay_ms), shared_info_json]
        for msg_id, params_text in messages:
            args += (msg_id, params_text)
        return SCRIPTS["ENQUEUE_MANY"], self.enqueue_keys, args

    def enqueue(self, msg_id: str, params_text: str, info: dict[str, Any], delay_ms: int = 0) -> bool:
        """Store the message and queue it (or schedule it after ``delay_ms``).

        :return: ``False`` when ``msg_id`` already exists (the call is idempotent)
        """
        script, keys, args = self.enqueue_call(msg_id, params_text, info, delay_ms)
        return bool(script(self.client, keys, args))

    # -- consuming ----------------------------------------------------------------------

    def pop_call(self, count: int, lease_ms: int, worker: str, max_recoveries: int) -> Call:
        """The POP script call: recover expired leases, promote due messages, take ``count``."""
        return SCRIPTS["POP"], self.keys, [count, lease_ms, worker, max_recoveries]

    def parse_pop(self, reply: list[Any]) -> tuple[list[Popped], float | None]:
        """Turn the POP script's reply into :class:`Popped` messages.

        :return: ``(messages, due_in)``: ``due_in`` is how many seconds until the earliest
            scheduled (delayed or retrying) message is due, ``None`` when none is (or the
            queue is paused)
        """
        due_in_ms = int(reply[0]) if reply else -1
        messages = [Popped(self.topic, reply[i], reply[i + 1], reply[i + 2]) for i in range(1, len(reply), 3)]
        return messages, (due_in_ms / 1000 if due_in_ms >= 0 else None)

    def pop(self, count: int, lease_ms: int, worker: str, max_recoveries: int = 3) -> list[Popped]:
        """Take up to ``count`` messages, leased to ``worker`` for ``lease_ms``."""
        script, keys, args = self.pop_call(count, lease_ms, worker, max_recoveries)
        return self.parse_pop(script(self.client, keys, args))[0]

    def finish_call(self, outcomes: list[Outcome]) -> Call:
        """The FINISH script call recording several outcomes at once."""
        args: list[Any] = []
        for outcome in outcomes:
            args.extend(outcome.args())
        return SCRIPTS["FINISH"], self.keys, args

    def finish(self, outcomes: list[Outcome]) -> list[int]:
        """Record outcomes: 1 recorded, 0 message gone, -1 lease lost to another worker."""
        script, keys, args = self.finish_call(outcomes)
        return list(script(self.client, keys, args))

    def renew_call(self, msg_ids: list[str], lease_ms: int) -> Call:
        """The RENEW script call extending the leases of running messages."""
        return SCRIPTS["RENEW"], self.keys, [lease_ms, *msg_ids]

    def return_unstarted(self, worker: str, popped: list[Popped]) -> int:
        """Put messages that were taken but never run back at the front of the queue."""
        if not popped:
            return 0
        args: list[Any] = [worker]
        for message in reversed(popped):
            args += [message.msg_id, message.attempt]
        return int(SCRIPTS["RETURN_UNSTARTED"](self.client, self.keys, args))

    # -- operating ----------------------------------------------------------------------

    def requeue(self, msg_id: str) -> int:
        """Queue a finished, failed, dead or scheduled message again (now).

        :return: 1 requeued, 0 no such message, -1 not requeueable (queued or started)
        """
        return int(SCRIPTS["REQUEUE"](self.client, self.keys, [msg_id]))

    def delete(self, msg_id: str) -> bool:
        """Remove a message and its params and result, whatever its state."""
        return bool(SCRIPTS["DELETE"](self.client, self.keys, [msg_id]))

    def empty(self, state: str) -> int:
        """Delete every message in ``state`` (not ``started``: those are running).

        :return: how many were deleted
        :raises ValueError: for ``started`` or an unknown state
        """
        if state not in STATES or state == "started":
            raise ValueError(
                f"cannot empty state {state!r}; choose one of queued, scheduled, {', '.join(TERMINAL_STATES)}"
            )
        deleted = 0
        while True:
            count = int(SCRIPTS["EMPTY"](self.client, self.keys, [state, CHUNK]))
            deleted += count
            if count < CHUNK:
                return deleted

    def purge(self, state: str, cutoff_ms: int) -> int:
        """Delete ``state`` messages that ended before ``cutoff_ms`` (retention)."""
        removed = 0
        while True:
            count = int(SCRIPTS["PURGE"](self.client, self.keys, [state, cutoff_ms, CHUNK]))
            removed += count
            if count < CHUNK:
                return removed

    def recover(self, max_recoveries: int, limit: int = CHUNK) -> int:
        """Requeue (or quarantine) messages whose lease expired; also promote due ones."""
        return int(SCRIPTS["RECOVER"](self.client, self.keys, [max_recoveries, limit]))

    def set_paused(self, paused: bool) -> None:
        """Pause or resume popping on every instance (the flag lives in Redis)."""
        self.client.hset(QueueKeys(self.topic, self.prefix).key("stats"), "paused", "1" if paused else "0")

    # -- reading ------------------------------------------------------------------------

    def counts_call(self) -> Call:
        """The COUNTS script call (O(1))."""
        return SCRIPTS["COUNTS"], self.keys, []

    def parse_counts(self, reply: list[Any]) -> dict[str, Any]:
        """COUNTS reply → the dashboard's queue row."""
        row: dict[str, Any] = {"name": self.topic}
        for index, state in enumerate(STATES):
            row[state] = int(reply[index])
        oldest, now = int(reply[6]), int(reply[7])
        row["oldest_age"] = round((now - oldest) / 1000, 3) if oldest >= 0 else None
        row["paused"] = reply[8] == "1"
        row["enqueued_total"] = int(reply[9])
        current = now // 60000
        minutes, counts = reply[10:20], reply[20:30]
        done = sum(int(c) for m, c in zip(minutes, counts, strict=True) if int(m) > current - THROUGHPUT_MINUTES)
        covered = THROUGHPUT_MINUTES - 1 + (now % 60000) / 60000
        row["throughput_per_min"] = round(done / covered, 1)
        # messages done per minute over the last SERIES_MINUTES minutes, oldest first (canghai's sparkline)
        by_minute = {int(m): int(c) for m, c in zip(minutes, counts, strict=True)}
        row["throughput_series"] = [by_minute.get(m, 0) for m in range(current - SERIES_MINUTES + 1, current + 1)]
        return row

    def counts(self) -> dict[str, Any]:
        """Counts by state, age of the oldest queued message, throughput per minute."""
        script, keys, args = self.counts_call()
        return self.parse_counts(script(self.client, keys, args))

    def page(self, state: str, offset: int = 0, limit: int = 20) -> tuple[int, list[dict[str, Any]]]:
        """One page of ``state`` (queued oldest first; ended states newest first).

        :return: ``(total, [info, ...])``
        """
        if state not in STATES:
            raise ValueError(f"unknown state {state!r}; choose one of {', '.join(STATES)}")
        reply = SCRIPTS["PAGE"](self.client, self.keys, [state, max(offset, 0), max(min(limit, 500), 1)])
        items = []
        for i in range(1, len(reply), 2):
            info = decode_info(reply[i + 1]) or {"id": reply[i], "state": "?", "error": "metadata missing"}
            items.append(info)
        return int(reply[0]), items

    def get(self, msg_id: str) -> dict[str, Any] | None:
        """The full message: metadata, params and result, or ``None``."""
        pipe = self.client.pipeline(transaction=False)
        for name in ("info", "params", "result"):
            pipe.hget(QueueKeys(self.topic, self.prefix).key(name), msg_id)
        raw_info, params, result = pipe.execute()
        info = decode_info(raw_info)
        if info is None:
            return None
        info["params"] = _loads_or_text(params)
        info["result"] = _loads_or_text(result)
        return info


def _loads_or_text(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def registered_topics(client: Any, prefix: str = "bc") -> list[str]:
    """Every topic in the queue registry, sorted."""
    return sorted(client.smembers(RegistryKeys(prefix).queues))


def counts_for(client: Any, topics: list[str], prefix: str = "bc") -> list[dict[str, Any]]:
    """Counts of several queues in one pipelined round trip."""
    queues = [Queue(client, topic, prefix) for topic in topics]
    replies = run_pipelined(client, [queue.counts_call() for queue in queues]) if queues else []
    return [queue.parse_counts(reply) for queue, reply in zip(queues, replies, strict=True)]


def find_message(client: Any, msg_id: str, topics: list[str], prefix: str = "bc") -> dict[str, Any] | None:
    """Look ``msg_id`` up in every topic (one pipelined HEXISTS per topic)."""
    pipe = client.pipeline(transaction=False)
    for topic in topics:
        pipe.hexists(QueueKeys(topic, prefix).key("info"), msg_id)
    for topic, exists in zip(topics, pipe.execute() if topics else [], strict=True):
        if exists:
            return Queue(client, topic, prefix).get(msg_id)
    return None
