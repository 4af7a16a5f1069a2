"""Schema upgrades: plugins' ordered steps, the ``butterfly_schema`` record, one lock for every instance.

pony's ``generate_mapping(create_tables=True)`` creates missing tables and indexes but
never changes a table that exists. When a plugin's new version adds a column, it ships
an :class:`UpgradeStep` through the ``butterfly_store_upgrades`` hook; the store runs
the steps no ``butterfly_schema`` row names yet, at start-up (``[store] auto_upgrade``)
or with ``butterfly store upgrade``, under a lock every process on the database shares:

1. take the lock (a file lock beside an SQLite file, ``GET_LOCK`` on MySQL/MariaDB,
   ``pg_advisory_lock`` on PostgreSQL), on a connection of its own;
2. a step none of whose ``tables`` exist yet is recorded as applied without running
   (the mapping is about to create those tables as the new version wants them);
3. every other pending step runs, in order, in a transaction with its record (MySQL
   commits DDL at once: a step must be safe to run again after a failure);
4. every mapped table that exists is compared with the database: a column the code
   expects and no step added stops start-up with a :class:`SchemaMismatch` naming table
   and column (once: only connection failures are retried);
5. pony creates the missing tables and indexes.
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import hashlib
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

from kernel import ConfigError

if TYPE_CHECKING:
    from pony.orm import Database

    from butterfly_store.urls import StoreTarget

log = structlog.get_logger("butterfly.store")

#: The table that records which steps have been applied.
SCHEMA_TABLE = "butterfly_schema"
#: Seconds a start-up waits for another process's upgrade before it gives up.
LOCK_TIMEOUT = 600.0
#: Seconds between two attempts at a lock another process holds.
LOCK_POLL = 0.2
#: ``id`` of a step: a plugin prefix, a dot, then letters, digits, ``-`` and ``_``.
STEP_ID = re.compile(r"^[a-z][a-z0-9_]*\.[A-Za-z0-9][A-Za-z0-9_.-]{0,90}$")
#: How a step came to be recorded.
RAN, NEW_TABLES = "ran", "new-tables"

_deferred: contextvars.ContextVar[bool] = contextvars.ContextVar("butterfly_store_schema_deferred", default=False)


@dataclass(frozen=True)
class UpgradeStep:
    """One change of a plugin's tables between two versions.

    :param id: unique and never reused: the plugin's name, a dot, an ordered name
        (``auth.0002-user-uid``); ``butterfly_schema`` records it once applied
    :param description: one line for ``butterfly store status`` and the logs
    :param run: ``run(ctx)`` changes the tables through a :class:`SchemaContext`
    :param tables: the tables the step changes; when none of them exists yet the
        step is recorded without running (empty: only on a database with no mapped table)
    """

    id: str
    description: str
    run: Callable[[SchemaContext], None]
    tables: tuple[str, ...] = ()


class SchemaMismatch(ConfigError):
    """The database's tables do not match the entities and no upgrade step covers the difference."""


class PendingUpgrades(ConfigError):
    """Steps are pending and ``[store] auto_upgrade`` is false."""


class UpgradeFailed(ConfigError):
    """An upgrade step raised; the message names it and the database error."""


