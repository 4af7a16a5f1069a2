"""Test handlers: each run is counted in a Redis hash (``HINCRBY key tag``) so tests see every run.

The Redis URL comes from ``XQ_TEST_REDIS_URL`` (the tests' private redis-server).
"""

from __future__ import annotations

import os
import time

import redis

from butterfly_router import retstat

_clients: dict[str, redis.Redis] = {}


def _redis() -> redis.Redis:
    url = os.environ["XQ_TEST_REDIS_URL"]
    if url not in _clients:
        _clients[url] = redis.Redis.from_url(url, decode_responses=True, protocol=2)
    return _clients[url]


def work(req, key: str, tag: str, value: int = 1, seconds: float = 0.0):
    """Count a run of ``tag`` when it begins (``<key>:begun``) and ends, optionally sleep, answer ``value``."""
    _redis().hincrby(f"{key}:begun", tag, 1)
    if seconds:
        time.sleep(seconds)
    _redis().hincrby(key, tag, 1)
    return retstat.OK, {"value": value, "tag": tag}


def collect(req, key: str, values: list[int], tag: str = "collect"):
    """Fan-in: add the values of every upstream task."""
    _redis().hincrby(key, tag, 1)
    return retstat.OK, {"total": sum(values), "count": len(values)}


def fragile(req, key: str, tag: str):
    """Fails with a business stat while ``tag`` is in the set ``<key>:broken``."""
    runs = _redis().hincrby(key, tag, 1)
    if _redis().sismember(f"{key}:broken", tag):
        return "ERR_BROKEN", {"runs": runs}
    return retstat.OK, {"runs": runs}


def explode(req, key: str):
    """Raises: the MQ records ERR_SERVER_EXCEPTION."""
    _redis().hincrby(key, "explode", 1)
    raise RuntimeError("boom")


def hold(req, key: str, tag: str, limit: float = 30.0):
    """Runs until ``<key>:release`` exists (at most ``limit`` seconds): a task a test lets go."""
    _redis().hincrby(f"{key}:begun", tag, 1)
    deadline = time.monotonic() + limit
    while not _redis().exists(f"{key}:release") and time.monotonic() < deadline:
        time.sleep(0.02)
    _redis().hincrby(key, tag, 1)
    return retstat.OK, {"tag": tag}


def nul(req):
    """A result with a NUL character (PostgreSQL cannot store it as is)."""
    return retstat.OK, {"text": "a\x00b"}


def typed(req, n: int, names: list[str] | None = None):
    """Typed params, for the validation tests."""
    return retstat.OK, {"n": n, "names": names or []}
