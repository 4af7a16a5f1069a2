"""Schema upgrade steps on real SQLite, MariaDB and PostgreSQL, each test in an empty database of its own.

A ``Versioned`` plugin maps table ``store_item`` as its version 1 (``id``, ``name``)
or version 2 (plus ``colour``), and ships version 2's step when asked to.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import butterfly_store.plugin
from butterfly_store import get_db, schema
from butterfly_store.schema import UpgradeStep
from butterfly_store.urls import parse_store_url
from kernel import ConfigError, hookimpl
from kernel.cli import main
from kernel.testing import free_port, hermetic_environ

REPO = Path(__file__).resolve().parents[3]


def add_colour(ctx: schema.SchemaContext) -> None:
    """Version 2's step: the new column, filled for the rows version 1 left."""
    if not ctx.has_column("store_item", "colour"):
        ctx.execute(f"ALTER TABLE {ctx.quote('store_item')} ADD COLUMN {ctx.quote('colour')} VARCHAR(20)")
    ctx.execute(f"UPDATE {ctx.quote('store_item')} SET {ctx.quote('colour')} = ? WHERE colour IS NULL", ("grey",))


class Versioned:
    """``store_item`` as version 1 or 2; ``calls`` counts the entity hook, ``ran`` the step's runs."""

    def __init__(self, version: int, *, step=add_colour, ship_step: bool = True) -> None:
        self.version, self.step, self.ship_step = version, step, ship_step
        self.calls = 0
        self.ran = 0

    @hookimpl(optionalhook=True)
    def butterfly_store_define_entities(self, db):
        from pony.orm import Optional, PrimaryKey, Required

        self.calls += 1

        class StoreItem(db.Entity):
            _table_ = "store_item"
            id = PrimaryKey(int, auto=True)
            name = Required(str, 40)
            if self.version >= 2:
                colour = Optional(str, 20)

    @hookimpl(optionalhook=True)
    def butterfly_store_upgrades(self):
        if self.version < 2 or not self.ship_step:
            return []

        def run(ctx):
            self.ran += 1
            self.step(ctx)

        return [UpgradeStep("probe.0001-colour", "store_item.colour", run, tables=("store_item",))]


def _kernel(make_kernel, url, plugin, **settings):
    return make_kernel(plugins=[butterfly_store.plugin, plugin], settings={"store.url": url, **settings})


def _records(url: str) -> dict[str, schema.Record]:
    connection = schema.connect(parse_store_url(url))
    try:
        return schema.read_records(schema.SchemaContext(connection, parse_store_url(url).provider))
    finally:
        connection.close()


def _columns(url: str, table: str) -> list[str]:
    connection = schema.connect(parse_store_url(url))
    try:
        return schema.SchemaContext(connection, parse_store_url(url).provider).columns(table)
    finally:
        connection.close()


def _add_items(kernel, *names: str) -> None:
    from pony.orm import db_session

    with db_session:
        for name in names:
            get_db(kernel).entities["StoreItem"](name=name)


def _items(kernel) -> dict[str, str | None]:
    from pony.orm import db_session

    entity = get_db(kernel).entities["StoreItem"]
    with db_session:
        return {item.name: getattr(item, "colour", None) for item in entity.select()}


def test_a_new_database_records_every_step_without_running_it(make_kernel, empty_database_url):
    plugin = Versioned(2)
    kernel = _kernel(make_kernel, empty_database_url, plugin)
    assert plugin.ran == 0
    assert _records(empty_database_url)["probe.0001-colour"].how == schema.NEW_TABLES
    _add_items(kernel, "new")
    assert _items(kernel) == {"new": ""}  # pony stores an unset Optional(str) as ""
    _kernel(make_kernel, empty_database_url, Versioned(2))  # and a second start does nothing
    assert list(_records(empty_database_url)) == ["probe.0001-colour"]


