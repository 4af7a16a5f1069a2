"""The store against real SQLite, MariaDB and PostgreSQL: mapping, sessions, errors, health."""

from __future__ import annotations

import sqlite3
import uuid

import pytest

import butterfly_store.plugin
from butterfly_store import get_db
from butterfly_store.database import open_database
from butterfly_store.urls import parse_store_url
from kernel import ConfigError
from kernel.testing import Client, free_port


def _kernel(make_kernel, probe_plugin, url):
    return make_kernel(plugins=[butterfly_store.plugin, probe_plugin], settings={"store.url": url})


def test_entities_are_mapped_once_and_shared_through_get_db(make_kernel, probe_plugin, database_url, probe_names):
    kernel = _kernel(make_kernel, probe_plugin, database_url)
    db = get_db(kernel)
    assert db is kernel.extensions["store"]
    assert "StoreProbe" in db.entities and db.schema is not None
    tag = uuid.uuid4().hex[:8]
    assert Client(kernel).get("/probe/add", query={"name": f"{tag}-a"}).status == 200
    assert probe_names(kernel, tag) == {f"{tag}-a"}


def test_a_second_kernel_gets_a_fresh_database_over_the_same_data(
    make_kernel, database_url, probe_factory, probe_names
):
    tag = uuid.uuid4().hex[:8]
    ProbePlugin = probe_factory

    first = _kernel(make_kernel, ProbePlugin(), database_url)
    Client(first).get("/probe/add", query={"name": f"{tag}-1"})
    second = _kernel(make_kernel, ProbePlugin(), database_url)
    assert get_db(second) is not get_db(first)
    assert get_db(second).entities["StoreProbe"] is not get_db(first).entities["StoreProbe"]
    Client(second).get("/probe/add", query={"name": f"{tag}-2"})
    assert probe_names(second, tag) == {f"{tag}-1", f"{tag}-2"}
    assert probe_names(first, tag) == {f"{tag}-1", f"{tag}-2"}


def test_a_server_error_rolls_the_request_back(make_kernel, probe_plugin, database_url, probe_names):
    kernel = _kernel(make_kernel, probe_plugin, database_url)
    tag = uuid.uuid4().hex[:8]
    reply = Client(kernel).get("/probe/fail", query={"name": f"{tag}-x"})
    assert reply.status == 500 and reply.json()["stat"] == "ERR_SERVER_EXCEPTION"
    assert probe_names(kernel, tag) == set()


def test_a_failing_commit_is_a_500_not_an_ok(make_kernel, probe_plugin, database_url, probe_names):
    kernel = _kernel(make_kernel, probe_plugin, database_url)
    tag = uuid.uuid4().hex[:8]
    client = Client(kernel)
    assert client.get("/probe/dup", query={"name": f"{tag}-d"}).status == 200
    again = client.get("/probe/dup", query={"name": f"{tag}-d"})
    assert again.status == 500
    assert probe_names(kernel, tag) == {f"{tag}-d"}


def test_nested_in_process_calls_share_the_outer_transaction(make_kernel, probe_plugin, database_url, probe_names):
    kernel = _kernel(make_kernel, probe_plugin, database_url)
    tag = uuid.uuid4().hex[:8]
    reply = Client(kernel).get("/probe/nested", query={"name": f"{tag}-n"})
    assert reply.status == 200, reply.text
    assert probe_names(kernel, tag) == {f"{tag}-n", f"{tag}-n-inner"}
    # an in-process call on its own commits too
    assert kernel.call("/probe/add", {"name": f"{tag}-call"}).status == 200
    assert f"{tag}-call" in probe_names(kernel, tag)


def test_health_runs_select_1(make_kernel, probe_plugin, database_url):
    kernel = _kernel(make_kernel, probe_plugin, database_url)
    results = {}
    for result in kernel.hook.butterfly_health(kernel=kernel):
        results.update(result or {})
    ok, detail = results["store"]
    assert ok is True and "SELECT 1" in detail


def test_default_url_is_a_wal_sqlite_file_in_the_data_dir(make_kernel, probe_plugin):
    kernel = make_kernel(plugins=[butterfly_store.plugin, probe_plugin])
    path = kernel.data_dir / "butterfly.db"
    assert path.exists()
    assert get_db(kernel).provider_name == "sqlite"
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_sqlite_parent_directories_are_created(make_kernel, probe_plugin, tmp_path):
    path = tmp_path / "deep" / "er" / "store.db"
    make_kernel(plugins=[butterfly_store.plugin, probe_plugin], settings={"store.url": f"sqlite:///{path}"})
    assert path.exists()


def test_unreachable_server_fails_after_retries_naming_the_masked_url(make_kernel, probe_plugin):
    port = free_port()
    url = f"mysql://root:hunter2@127.0.0.1:{port}/nothing"
    with pytest.raises(ConfigError) as info:
        make_kernel(
            plugins=[butterfly_store.plugin, probe_plugin],
            settings={"store.url": url, "store.connect_retries": 2, "store.connect_backoff": 0.01},
        )
    message = str(info.value)
    assert f"mysql://root:***@127.0.0.1:{port}/nothing" in message
    assert "after 3 attempt(s)" in message
    assert "hunter2" not in message


def test_retries_back_off_and_call_the_entity_hook_per_attempt():
    waits, defined = [], []
    target = parse_store_url(f"postgresql://nobody:pw@127.0.0.1:{free_port()}/x", connect_timeout=1)
    with pytest.raises(ConfigError):
        open_database(target, defined.append, retries=3, backoff=0.5, sleep=waits.append)
    assert waits == [0.5, 1.0, 2.0]
    assert len(defined) == 4 and len({id(db) for db in defined}) == 4


def test_a_bad_url_is_a_config_error(make_kernel, probe_plugin):
    with pytest.raises(ConfigError, match=r"\[store\] url.*unknown database URL scheme"):
        make_kernel(plugins=[butterfly_store.plugin, probe_plugin], settings={"store.url": "mongodb://h/db"})


def test_a_broken_entity_definition_fails_at_once_without_retries(make_kernel, tmp_path):
    from kernel import hookimpl

    class Broken:
        @hookimpl(optionalhook=True)
        def butterfly_store_define_entities(self, db):
            from pony.orm import Required

            class Orphan(db.Entity):
                _table_ = "store_orphan"
                parent = Required("NoSuchEntity")

    with pytest.raises(ConfigError, match=r"cannot map the entities|NoSuchEntity"):
        make_kernel(
            plugins=[butterfly_store.plugin, Broken()],
            settings={"store.url": f"sqlite:///{tmp_path}/b.db", "store.connect_backoff": 30},
        )
