"""Hook implementations of butterfly-store (entry point ``store``).

Only hookimpls live here; the logic is in :mod:`butterfly_store.database`,
:mod:`butterfly_store.sessions` and :mod:`butterfly_store.urls`.
"""

from __future__ import annotations

from butterfly_store import hookspecs
from butterfly_store.database import EXTENSION
from kernel import ConfigError, hookimpl

SECTION = "store"


@hookimpl
def butterfly_add_hookspecs(pluginmanager):
    """Add ``butterfly_store_define_entities``."""
    pluginmanager.add_hookspecs(hookspecs)


@hookimpl
def butterfly_add_settings(settings):
    """Declare ``[store]``."""
    add = settings.add
    add(
        SECTION,
        "url",
        str,
        "",
        "database URL: sqlite:///path.db (relative to the working directory), "
        "mysql://user:password@host:3306/db, postgresql://user:password@host:5432/db; "
        "empty: sqlite:///<[server] data_dir>/butterfly.db",
        secret=True,
        owner="store",
    )
    add(
        SECTION,
        "connect_retries",
        int,
        3,
        "extra connection attempts at start-up while the database is unreachable",
        owner="store",
    )
    add(
        SECTION,
        "connect_backoff",
        float,
        0.5,
        "seconds before the first retry, doubled for each next one",
        owner="store",
    )
    add(
        SECTION,
        "connect_timeout",
        float,
        5.0,
        "seconds one MySQL/PostgreSQL connection attempt may take",
        owner="store",
    )


@hookimpl(trylast=True)
def butterfly_configure(kernel):
    """Collect every plugin's entities, bind and map them once, wrap requests in sessions.

    ``trylast``: every other plugin's configure has run (and may have registered
    more plugins) before the entities are collected.
    """
    from butterfly_store.database import open_database
    from butterfly_store.sessions import RequestSessions
    from butterfly_store.urls import parse_store_url

    settings = kernel.settings.section(SECTION)
    url = settings.url or f"sqlite:///{kernel.data_dir / 'butterfly.db'}"
    try:
        target = parse_store_url(url, connect_timeout=settings.connect_timeout)
    except ValueError as exc:
        raise ConfigError(f"bad value for [store] url: {exc}") from None
    kernel.extensions[EXTENSION] = open_database(
        target,
        lambda db: kernel.hook.butterfly_store_define_entities(db=db),
        retries=settings.connect_retries,
        backoff=settings.connect_backoff,
    )
    kernel.pm.register(RequestSessions(), name="store.sessions")


@hookimpl
def butterfly_health(kernel):
    """``SELECT 1`` on the store."""
    from butterfly_store.database import check_connection

    db = kernel.extensions.get(EXTENSION)
    if db is None:
        return {"store": (False, "not configured")}
    return {"store": check_connection(db)}


@hookimpl
def butterfly_shutdown(kernel):
    """Close this thread's connection (pony keeps one per thread)."""
    db = kernel.extensions.get(EXTENSION)
    if db is not None:
        db.disconnect()
