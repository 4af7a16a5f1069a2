"""Failed-login limiting: a sliding window of attempts per key (user name, client IP).

An attempt is *reserved* before the password is checked — counted as a failure
under the same lock that decides whether it may go ahead — and handed back only
when the password was right. Checking first and counting after the slow hash would
let a burst of parallel guesses all pass the check before any of them is counted.

# NOTE: in memory, per process. Behind a load balancer each instance counts its own
# failures, so an attacker gets ``max_failures`` tries per instance per window —
# still a few guesses per minute, far from a brute force. Restarting clears it.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Reservation:
    """One login attempt counted against its keys until :meth:`FailureLimiter.succeeded`.

    :param keys: the keys the attempt was counted against
    :param stamp: the clock value it was counted at
    """

    keys: tuple[str, ...]
    stamp: float


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

    def _wait(self, keys: tuple[str, ...], now: float) -> float:
        """Seconds until every key is below the limit (call with the lock held)."""
        wait = 0.0
        for key in keys:
            stamps = self._prune(key, now)
            if stamps is not None and len(stamps) >= self.max_failures:
                # The key frees up when enough of its oldest failures leave the window.
                oldest_blocking = stamps[len(stamps) - self.max_failures]
                wait = max(wait, oldest_blocking + self.window - now)
        return wait

    def retry_after(self, *keys: str) -> int:
        """Seconds until every one of ``keys`` may try again; ``0`` when none is blocked.

        :param keys: e.g. ``"user:alice"``, ``"ip:10.0.0.1"``
        :return: whole seconds, rounded up
        """
        with self._lock:
            wait = self._wait(keys, self._clock())
        return math.ceil(wait) if wait > 0 else 0

    def reserve(self, *keys: str) -> tuple[Reservation | None, int]:
        """Count one attempt against every key, unless one of them is already at the limit.

        Check and count are one step under the lock, so ``N`` parallel attempts on a
        key below the limit by ``k`` let exactly ``k`` through.

        :param keys: e.g. ``"user:alice"``, ``"ip:10.0.0.1"``
        :return: ``(reservation, 0)`` when the attempt may go ahead, else
            ``(None, seconds to wait)``
        """
        now = self._clock()
        with self._lock:
            wait = self._wait(keys, now)
            if wait > 0:
                return None, max(1, math.ceil(wait))
            if len(self._failures) >= self.MAX_KEYS:
                self._evict(now)
            for key in keys:
                stamps = self._failures.setdefault(key, deque())
                stamps.append(now)
                # Only the newest max_failures matter for the decision.
                while len(stamps) > self.max_failures:
                    stamps.popleft()
        return Reservation(tuple(keys), now), 0

    def succeeded(self, reservation: Reservation, *, forget: tuple[str, ...] = ()) -> None:
        """Hand back a reserved attempt that turned out right, and forget ``forget`` keys.

        :param reservation: what :meth:`reserve` returned
        :param forget: keys whose earlier failures are cleared too (the user name
            after a successful login)
        """
        with self._lock:
            for key in reservation.keys:
                stamps = self._failures.get(key)
                if stamps is None:
                    continue
                try:
                    stamps.remove(reservation.stamp)
                except ValueError:
                    pass  # NOTE: already pushed out of the window or evicted
                if not stamps:
                    del self._failures[key]
            for key in forget:
                self._failures.pop(key, None)

    def record_failure(self, *keys: str) -> None:
        """Count one failure against each of ``keys``, whether or not they are at the limit."""
        now = self._clock()
        with self._lock:
            if len(self._failures) >= self.MAX_KEYS:
                self._evict(now)
            for key in keys:
                stamps = self._failures.setdefault(key, deque())
                stamps.append(now)
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
