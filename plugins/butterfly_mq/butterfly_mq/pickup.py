"""Which topics a round of the consumer's poller pops, and how long an idle poller sleeps.

The pick-up model:

* **marked**: topics the ready index says were enqueued to since the last round (and a
  local enqueue), popped at once; an empty pop after a fresh mark is tried once more;
* **hot**: topics whose last pop came back full, popped every round while they flow;
* **due**: topics whose earliest delayed or retrying message is due (each pop reports it);
* **sweep**: every topic at least every ``poll_max_interval`` (producers that do not mark,
  leases of dead workers, messages scheduled elsewhere).

Every topic that has work gets one slot before hot topics share the rest, so a flood on
one topic cannot starve the others. A busy instance polls at once. An idle one sleeps until
its next sweep or due message, woken by the bell (:mod:`butterfly_mq.bell`) when a message is
marked ready; where the endpoint has no bell (Twemproxy) or while it is not armed, an idle
instance polls every ``pickup_interval`` (one small READY script). Sweeps of an idle instance
are batched: every topic whose sweep falls due within a quarter of ``poll_max_interval`` is
popped in the same round, so the instance wakes about once per interval, not once per topic.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import structlog

from butterfly_mq.bell import Bell
from butterfly_mq.config import MQConfig
from butterfly_mq.queue import Queue
from butterfly_mq.ready import RESUME_MARK, ReadyIndex

if TYPE_CHECKING:
    from butterfly_mq.consumer import Lease

log = structlog.get_logger("butterfly.mq")
#: Pops of a freshly marked topic before an empty answer counts (the mark may arrive first).
MARK_POPS = 2
#: An idle instance sweeps every topic whose sweep is due within this share of
#: ``poll_max_interval`` in one round (one wake-up instead of one per topic).
SWEEP_WINDOW = 0.25


class PickupModel:
    """The pick-up state of a :class:`~butterfly_mq.consumer.Consumer` and the decisions made
    from it: which topics are marked, hot, due or due for a sweep, what a round pops, how long
    an idle poller sleeps.

    A base class of the consumer, which owns the attributes annotated here and guards
    ``marked``, ``due``, ``paused`` and ``leases`` with its ``lock`` (workers change them too).
    """

    # the consumer's, read here
    config: MQConfig
    queues: dict[str, Queue]
    paused: set[str]
    leases: dict[str, Lease]
    lock: threading.Lock
    wake_event: threading.Event
    stopping: threading.Event
    ready: ReadyIndex
    bell: Bell | None
    on_paused_changed: Any
    capacity: int
    _last_renew: float

    def _start_pickup(self, topics: list[str], now: float) -> None:
        """Set the pick-up state of a consumer of ``topics`` that starts at ``now`` (monotonic)."""
        self.cursor = -1
        self.epoch: str | None = None
        self.hot: set[str] = set()
        self.marked: dict[str, int] = {}
        self.due: dict[str, float] = {}
        self.next_sweep: dict[str, float] = dict.fromkeys(topics, now)  # NOTE: drain old work at start-up
        #: when the earliest sweep of a topic not paused here is due (None: work it out again)
        self._sweep_check_at: float | None = None
        #: per-topic concurrency limits ([mq] topics ... concurrency)
        self._limits = {
            topic: limit for topic in topics if (limit := int(self.config.topic_option(topic, "concurrency") or 0))
        }

    def wake(self, topic: str | None = None) -> None:
        """Poll now (a local enqueue to ``topic``, a finished run, a resume).

        :param topic: a topic that has new work, popped in the next round
        """
        if topic in self.queues:
            with self.lock:
                self.marked[topic] = MARK_POPS
        self.wake_event.set()

    def resume_local(self, topic: str) -> bool:
        """Lift this instance's own pause of ``topic`` (``[mq] paused``) and pop it at once.

        :return: True when it was paused here
        """
        with self.lock:
            was_paused = topic in self.paused
            self.paused.discard(topic)
            if topic in self.queues:
                self.marked[topic] = MARK_POPS
        self._sweep_check_at = None  # NOTE: its sweep time may be long past
        if was_paused:
            log.info("mq_resumed", topic=topic, note="this instance's own pause ([mq] paused) is lifted")
            if self.on_paused_changed is not None:
                self.on_paused_changed()
        self.wake_event.set()
        return was_paused

    def idle_wait(self, now: float) -> float:
        """How long an idle poller may sleep: ``pickup_interval`` while it must poll, else
        until the next sweep, due message or lease renewal (the bell wakes it for new work).

        :param now: ``time.monotonic()``
        """
        interval = self.config.pickup_interval
        if self.bell is None or not self.bell.armed:
            return interval
        with self.lock:
            if any(topic not in self.paused for topic in self.marked):
                return interval  # NOTE: a fresh mark whose pop came back empty is tried again
            deadlines = list(self.due.values())
            if self.leases:
                deadlines.append(self._last_renew + self.config.lease / 3)
        earliest = self._earliest_sweep()
        deadlines.append(earliest if earliest != float("inf") else now + self.config.poll_max_interval)
        return max(interval, min(deadlines) - now)

    def _free_slots(self) -> int:
        with self.lock:
            return self.capacity - len(self.leases)

    def _earliest_sweep(self) -> float:
        """When the next sweep of a topic this instance pops is due (``inf``: none)."""
        paused = set(self.paused)
        return min((when for topic, when in self.next_sweep.items() if topic not in paused), default=float("inf"))

    def _read_marks(self, reply: list[Any]) -> int:
        """Take the READY reply: note the topics marked since the cursor; returns how many."""
        counter, epoch, marks = self.ready.parse_read(reply)
        if epoch != self.epoch and self.epoch is not None:
            # NOTE: the counter started again (Redis lost the index: restart without
            # persistence, keys deleted): read every mark of the new epoch, sweep everything.
            log.info("mq_ready_index_reset", counter=counter, cursor=self.cursor)
            self.cursor = 0
            self.epoch = epoch
            self._sweep_all()
            return 1
        self.epoch = epoch
        if self.cursor < 0:  # the first read: only the counter came back
            self.cursor = counter
        elif marks:
            self.cursor = max(number for _, number in marks)
        fresh = 0
        resumed = []
        with self.lock:
            for topic, _ in marks:
                if topic.startswith(RESUME_MARK):
                    resumed.append(topic[len(RESUME_MARK) :])
                elif topic in self.queues:
                    self.marked[topic] = MARK_POPS
                    fresh += topic not in self.paused  # NOTE: no hurry for a topic we do not pop
        for topic in resumed:  # an operator resumed it (canghai, CLI): lift our own pause too
            if topic in self.queues:
                self.resume_local(topic)
                fresh += 1
        return fresh

    def _sweep_all(self) -> None:
        """Pop every topic in the next rounds (after a reset of the index or an outage)."""
        now = time.monotonic()
        self.next_sweep = dict.fromkeys(self.queues, now)
        self._sweep_check_at = None

    def _after_pop(self, topic: str, asked: int, got: int, due_in: float | None, now: float) -> None:
        """Update a topic's state after a pop of ``asked`` that returned ``got`` messages."""
        if got >= asked:
            self.hot.add(topic)
        else:
            self.hot.discard(topic)
        with self.lock:
            left = self.marked.get(topic)
            if left is not None:
                if got or left <= 1:
                    del self.marked[topic]
                else:
                    self.marked[topic] = left - 1
            # NOTE: a due time still in the future may come from a retry this instance
            # recorded after the pop was sent; keep it (at worst one extra pop).
            later = self.due.get(topic)
            later = later if later is not None and later > now else None
            if due_in is not None:
                self.due[topic] = min(now + due_in, later or now + due_in)
            elif later is None:
                self.due.pop(topic, None)
        # NOTE: a sweep interval drawn from [0.75, 1] × poll_max_interval spreads the
        # sweeps of many topics over the interval instead of all in one round.
        self.next_sweep[topic] = now + self.config.poll_max_interval * random.uniform(0.75, 1.0)

    def _pop_plan(self, now: float) -> list[tuple[Queue, int]]:
        """Which topics to pop this round and how many messages from each."""
        if self.stopping.is_set():
            return []
        free = self._free_slots()
        if free <= 0:
            return []
        with self.lock:
            marked, due = set(self.marked), dict(self.due)
        paused = self.paused
        urgent_set = (marked | self.hot | {topic for topic, when in due.items() if when <= now}) - paused
        urgent = [topic for topic in urgent_set if topic in self.queues]
        sweep: list[str] = []
        # PERF: the list of every topic is walked only when a sweep is due (kept in
        # _sweep_check_at), not in every round of a busy instance.
        if self._sweep_check_at is None or now >= self._sweep_check_at:
            self._sweep_check_at = None  # NOTE: recomputed once this round's pops are in
            skip = urgent_set | paused
            sweep = [t for t, when in self.next_sweep.items() if when <= now and t not in skip]
            if sweep:
                # PERF: topics due for a sweep soon are swept now, with the one that is due: an
                # idle instance then wakes about once per poll_max_interval, not once per topic.
                sweep_before = now + self.config.poll_max_interval * SWEEP_WINDOW
                chosen = skip | set(sweep)
                sweep += [t for t, when in self.next_sweep.items() if when <= sweep_before and t not in chosen]
        random.shuffle(urgent)  # NOTE: no topic starves the others
        random.shuffle(sweep)
        batch = self.config.batch_size
        room = dict.fromkeys(urgent + sweep, batch)
        if self._limits:
            with self.lock:
                running = Counter(lease.message.topic for lease in self.leases.values())
            for topic in room:
                limit = self._limits.get(topic)
                if limit:
                    room[topic] = min(batch, limit - running[topic])
        plan: dict[str, int] = {}
        for topic in urgent + sweep:  # one slot for every topic with work first
            if free <= 0:
                break
            if room[topic] > 0:
                plan[topic] = 1
                free -= 1
        flowing = [topic for topic in plan if topic in self.hot]
        while free > 0 and flowing:  # then the hot topics share the rest
            share = max(1, free // len(flowing))
            for topic in list(flowing):
                extra = min(share, room[topic] - plan[topic], free)
                plan[topic] += extra
                free -= extra
                if plan[topic] >= room[topic]:
                    flowing.remove(topic)
                if free <= 0:
                    break
        return [(self.queues[topic], count) for topic, count in plan.items()]