class SchemaContext:
    """A step's view of the database: one DB-API connection in autocommit mode plus helpers.

    SQL given to :meth:`execute` and :meth:`query` takes ``?`` placeholders on every
    backend. The store wraps each step in a transaction (``BEGIN`` … ``COMMIT``).

    :param connection: the DB-API connection (``sqlite3``, PyMySQL or psycopg2)
    :param provider: ``sqlite``, ``mysql`` or ``postgres``
    """

    def __init__(self, connection: Any, provider: str) -> None:
        self.connection = connection
        self.provider = provider

    def quote(self, name: str) -> str:
        """``name`` quoted as an identifier (back-ticks on MySQL, double quotes elsewhere)."""
        if self.provider == "mysql":
            return "`" + name.replace("`", "``") + "`"
        return '"' + name.replace('"', '""') + '"'

    def _sql(self, sql: str, params: Sequence[Any]) -> tuple[str, Sequence[Any] | None]:
        if not params:
            return sql, None
        if self.provider != "sqlite":
            sql = sql.replace("%", "%%").replace("?", "%s")
        return sql, tuple(params)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; ``?`` marks a parameter. :return: the rows it changed (or -1)."""
        cursor = self.connection.cursor()
        try:
            statement, values = self._sql(sql, params)
            if values is None:
                cursor.execute(statement)
            else:
                cursor.execute(statement, values)
            return cursor.rowcount
        finally:
            cursor.close()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one query; ``?`` marks a parameter. :return: every row, as tuples."""
        cursor = self.connection.cursor()
        try:
            statement, values = self._sql(sql, params)
            if values is None:
                cursor.execute(statement)
            else:
                cursor.execute(statement, values)
            return [tuple(row) for row in cursor.fetchall()]
        finally:
            cursor.close()

    def tables(self) -> set[str]:
        """Names of the tables in the store's database (its current schema on PostgreSQL)."""
        if self.provider == "sqlite":
            rows = self.query("SELECT name FROM sqlite_master WHERE type = 'table'")
        elif self.provider == "mysql":
            rows = self.query("SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()")
        else:
            rows = self.query("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
        return {str(row[0]) for row in rows}

    def has_table(self, table: str) -> bool:
        """Whether ``table`` exists."""
        return table in self.tables()

    def columns(self, table: str) -> list[str]:
        """Column names of ``table`` in table order (empty when it does not exist)."""
        if self.provider == "sqlite":
            return [str(row[1]) for row in self.query(f"PRAGMA table_info({self.quote(table)})")]
        where = "DATABASE()" if self.provider == "mysql" else "current_schema()"
        rows = self.query(
            "SELECT column_name FROM information_schema.columns "
            f"WHERE table_schema = {where} AND table_name = ? ORDER BY ordinal_position",
            (table,),
        )
        return [str(row[0]) for row in rows]

    def has_column(self, table: str, column: str) -> bool:
        """Whether ``table`` has ``column``."""
        return column in self.columns(table)

    def indexes(self, table: str) -> set[str]:
        """Names of the indexes on ``table`` (unique constraints included)."""
        if self.provider == "sqlite":
            return {str(row[1]) for row in self.query(f"PRAGMA index_list({self.quote(table)})")}
        if self.provider == "mysql":
            rows = self.query(
                "SELECT DISTINCT index_name FROM information_schema.statistics "
                "WHERE table_schema = DATABASE() AND table_name = ?",
                (table,),
            )
        else:
            rows = self.query(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = ?", (table,)
            )
        return {str(row[0]) for row in rows}

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """``BEGIN`` … ``COMMIT``, or ``ROLLBACK`` when the body raises."""
        self.execute("START TRANSACTION" if self.provider == "mysql" else "BEGIN")
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):
                self.execute("ROLLBACK")
            raise
        self.execute("COMMIT")


# -- connection and lock ---------------------------------------------------------------------


def connect(target: StoreTarget) -> Any:
    """A DB-API connection of its own to the store's database, in autocommit mode.

    :param target: the parsed ``[store] url``
    :raises ConfigError: naming the masked URL and the driver's error when it cannot connect
    """
    from butterfly_store.database import describe_error

    try:
        return _connect(target)
    except Exception as exc:
        raise ConfigError(f"cannot connect to the database {target.display}: {describe_error(exc)}") from exc


def _connect(target: StoreTarget) -> Any:
    options = dict(target.options)
    if target.provider == "sqlite":
        import sqlite3

        from butterfly_store.database import SQLITE_BUSY_TIMEOUT_MS

        filename = options["filename"]
        if filename == ":sharedmemory:":
            return sqlite3.connect("file:memdb_butterfly?mode=memory&cache=shared", uri=True, isolation_level=None)
        return sqlite3.connect(filename, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    if target.provider == "mysql":
        import pymysql

        return pymysql.connect(autocommit=True, **options)
    import psycopg2

    connection = psycopg2.connect(**options)
    connection.autocommit = True
    return connection


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


# -- plan, run, check ------------------------------------------------------------------------


@dataclass
class Record:
    """One row of ``butterfly_schema``."""

    step: str
    description: str
    applied_at: str
    how: str


@dataclass
class Plan:
    """What an upgrade would do: steps to run, steps to record as new, and what is recorded.

    :param run: pending steps that change existing tables
    :param record_only: pending steps whose tables do not exist yet
    :param applied: ``butterfly_schema`` rows by step id
    :param unknown: recorded ids no installed plugin ships (a plugin removed or downgraded)
    """

    run: list[UpgradeStep] = field(default_factory=list)
    record_only: list[UpgradeStep] = field(default_factory=list)
    applied: dict[str, Record] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)

    @property
    def pending(self) -> list[UpgradeStep]:
        """Every step not recorded yet."""
        return self.run + self.record_only


