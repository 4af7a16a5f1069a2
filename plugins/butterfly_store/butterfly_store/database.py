"""Build the one pony ``Database`` of a kernel: define, bind, map — with retries.

Each connection attempt starts from a fresh :class:`pony.orm.Database`, because a
database whose ``bind`` or ``generate_mapping`` failed cannot be reused; plugins
therefore define their entities inside the ``butterfly_store_define_entities`` hook.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from butterfly_store.budget import ConnectionBudget, mysql_connect_callback, psycopg2_connection_class
from butterfly_store.drivers import require_driver
from butterfly_store.permissions import secure_database_file
from butterfly_store.urls import StoreTarget
from kernel import ConfigError

if TYPE_CHECKING:
    from pony.orm import Database

    from kernel import Kernel

log = structlog.get_logger("butterfly.store")

#: ``kernel.extensions`` key of the bound, mapped :class:`pony.orm.Database`.
EXTENSION = "store"
#: Milliseconds an SQLite connection waits for another process's write lock.
SQLITE_BUSY_TIMEOUT_MS = 10_000


def get_db(kernel: Kernel) -> Database:
    """The kernel's bound and mapped pony ``Database``.

    :param kernel: a configured kernel with butterfly-store enabled
    :return: the :class:`pony.orm.Database`; entities are ``db.entities["Name"]``
    :raises ConfigError: when butterfly-store is not enabled on this kernel
    """
    try:
        return kernel.extensions[EXTENSION]
    except KeyError:
        raise ConfigError(
            "butterfly-store is not enabled: install it (pip install butterfly-store) "
            "and check [server] disable_plugins"
        ) from None


def prepare_sqlite_file(path: str) -> None:
    """Create the parent directory (0700) and the file (0600), and switch it to WAL journal mode.

    WAL lets readers go on while one writer commits; it is a property of the file,
    so it is set once here rather than per connection.

    :param path: absolute path of the database file
    :raises OSError: when the directory or file cannot be created
    """
    secure_database_file(Path(path))
    connection = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
    try:
        mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            log.warning("sqlite could not switch to WAL journal mode", path=path, mode=mode)
    finally:
        connection.close()


def _sqlite_connection_pragmas(db: Database, connection: Any) -> None:
    cursor = connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    # NOTE: NORMAL is durable across application crashes in WAL mode (only an OS
    # crash can lose the last commits) and makes every commit much cheaper.
    cursor.execute("PRAGMA synchronous = NORMAL")


def _bind_and_map(
    target: StoreTarget, define_entities: Callable[[Database], None], budget: ConnectionBudget | None
) -> Database:
    from pony.orm import Database

    db = Database()
    options = dict(target.options)
    if budget is not None:
        # NOTE: the slot is taken before a connection opens; see butterfly_store.budget.
        if target.provider == "postgres":
            options["connection_factory"] = psycopg2_connection_class(budget)
        elif target.provider == "mysql":
            options["defer_connect"] = True
            db.on_connect(provider="mysql")(mysql_connect_callback(budget))  # registered first: runs first
    define_entities(db)
    if target.provider == "sqlite":
        db.on_connect(provider="sqlite")(_sqlite_connection_pragmas)
        if target.sqlite_path is not None:
            prepare_sqlite_file(target.sqlite_path)
    db.bind(provider=target.provider, **options)
    # NOTE: the mapping only; tables are created and checked under the schema lock (open_database).
    db.generate_mapping(create_tables=False, check_tables=False)
    return db


def open_database(
    target: StoreTarget,
    define_entities: Callable[[Database], None],
    *,
    retries: int = 3,
    backoff: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
    budget: ConnectionBudget | None = None,
    prepare_schema: Callable[[Database], None] | None = None,
) -> Database:
    """Define, bind and map a new database, retrying while the server is unreachable; then the schema.

    Only the connection is retried: once ``bind`` has connected, the tables are
    brought up to date once (``prepare_schema``), and an error there stops at once.

    :param target: the parsed ``[store] url``
    :param define_entities: called with each fresh ``Database`` before ``bind``
        (the ``butterfly_store_define_entities`` hook)
    :param retries: extra attempts after the first failure
    :param backoff: seconds before the first retry; doubled for each next one
    :param sleep: the wait function (tests pass a fake clock)
    :param budget: bound the connections (``[store] max_connections``); MySQL/PostgreSQL only
    :param prepare_schema: called once with the mapped database to upgrade, create and
        check its tables (:func:`butterfly_store.schema.upgrade`); default: pony's
        ``create_tables`` alone
    :return: the bound, mapped :class:`pony.orm.Database`
    :raises ConfigError: naming the password-masked URL when every attempt failed,
        or at once for errors a retry cannot fix (no driver, bad entity definitions,
        a file that cannot be created, a schema that does not match)
    """
    from pony.orm.core import DBException, OrmError

    require_driver(target.provider, target.display)
    attempts = max(0, retries) + 1
    last_error = ""
    for attempt in range(1, attempts + 1):
        try:
            db = _bind_and_map(target, define_entities, budget)
        except OSError as exc:
            raise ConfigError(f"cannot open the database {target.display}: {exc}") from None
        except DBException as exc:
            last_error = describe_error(exc)
        except OrmError as exc:
            # NOTE: a mapping/definition error is a bug in a plugin; retrying cannot help.
            raise ConfigError(f"cannot map the entities on {target.display}: {describe_error(exc)}") from exc
        else:
            try:
                if prepare_schema is not None:
                    prepare_schema(db)
                else:
                    try:
                        db.create_tables()
                    except DBException as exc:
                        message = f"cannot create the tables on {target.display}: {describe_error(exc)}"
                        raise ConfigError(message) from exc
            except BaseException:
                db.disconnect()
                raise
            finally:
                if budget is not None:
                    # NOTE: the start-up thread never queries again; its connection would hold a slot for good.
                    budget.release_thread_connection(db)
            log.info("database ready", url=target.display, provider=target.provider, entities=sorted(db.entities))
            return db
        if attempt < attempts:
            delay = backoff * 2 ** (attempt - 1)
            log.warning(
                "database unreachable; retrying", url=target.display, attempt=attempt, retry_in=delay, error=last_error
            )
            sleep(delay)
    raise ConfigError(f"cannot connect to the database {target.display} after {attempts} attempt(s): {last_error}")


def describe_error(exc: BaseException) -> str:
    """``Type: message`` of a database error (the driver's, when pony wraps one), one line, bounded."""
    original = getattr(exc, "original_exc", None)
    text = str(original if original is not None else exc).strip().replace("\n", " ")
    return f"{type(original or exc).__name__}: {text}"[:300]


def check_connection(db: Database) -> tuple[bool, str]:
    """Run ``SELECT 1`` on the store (``/_meta/health``).

    :param db: the store's database
    :return: ``(ok, detail)``
    """
    from pony.orm import db_session

    try:
        with db_session:
            db.select("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - health reports, never raises
        return False, f"{db.provider_name}: {describe_error(exc)}"
    return True, f"{db.provider_name}: SELECT 1 ok"
