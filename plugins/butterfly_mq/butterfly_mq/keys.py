"""Redis key names. Every key of one queue shares the hashtag ``{<topic>}``.

Twemproxy and Redis Cluster route a key by the part between the first ``{`` and
``}``, so all keys of a queue live on one server and one Lua script may touch
them all. Registry keys (queue list, instances, cleanup lock) share their own
``{registry}`` tag, the ready index its ``{ready}`` tag; no script ever mixes two tags.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_PREFIX = "bc"
#: Message states, in the order the dashboard shows them.
STATES = ("queued", "started", "scheduled", "finished", "failed", "dead")
#: States whose messages an operator may requeue, delete or empty.
TERMINAL_STATES = ("finished", "failed", "dead")

TOPIC_PATTERN = re.compile(r"^/[A-Za-z0-9_\-./]{1,200}$")
MSG_ID_PATTERN = re.compile(r"^[A-Za-z0-9_\-.:]{1,128}$")

# NOTE: the order of KEYS in every script; lua/prelude.lua names KEYS by these positions
# (ENQUEUE_KEYS in scripts.py picks the enqueue scripts' five).
KEY_NAMES = ("queued", "started", "scheduled", "finished", "failed", "dead", "info", "params", "result", "stats")


def check_topic(topic: str) -> str:
    """Return ``topic`` if it is a valid queue name (``/app/handler``).

    :param topic: the route path used as queue name
    :raises ValueError: naming the topic and the allowed characters
    """
    if not isinstance(topic, str) or not TOPIC_PATTERN.match(topic) or "//" in topic:
        # NOTE: a topic is at most 201 characters; an absurd one is not echoed whole.
        shown = repr(topic[:210] + "…" if isinstance(topic, str) and len(topic) > 210 else topic)
        raise ValueError(f"bad topic {shown}: expected /app/handler made of letters, digits, _ - . / (at most 201)")
    return topic


def check_msg_id(msg_id: str) -> str:
    """Return ``msg_id`` if it is a valid message id.

    :raises ValueError: naming the id and the allowed characters
    """
    if not isinstance(msg_id, str) or not MSG_ID_PATTERN.match(msg_id):
        raise ValueError(f"bad msg_id {msg_id!r}: 1-128 letters, digits, _ - . :")
    return msg_id


@dataclass(frozen=True)
class QueueKeys:
    """The keys of one queue, in script order (:data:`KEY_NAMES`).

    :param topic: ``/app/handler``
    :param prefix: the key prefix (``[mq] prefix``)
    """

    topic: str
    prefix: str = DEFAULT_PREFIX

    @property
    def all(self) -> list[str]:
        """Every key of the queue, in the order the Lua scripts expect."""
        base = f"{self.prefix}:{{{self.topic}}}:"
        return [base + name for name in KEY_NAMES]

    def key(self, name: str) -> str:
        """One key by its name (``queued``, ``info``, ...)."""
        return f"{self.prefix}:{{{self.topic}}}:{name}"


@dataclass(frozen=True)
class RegistryKeys:
    """Cluster-wide keys: the queue registry, instances and the cleanup lock."""

    prefix: str = DEFAULT_PREFIX

    @property
    def queues(self) -> str:
        """SET of every topic that was ever enqueued to or consumed."""
        return f"{self.prefix}:{{registry}}:queues"

    @property
    def instances(self) -> str:
        """HASH instance name → JSON (host, pid, queues, counters, last heartbeat)."""
        return f"{self.prefix}:{{registry}}:instances"

    @property
    def cleanup_lock(self) -> str:
        """STRING holding the token of the instance running the cleanup."""
        return f"{self.prefix}:{{registry}}:cleanup-lock"

    @property
    def ready(self) -> str:
        """ZSET topic → sequence number of the topic's latest enqueue (the ready index)."""
        return f"{self.prefix}:{{ready}}:topics"

    @property
    def ready_counter(self) -> str:
        """STRING: the ready index's sequence counter (INCR per enqueue)."""
        return f"{self.prefix}:{{ready}}:counter"

    @property
    def ready_bell(self) -> str:
        """STREAM of recent marks (capped): consumers block on it with ``XREAD`` (the bell)."""
        return f"{self.prefix}:{{ready}}:bell"

    @property
    def ready_epoch(self) -> str:
        """STRING: when the ready counter last started at 1 (a new epoch resets consumers' cursors)."""
        return f"{self.prefix}:{{ready}}:epoch"