def collect_steps(results: Iterable[Any]) -> list[UpgradeStep]:
    """Flatten the ``butterfly_store_upgrades`` results, checking each step.

    :param results: the hook's results (each a sequence of :class:`UpgradeStep`)
    :raises ConfigError: a malformed step or an id shipped twice
    """
    steps: list[UpgradeStep] = []
    seen: set[str] = set()
    for result in results:
        for step in result or ():
            if not isinstance(step, UpgradeStep):
                raise ConfigError(f"butterfly_store_upgrades returned {step!r}, not an UpgradeStep")
            if not STEP_ID.match(step.id):
                raise ConfigError(f"upgrade step id {step.id!r} must look like 'plugin.0001-what' (letters, digits, -)")
            if step.id in seen:
                raise ConfigError(f"upgrade step {step.id!r} is shipped twice")
            seen.add(step.id)
            steps.append(step)
    return steps


def _ensure_schema_table(ctx: SchemaContext) -> None:
    ctx.execute(
        f"CREATE TABLE IF NOT EXISTS {ctx.quote(SCHEMA_TABLE)} ("
        "step VARCHAR(100) NOT NULL PRIMARY KEY, "
        "description VARCHAR(255) NOT NULL, "
        "applied_at VARCHAR(32) NOT NULL, "
        "how VARCHAR(16) NOT NULL)"
    )


def read_records(ctx: SchemaContext) -> dict[str, Record]:
    """The ``butterfly_schema`` rows by step id (none when the table does not exist)."""
    if not ctx.has_table(SCHEMA_TABLE):
        return {}
    rows = ctx.query(f"SELECT step, description, applied_at, how FROM {ctx.quote(SCHEMA_TABLE)} ORDER BY applied_at")
    return {str(row[0]): Record(*(str(value) for value in row)) for row in rows}


def _record(ctx: SchemaContext, step: UpgradeStep, how: str) -> None:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    ctx.execute(
        f"INSERT INTO {ctx.quote(SCHEMA_TABLE)} (step, description, applied_at, how) VALUES (?, ?, ?, ?)",
        (step.id, step.description[:255], now, how),
    )


def mapped_tables(db: Database) -> dict[str, list[str]]:
    """``{table: [column, ...]}`` that pony's mapping of ``db`` expects."""
    tables: dict[str, list[str]] = {}
    for name, table in db.schema.tables.items():
        if isinstance(name, str):
            tables[name] = [column.name for column in table.column_list]
    return tables


def make_plan(ctx: SchemaContext, steps: Sequence[UpgradeStep], mapped: Iterable[str]) -> Plan:
    """Sort ``steps`` into recorded, to run and to record only, reading the database only.

    :param mapped: the tables of the mapping (a step without ``tables`` runs only
        when one of them exists)
    """
    records = read_records(ctx)
    existing = ctx.tables()
    any_mapped = bool(existing & set(mapped))
    plan = Plan(applied=records)
    for step in steps:
        if step.id in records:
            continue
        touches_existing = bool(existing & set(step.tables)) if step.tables else any_mapped
        (plan.run if touches_existing else plan.record_only).append(step)
    shipped = {step.id for step in steps}
    plan.unknown = [step_id for step_id in records if step_id not in shipped]
    return plan


def missing_columns(ctx: SchemaContext, expected: dict[str, list[str]]) -> dict[str, list[str]]:
    """``{table: [column, ...]}`` the mapping expects and an existing table lacks.

    Tables that do not exist are left out: the mapping creates them.
    """
    missing: dict[str, list[str]] = {}
    existing = ctx.tables()
    for table, columns in sorted(expected.items()):
        if table not in existing:
            continue
        present = set(ctx.columns(table))
        absent = [column for column in columns if column not in present]
        if absent:
            missing[table] = absent
    return missing


def describe_missing(missing: dict[str, list[str]]) -> str:
    """``table auth_user lacks column uid; table x lacks columns a, b``."""
    parts = []
    for table, columns in missing.items():
        noun = "column" if len(columns) == 1 else "columns"
        parts.append(f"table {table} lacks {noun} {', '.join(columns)}")
    return "; ".join(parts)


def mismatch_message(display: str, missing: dict[str, list[str]]) -> str:
    """The one error of a schema no step brings up to date: which table lacks what, and what to do."""
    return (
        f"the database {display} does not match the installed plugins: {describe_missing(missing)}, "
        "and no upgrade step adds it. `butterfly store status` lists the applied steps. If the database "
        "was made by a newer version, run that version; otherwise add the column(s) by hand "
        "(docs/store.md, Upgrading)"
    )


