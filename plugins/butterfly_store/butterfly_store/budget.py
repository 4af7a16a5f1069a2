"""``[store] max_connections``: a hard bound on the open MySQL/PostgreSQL connections of a process.

pony keeps one connection per thread and never closes it: with 16 waitress threads, MQ
consumers and ruqi job threads an instance holds ~33 connections, and three instances
exhaust PostgreSQL's default ``max_connections = 100``. The budget bounds that number.

**The gate.** A thread takes a slot *before* its connection is opened, so the bound
holds even while threads wait. Where the slot is taken is the drivers' public API:
PostgreSQL through a psycopg2 ``connection_factory`` whose ``__init__`` takes the slot
before connecting; MySQL through PyMySQL's ``defer_connect`` and the store's first
``db.on_connect`` callback, which takes the slot and then calls ``connect()``.

**Giving slots back.** pony closes nothing by itself, so slots come back at the end of
an outermost request session (HTTP and ``kernel.call``, see
:mod:`butterfly_store.sessions`):

* a thread keeps its connection while nobody waits for a slot (no reconnect per
  request) — and closes it when someone does;
* an idle connection kept by an HTTP thread may be *evicted*: a thread that needs a
  slot when all are taken closes the most recently idled one (a WSGI worker thread
  touches the database only inside a request, and the owner drops the closed
  connection with ``db.disconnect()`` before its next session);
* connections that cannot be given back at a known point — opened outside any
  request session (ruqi's scheduler and job threads), or kept after a non-HTTP call —
  may hold at most ``max_connections - 1`` slots, so one slot always stays free or
  held by a session that ends; those threads wait without a deadline when over it.

A request thread that finds no slot within ``[store] pool_timeout`` seconds fails with
:class:`DatabaseBusy`, a 503. Connections that pony closed itself (after an error) or
that were garbage collected are noticed by a sweep whenever a slot is wanted.
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Any

import structlog

from kernel import ServiceUnavailable

log = structlog.get_logger("butterfly.store")

#: Seconds between re-checks while waiting (connections pony closed are only noticed by a sweep).
SWEEP_SECONDS = 0.25
#: Seconds a slot freed by closing a connection stays taken before another thread may use it:
#: the server ends a closed session a few milliseconds later (PostgreSQL keeps counting it
#: meanwhile), and the bound should hold as the server counts, not only as we do.
RECYCLE_GRACE = 0.05


class DatabaseBusy(ServiceUnavailable):
    """No database connection became free within ``[store] pool_timeout``: a 503."""

    stat = "ERR_DATABASE_BUSY"


class Lease:
    """One slot of the budget: a connection being opened, in use, or kept idle.

    :param thread: the owning thread's name (diagnostics)
    :param source: ``http``/``mq``/``ruqi``/``cli`` for a connection opened inside a
        request session, ``None`` for one opened outside any (a background thread)
    """

    __slots__ = ("connection", "evicted", "idle", "in_request", "source", "thread")

    def __init__(self, thread: str, source: str | None) -> None:
        self.thread = thread
        self.source = source
        self.connection: weakref.ref | None = None
        self.in_request = source is not None
        self.idle = False
        self.evicted = False

    def is_closed(self) -> bool:
        """True once the driver connection is closed or gone (``False`` while opening)."""
        if self.connection is None:
            return False
        connection = self.connection()
        if connection is None:
            return True
        closed = getattr(connection, "closed", None)  # psycopg2: 0 while open
        if closed is not None:
            return bool(closed)
        return not getattr(connection, "open", True)  # PyMySQL

    @property
    def releasable(self) -> bool:
        """Whether the slot comes back without this thread's help (idle HTTP) or at a session end."""
        return self.in_request or self.idle


