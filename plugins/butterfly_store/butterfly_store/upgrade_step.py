"""What a plugin ships to change its tables (:class:`UpgradeStep`) and what a step works on.

A step's ``run(ctx)`` gets a :class:`SchemaContext`: one DB-API connection of its own
(:func:`connect`), in autocommit mode, with the same ``?`` placeholders and the same
table, column and index helpers on SQLite, MySQL/MariaDB and PostgreSQL.
:mod:`butterfly_store.schema` runs the steps; import these names from there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kernel import ConfigError

if TYPE_CHECKING:
    from butterfly_store.urls import StoreTarget

#: The table that records which steps have been applied.
SCHEMA_TABLE = "butterfly_schema"


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

    @contextlib.contextmanager
    def _cursor(self, sql: str, params: Sequence[Any]) -> Iterator[Any]:
        """A cursor that has run ``sql`` (``?`` placeholders made the driver's); closed afterwards."""
        cursor = self.connection.cursor()
        try:
            if params:
                if self.provider != "sqlite":
                    sql = sql.replace("%", "%%").replace("?", "%s")
                cursor.execute(sql, tuple(params))
            else:
                cursor.execute(sql)
            yield cursor
        finally:
            cursor.close()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; ``?`` marks a parameter. :return: the rows it changed (or -1)."""
        with self._cursor(sql, params) as cursor:
            return cursor.rowcount

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one query; ``?`` marks a parameter. :return: every row, as tuples."""
        with self._cursor(sql, params) as cursor:
            return [tuple(row) for row in cursor.fetchall()]

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
