"""Redis clients that only send commands Twemproxy understands."""

from __future__ import annotations

import threading

import redis

_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


def connect(url: str, *, socket_timeout: float = 5.0) -> redis.Redis:
    """A new client for ``url`` (``redis://host:port/db``).

    :param url: the Redis (or Twemproxy) URL
    :param socket_timeout: seconds before a silent server counts as gone
    :return: a ``redis.Redis`` with ``decode_responses=True``
    """
    # NOTE: driver_info=None stops redis-py from sending CLIENT SETINFO on connect;
    # Twemproxy does not know CLIENT and would close the connection; likewise protocol=2
    # avoids the HELLO 3 handshake redis-py 8 sends by default.
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        driver_info=None,
        protocol=2,
        socket_timeout=socket_timeout,
        socket_connect_timeout=2.0,
        socket_keepalive=True,
    )


def shared_client(url: str) -> redis.Redis:
    """One process-wide client per URL (producers outside a kernel share it).

    :param url: the Redis (or Twemproxy) URL
    """
    client = _clients.get(url)
    if client is None:
        with _clients_lock:
            client = _clients.get(url)
            if client is None:
                client = _clients[url] = connect(url)
    return client


def redact_url(url: str) -> str:
    """``url`` without its password, for logs and the dashboard."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user + ':***' if user else '***'}@{host}"
