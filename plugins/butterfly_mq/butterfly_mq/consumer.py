"""The consumer: one poller thread talks to Redis, a bounded pool of threads runs handlers.

The poller does every Redis round trip of the hot path: in one pipelined round trip it
records finished runs (batched acks), renews leases that are due, reads the ready index
(:mod:`butterfly_mq.ready`) and pops a batch from each topic that has work.

Which topics a round pops, and how long an idle poller sleeps, is the pick-up model
(:mod:`butterfly_mq.pickup`): topics marked in the ready index, hot topics, due messages and a
slow sweep of every topic; the bell (:mod:`butterfly_mq.bell`) wakes an idle poller.

When Redis goes away the poller backs off with jitter (:class:`~butterfly_mq.backoff.Backoff`,
one log line per outage) and reconnects by itself; acks that could not be sent are kept and
sent later.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from butterfly_mq.backoff import Backoff
from butterfly_mq.bell import Bell
from butterfly_mq.config import MQConfig
from butterfly_mq.connection import ERRORS
from butterfly_mq.pickup import PickupModel
from butterfly_mq.queue import Outcome, Popped, Queue
from butterfly_mq.ready import ReadyIndex
from butterfly_mq.runner import run_message
from butterfly_mq.script_calls import hold_connection, release_connection, run_pipelined

log = structlog.get_logger("butterfly.mq")


@dataclass
class Lease:
    """A message this instance holds: waiting in the local backlog or running."""

    message: Popped
    taken_at: float
    running: bool = False


class Backlog:
    """Popped messages waiting for a worker thread, first in first out.

    PERF: the poller — the one thread every message passes through — hands a whole pop over
    at once and wakes one waiting worker; a worker that takes a message and sees more wakes
    the next. So the poller pays one wake-up per pop, not one per message (a ``queue.Queue``
    put notifies a waiter per message; that was 18 % of the consumer's GIL time).
    """

    def __init__(self) -> None:
        self._items: deque[Popped | None] = deque()
        self._ready = threading.Condition(threading.Lock())

    def put_many(self, items: Sequence[Popped | None]) -> None:
        """Append ``items`` (``None`` tells a worker to stop) and wake one waiting worker."""
        if not items:
            return
        with self._ready:
            self._items.extend(items)
            self._ready.notify()

    def get(self) -> Popped | None:
        """The oldest item; waits for one."""
        with self._ready:
            while not self._items:
                self._ready.wait()
            item = self._items.popleft()
            if self._items:
                self._ready.notify()  # NOTE: pass it on: another worker takes the next one
            return item

    def take_all(self) -> list[Popped | None]:
        """Remove and return every waiting item (shutdown)."""
        with self._ready:
            items = list(self._items)
            self._items.clear()
            return items


class Consumer(PickupModel):
    """Pops messages of ``topics`` and runs them on ``config.workers`` threads.

    :param kernel: the kernel whose routes the topics are
    :param client: a Redis client (:func:`butterfly_mq.connection.connect`)
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
        self.backlog = Backlog()
        self.leases: dict[str, Lease] = {}
        self.pending_acks: dict[str, list[Outcome]] = defaultdict(list)
        self.lock = threading.Lock()
        self.wake_event = threading.Event()
        self.stopping = threading.Event()
        self.counters: Counter[str] = Counter()
        self.ready = ReadyIndex(config.prefix)
        now = time.monotonic()
        self._start_pickup(topics, now)
        self.backoff = Backoff("mq-poller", base=0.1, cap=5.0, logger=log)
        self.bell: Bell | None = (
            Bell(client, self.ready.bell, self.wake_event.set, rest=config.pickup_interval) if config.bell else None
        )
        #: called (no arguments) when a topic's local pause is lifted
        self.on_paused_changed: Any = None
        #: poll rounds done (each one round trip)
        self.rounds = 0
        self.lease_ms = int(config.lease * 1000)
        self.capacity = config.workers + config.batch_size
        self._threads: list[threading.Thread] = []
        self._last_renew = now

    @property
    def connected(self) -> bool:
        """False while Redis does not answer the poller."""
        return not self.backoff.down

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
        if self.bell is not None:
            self.bell.start()

    @property
    def pickup(self) -> str:
        """How an idle consumer learns of new messages: ``bell`` (armed) or ``polling``."""
        return "bell" if self.bell is not None and self.bell.armed else "polling"

    def stop(self, timeout: float) -> dict[str, int]:
        """Stop popping, return messages that were not started, finish running ones.

        :param timeout: seconds to wait for running handlers
        :return: ``{"returned": n, "unfinished": n}``
        """
        self.stopping.set()
        if self.bell is not None:
            self.bell.stop()
        self.wake_event.set()
        poller = self._threads[0] if self._threads else None
        if poller is not None:
            poller.join(timeout)
        returned = self._return_backlog()
        deadline = time.monotonic() + timeout
        self.backlog.put_many([None] * (len(self._threads) - 1))
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
        held: list[Any] = [None]  # the poller's own connection, taken once Redis answers
        try:
            self._poll_rounds(held)
        finally:
            release_connection(self.client, held[0])

    def _poll_rounds(self, held: list[Any]) -> None:
        while not self.stopping.is_set():
            # NOTE: cleared *before* the round reads the ready index, so a wake-up (bell, local
            # enqueue, finished run) that comes during or after the round is never lost.
            self.wake_event.clear()
            try:
                if held[0] is None:
                    held[0] = hold_connection(self.client)
                busy = self.poll_once(held[0])
            except Exception as exc:  # noqa: BLE001 - the poller must outlive any error
                self.counters["redis_errors" if isinstance(exc, ERRORS) else "poller_errors"] += 1
                self.stopping.wait(self.backoff.failed(exc))
                continue
            if self.backoff.down:
                self.backoff.succeeded()
                self._sweep_all()  # NOTE: whatever happened meanwhile, look at every topic once
            if self._free_slots() <= 0:
                wait = self.config.poll_max_interval  # NOTE: a finished run wakes us
            elif busy:
                continue
            else:
                wait = self.idle_wait(time.monotonic())
            self.wake_event.wait(wait)

    def poll_once(self, connection: Any = None) -> bool:
        """One round trip: acks, due lease renewals, the ready index, pops.

        :param connection: the poller's own connection (:func:`~butterfly_mq.script_calls.hold_connection`);
            default: one from the pool

        :return: True when the next round should follow at once (messages moved, or
            topics were marked that this round did not pop)
        """
        calls, ack_batches = [], []
        with self.lock:
            acks, self.pending_acks = self.pending_acks, defaultdict(list)
        for topic, outcomes in acks.items():
            calls.append(self.queues[topic].finish_call(outcomes))
            ack_batches.append((topic, outcomes))
        calls += self._renew_calls()
        calls.append(self.ready.read_call(self.cursor))
        self.rounds += 1
        now = time.monotonic()
        pops = self._pop_plan(now)
        for queue, count in pops:
            calls.append(queue.pop_call(count, self.lease_ms, self.worker, self.config.max_recoveries))
        try:
            replies = run_pipelined(self.client, calls, connection=connection)
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
        popped: list[Popped] = []
        for (queue, count), reply in zip(pops, replies[len(replies) - len(pops) :], strict=True):
            messages, due_in = queue.parse_pop(reply)
            self._after_pop(queue.topic, count, len(messages), due_in, now)
            popped += messages
        try:
            fresh = self._read_marks(replies[len(replies) - len(pops) - 1])
            if self._sweep_check_at is None:
                self._sweep_check_at = self._earliest_sweep()
        finally:
            # NOTE: handed to the workers last (waking one may take the CPU from this thread),
            # and whatever happened above: they are leased to us
            self._accept(popped)
        return bool(popped or ack_batches or fresh)

    def _accept(self, messages: list[Popped]) -> None:
        now = time.monotonic()
        with self.lock:
            for message in messages:
                self.leases[message.msg_id] = Lease(message, now)
        self.backlog.put_many(messages)

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
                if outcome.outcome == "retry":  # NOTE: pop it again when its wait is over
                    due = time.monotonic() + outcome.retry_delay_ms / 1000
                    self.due[message.topic] = min(self.due.get(message.topic, due), due)
            self.wake_event.set()

    # -- shutdown helpers ---------------------------------------------------------------

    def _return_backlog(self) -> int:
        waiting: dict[str, list[Popped]] = defaultdict(list)
        for message in self.backlog.take_all():
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
            except ERRORS as exc:
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
            except ERRORS:
                time.sleep(0.2)