def test_a_step_upgrades_an_existing_table_once_and_keeps_its_rows(make_kernel, empty_database_url):
    old = _kernel(make_kernel, empty_database_url, Versioned(1))
    _add_items(old, "kept-1", "kept-2")
    assert "colour" not in _columns(empty_database_url, "store_item")

    plugin = Versioned(2)
    new = _kernel(make_kernel, empty_database_url, plugin)
    assert plugin.ran == 1
    assert _records(empty_database_url)["probe.0001-colour"].how == schema.RAN
    assert _items(new) == {"kept-1": "grey", "kept-2": "grey"}

    again = Versioned(2)
    _kernel(make_kernel, empty_database_url, again)
    assert again.ran == 0


def test_a_mismatch_no_step_covers_is_one_clear_error_not_a_retry(make_kernel, empty_database_url, captured_logs):
    _kernel(make_kernel, empty_database_url, Versioned(1))
    plugin = Versioned(2, ship_step=False)
    with pytest.raises(schema.SchemaMismatch) as info:
        _kernel(make_kernel, empty_database_url, plugin, **{"store.connect_retries": 3, "store.connect_backoff": 0.01})
    message = str(info.value)
    assert "table store_item lacks column colour" in message
    assert "no upgrade step adds it" in message and "butterfly store status" in message
    assert "unreachable" not in message and "cannot connect" not in message
    assert plugin.calls == 1  # no second attempt
    assert not [line for line in captured_logs if "retrying" in line["event"]]


def test_a_failing_step_stops_start_up_naming_it_and_records_nothing(make_kernel, empty_database_url):
    _kernel(make_kernel, empty_database_url, Versioned(1))

    def broken(ctx):
        add_colour(ctx)
        raise RuntimeError("half done")

    with pytest.raises(schema.UpgradeFailed, match=r"probe\.0001-colour .*RuntimeError: half done"):
        _kernel(make_kernel, empty_database_url, Versioned(2, step=broken))
    assert "probe.0001-colour" not in _records(empty_database_url)
    if not empty_database_url.startswith("mysql"):  # MySQL commits each DDL statement at once
        assert "colour" not in _columns(empty_database_url, "store_item")

    fixed = Versioned(2)
    kernel = _kernel(make_kernel, empty_database_url, fixed)
    assert fixed.ran == 1 and _records(empty_database_url)["probe.0001-colour"].how == schema.RAN
    assert _items(kernel) == {}


def test_without_auto_upgrade_pending_steps_refuse_start_up(make_kernel, empty_database_url):
    _kernel(make_kernel, empty_database_url, Versioned(1))
    plugin = Versioned(2)
    with pytest.raises(schema.PendingUpgrades, match=r"probe\.0001-colour.*butterfly store upgrade"):
        _kernel(make_kernel, empty_database_url, plugin, **{"store.auto_upgrade": False})
    assert plugin.ran == 0 and "probe.0001-colour" not in _records(empty_database_url)


def test_a_new_database_starts_without_auto_upgrade(make_kernel, empty_database_url):
    plugin = Versioned(2)
    _kernel(make_kernel, empty_database_url, plugin, **{"store.auto_upgrade": False})
    assert plugin.ran == 0 and "probe.0001-colour" in _records(empty_database_url)


def test_step_ids_are_checked():
    step = UpgradeStep("probe.0001-x", "x", lambda ctx: None)
    with pytest.raises(ConfigError, match="shipped twice"):
        schema.collect_steps([[step], [step]])
    with pytest.raises(ConfigError, match="must look like"):
        schema.collect_steps([[UpgradeStep("no dots here", "x", lambda ctx: None)]])


# -- the CLI ---------------------------------------------------------------------------------


PLUGIN_MODULE = '''
"""A store_item table at version {version} (1: id, name; 2: plus colour and its step)."""

from kernel import hookimpl


@hookimpl(optionalhook=True)
def butterfly_store_define_entities(db):
    from pony.orm import Optional, PrimaryKey, Required

    class StoreItem(db.Entity):
        _table_ = "store_item"
        id = PrimaryKey(int, auto=True)
        name = Required(str, 40)
        if {version} >= 2:
            colour = Optional(str, 20)


def add_colour(ctx):
    {step_body}


@hookimpl(optionalhook=True)
def butterfly_store_upgrades():
    from butterfly_store.schema import UpgradeStep

    if {version} < 2:
        return []
    return [UpgradeStep("probe.0001-colour", "store_item.colour", add_colour, tables=("store_item",))]
'''

