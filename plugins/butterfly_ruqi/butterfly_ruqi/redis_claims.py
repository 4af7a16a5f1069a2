"""The optional Redis claim of an occurrence (``[ruqi] claim_redis_url``).

With the setting, :func:`~butterfly_ruqi.claims.claim_due` claims each occurrence it is
about to run with one single-key command::

    SET ruqi:{<job_id>}:claim:<scheduled_ms> <instance_id> NX PX <ttl>

— the ``{job_id}`` hash tag keeps all of a job's keys on one shard (Redis Cluster,
Twemproxy with ``hash_tag: "{}"``), and nothing here needs more than one key per
command, so it works through Twemproxy. Only the instance that set the key inserts
the ``claimed`` history row; the database's unique key stays the second line of defence.

Retention (``ttl``): ``max(7 days, 10 × the job's misfire_grace)``. An occurrence is only
ever claimed while it is younger than ``misfire_grace`` (older ones are recorded
``skipped_misfire`` without Redis), so the key only has to outlive that window; the
generous margin keeps it readable for diagnosis and covers clocks that disagree.

The client comes from butterfly-mq's shared connection code
(:func:`butterfly_mq.connection.connect`: RESP2, no ``HELLO`` or ``CLIENT SETINFO``, so it
works through Twemproxy; ``[ruqi] claim_redis_cluster = true`` for a Redis Cluster), which
is why the setting needs ``pip install butterfly-ruqi[mq]``. It is created in
``butterfly_startup`` (imported there, not at import time) with short socket timeouts and
**no retries**: the claim runs while the job row is locked, so a slow Redis must fail fast
rather than hold the lock. After a failure, claims fail at once without asking Redis until
a backoff with jitter has passed (0.5 s doubling to 5 s), and the outage is logged once.
"""

from __future__ import annotations

import importlib.util
import time

#: seconds to connect to / wait for Redis; the job row stays locked meanwhile
SOCKET_TIMEOUT = 1.0
#: the shortest retention of a claim key, in ms (7 days)
MIN_TTL_MS = 7 * 24 * 3600 * 1000
#: URL schemes redis-py understands
URL_SCHEMES = ("redis://", "rediss://", "unix://")


class RedisUnavailable(Exception):
    """Redis did not answer the claim: the occurrence must not run on this instance now."""


def claim_key(job_id: str, scheduled_ms: int) -> str:
    """The claim key of one occurrence: ``ruqi:{<job_id>}:claim:<scheduled_ms>``.

    :param job_id: the job's id
    :param scheduled_ms: the occurrence, in ms since the epoch
    :return: the key
    """
    return f"ruqi:{{{job_id}}}:claim:{scheduled_ms}"


def claim_ttl_ms(misfire_grace: float) -> int:
    """How long a claim key is kept: ``max(7 days, 10 × misfire_grace)``, in ms.

    :param misfire_grace: the job's misfire grace, in seconds
    :return: the ``PX`` value
    """
    return max(MIN_TTL_MS, int(misfire_grace * 10_000))


def check_url(url: str) -> None:
    """Refuse a ``claim_redis_url`` redis-py cannot use, or that butterfly-mq is missing for
    (without importing either).

    :param url: the configured URL
    :raises ValueError: with a reason that does not repeat the URL (it may hold a password)
    """
    if not url.startswith(URL_SCHEMES):
        raise ValueError(f"must start with one of {', '.join(URL_SCHEMES)}")
    if importlib.util.find_spec("butterfly_mq") is None:
        raise ValueError("Redis claims need butterfly-mq's Redis connection: pip install 'butterfly-ruqi[mq]'")


class RedisClaims:
    """Claims occurrences in Redis with ``SET NX PX``.

    :param client: a Redis client answering ``str`` (``decode_responses=True``)
    """

    def __init__(self, client) -> None:
        from butterfly_mq.backoff import Backoff

        self.client = client
        self.backoff = Backoff("ruqi-claims", base=0.5, cap=5.0)
        self._retry_at = 0.0
        self._last_error = ""

    @classmethod
    def connect(cls, url: str, *, cluster: bool = False) -> RedisClaims:
        """A client for ``url`` (no connection is made until the first claim).

        :param url: ``redis://[:password@]host:port/db`` etc.; with ``cluster`` any node
            of a Redis Cluster
        :param cluster: serve ``url`` as a Redis Cluster (``[ruqi] claim_redis_cluster``)
        :return: the :class:`RedisClaims`
        """
        from butterfly_mq.connection import connect

        client = connect(url, cluster=cluster, socket_timeout=SOCKET_TIMEOUT, connect_timeout=SOCKET_TIMEOUT, retries=0)
        return cls(client)

    def claim(self, job_id: str, scheduled_ms: int, instance_id: str, ttl_ms: int) -> str:
        """Try to claim one occurrence for ``instance_id``.

        :param job_id: the job's id
        :param scheduled_ms: the occurrence
        :param instance_id: the value to set (this instance)
        :param ttl_ms: the key's retention
        :return: the holder's instance id — ``instance_id`` when this instance holds the
            claim (just set, or set by an earlier attempt of its own whose reply or
            transaction was lost), another id when some other instance holds it
        :raises RedisUnavailable: Redis did not answer (connection refused, timeout, error
            reply), or did not a moment ago and the backoff has not passed yet
        """
        from butterfly_mq.connection import ERRORS

        if self.backoff.down and time.monotonic() < self._retry_at:
            raise RedisUnavailable(f"backing off after {self._last_error}")
        key = claim_key(job_id, scheduled_ms)
        try:
            if self.client.set(key, instance_id, nx=True, px=ttl_ms):
                holder = instance_id
            else:
                holder = self.client.get(key)
        except ERRORS as exc:
            self._last_error = f"{type(exc).__name__}: {exc}"
            self._retry_at = time.monotonic() + self.backoff.failed(exc)
            raise RedisUnavailable(self._last_error) from None
        self.backoff.succeeded()
        # NOTE: ``None`` means the key expired between SET and GET — impossible with the
        # retention above unless someone deleted it; treat it as held, never as ours.
        return holder if holder is not None else "(unknown)"

    def holder(self, job_id: str, scheduled_ms: int) -> str | None:
        """Who holds an occurrence's claim key (``None``: nobody). For diagnosis and tests."""
        return self.client.get(claim_key(job_id, scheduled_ms))

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()
