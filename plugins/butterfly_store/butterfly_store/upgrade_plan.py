"""Planning an upgrade, reading only: which steps are applied, which to run, what is missing.

:func:`make_plan` sorts the installed plugins' steps by the ``butterfly_schema`` records
and the tables that exist; :func:`missing_columns` compares the mapping with the
database once the steps have run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from butterfly_store.upgrade_step import SCHEMA_TABLE, SchemaContext, UpgradeStep
from kernel import ConfigError

if TYPE_CHECKING:
    from pony.orm import Database

#: ``id`` of a step: a plugin prefix, a dot, then letters, digits, ``-`` and ``_``.
STEP_ID = re.compile(r"^[a-z][a-z0-9_]*\.[A-Za-z0-9][A-Za-z0-9_.-]{0,90}$")


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


def read_records(ctx: SchemaContext) -> dict[str, Record]:
    """The ``butterfly_schema`` rows by step id (none when the table does not exist)."""
    if not ctx.has_table(SCHEMA_TABLE):
        return {}
    rows = ctx.query(f"SELECT step, description, applied_at, how FROM {ctx.quote(SCHEMA_TABLE)} ORDER BY applied_at")
    return {str(row[0]): Record(*(str(value) for value in row)) for row in rows}


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