def run_step(ctx: SchemaContext, step: UpgradeStep, display: str) -> None:
    """Run one step and record it, in one transaction.

    :raises UpgradeFailed: naming the step and the error
    """
    log.info("running schema upgrade step", step=step.id, description=step.description, url=display)
    started = time.monotonic()
    try:
        with ctx.transaction():
            step.run(ctx)
            _record(ctx, step, RAN)
    except Exception as exc:
        detail = f"{type(exc).__name__}: {str(exc).strip()}"[:300]
        partly = "; MySQL/MariaDB commit DDL at once, so part of it may be done" if ctx.provider == "mysql" else ""
        raise UpgradeFailed(
            f"schema upgrade step {step.id} ({step.description}) failed on {display}: {detail}. "
            f"Nothing was recorded{partly}: fix the cause and start again (or run `butterfly store upgrade`)"
        ) from exc
    log.info("schema upgrade step done", step=step.id, seconds=round(time.monotonic() - started, 3))


@dataclass
class Outcome:
    """What :func:`upgrade` did."""

    ran: list[str] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)


def upgrade(
    db: Database,
    target: StoreTarget,
    steps: Sequence[UpgradeStep],
    *,
    auto: bool = True,
    lock_timeout: float | None = None,
) -> Outcome:
    """Bring the database to the mapping: run pending steps, create missing tables, check columns.

    Runs under :func:`schema_lock` on a connection of its own; pony's ``create_tables``
    runs on ``db``'s connection of this thread.

    :param db: the bound, mapped (not yet created) pony database
    :param target: the parsed ``[store] url``
    :param steps: every installed plugin's steps, in order
    :param auto: run pending steps; ``False``: refuse with :class:`PendingUpgrades`
    :raises PendingUpgrades: steps pending and not ``auto``
    :raises UpgradeFailed: a step raised
    :raises SchemaMismatch: a mapped column the database still lacks afterwards
    """
    from butterfly_store.database import describe_error

    expected = mapped_tables(db)
    outcome = Outcome()
    if target.sqlite_path is None and target.provider == "sqlite":
        # NOTE: an in-memory database is new on every start: nothing to upgrade.
        _create_tables(db, target)
        return outcome
    connection = connect(target)
    try:
        ctx = SchemaContext(connection, target.provider)
        with schema_lock(target, ctx, timeout=lock_timeout):
            plan = make_plan(ctx, steps, expected)
            if plan.run and not auto:
                names = ", ".join(f"{step.id} ({step.description})" for step in plan.run)
                raise PendingUpgrades(
                    f"{len(plan.run)} schema upgrade step(s) pending on {target.display}: {names}. "
                    "[store] auto_upgrade is false: run `butterfly store upgrade` "
                    "(`--dry-run` lists them), then start again"
                )
            if plan.pending:
                _ensure_schema_table(ctx)
            for step in plan.record_only:
                with ctx.transaction():
                    _record(ctx, step, NEW_TABLES)
                outcome.recorded.append(step.id)
            for step in plan.run:
                run_step(ctx, step, target.display)
                outcome.ran.append(step.id)
            missing = missing_columns(ctx, expected)
            if missing:
                raise SchemaMismatch(mismatch_message(target.display, missing))
            _create_tables(db, target)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"cannot check the schema of {target.display}: {describe_error(exc)}") from exc
    finally:
        with contextlib.suppress(Exception):
            connection.close()
    if outcome.ran or outcome.recorded:
        log.info("schema up to date", url=target.display, ran=outcome.ran, recorded=len(outcome.recorded))
    return outcome


def _create_tables(db: Database, target: StoreTarget) -> None:
    from pony.orm.core import DBException

    from butterfly_store.database import describe_error

    try:
        db.create_tables()
    except DBException as exc:
        raise SchemaMismatch(
            f"cannot create the missing tables and indexes on {target.display}: {describe_error(exc)}. "
            "An existing table may not match the installed plugins: `butterfly store status` compares them"
        ) from exc


# -- deferral (butterfly store upgrade/status) ------------------------------------------------


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Within: the store binds and maps but leaves the schema alone (``butterfly store ...``)."""
    token = _deferred.set(True)
    try:
        yield
    finally:
        _deferred.reset(token)


def is_deferred() -> bool:
    """Whether the store should leave the schema alone (inside :func:`deferred`)."""
    return _deferred.get()
