"""The MQ of one running kernel: its Redis client, consumer, heartbeat and cleanup.

Built in ``butterfly_configure`` (no I/O), started in ``butterfly_startup`` and
stopped in ``butterfly_shutdown``; kept in ``kernel.extensions["mq"]``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import structlog

from butterfly_mq.backoff import Backoff
from butterfly_mq.cleanup import run_cleanup
from butterfly_mq.config import MQConfig
from butterfly_mq.connection import ERRORS, connect
from butterfly_mq.consumer import Consumer
from butterfly_mq.instances import InstanceRegistry, instance_name
from butterfly_mq.keys import RegistryKeys, check_topic
from butterfly_mq.queue import Queue
from butterfly_mq.ready import RESUME_MARK, ReadyIndex

log = structlog.get_logger("butterfly.mq")
#: ``Route.meta[CONSUME_META] = True``: a plugin's route that wants to be a topic by default.
CONSUME_META = "mq_topic"
#: ``Route.meta["source"]`` of the routes of the user's handler apps (set by butterfly-router).
USER_APPS = "handlers"
#: Started services, newest last: ``enqueue()`` without ``redis_url`` uses the newest.
ACTIVE: list[MQService] = []


def is_default_topic(route: Any) -> bool:
    """Whether an instance consumes ``route`` when ``[mq] queues`` is empty.

    Every route of the user's handler apps is a topic, as in the original (each
    ``/{app}/{handler}`` its own queue). Routes plugins register for themselves
    (``/auth/*``, ``/_meta/*``, ``/canghai/*``, ``/ruqi/*``, consoles, admin APIs) are not,
    unless the plugin asks with ``meta={"mq_topic": True}``. Admin routes never are: anyone
    who can write to Redis could call them.
    """
    if route.prefix or route.admin:
        return False
    return route.meta.get("source") == USER_APPS or route.meta.get(CONSUME_META) is True


def default_topics(kernel: Any) -> list[str]:
    """Every route that :func:`is_default_topic` and a valid topic name."""
    topics = []
    for route in kernel.routes:
        if not is_default_topic(route):
            continue
        try:
            topics.append(check_topic(route.path))
        except ValueError:
            continue
    return topics


class MQService:
    """Runtime state of the MQ plugin for one kernel.

    :param kernel: the kernel
    :param config: resolved ``[mq]`` settings (``redis_url`` is set)
    """

    def __init__(self, kernel: Any, config: MQConfig) -> None:
        self.kernel = kernel
        self.config = config
        self.client = connect(config.redis_url, cluster=config.redis_cluster)
        self.registry_keys = RegistryKeys(config.prefix)
        self.name = instance_name(kernel.settings.get("server", "port"))
        self.consumer: Consumer | None = None
        self.registry: InstanceRegistry | None = None
        self._stop = threading.Event()
        self._beat_now = threading.Event()
        self._thread: threading.Thread | None = None
        self.started_at = 0.0

    def topics(self) -> list[str]:
        """The topics this instance consumes (``[mq] queues`` or every route)."""
        listed = [check_topic(topic) for topic in self.config.queues]
        return listed or default_topics(self.kernel)

    def start(self) -> None:
        """Register, start the consumer and the heartbeat/cleanup thread."""
        topics = self.topics() if self.config.consume else []
        self.registry = InstanceRegistry(
            self.client,
            self.config.prefix,
            self.name,
            {
                "port": self.kernel.settings.get("server", "port"),
                "queues": topics,
                "version": _version(),
                "workers": self.config.workers,
                "heartbeat_interval": self.config.heartbeat_interval,
            },
        )
        if topics:
            self.consumer = Consumer(self.kernel, self.client, self.config, topics, self.name)
            # NOTE: [mq] paused is this instance's own pause (nothing is written to Redis);
            # a resume from canghai or the CLI lifts it (see pause()/resume()).
            self.consumer.paused.update(self.config.paused)
            self.consumer.on_paused_changed = self._beat_now.set
            self.consumer.start()
        self.started_at = time.time()
        self._thread = threading.Thread(
            target=self._maintenance_loop, args=(topics,), name="mq-maintenance", daemon=True
        )
        self._thread.start()
        ACTIVE.append(self)
        log.info("mq_started", instance=self.name, topics=len(topics), workers=self.config.workers)

    def stop(self, timeout: float) -> None:
        """Graceful stop: return unstarted messages, wait for running ones, beat ``stopped``."""
        if self in ACTIVE:
            ACTIVE.remove(self)
        self._stop.set()
        self._beat_now.set()
        report = self.consumer.stop(timeout) if self.consumer else {}
        if self._thread:
            self._thread.join(5)
        try:
            if self.registry:
                self.registry.beat(self.counters(), state="stopped")
        except ERRORS as exc:
            log.warning("mq_final_heartbeat_failed", error=str(exc))
        log.info("mq_stopped", instance=self.name, **report)
        self.client.close()

    def wake(self, topic: str) -> None:
        """A local enqueue to ``topic``: pop it at once if we consume it."""
        if self.consumer is not None and topic in self.consumer.queues:
            self.consumer.wake(topic)

    def pause(self, topic: str) -> None:
        """Pause ``topic`` on every instance: the queue's flag in Redis (no instance pops it).

        :param topic: ``/app/handler``
        """
        Queue(self.client, check_topic(topic), self.config.prefix).set_paused(True)

    def resume(self, topic: str) -> None:
        """Resume ``topic`` everywhere: clear the queue's flag in Redis and lift every
        instance's own pause of it (``[mq] paused``).

        The instances learn it from a ``resume:<topic>`` mark in the ready index, which every
        consumer reads (and which wakes them at once); this instance lifts its own pause now.

        :param topic: ``/app/handler``
        """
        topic = check_topic(topic)
        Queue(self.client, topic, self.config.prefix).set_paused(False)
        script, keys, args = ReadyIndex(self.config.prefix).mark_call(RESUME_MARK + topic)
        script(self.client, keys, args)
        if self.consumer is not None and topic in self.consumer.queues:
            self.consumer.resume_local(topic)

    def registry_list(self) -> list[dict[str, Any]]:
        """Every known instance (works before start-up too, for dashboard-only kernels)."""
        registry = self.registry or InstanceRegistry(self.client, self.config.prefix, self.name)
        return registry.list()

    def counters(self) -> dict[str, Any]:
        """What this instance did since it started (for the heartbeat and canghai)."""
        counters: dict[str, Any] = dict(self.consumer.counters) if self.consumer else {}
        if self.consumer:
            with self.consumer.lock:
                counters["busy"] = sum(1 for lease in self.consumer.leases.values() if lease.running)
            counters["paused"] = sorted(self.consumer.paused)
            counters["connected"] = self.consumer.connected
            counters["pickup"] = self.consumer.pickup
        return counters

    def _maintenance_loop(self, topics: list[str]) -> None:
        next_beat = next_cleanup = 0.0
        registered = False
        backoff = Backoff("mq-maintenance", base=0.2, cap=min(self.config.heartbeat_interval, 10.0), logger=log)
        while not self._stop.is_set():
            if self._beat_now.is_set():  # NOTE: a pause changed: show it in canghai now
                self._beat_now.clear()
                next_beat = 0.0
            now = time.monotonic()
            try:
                if not registered:
                    if topics:
                        self.client.sadd(self.registry_keys.queues, *topics)
                    registered = True
                if now >= next_beat:
                    self.registry.beat(self.counters())
                    next_beat = now + self.config.heartbeat_interval
                if now >= next_cleanup:
                    run_cleanup(self.client, self.config, self.registry)
                    next_cleanup = now + self.config.cleanup_interval
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any error
                self._stop.wait(backoff.failed(exc))
                continue
            backoff.succeeded()
            self._beat_now.wait(max(0.05, min(next_beat, next_cleanup) - time.monotonic()))


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("butterfly-mq")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        return "0"
