"""Cleanup: expired leases, expired results, forgotten instances — under a lock.

The lock is a ``SET NX PX`` key holding a random token; only the holder can
release it (compare-and-delete in Lua), so a slow cleanup whose lock expired
never deletes the lock of the instance that took over.
"""

from __future__ import annotations

import uuid
from typing import Any

import structlog

from butterfly_mq.config import MQConfig
from butterfly_mq.instances import InstanceRegistry, server_time_ms
from butterfly_mq.keys import RegistryKeys
from butterfly_mq.queue import Queue, registered_topics
from butterfly_mq.scripts import SCRIPTS

log = structlog.get_logger("butterfly.mq")


class OwnedLock:
    """A Redis lock only its owner can release.

    :param client: a ``redis.Redis``
    :param key: the lock key
    :param ttl: seconds before it expires by itself (a crashed owner)
    """

    def __init__(self, client: Any, key: str, ttl: float) -> None:
        self.client = client
        self.key = key
        self.ttl_ms = max(int(ttl * 1000), 1000)
        self.token = uuid.uuid4().hex

    def acquire(self) -> bool:
        """Take the lock if nobody holds it."""
        return bool(self.client.set(self.key, self.token, nx=True, px=self.ttl_ms))

    def release(self) -> bool:
        """Release it if we still hold it; never deletes another owner's lock."""
        return bool(SCRIPTS["RELEASE_LOCK"](self.client, [self.key], [self.token]))


def run_cleanup(client: Any, config: MQConfig, registry: InstanceRegistry) -> dict[str, int] | None:
    """Clean every registered queue once, if no other instance is cleaning.

    :return: what was done, or ``None`` when another instance holds the lock
    """
    lock = OwnedLock(client, RegistryKeys(config.prefix).cleanup_lock, config.cleanup_interval)
    if not lock.acquire():
        return None
    report = {"recovered": 0, "finished_expired": 0, "failed_expired": 0, "dead_expired": 0, "instances_forgotten": 0}
    try:
        now = server_time_ms(client, config.prefix)
        for topic in registered_topics(client, config.prefix):
            try:
                queue = Queue(client, topic, config.prefix)
            except ValueError:
                continue  # NOTE: a foreign member of the registry set; never crash cleanup on it
            report["recovered"] += queue.recover(config.max_recoveries)
            report["finished_expired"] += queue.purge("finished", now - int(config.result_ttl * 1000))
            report["failed_expired"] += queue.purge("failed", now - int(config.failure_ttl * 1000))
            report["dead_expired"] += queue.purge("dead", now - int(config.failure_ttl * 1000))
        report["instances_forgotten"] = registry.forget_dead()
    finally:
        lock.release()
    if any(report.values()):
        log.info("mq_cleanup", **report)
    return report