class ConnectionBudget:
    """The slots of one process's database connections.

    :param limit: the most connections open at once (at least 2)
    :param pool_timeout: seconds a request thread waits for a slot before :class:`DatabaseBusy`
    """

    def __init__(self, limit: int, pool_timeout: float) -> None:
        if limit < 2:
            raise ValueError(f"max_connections must be 0 (no limit) or at least 2, got {limit}")
        self.limit = limit
        self.pool_timeout = pool_timeout
        self._cond = threading.Condition()
        self._leases: set[Lease] = set()
        #: idle connections kept by HTTP threads, the most recently idled last
        self._idle: list[Lease] = []
        self._waiting = 0
        #: monotonic times until which recently closed connections still count (RECYCLE_GRACE)
        self._closing: list[float] = []
        self._local = threading.local()
        #: the most connections ever open at once (diagnostics, tests)
        self.peak = 0
        #: set by :meth:`close` at shutdown: waiting threads give up
        self.closed = False
        #: once the store is up, a background MySQL thread retries a failed connect (see
        #: :func:`mysql_connect_callback`); during start-up the store's own retries apply
        self.retry_in_background = False

    # -- opening ------------------------------------------------------------------------

    def acquire(self) -> Lease:
        """Take a slot for a connection this thread is about to open.

        :return: the lease; pass it to :meth:`opened` once connected, or :meth:`forget` on failure
        :raises DatabaseBusy: inside a request session, when no slot was free in time
        """
        source = getattr(self._local, "source", None)
        lease = Lease(threading.current_thread().name, source)
        deadline = time.monotonic() + self.pool_timeout
        warn_at = deadline
        victim: Lease | None = None
        with self._cond:
            self._waiting += 1
            try:
                while True:
                    if self.closed:
                        raise DatabaseBusy("the store is shutting down")
                    self._sweep()
                    if self._fits(lease):
                        break
                    if self._taken() >= self.limit and self._idle and (lease.in_request or self._fits_later(lease)):
                        victim = self._idle.pop()
                        victim.evicted = True
                        self._leases.discard(victim)
                        self._closing.append(time.monotonic() + RECYCLE_GRACE)
                        # NOTE: the victim's slot is ours once the server has ended its session.
                        victim_slot_free_at = self._closing[-1]
                        break
                    now = time.monotonic()
                    if lease.in_request and now >= deadline:
                        raise DatabaseBusy(
                            f"no database connection free within {self.pool_timeout:g} s "
                            f"([store] max_connections = {self.limit}, all in use)",
                            headers=[("Retry-After", "1")],
                        )
                    if not lease.in_request and now >= warn_at:
                        log.warning(
                            "waiting for a database connection", max_connections=self.limit, thread=lease.thread
                        )
                        warn_at = now + self.pool_timeout
                    self._cond.wait(self._wait_seconds(now, deadline))
            finally:
                self._waiting -= 1
            self._leases.add(lease)
            self.peak = max(self.peak, len(self._leases))
        if victim is not None:
            # NOTE: close the victim before the caller connects: the bound holds at every instant.
            _close_quietly(victim)
            with self._cond:
                if victim_slot_free_at in self._closing:
                    self._closing.remove(victim_slot_free_at)  # the victim's grace is now ours to wait
            time.sleep(RECYCLE_GRACE)
        self._local.lease = lease
        return lease

    def _taken(self) -> int:
        """Slots in use: open connections plus ones closed less than RECYCLE_GRACE ago."""
        if self._closing:
            now = time.monotonic()
            self._closing = [until for until in self._closing if until > now]
        return len(self._leases) + len(self._closing)

    def _wait_seconds(self, now: float, deadline: float) -> float:
        wait = SWEEP_SECONDS
        if self._closing:
            wait = min(wait, max(0.001, min(self._closing) - now))
        if deadline > now:
            wait = min(wait, deadline - now)
        return wait

    def _fits(self, lease: Lease) -> bool:
        if self._taken() >= self.limit:
            return False
        return lease.in_request or self._fits_later(lease)

    def _fits_later(self, lease: Lease) -> bool:
        """A background lease may only take a slot while one other stays releasable."""
        held = sum(1 for other in self._leases if other is not lease and not other.releasable)
        return held + 1 <= self.limit - 1

    def opened(self, lease: Lease, connection: Any) -> None:
        """Record the connection that now fills ``lease``.

        :param lease: from :meth:`acquire`
        :param connection: the driver connection (held weakly)
        """
        with self._cond:
            lease.connection = weakref.ref(connection)

    def forget(self, lease: Lease | None, *, closed: bool = False) -> None:
        """Give a slot back (the connection failed to open, or was closed).

        :param lease: the lease, or ``None`` (nothing to do)
        :param closed: the connection was open and has just been closed: the slot
            comes back after :data:`RECYCLE_GRACE`
        """
        if lease is None:
            return
        with self._cond:
            if lease in self._leases and closed:
                self._closing.append(time.monotonic() + RECYCLE_GRACE)
            self._leases.discard(lease)
            if lease in self._idle:
                self._idle.remove(lease)
            self._cond.notify_all()
        if getattr(self._local, "lease", None) is lease:
            self._local.lease = None

    def _sweep(self) -> None:
        closed = [lease for lease in self._leases if lease.is_closed()]
        for lease in closed:
            self._leases.discard(lease)
            if lease in self._idle:
                self._idle.remove(lease)

    # -- request sessions (butterfly_store.sessions) ---------------------------------------

    def enter_request(self, source: str, db: Any) -> None:
        """An outermost request session is about to open on this thread.

        Drops this thread's connection if it was evicted meanwhile (pony would
        otherwise hand the closed connection to the new session).

        :param source: ``request.source``
        :param db: the pony database
        """
        self._local.source = source
        lease = getattr(self._local, "lease", None)
        if lease is None:
            return
        with self._cond:
            evicted = lease.evicted
            if not evicted:
                lease.in_request = True
                lease.idle = False
                if lease in self._idle:
                    self._idle.remove(lease)
        if evicted:
            self._local.lease = None
            _disconnect_quietly(db)

    def leave_request(self, db: Any) -> None:
        """The outermost request session on this thread has ended: keep or close its connection.

        :param db: the pony database
        """
        self._local.source = None
        if getattr(self._local, "stale", False):
            self._local.stale = False
            _disconnect_quietly(db)
        lease = getattr(self._local, "lease", None)
        if lease is None:
            return
        with self._cond:
            lease.in_request = False
            if lease.evicted or self._waiting or lease.is_closed():
                keep = False
            elif lease.source == "http":
                keep = True
                lease.idle = True
                self._idle.append(lease)
            else:
                keep = self._fits_later(lease)
        if not keep:
            _disconnect_quietly(db)
            self.forget(lease, closed=True)

    def release_thread_connection(self, db: Any) -> None:
        """Close this thread's connection and give its slot back (outside any db_session).

        :param db: the pony database
        """
        lease = getattr(self._local, "lease", None)
        _disconnect_quietly(db)
        self.forget(lease, closed=True)

    def close(self) -> None:
        """Shutdown: threads still waiting for a slot (or retrying a connection) give up."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def mark_stale(self) -> None:
        """This thread's pony pool kept a connection that never connected (MySQL, deferred).

        The end of the request session drops it (:meth:`leave_request`).
        """
        self._local.stale = True

    def in_request(self) -> bool:
        """True inside an outermost request session on this thread."""
        return getattr(self._local, "source", None) is not None

    def in_use(self) -> int:
        """How many slots are taken now (connections open, opening, or just closed)."""
        with self._cond:
            self._sweep()
            return self._taken()


def _close_quietly(lease: Lease) -> None:
    connection = lease.connection() if lease.connection is not None else None
    if connection is None:
        return
    try:
        # NOTE: psycopg2 connections may be closed from any thread; an evicted one is idle.
        connection.close()
    except Exception:  # noqa: BLE001 - closing a connection that is already gone
        pass


def _disconnect_quietly(db: Any) -> None:
    try:
        db.disconnect()
    except Exception as exc:  # noqa: BLE001 - an evicted connection may already be closed
        log.debug("closing the thread's database connection failed", error=f"{type(exc).__name__}: {exc}"[:200])


def psycopg2_connection_class(budget: ConnectionBudget) -> type:
    """A psycopg2 ``connection_factory`` that takes a slot before connecting.

    :param budget: the process's budget
    :return: a subclass of ``psycopg2.extensions.connection``
    """
    import psycopg2.extensions

    class BudgetedConnection(psycopg2.extensions.connection):
        """A psycopg2 connection counted by ``[store] max_connections``."""

        def __init__(self, dsn: str, *args: Any, **kwargs: Any) -> None:
            lease = budget.acquire()
            try:
                super().__init__(dsn, *args, **kwargs)
            except BaseException:
                budget.forget(lease)
                raise
            budget.opened(lease, self)

    return BudgetedConnection


def mysql_connect_callback(budget: ConnectionBudget):
    """A ``db.on_connect`` callback that takes a slot, then connects a deferred PyMySQL connection.

    PyMySQL has no hook before it connects; with ``defer_connect=True`` pony hands
    the store an unconnected connection here first. The catch: when this callback
    raises, pony keeps that unconnected connection for the thread. A request thread
    drops it at the end of its session (:meth:`ConnectionBudget.leave_request`); a
    background thread — which nothing would heal — keeps retrying the connection
    instead (backoff up to 5 s) until it succeeds or the store shuts down.

    :param budget: the process's budget
    :return: ``callback(db, connection)``
    """

    def connect_within_budget(db: Any, connection: Any) -> None:
        try:
            lease = budget.acquire()
        except BaseException:
            budget.mark_stale()
            raise
        delay = 0.5
        while True:
            try:
                connection.connect()
            except Exception as exc:
                if budget.in_request() or not budget.retry_in_background or budget.closed:
                    budget.forget(lease)
                    budget.mark_stale()
                    # NOTE: the error pony raises when it connects itself, so callers see no difference.
                    from pony.orm import OperationalError

                    raise OperationalError(exc) from exc
                log.warning(
                    "database unreachable; retrying", retry_in=delay, error=f"{type(exc).__name__}: {exc}"[:200]
                )
                time.sleep(delay)
                delay = min(5.0, delay * 2)
            except BaseException:
                budget.forget(lease)
                budget.mark_stale()
                raise
            else:
                budget.opened(lease, connection)
                return

    return connect_within_budget
