"""The schema lock: one process at a time changes a database's schema.

A file lock beside an SQLite file, ``GET_LOCK`` on MySQL/MariaDB, ``pg_advisory_lock``
on PostgreSQL, each taken on the upgrade's own connection, so every instance that
starts against the same database waits for the one upgrading it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import structlog

from butterfly_store.upgrade_step import SCHEMA_TABLE
from kernel import ConfigError

if TYPE_CHECKING:
    from butterfly_store.upgrade_step import SchemaContext
    from butterfly_store.urls import StoreTarget

log = structlog.get_logger("butterfly.store")

#: Seconds a start-up waits for another process's upgrade before it gives up.
LOCK_TIMEOUT = 600.0
#: Seconds between two attempts at a lock another process holds.
LOCK_POLL = 0.2


def _mysql_lock_name(target: StoreTarget) -> str:
    # NOTE: GET_LOCK names are server-wide and at most 64 characters: one per database.
    digest = hashlib.sha1(str(target.options.get("database", "")).encode()).hexdigest()[:40]
    return f"butterfly_schema:{digest}"


def _postgres_lock_key(target: StoreTarget) -> int:
    # NOTE: advisory locks are per database already; a fixed key from the table's name.
    return int.from_bytes(hashlib.sha1(SCHEMA_TABLE.encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def schema_lock(
    target: StoreTarget,
    ctx: SchemaContext,
    *,
    timeout: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[None]:
    """Hold the store's schema lock (one holder among every process on the database).

    :param target: the parsed ``[store] url`` (names the lock file or lock)
    :param ctx: the upgrade's own connection (MySQL/PostgreSQL locks live on it)
    :param timeout: seconds to wait for another holder (default :data:`LOCK_TIMEOUT`)
    :raises ConfigError: when another process kept the lock longer
    """
    wait = LOCK_TIMEOUT if timeout is None else timeout
    deadline = time.monotonic() + wait
    release: Callable[[], None]
    if target.provider == "sqlite":
        path = target.sqlite_path
        if path is None:  # in-memory: one process only
            yield
            return
        fd = os.open(path + ".upgrade-lock", os.O_RDWR | os.O_CREAT, 0o600)

        def attempt() -> bool:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        def release() -> None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    elif target.provider == "mysql":
        name = _mysql_lock_name(target)

        def attempt() -> bool:
            return ctx.query("SELECT GET_LOCK(?, 0)", (name,))[0][0] == 1

        def release() -> None:
            with contextlib.suppress(Exception):  # NOTE: a lost connection has released it already
                ctx.query("SELECT RELEASE_LOCK(?)", (name,))

    else:
        key = _postgres_lock_key(target)

        def attempt() -> bool:
            return bool(ctx.query("SELECT pg_try_advisory_lock(?)", (key,))[0][0])

        def release() -> None:
            with contextlib.suppress(Exception):  # NOTE: a lost connection has released it already
                ctx.query("SELECT pg_advisory_unlock(?)", (key,))

    told = False
    try:
        while not attempt():
            if not told:
                log.info("waiting for another instance to finish the schema upgrade", url=target.display)
                told = True
            if time.monotonic() >= deadline:
                raise ConfigError(
                    f"another process has held the schema lock of {target.display} for over {wait:.0f} s "
                    "(a schema upgrade still running, or stuck); start again once it has finished"
                )
            sleep(LOCK_POLL)
    except BaseException:
        if target.provider == "sqlite":
            os.close(fd)
        raise
    try:
        yield
    finally:
        release()
