"""The ``[mq]`` settings and the per-topic overrides built from them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

DAY = 86400.0
#: Keys a ``[mq] topics`` entry may set.
TOPIC_OPTIONS = ("retries", "timeout", "concurrency")


def as_topic_table(value: Any) -> dict[str, dict[str, Any]]:
    """Convert ``[mq] topics`` (a TOML table or a JSON string) to ``{topic: {option: value}}``.

    :raises ValueError: naming the bad topic or option and the valid options
    """
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else {}
    if not isinstance(value, dict):
        raise ValueError(f"expected a table {{'/app/h' = {{retries = 5}}}}, got {value!r}")
    table: dict[str, dict[str, Any]] = {}
    for topic, options in value.items():
        if not isinstance(options, dict):
            raise ValueError(f"topic {topic!r}: expected a table of {', '.join(TOPIC_OPTIONS)}")
        for key, option in options.items():
            if key not in TOPIC_OPTIONS:
                raise ValueError(f"topic {topic!r}: unknown option {key!r}; valid: {', '.join(TOPIC_OPTIONS)}")
            if isinstance(option, bool) or not isinstance(option, int | float) or option < 0:
                raise ValueError(f"topic {topic!r}: {key} must be a number >= 0, got {option!r}")
        table[topic] = dict(options)
    return table


def add_settings(settings: Any) -> None:
    """Declare every ``[mq]`` setting (called from ``butterfly_add_settings``)."""

    def add(key, kind, default, text, **kw):
        settings.add("mq", key, kind, default, text, owner="mq", **kw)

    add(
        "redis_url",
        str,
        None,
        "Redis, Twemproxy or (with redis_cluster) Redis Cluster seed node URL; the MQ is off while unset",
        secret=True,
    )
    add("redis_cluster", bool, False, "redis_url names a node of a Redis Cluster (served with RedisCluster)")
    add("prefix", str, "bc", "key prefix of every MQ key")
    add("consume", bool, True, "run the consumer (false: produce and serve the dashboard only)")
    add("queues", list, [], "topics this instance consumes; empty = every non-admin route")
    add(
        "paused",
        list,
        [],
        "topics this instance does not pop from start-up (nothing is written to Redis) until a resume "
        "from canghai or `butterfly mq resume`",
    )
    add("workers", int, 8, "consumer threads running handlers")
    add("batch_size", int, 32, "most messages one pop takes")
    add(
        "pickup_interval",
        float,
        0.05,
        "seconds between polls of the ready index when idle and the bell is off or unavailable: "
        "how soon a message from another process starts",
    )
    add(
        "bell",
        bool,
        True,
        "idle consumers block on the ready index's bell stream (XREAD BLOCK) instead of polling it; "
        "where the endpoint refuses it (Twemproxy) they poll every pickup_interval",
    )
    add(
        "poll_max_interval",
        float,
        2.0,
        "every consumed topic is popped at least this often, even without a ready mark (the sweep)",
    )
    add("lease", float, 300.0, "seconds a running message is leased; renewed every lease/3 while it runs")
    add("timeout", float, 600.0, "seconds a run may take before it counts as failed (0 = no limit)")
    add("retries", int, 3, "retries of a failed run (ERR_BAD_PARAMS is never retried)")
    add("backoff_base", float, 2.0, "seconds before the first retry; doubles each retry, with jitter")
    add("backoff_max", float, 3600.0, "longest wait between retries, seconds")
    add("max_recoveries", int, 3, "crash recoveries before a message is quarantined as dead")
    add("result_ttl", float, 7 * DAY, "seconds finished messages are kept")
    add("failure_ttl", float, 30 * DAY, "seconds failed and dead messages are kept")
    add("heartbeat_interval", float, 60.0, "seconds between instance heartbeats")
    add("cleanup_interval", float, 900.0, "seconds between cleanups (expired leases, results, dead instances)")
    add("topics", as_topic_table, {}, "per-topic overrides: {'/app/h' = {retries = 5, timeout = 30, concurrency = 2}}")
    add("dashboard", bool, True, "serve the canghai dashboard at /canghai/")
    add("enqueue_many_max", int, 1000, "most messages one POST /canghai/api/enqueue_many may carry")


@dataclass
class MQConfig:
    """Resolved ``[mq]`` settings, with helpers for per-topic values."""

    redis_url: str | None
    redis_cluster: bool = False
    prefix: str = "bc"
    consume: bool = True
    queues: list[str] = field(default_factory=list)
    paused: list[str] = field(default_factory=list)
    workers: int = 8
    batch_size: int = 32
    pickup_interval: float = 0.05
    bell: bool = True
    poll_max_interval: float = 2.0
    lease: float = 300.0
    timeout: float = 600.0
    retries: int = 3
    backoff_base: float = 2.0
    backoff_max: float = 3600.0
    max_recoveries: int = 3
    result_ttl: float = 7 * DAY
    failure_ttl: float = 30 * DAY
    heartbeat_interval: float = 60.0
    cleanup_interval: float = 900.0
    topics: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboard: bool = True
    enqueue_many_max: int = 1000

    @classmethod
    def from_kernel(cls, kernel: Any) -> MQConfig:
        """Read ``kernel.settings.section("mq")``."""
        section = kernel.settings.section("mq")
        return cls(**{name: section[name] for name in cls.__dataclass_fields__})

    @property
    def enabled(self) -> bool:
        """True when a Redis URL is configured."""
        return bool(self.redis_url)

    def topic_option(self, topic: str, name: str) -> Any:
        """A per-topic override, else the global value (``concurrency`` defaults to 0 = none)."""
        default = 0 if name == "concurrency" else getattr(self, name)
        return self.topics.get(topic, {}).get(name, default)