ADD_COLOUR = (
    "if not ctx.has_column('store_item', 'colour'):\n"
    "        ctx.execute(f\"ALTER TABLE {ctx.quote('store_item')} ADD COLUMN {ctx.quote('colour')} VARCHAR(20)\")"
)


def _write_plugin(directory: Path, name: str, version: int, step_body: str = ADD_COLOUR) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.py").write_text(PLUGIN_MODULE.format(version=version, step_body=step_body))


@pytest.fixture
def cli_config(tmp_path, empty_database_url, monkeypatch, isolated_logging):
    """``run(*argv)`` → exit code of ``butterfly --config ... *argv`` in-process; the plugin module at version 1."""
    name = "schema_probe_" + os.urandom(4).hex()
    _write_plugin(tmp_path / "plugins", name, 1)
    monkeypatch.syspath_prepend(str(tmp_path / "plugins"))
    config = tmp_path / "butterfly.toml"
    config.write_text(
        f'[server]\ndata_dir = "{tmp_path / "data"}"\nlog_dir = "{tmp_path / "logs"}"\n'
        f'[store]\nurl = "{empty_database_url}"\n'
    )
    monkeypatch.setenv("BUTTERFLY_PLUGINS", name)
    monkeypatch.setenv("BUTTERFLY_DISABLE_PLUGINS", "auth,mq,ruqi,wuxing,xingqiao,trace")

    def run(*argv: str) -> int:
        return main(["--config", str(config), *argv])

    def upgrade_module(version: int) -> None:
        # NOTE: the same size within the same second: a cached .pyc would still look fresh.
        shutil.rmtree(tmp_path / "plugins" / "__pycache__", ignore_errors=True)
        _write_plugin(tmp_path / "plugins", name, version)
        sys.modules.pop(name, None)

    run.upgrade_module = upgrade_module  # type: ignore[attr-defined]
    run.url = empty_database_url  # type: ignore[attr-defined]
    yield run
    sys.modules.pop(name, None)


def test_cli_status_and_upgrade(cli_config, capsys):
    run = cli_config
    assert run("store", "status") == 0  # version 1 on an empty database
    out = capsys.readouterr().out
    assert "no upgrade steps are installed" in out and "to create: store_item" in out

    assert run("store", "upgrade") == 0  # creates version 1's table
    capsys.readouterr()
    run.upgrade_module(2)
    assert run("store", "status") == 0
    out = capsys.readouterr().out
    assert "probe.0001-colour" in out and "pending" in out and "butterfly store upgrade" in out

    assert run("store", "upgrade", "--dry-run") == 0
    assert capsys.readouterr().out.strip() == "would run probe.0001-colour: store_item.colour"
    assert "colour" not in _columns(run.url, "store_item")
    assert "probe.0001-colour" not in _records(run.url)

    assert run("store", "upgrade") == 0
    out = capsys.readouterr().out
    assert "ran probe.0001-colour" in out and "schema up to date" in out
    assert "colour" in _columns(run.url, "store_item")

    assert run("store", "status") == 0
    out = capsys.readouterr().out
    assert "applied" in out and "schema up to date" in out
    assert run("store", "upgrade", "--dry-run") == 0
    assert "nothing to do" in capsys.readouterr().out


def test_cli_status_names_a_mismatch(cli_config, capsys):
    run = cli_config
    assert run("store", "upgrade") == 0
    capsys.readouterr()
    # version 2's column without its step: nothing can add it
    run.upgrade_module(2)
    connection = schema.connect(parse_store_url(run.url))
    try:
        ctx = schema.SchemaContext(connection, parse_store_url(run.url).provider)
        schema._ensure_schema_table(ctx)
        schema._record(ctx, UpgradeStep("probe.0001-colour", "store_item.colour", lambda c: None), schema.RAN)
    finally:
        connection.close()
    assert run("store", "status") == 0
    assert "mismatch: table store_item lacks column colour" in capsys.readouterr().out
    assert run("store", "upgrade") == 1
    err = capsys.readouterr().err
    assert "table store_item lacks column colour" in err and "Traceback" not in err


