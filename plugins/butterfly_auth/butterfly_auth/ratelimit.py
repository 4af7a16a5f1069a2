"""Failed-login limiting: a sliding window of failures per key (user name, client IP).

# NOTE: in memory, per process. Behind a load balancer each instance counts its own
# failures, so an attacker gets ``max_failures`` tries per instance per window —
# still a few guesses per minute, far from a brute force. Restarting clears it.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque


class FailureLimiter:
    """Refuse a key after ``max_failures`` failures within ``window`` seconds.

    :param max_failures: failures allowed inside the window
    :param window: the window length in seconds
    :param clock: a monotonic clock (tests may pass their own)
    """

    #: Most keys tracked at once; the oldest are dropped past it (memory bound).
    MAX_KEYS = 100_000

    def __init__(self, max_failures: int, window: float, clock=time.monotonic) -> None:
        self.max_failures = max_failures
        self.window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _prune(self, key: str, now: float) -> deque[float] | None:
        stamps = self._failures.get(key)
        if stamps is None:
            return None
        horizon = now - self.window
        while stamps and stamps[0] <= horizon:
            stamps.popleft()
        if not stamps:
            del self._failures[key]
            return None
        return stamps

    def retry_after(self, *keys: str) -> int:
        """Seconds until every one of ``keys`` may try again; ``0`` when none is blocked.

        :param keys: e.g. ``"user:alice"``, ``"ip:10.0.0.1"``
        :return: whole seconds, rounded up
        """
        now = self._clock()
        wait = 0.0
        with self._lock:
            for key in keys:
                stamps = self._prune(key, now)
                if stamps is not None and len(stamps) >= self.max_failures:
                    # The key frees up when enough of its oldest failures leave the window.
                    oldest_blocking = stamps[len(stamps) - self.max_failures]
                    wait = max(wait, oldest_blocking + self.window - now)
        return math.ceil(wait) if wait > 0 else 0

    def record_failure(self, *keys: str) -> None:
        """Count one failure against each of ``keys``."""
        now = self._clock()
        with self._lock:
            if len(self._failures) >= self.MAX_KEYS:
                self._evict(now)
            for key in keys:
                stamps = self._failures.setdefault(key, deque())
                stamps.append(now)
                # Only the newest max_failures matter for the decision.
                while len(stamps) > self.max_failures:
                    stamps.popleft()

    def reset(self, key: str) -> None:
        """Forget ``key``'s failures (after a successful login)."""
        with self._lock:
            self._failures.pop(key, None)

    def _evict(self, now: float) -> None:
        for key in list(self._failures):
            self._prune(key, now)
        # PERF: still full means a flood of distinct keys; drop the oldest half.
        if len(self._failures) >= self.MAX_KEYS:
            for key in list(self._failures)[: self.MAX_KEYS // 2]:
                del self._failures[key]
