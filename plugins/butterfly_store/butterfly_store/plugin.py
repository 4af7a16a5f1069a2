"""Hook implementations of butterfly-store (entry point ``store``).

Only hookimpls live here; the logic is in :mod:`butterfly_store.database`,
:mod:`butterfly_store.sessions` and :mod:`butterfly_store.urls`.
"""

from __future__ import annotations

from butterfly_store import hookspecs
from butterfly_store.database import EXTENSION
from kernel import ConfigError, hookimpl

SECTION = "store"
#: The default 16 waitress threads plus a few background threads (ruqi) without ever
#: reconnecting; three instances (60) fit PostgreSQL's default max_connections = 100.
DEFAULT_MAX_CONNECTIONS = 20
#: ``kernel.extensions`` key of the :class:`~butterfly_store.budget.ConnectionBudget`.
BUDGET_EXTENSION = "store.budget"


def connection_limit(value) -> int:
    """Setting converter for ``[store] max_connections``: 0 (no limit) or at least 2."""
    from kernel.settings import as_int

    number = as_int(value)
    if number < 0 or number == 1:
        raise ValueError(f"expected 0 (no limit) or at least 2, got {number}")
    return number


@hookimpl
def butterfly_add_hookspecs(pluginmanager):
    """Add ``butterfly_store_define_entities`` and ``butterfly_store_upgrades``."""
    pluginmanager.add_hookspecs(hookspecs)


@hookimpl
def butterfly_add_commands(subparsers):
    """``butterfly store status|upgrade``."""
    from butterfly_store import cli

    cli.add_commands(subparsers)


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
    add(
        SECTION,
        "max_connections",
        connection_limit,
        DEFAULT_MAX_CONNECTIONS,
        "most MySQL/PostgreSQL connections this process opens (0: no limit); budget: "
        "instances x workers x max_connections <= the server's max_connections - reserve",
        owner="store",
    )
    add(
        SECTION,
        "auto_upgrade",
        bool,
        True,
        "run pending schema upgrade steps at start-up (one instance at a time); "
        "false: refuse to start until `butterfly store upgrade` has run them",
        owner="store",
    )
    add(
        SECTION,
        "pool_timeout",
        float,
        10.0,
        "seconds a request waits for a free connection before a 503 (ERR_DATABASE_BUSY)",
        owner="store",
    )


@hookimpl(trylast=True)
def butterfly_configure(kernel):
    """Collect every plugin's entities, bind and map them once, wrap requests in sessions.

    ``trylast``: every other plugin's configure has run (and may have registered
    more plugins) before the entities are collected.
    """
    from butterfly_store import schema
    from butterfly_store.budget import ConnectionBudget
    from butterfly_store.cli import SCHEMA_EXTENSION
    from butterfly_store.database import open_database
    from butterfly_store.sessions import RequestSessions
    from butterfly_store.urls import parse_store_url

    settings = kernel.settings.section(SECTION)
    url = settings.url or f"sqlite:///{kernel.data_dir / 'butterfly.db'}"
    try:
        target = parse_store_url(url, connect_timeout=settings.connect_timeout)
    except ValueError as exc:
        raise ConfigError(f"bad value for [store] url: {exc}") from None
    budget = None
    if target.provider != "sqlite" and settings.max_connections:
        budget = ConnectionBudget(settings.max_connections, settings.pool_timeout)
        kernel.extensions[BUDGET_EXTENSION] = budget
    # NOTE: pluggy calls the last registered plugin first; steps go in load order.
    steps = schema.collect_steps(reversed(kernel.hook.butterfly_store_upgrades()))
    kernel.extensions[SCHEMA_EXTENSION] = (target, steps)

    def prepare_schema(db) -> None:
        if not schema.is_deferred():  # NOTE: `butterfly store status|upgrade` do it themselves
            schema.upgrade(db, target, steps, auto=settings.auto_upgrade)

    db = kernel.extensions[EXTENSION] = open_database(
        target,
        lambda db: kernel.hook.butterfly_store_define_entities(db=db),
        retries=settings.connect_retries,
        backoff=settings.connect_backoff,
        budget=budget,
        prepare_schema=prepare_schema,
    )
    if budget is not None:
        budget.retry_in_background = True
    kernel.pm.register(RequestSessions(db, budget), name="store.sessions")


@hookimpl
def butterfly_health(kernel):
    """``SELECT 1`` on the store."""
    from butterfly_store.database import check_connection

    db = kernel.extensions.get(EXTENSION)
    if db is None:
        return {"store": (False, "not configured")}
    ok, detail = check_connection(db)
    budget = kernel.extensions.get(BUDGET_EXTENSION)
    if budget is not None:
        detail += f" ({budget.in_use()} of max_connections {budget.limit} open)"
    return {"store": (ok, detail)}


@hookimpl(trylast=True)
def butterfly_shutdown(kernel):
    """Close this thread's connection (pony keeps one per thread); waiters for a connection give up.

    ``trylast``: other plugins' shutdown (ruqi marking its runs) may still need the database.
    """
    budget = kernel.extensions.get(BUDGET_EXTENSION)
    if budget is not None:
        budget.close()
    db = kernel.extensions.get(EXTENSION)
    if db is not None:
        db.disconnect()
