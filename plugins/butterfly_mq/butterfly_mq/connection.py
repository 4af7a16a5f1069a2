"""The one way every Butterfly plugin connects to Redis.

``connect(url)`` returns a client for a single Redis or a Twemproxy listener;
``connect(url, cluster=True)`` a Redis Cluster client seeded from ``url``. Every client:

* speaks RESP2 and sends nothing on connect but what the URL asks for (``AUTH``,
  ``SELECT``): no ``HELLO`` (RESP3 handshake) and no ``CLIENT SETINFO`` (driver name and
  version) — Twemproxy does not know them and closes the connection;
* has connect and socket timeouts, so a silent server is an error within seconds;
* decodes replies to ``str``.

Background loops pair it with :class:`butterfly_mq.backoff.Backoff`; producers treat
:data:`UNAVAILABLE` errors as "not stored, try again".

Used by butterfly-mq and butterfly-ruqi's Redis claims (``pip install butterfly-ruqi[mq]``);
a future plugin that talks to Redis should use it too.
"""

from __future__ import annotations

import inspect
import threading
from functools import cache
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.exceptions import ClusterDownError, RedisClusterException, SlotNotCoveredError, TryAgainError
from redis.retry import Retry

#: Errors that mean "Redis did not answer (or cannot serve this slot right now)": the command
#: may not have run; an idempotent command may be sent again.
UNAVAILABLE: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    ClusterDownError,
    TryAgainError,
    SlotNotCoveredError,
)
#: Every error a client may raise (``RedisClusterException`` is not a ``RedisError``).
ERRORS: tuple[type[Exception], ...] = (redis.RedisError, RedisClusterException)

_clients: dict[tuple[str, bool], Any] = {}
_clients_lock = threading.Lock()


@cache
def handshake_options() -> dict[str, Any]:
    """Client options that keep the connection handshake Twemproxy-safe on this redis-py.

    redis-py 5.0–7.1 suppress ``CLIENT SETINFO`` with ``lib_name=None, lib_version=None``;
    7.2+ deprecate those for ``driver_info=None``. Both accept ``protocol=2`` (no ``HELLO``).
    """
    parameters = inspect.signature(redis.Redis.__init__).parameters
    if "driver_info" in parameters:
        return {"protocol": 2, "driver_info": None}
    return {"protocol": 2, "lib_name": None, "lib_version": None}


def connect(
    url: str,
    *,
    cluster: bool = False,
    socket_timeout: float = 5.0,
    connect_timeout: float = 2.0,
    retries: int = 1,
) -> Any:
    """A new client for ``url``. No connection is made until the first command.

    :param url: ``redis://[[user]:password@]host:port/db`` (or ``rediss://``) of a Redis,
        a Twemproxy listener, or — with ``cluster`` — any node of a Redis Cluster
    :param cluster: serve the URL with redis-py's ``RedisCluster`` (the URL is a seed node;
        the others are discovered)
    :param socket_timeout: seconds a command may wait for its reply
    :param connect_timeout: seconds to open a connection
    :param retries: times a command is re-sent at once on a new connection after a broken
        one (a server restart leaves dead pooled connections); not used for a cluster, whose
        client re-reads the topology and retries by itself
    :return: a ``redis.Redis``, or a :class:`ClusterClient` wrapping ``RedisCluster``
        (``decode_responses=True`` either way)
    """
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
        "socket_keepalive": True,
        **handshake_options(),
    }
    if cluster:
        return ClusterClient(url, options)
    return redis.Redis.from_url(url, retry=Retry(NoBackoff(), retries), **options)


class ClusterClient:
    """A ``RedisCluster`` created on first use, so building one does no I/O.

    ``RedisCluster()`` reads the cluster's topology from its seed node at once and fails
    when no node answers; a kernel must still configure (and retry later) while Redis is
    down. Every attribute is the real client's; until one could be created, using it raises
    ``redis.ConnectionError``.

    :param url: a seed node
    :param options: keyword arguments for ``RedisCluster.from_url`` (passed on to every node)
    """

    def __init__(self, url: str, options: dict[str, Any]) -> None:
        self.url = url
        self.options = options
        self._client: RedisCluster | None = None
        self._lock = threading.Lock()

    @property
    def cluster(self) -> RedisCluster:
        """The ``RedisCluster`` (created now if needed).

        :raises redis.ConnectionError: no node of the cluster answered
        """
        client = self._client
        if client is None:
            with self._lock:
                client = self._client
                if client is None:
                    try:
                        client = self._client = RedisCluster.from_url(self.url, **self.options)
                    except (RedisClusterException, redis.RedisError) as exc:
                        raise redis.ConnectionError(
                            f"no node of the Redis Cluster at {redact_url(self.url)} answered: {exc}"
                        ) from None
        return client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cluster, name)

    def close(self) -> None:
        """Close the node connections; a later command connects again (like ``redis.Redis``)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


def is_cluster(client: Any) -> bool:
    """True for a Redis Cluster client made by :func:`connect`."""
    return isinstance(client, ClusterClient | RedisCluster)


def shared_client(url: str, *, cluster: bool = False) -> Any:
    """One process-wide client per URL and mode (producers outside a kernel share it).

    :param url: the Redis, Twemproxy or cluster seed URL
    :param cluster: see :func:`connect`
    """
    key = (url, cluster)
    client = _clients.get(key)
    if client is None:
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = connect(url, cluster=cluster)
    return client


def redact_url(url: str) -> str:
    """``url`` without its password, for logs and the dashboard."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user + ':***' if user else '***'}@{host}"