# -- two processes at once -------------------------------------------------------------------


STARTER = '''
"""Build a kernel whose step waits for the test's go-ahead; print what it did."""

import sys
import time
from pathlib import Path

import butterfly_store.plugin
from butterfly_store.schema import UpgradeStep
from kernel import hookimpl, logs
from kernel.testing import build_kernel

url, workdir, who = sys.argv[1], Path(sys.argv[2]), sys.argv[3]


class Plugin:
    @hookimpl(optionalhook=True)
    def butterfly_store_define_entities(self, db):
        from pony.orm import Optional, PrimaryKey, Required

        class StoreItem(db.Entity):
            _table_ = "store_item"
            id = PrimaryKey(int, auto=True)
            name = Required(str, 40)
            colour = Optional(str, 20)

    @hookimpl(optionalhook=True)
    def butterfly_store_upgrades(self):
        def run(ctx):
            (workdir / f"in-step-{who}").touch()
            while not (workdir / "go").exists():
                time.sleep(0.05)
            if not ctx.has_column("store_item", "colour"):
                ctx.execute("ALTER TABLE store_item ADD COLUMN colour VARCHAR(20)")
            ctx.execute("INSERT INTO store_item (name) VALUES (?)", ("step-ran-in-" + who,))

        return [UpgradeStep("probe.0001-colour", "store_item.colour", run, tables=("store_item",))]


logs.configure("INFO", "console")
build_kernel(workdir / who, [butterfly_store.plugin, Plugin()], {"store.url": url})
print("started", who, flush=True)
'''


def _wait_for(predicate, what: str, process=None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{what}: the process exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_two_processes_starting_at_once_run_a_step_once(make_kernel, empty_database_url, tmp_path):
    _kernel(make_kernel, empty_database_url, Versioned(1))  # the old table, so the step is pending
    script = tmp_path / "starter.py"
    script.write_text(textwrap.dedent(STARTER))
    env = hermetic_environ()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    outputs = {who: open(tmp_path / f"{who}.log", "w+") for who in ("a", "b")}

    def start(who):
        return subprocess.Popen(
            [sys.executable, str(script), empty_database_url, str(tmp_path), who],
            stdout=outputs[who],
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )

    first = start("a")
    second = None
    try:
        _wait_for(lambda: (tmp_path / "in-step-a").exists(), "a inside its step", first)
        second = start("b")
        log_b = tmp_path / "b.log"
        _wait_for(
            lambda: "waiting for another instance" in log_b.read_text() or (tmp_path / "in-step-b").exists(),
            "b waiting for the lock",
            second,
        )
        assert not (tmp_path / "in-step-b").exists(), "b ran the step while a was inside it"
        (tmp_path / "go").touch()
        assert first.wait(60) == 0, (tmp_path / "a.log").read_text()
        assert second.wait(60) == 0, log_b.read_text()
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
        for handle in outputs.values():
            handle.close()
    assert not (tmp_path / "in-step-b").exists()
    kernel = _kernel(make_kernel, empty_database_url, Versioned(2))
    assert set(_items(kernel)) == {"step-ran-in-a"}
    assert _records(empty_database_url)["probe.0001-colour"].how == schema.RAN


def test_a_real_connection_failure_is_still_retried(make_kernel):
    plugin = Versioned(2)
    with pytest.raises(ConfigError, match=r"cannot connect .* after 3 attempt\(s\)"):
        _kernel(
            make_kernel,
            f"postgresql://nobody:pw@127.0.0.1:{free_port()}/x",
            plugin,
            **{"store.connect_retries": 2, "store.connect_backoff": 0.01},
        )
    assert plugin.calls == 3 and plugin.ran == 0
