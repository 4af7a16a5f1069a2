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

The step and its context live in :mod:`butterfly_store.upgrade_step`, the lock in
:mod:`butterfly_store.schema_lock`, the read-only planning in
:mod:`butterfly_store.upgrade_plan`; this module runs an upgrade and is where plugins
import every name from (``from butterfly_store.schema import UpgradeStep``).
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog

from butterfly_store.schema_lock import LOCK_POLL, LOCK_TIMEOUT, schema_lock
from butterfly_store.upgrade_plan import (
    STEP_ID,
    Plan,
    Record,
    collect_steps,
    describe_missing,
    make_plan,
    mapped_tables,
    mismatch_message,
    missing_columns,
    read_records,
)
from butterfly_store.upgrade_step import SCHEMA_TABLE, SchemaContext, UpgradeStep, connect
from kernel import ConfigError

if TYPE_CHECKING:
    from pony.orm import Database

    from butterfly_store.urls import StoreTarget

__all__ = [
    "LOCK_POLL",
    "LOCK_TIMEOUT",
    "NEW_TABLES",
    "RAN",
    "SCHEMA_TABLE",
    "STEP_ID",
    "Outcome",
    "PendingUpgrades",
    "Plan",
    "Record",
    "SchemaContext",
    "SchemaMismatch",
    "UpgradeFailed",
    "UpgradeStep",
    "collect_steps",
    "connect",
    "deferred",
    "describe_missing",
    "is_deferred",
    "make_plan",
    "mapped_tables",
    "mismatch_message",
    "missing_columns",
    "read_records",
    "run_step",
    "schema_lock",
    "upgrade",
]

log = structlog.get_logger("butterfly.store")

#: How a step came to be recorded.
RAN, NEW_TABLES = "ran", "new-tables"

_deferred: contextvars.ContextVar[bool] = contextvars.ContextVar("butterfly_store_schema_deferred", default=False)


class SchemaMismatch(ConfigError):
    """The database's tables do not match the entities and no upgrade step covers the difference."""


class PendingUpgrades(ConfigError):
    """Steps are pending and ``[store] auto_upgrade`` is false."""


class UpgradeFailed(ConfigError):
    """An upgrade step raised; the message names it and the database error."""


# -- record, run, check ----------------------------------------------------------------------


def _ensure_schema_table(ctx: SchemaContext) -> None:
    ctx.execute(
        f"CREATE TABLE IF NOT EXISTS {ctx.quote(SCHEMA_TABLE)} ("
        "step VARCHAR(100) NOT NULL PRIMARY KEY, "
        "description VARCHAR(255) NOT NULL, "
        "applied_at VARCHAR(32) NOT NULL, "
        "how VARCHAR(16) NOT NULL)"
    )


def _record(ctx: SchemaContext, step: UpgradeStep, how: str) -> None:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    ctx.execute(
        f"INSERT INTO {ctx.quote(SCHEMA_TABLE)} (step, description, applied_at, how) VALUES (?, ?, ?, ?)",
        (step.id, step.description[:255], now, how),
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
