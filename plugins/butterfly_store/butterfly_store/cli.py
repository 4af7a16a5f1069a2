"""``butterfly store status|upgrade``: the schema steps of the configured database.

Runs in-process: builds the kernel from the config with the schema left alone
(:func:`butterfly_store.schema.deferred`), then reads or upgrades it itself.
"""

from __future__ import annotations

import argparse
from typing import Any

from butterfly_store import schema
from kernel import ConfigError

#: ``kernel.extensions`` key of the schema state the store keeps for these commands.
SCHEMA_EXTENSION = "store.schema"


def add_commands(subparsers: Any) -> None:
    """Add ``store`` and its subcommands to the ``butterfly`` parser."""
    parser = subparsers.add_parser(
        "store",
        help="the database's schema upgrade steps: status, upgrade",
        description="Show or apply the schema upgrade steps of the configured store ([store] url).",
    )
    commands = parser.add_subparsers(dest="store_command", metavar="ACTION")

    status = commands.add_parser(
        "status",
        help="list applied and pending upgrade steps and compare the tables with the installed plugins",
    )
    status.set_defaults(run=cmd_status)

    upgrade = commands.add_parser(
        "upgrade",
        help="run the pending upgrade steps and create missing tables (what start-up does)",
    )
    upgrade.add_argument("--dry-run", action="store_true", help="list what would be done, change nothing")
    upgrade.set_defaults(run=cmd_upgrade)


def _state(args: argparse.Namespace) -> tuple[Any, Any, list[schema.UpgradeStep]]:
    from kernel.cli import load_kernel

    with schema.deferred():
        kernel = load_kernel(args)
    try:
        target, steps = kernel.extensions[SCHEMA_EXTENSION]
    except KeyError:
        raise ConfigError("butterfly-store is not enabled: check [server] disable_plugins") from None
    return kernel.extensions["store"], target, steps


def _read(target: Any, steps: list[schema.UpgradeStep], db: Any) -> tuple[schema.Plan, dict[str, list[str]], list[str]]:
    """The plan, the columns no step adds, and the tables to create — read-only."""
    connection = schema.connect(target)
    try:
        ctx = schema.SchemaContext(connection, target.provider)
        expected = schema.mapped_tables(db)
        plan = schema.make_plan(ctx, steps, expected)
        # NOTE: a table that a pending step changes is checked after the step, not now.
        touched = {table for step in plan.run for table in step.tables}
        found = schema.missing_columns(ctx, expected)
        missing = {table: columns for table, columns in found.items() if table not in touched}
        return plan, missing, sorted(set(expected) - ctx.tables())
    finally:
        connection.close()


def _when(record: schema.Record) -> str:
    return record.applied_at[:19].replace("T", " ")


def cmd_status(args: argparse.Namespace) -> int:
    """``butterfly store status``: every step's state, then the table check (a report: exit 0)."""
    db, target, steps = _state(args)
    plan, missing, absent = _read(target, steps, db)
    print(f"database {target.display}")
    rows = [("STEP", "STATE", "APPLIED", "DESCRIPTION")]
    for step in steps:
        record = plan.applied.get(step.id)
        if record is not None:
            rows.append(
                (step.id, "applied" if record.how == schema.RAN else "new-tables", _when(record), step.description)
            )
        elif step in plan.run:
            rows.append((step.id, "pending", "-", step.description))
        else:
            rows.append((step.id, "new-tables*", "-", step.description))
    for step_id in plan.unknown:
        record = plan.applied[step_id]
        rows.append((step_id, "unknown", _when(record), record.description))
    if len(rows) > 1:
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        for row in rows:
            print("  ".join(value.ljust(widths[i]) for i, value in enumerate(row[:3])) + "  " + row[3])
    else:
        print("no upgrade steps are installed")
    if plan.record_only:
        print("new-tables*: recorded without running at the next upgrade (their tables do not exist yet)")
    if absent:
        print(f"to create: {', '.join(absent)}")
    if plan.run:
        print(f"{len(plan.run)} step(s) pending: run `butterfly store upgrade` (--dry-run to preview)")
    if missing:
        print(f"mismatch: {schema.describe_missing(missing)} (no step adds it)")
    if not plan.run and not missing:
        print("schema up to date" + (" (missing tables are created at start-up)" if absent else ""))
    return 0


def cmd_upgrade(args: argparse.Namespace) -> int:
    """``butterfly store upgrade [--dry-run]``: what start-up does with ``auto_upgrade``, on demand."""
    db, target, steps = _state(args)
    if args.dry_run:
        plan, missing, absent = _read(target, steps, db)
        for step in plan.run:
            print(f"would run {step.id}: {step.description}")
        for step in plan.record_only:
            print(f"would record {step.id} (its tables are new): {step.description}")
        if absent:
            print(f"would create {', '.join(absent)}")
        if missing:
            print(f"mismatch: {schema.describe_missing(missing)} (no step adds it)")
        if not plan.pending and not missing and not absent:
            print("nothing to do: schema up to date")
        return 1 if missing else 0
    outcome = schema.upgrade(db, target, steps, auto=True)
    for step_id in outcome.ran:
        print(f"ran {step_id}")
    if outcome.recorded:
        print(f"recorded {len(outcome.recorded)} step(s) whose tables are new")
    print("schema up to date")
    return 0
