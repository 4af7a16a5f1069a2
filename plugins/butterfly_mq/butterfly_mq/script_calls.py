"""Running the Lua scripts on Redis: EVALSHA with an EVAL fallback, several in one round trip.

A :class:`Script` is a Lua source and its SHA1. :func:`run_pipelined` sends calls of scripts
(``(script, keys, args)``, a :data:`Call`) pipelined, never in MULTI: on one pooled connection
for a single Redis or a Twemproxy (packed by :func:`pack_calls`), through redis-py's cluster
pipeline on a Redis Cluster. A call that finds its script missing (NOSCRIPT) runs again with
EVAL, which also caches it; ``SCRIPT LOAD`` is never used because Twemproxy refuses it.
Threads that make many calls keep a connection of the pool: :func:`hold_connection` (the
consumer's poller), :func:`thread_connection` (producers).

The scripts themselves are in :mod:`butterfly_mq.scripts` and ``lua/``.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import threading
from collections.abc import Sequence
from typing import Any

import redis
from redis.exceptions import NoScriptError


class Script:
    """A Lua script and its SHA1, run with EVALSHA and an EVAL fallback.

    :param name: a short name for logs
    :param source: the Lua source
    """

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode("utf-8")).hexdigest()

    def __call__(self, client: Any, keys: Sequence[str], args: Sequence[Any] = ()) -> Any:
        """Run once. NOSCRIPT (new or restarted server) falls back to EVAL, which also
        caches the script; ``SCRIPT LOAD`` is never used because Twemproxy refuses it."""
        return run_pipelined(client, [(self, keys, args)])[0]


Call = tuple[Script, Sequence[str], Sequence[Any]]
#: ``ConnectionPool.get_connection`` arguments: none since redis-py 5.3 (a command name before).
_POOL_ARGS: tuple[str, ...] = (
    ()
    if inspect.signature(redis.ConnectionPool.get_connection).parameters["command_name"].default is None
    else ("EVALSHA",)
)


#: Packed ``EVALSHA <sha> <numkeys> <keys...>`` heads, per script and key list (see :func:`pack_calls`).
_HEADS: dict[tuple[str, tuple[str, ...]], tuple[int, bytes]] = {}


def _bulk(value: Any) -> bytes:
    """One RESP bulk string, encoded like redis-py's ``Encoder`` (UTF-8; numbers by ``repr``)."""
    if isinstance(value, str):
        data = value.encode("utf-8")
    elif isinstance(value, bytes):
        data = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        data = repr(value).encode("ascii")
    else:
        raise redis.DataError(f"Invalid input of type: {type(value).__name__!r}")
    return b"$%d\r\n%s\r\n" % (len(data), data)


#: Calls with at most this many arguments are packed here (see :func:`pack_calls`).
SMALL_CALL_ARGS = 8


def pack_calls(calls: Sequence[Call], connection: Any) -> list[bytes]:
    """The ``EVALSHA`` commands of ``calls``, RESP-encoded for ``connection``.

    PERF: a script's head (its SHA and keys) is the same for every call of a queue, so for a
    call with few arguments (an enqueue, a pop) it is packed once and kept and only the
    arguments are packed per call: about a third of redis-py's ``pack_commands``. A call
    with many arguments (a batch of acks) goes to the connection's own packer (hiredis's C
    packer where installed), which is faster there.
    """
    parts: list[bytes] = []
    for script, keys, args in calls:
        if len(args) > SMALL_CALL_ARGS:
            parts.extend(connection.pack_command("EVALSHA", script.sha, len(keys), *keys, *args))
            continue
        marker = (script.sha, tuple(keys))
        head = _HEADS.get(marker)
        if head is None:
            if len(_HEADS) > 10_000:
                _HEADS.clear()
            packed = b"".join(_bulk(part) for part in ("EVALSHA", script.sha, len(keys), *keys))
            head = _HEADS[marker] = (3 + len(keys), packed)
        parts.append(b"*%d\r\n" % (head[0] + len(args)))
        parts.append(head[1])
        parts.extend(_bulk(arg) for arg in args)
    return parts


def _send_on_one_connection(client: redis.Redis, calls: Sequence[Call], connection: Any = None) -> list[Any]:
    """EVALSHA every call on one pooled connection: all commands in one write, then every reply.

    PERF: the same round trip as ``pipeline(transaction=False)``, without its per-command
    bookkeeping (and a plain command's): redis-py's pipeline costs about 15 µs of client CPU
    on top of the socket work, which is most of a producer's per-call cost. Built on the
    public connection API (``get_connection``, ``pack_command``, ``send_packed_command``, ``read_response``,
    ``release``) and the connection's own ``retry``: a broken pooled connection (a restarted
    server) is replaced and the commands sent again once, as a pipeline would.

    :param connection: a connection the caller holds (taken from ``client``'s pool and kept by
        one thread); default: one is taken from the pool for this call
    :return: one reply per call; an error reply (``ResponseError``) in its place
    """
    count = len(calls)
    pool = client.connection_pool
    borrowed = connection is None
    if borrowed:
        connection = pool.get_connection(*_POOL_ARGS)
    packed: list[bytes] = []

    def attempt() -> list[Any]:
        connection.send_packed_command(packed)
        replies: list[Any] = []
        for _ in range(count):
            try:
                replies.append(connection.read_response())
            except redis.ResponseError as exc:  # NOTE: the reply was read: the connection is in step
                replies.append(exc)
        return replies

    try:
        packed.append(b"".join(pack_calls(calls, connection)))
        return connection.retry.call_with_retry(attempt, lambda error: connection.disconnect())
    except BaseException:
        # NOTE: replies may be left unread (an interrupt, an error redis-py did not handle):
        # a held connection must not carry them into its next call
        connection.disconnect()
        raise
    finally:
        if borrowed:
            pool.release(connection)


