"""The consumer: one poller thread talks to Redis, a bounded pool of threads runs handlers.

The poller does every Redis round trip of the hot path: in one pipelined round
trip it records finished runs (batched acks), renews leases that are due and
pops a batch from each topic. Polling is adaptive: immediate while messages
flow, backing off to ``poll_max_interval`` when idle, woken at once by a local
enqueue or a finished run. When Redis goes away it logs, backs off and
reconnects by itself; acks that could not be sent are kept and sent later.
"""

from __future__ import annotations

import queue as queue_module
import random
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import redis
import structlog

from butterfly_mq.config import MQConfig
from butterfly_mq.queue import Outcome, Popped, Queue
from butterfly_mq.runner import run_message
from butterfly_mq.scripts import run_pipelined

log = structlog.get_logger("butterfly.mq")
MIN_IDLE_WAIT = 0.005


@dataclass
class Lease:
    """A message this instance holds: waiting in the local backlog or running."""

    message: Popped
    taken_at: float
    running: bool = False


class Consumer:
    """Pops messages of ``topics`` and runs them on ``config.workers`` threads.

    :param kernel: the kernel whose routes the topics are
    :param client: a ``redis.Redis``
    :param config: the ``[mq]`` settings
    :param topics: the topics to consume
    :param worker: this instance's name (owner of its leases)
    """

    def __init__(self, kernel: Any, client: Any, config: MQConfig, topics: list[str], worker: str) -> None:
        self.kernel = kernel
        self.client = client
        self.config = config
        self.worker = worker
        self.queues = {topic: Queue(client, topic, config.prefix) for topic in topics}
        self.paused: set[str] = set()
        self.backlog: queue_module.Queue[Popped | None] = queue_module.Queue()
        self.leases: dict[str, Lease] = {}
        self.pending_acks: dict[str, list[Outcome]] = defaultdict(list)
        self.lock = threading.Lock()
        self.wake_event = threading.Event()
        self.stopping = threading.Event()
        self.counters: Counter[str] = Counter()
        self.hot: set[str] = set()
        self.connected = True
        self.lease_ms = int(config.lease * 1000)
        self.capacity = config.workers + config.batch_size
        self._threads: list[threading.Thread] = []
        self._last_renew = time.monotonic()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the poller and the worker threads."""
        poller = threading.Thread(target=self._poll_loop, name="mq-poller", daemon=True)
        workers = [
            threading.Thread(target=self._work_loop, name=f"mq-worker-{n}", daemon=True)
            for n in range(self.config.workers)
        ]
        self._threads = [poller, *workers]
        for thread in self._threads:
            thread.start()

    def wake(self) -> None:
        """Poll now (a local enqueue, a finished run, a resume)."""
        self.wake_event.set()

    def stop(self, timeout: float) -> dict[str, int]:
        """Stop popping, return messages that were not started, finish running ones.

        :param timeout: seconds to wait for running handlers
        :return: ``{"returned": n, "unfinished": n}``
        """
        self.stopping.set()
        self.wake_event.set()
        poller = self._threads[0] if self._threads else None
        if poller is not None:
            poller.join(timeout)
        returned = self._return_backlog()
        deadline = time.monotonic() + timeout
        for _ in self._threads[1:]:
            self.backlog.put(None)
        for thread in self._threads[1:]:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._flush_acks_until(deadline)
        unfinished = sum(1 for lease in self.leases.values() if lease.running)
        if unfinished:
            log.warning(
                "mq_shutdown_unfinished",
                running=unfinished,
                note="their leases expire and another instance runs them again",
            )
        return {"returned": returned, "unfinished": unfinished}

    # -- the poller -----------------------------------------------------------------------

    def _poll_loop(self) -> None:
        idle_wait = MIN_IDLE_WAIT
        error_wait = 0.1
        while not self.stopping.is_set():
            try:
                busy = self.poll_once()
                if not self.connected:
                    log.info("mq_redis_reconnected")
                    self.connected = True
                error_wait = 0.1
            except redis.RedisError as exc:
                if self.connected:
                    log.warning("mq_redis_unavailable", error=str(exc), note="retrying with backoff")
                self.connected = False
                self.counters["redis_errors"] += 1
                self.stopping.wait(error_wait)
                error_wait = min(error_wait * 2, 5.0)
                continue
            except Exception:
                log.exception("mq_poller_error")
                self.stopping.wait(1.0)
                continue
            if busy:
                idle_wait = MIN_IDLE_WAIT
                if self._free_slots() > 0:
                    continue
                idle_wait_now = self.config.poll_max_interval
            else:
                idle_wait_now = idle_wait
                idle_wait = min(idle_wait * 2, self.config.poll_max_interval)
            self.wake_event.wait(idle_wait_now)
            self.wake_event.clear()

    def _free_slots(self) -> int:
        with self.lock:
            return self.capacity - len(self.leases)

    def poll_once(self) -> bool:
        """One round trip: acks, due lease renewals, pops. Returns True if anything moved."""
        calls, ack_batches = [], []
        with self.lock:
            acks, self.pending_acks = self.pending_acks, defaultdict(list)
        for topic, outcomes in acks.items():
            calls.append(self.queues[topic].finish_call(outcomes))
            ack_batches.append((topic, outcomes))
        calls += self._renew_calls()
        pops = self._pop_plan()
        for queue, count in pops:
            calls.append(queue.pop_call(count, self.lease_ms, self.worker, self.config.max_recoveries))
        if not calls:
            return False
        try:
            replies = run_pipelined(self.client, calls)
        except BaseException:
            with self.lock:  # NOTE: keep the acks; FINISH is safe to send twice
                for topic, outcomes in ack_batches:
                    self.pending_acks[topic][:0] = outcomes
            raise
        for (topic, _outcomes), statuses in zip(ack_batches, replies, strict=False):
            lost = sum(1 for status in statuses if status != 1)
            if lost:
                self.counters["lost_leases"] += lost
                log.warning(
                    "mq_ack_rejected",
                    topic=topic,
                    count=lost,
                    note="lease expired or message deleted; another run owns it",
                )
        popped_total = 0
        for (queue, _), reply in zip(pops, replies[len(replies) - len(pops) :], strict=True):
            messages = queue.parse_pop(reply)
            if messages:
                self.hot.add(queue.topic)
            else:
                self.hot.discard(queue.topic)
            self._accept(messages)
            popped_total += len(messages)
        return bool(popped_total or ack_batches)

    def _pop_plan(self) -> list[tuple[Queue, int]]:
        if self.stopping.is_set():
            return []
        free = self._free_slots()
        if free <= 0:
            return []
        topics = [t for t in self.queues if t not in self.paused]
        random.shuffle(topics)  # NOTE: no topic starves the others
        hot = [t for t in topics if t in self.hot] or topics[:1]
        share = max(1, -(-free // max(len(hot), 1)))
        running = Counter(lease.message.topic for lease in self.leases.values())
        plan = []
        for topic in topics:
            count = min(self.config.batch_size, share if topic in hot else 1, free)
            limit = int(self.config.topic_option(topic, "concurrency") or 0)
            if limit:
                count = min(count, limit - running[topic])
            if count > 0:
                plan.append((self.queues[topic], count))
                free -= count
            if free <= 0:
                break
        return plan

    def _accept(self, messages: list[Popped]) -> None:
        now = time.monotonic()
        with self.lock:
            for message in messages:
                self.leases[message.msg_id] = Lease(message, now)
        for message in messages:
            self.backlog.put(message)

    def _renew_calls(self) -> list:
        now = time.monotonic()
        if now - self._last_renew < self.config.lease / 3:
            return []
        self._last_renew = now
        by_topic: dict[str, list[str]] = defaultdict(list)
        with self.lock:
            for msg_id, lease in self.leases.items():
                timeout = float(self.config.topic_option(lease.message.topic, "timeout") or 0)
                # NOTE: a run past its timeout is treated as hung: its lease lapses and
                # cleanup recovers the message (then quarantines it after max_recoveries).
                if not timeout or now - lease.taken_at < timeout:
                    by_topic[lease.message.topic].append(msg_id)
        return [self.queues[topic].renew_call(ids, self.lease_ms) for topic, ids in by_topic.items()]

    # -- workers ------------------------------------------------------------------------

    def _work_loop(self) -> None:
        while True:
            message = self.backlog.get()
            if message is None:
                return
            with self.lock:
                lease = self.leases.get(message.msg_id)
                if lease is None:  # returned to Redis during shutdown
                    continue
                lease.running = True
            try:
                outcome = run_message(self.kernel, message, self.config, self.worker)
            except Exception as exc:
                log.exception("mq_run_error", topic=message.topic, msg_id=message.msg_id)
                outcome = Outcome(
                    message.msg_id,
                    self.worker,
                    message.attempt,
                    "failed",
                    error=f"consumer error: {type(exc).__name__}: {exc}",
                    stat="ERR_SERVER_EXCEPTION",
                )
            self.counters[outcome.outcome] += 1
            # NOTE: before the ack is queued, so a crash in between re-runs the message and
            # the hook sees the run again, instead of never (see the hookspec).
            try:
                self.kernel.hook.butterfly_mq_message_finished(kernel=self.kernel, message=message, outcome=outcome)
            except Exception:
                log.exception("mq_finished_hook_error", topic=message.topic, msg_id=message.msg_id)
            with self.lock:
                self.leases.pop(message.msg_id, None)
                self.pending_acks[message.topic].append(outcome)
            self.wake_event.set()

    # -- shutdown helpers ---------------------------------------------------------------

    def _return_backlog(self) -> int:
        waiting: dict[str, list[Popped]] = defaultdict(list)
        while True:
            try:
                message = self.backlog.get_nowait()
            except queue_module.Empty:
                break
            if message is None:
                continue
            with self.lock:
                lease = self.leases.get(message.msg_id)
                if lease is not None and not lease.running:
                    del self.leases[message.msg_id]
                    waiting[message.topic].append(message)
        returned = 0
        for topic, messages in waiting.items():
            try:
                returned += self.queues[topic].return_unstarted(self.worker, messages)
            except redis.RedisError as exc:
                log.warning(
                    "mq_return_failed",
                    topic=topic,
                    count=len(messages),
                    error=str(exc),
                    note="their leases expire and they are run later",
                )
        return returned

    def _flush_acks_until(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            with self.lock:
                if not any(self.pending_acks.values()):
                    return
            try:
                self.poll_once()
                return
            except redis.RedisError:
                time.sleep(0.2)
