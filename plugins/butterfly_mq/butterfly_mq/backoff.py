"""Exponential backoff with jitter, and one log line per outage, for every background loop.

The consumer's poller, the heartbeat/cleanup loop and ruqi's Redis claims all wait the
same way when Redis is gone: 0.1 s, 0.2 s, 0.4 s ... up to a cap, each wait half fixed and
half random (so instances that lost Redis together do not come back in lock-step). They
log the outage once when it starts (a warning with the error) and once when it ends (with
how many attempts failed and how long it lasted) — not a traceback per poll.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import structlog

from butterfly_mq.connection import ERRORS

log = structlog.get_logger("butterfly.redis")


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """The wait before retry number ``attempt`` (0 for the first): ``min(cap, base × 2^attempt)``,
    half of it fixed and half random ("equal jitter").

    :param attempt: failures so far, minus one
    :param base: the first wait, seconds
    :param cap: the longest wait, seconds
    """
    delay = min(cap, base * (2 ** min(attempt, 62)))
    return delay / 2 + random.uniform(0, delay / 2)


class Backoff:
    """The state of one loop's connection to Redis.

    Call :meth:`failed` after an error (it returns how long to wait) and :meth:`succeeded`
    after a round that worked.

    :param loop: the loop's name in log lines (``mq-poller``, ``ruqi-claims``, ...)
    :param base: first wait, seconds
    :param cap: longest wait, seconds
    :param logger: a structlog logger (default ``butterfly.redis``)
    """

    def __init__(self, loop: str, *, base: float = 0.1, cap: float = 5.0, logger: Any = None) -> None:
        self.loop = loop
        self.base = base
        self.cap = cap
        self.log = logger or log
        self.failures = 0
        self.total_failures = 0
        self.down_since: float | None = None
        self._lock = threading.Lock()

    @property
    def down(self) -> bool:
        """True from the first failure until the next success."""
        return self.down_since is not None

    def failed(self, error: BaseException) -> float:
        """Record a failed round; log the outage if it just started.

        A Redis error is logged with its message; anything else (a bug) with its traceback —
        once per outage either way.

        :param error: what went wrong
        :return: seconds to wait before the next attempt
        """
        with self._lock:
            self.failures += 1
            self.total_failures += 1
            attempt = self.failures - 1
            if self.down_since is None:
                self.down_since = time.monotonic()
                # NOTE: logged under the lock, so "down" and the log line agree for readers
                if isinstance(error, ERRORS):
                    self.log.warning(
                        "redis_unavailable",
                        loop=self.loop,
                        error=f"{type(error).__name__}: {error}",
                        note="retrying with backoff; logged once per outage",
                    )
                else:
                    self.log.error("loop_error", loop=self.loop, exc_info=error, note="retrying with backoff")
        return backoff_delay(attempt, self.base, self.cap)

    def succeeded(self) -> None:
        """Record a round that worked; log the end of an outage."""
        if self.down_since is None:
            return
        with self._lock:
            if self.down_since is None:
                return
            self.log.info(
                "redis_available_again",
                loop=self.loop,
                failed_attempts=self.failures,
                outage_seconds=round(time.monotonic() - self.down_since, 1),
            )
            self.down_since, self.failures = None, 0