def run_pipelined(
    client: Any, calls: Sequence[Call], *, raise_errors: bool = True, connection: Any = None
) -> list[Any]:
    """Run several scripts in one round trip (pipelined, never MULTI).

    A call that failed with NOSCRIPT did not run, so it is run again with EVAL. A single
    Redis or a Twemproxy gets every command on one connection (:func:`_send_on_one_connection`);
    on a Redis Cluster redis-py's pipeline splits them by node (one round trip per node).

    :param client: a ``redis.Redis`` or a cluster client
    :param calls: ``(script, keys, args)`` triples
    :param connection: for a single Redis or Twemproxy, a connection of ``client``'s pool the
        calling thread holds (see :func:`hold_connection`); ignored on a cluster
    :param raise_errors: raise the first error reply; ``False``: return error replies as
        exception objects in their place (a lost connection still raises)
    :return: the results in order
    :raises redis.RedisError: the first other error
    """
    if not calls:
        return []
    if isinstance(client, redis.Redis):
        results = _send_on_one_connection(client, calls, connection)
    else:
        pipe = client.pipeline(transaction=False)
        for script, keys, args in calls:
            # NOTE: redis-py's cluster pipeline has no evalsha() method (it could not load a
            # script on the node that answered NOSCRIPT); the generic command is routed by its
            # keys like any other, and NOSCRIPT is handled below, per call, with EVAL.
            pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        results = pipe.execute(raise_on_error=False)
    for index, result in enumerate(results):
        if isinstance(result, NoScriptError):
            script, keys, args = calls[index]
            try:
                # NOTE: Redis EVAL (runs our Lua on the server), not Python's eval.
                results[index] = client.eval(script.source, len(keys), *keys, *args)
            except redis.ResponseError as exc:
                if raise_errors:
                    raise
                results[index] = exc
        elif isinstance(result, Exception) and raise_errors:
            raise result
    return results


def hold_connection(client: Any) -> Any:
    """A connection of ``client``'s pool for one long-lived thread to keep (``None`` on a cluster).

    PERF: a pool checkout and return cost two ``getpid`` system calls and two lock round trips
    per call; the consumer's poller makes hundreds of calls a second. Give it back with
    :func:`release_connection`. A connection that breaks reconnects on its next use.
    """
    return client.connection_pool.get_connection(*_POOL_ARGS) if isinstance(client, redis.Redis) else None


def release_connection(client: Any, connection: Any) -> None:
    """Return a connection taken with :func:`hold_connection` to its pool."""
    if connection is not None:
        client.connection_pool.release(connection)


#: Most pools one thread keeps a connection of (:func:`thread_connection`); the oldest goes back.
THREAD_HELD_MOST = 8


class _Held:
    """A connection one thread keeps; given back to its pool when the thread ends."""

    __slots__ = ("connection", "pid", "pool")

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.pid = os.getpid()
        self.connection = pool.get_connection(*_POOL_ARGS)

    def __del__(self) -> None:
        # NOTE: after a fork the pool starts afresh by itself; the parent's socket is not ours
        if self.pid == os.getpid():
            try:
                self.pool.release(self.connection)
            except Exception:  # noqa: BLE001 - a thread's end or interpreter shutdown
                pass


class _ThreadHeld(threading.local):
    def __init__(self) -> None:
        self.by_pool: dict[int, _Held] = {}


_thread_held = _ThreadHeld()


def thread_connection(client: Any) -> Any:
    """A connection of ``client``'s pool that the calling thread keeps (``None`` on a cluster).

    PERF: redis-py's pool checkout and return (a ``getpid``, two locks, a ``poll`` of the socket
    for stray data, connection-count metrics) cost a producer about as much client CPU as
    packing and sending its scripts. A producer thread keeps one connection per pool instead
    (at most :data:`THREAD_HELD_MOST` pools); it goes back to its pool when the thread ends,
    and is not used in a forked child. A connection that broke reconnects on its next use.
    """
    if not isinstance(client, redis.Redis):
        return None
    pool = client.connection_pool
    by_pool = _thread_held.by_pool
    held = by_pool.get(id(pool))
    if held is None or held.pool is not pool or held.pid != os.getpid():
        if len(by_pool) >= THREAD_HELD_MOST:
            del by_pool[next(iter(by_pool))]
        held = by_pool[id(pool)] = _Held(pool)
    return held.connection
