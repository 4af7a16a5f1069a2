"""The SQLite store is private: directory 0700, database (and its -wal/-shm) 0600."""

from __future__ import annotations

import os
import stat

import butterfly_store.plugin
from kernel.testing import Client


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_store_is_private_to_its_user(make_kernel, probe_plugin, tmp_path):
    old_umask = os.umask(0o022)  # NOTE: the usual umask, under which files come out 0644
    try:
        kernel = make_kernel(plugins=[butterfly_store.plugin, probe_plugin])  # default: <data_dir>/butterfly.db
        assert Client(kernel).get("/probe/add", query={"name": "x"}).status == 200
    finally:
        os.umask(old_umask)
    database = kernel.data_dir / "butterfly.db"
    assert mode_of(kernel.data_dir) == 0o700
    assert mode_of(database) == 0o600
    written = [path for path in kernel.data_dir.iterdir() if path.name.startswith("butterfly.db")]
    assert {path.name for path in written} >= {"butterfly.db", "butterfly.db-wal", "butterfly.db-shm"}
    assert {path.name: mode_of(path) for path in written} == {path.name: 0o600 for path in written}


def test_an_existing_shared_file_is_left_alone_with_a_warning(make_kernel, probe_plugin, tmp_path, captured_logs):
    database = tmp_path / "shared" / "store.db"
    database.parent.mkdir()
    database.touch()
    database.chmod(0o644)
    make_kernel(plugins=[butterfly_store.plugin, probe_plugin], settings={"store.url": f"sqlite:///{database}"})
    assert mode_of(database) == 0o644
    warnings = [event for event in captured_logs if event["log_level"] == "warning"]
    assert [(event["path"], event["mode"]) for event in warnings] == [(str(database), "0o644")]
    assert "chmod 600" in warnings[0]["event"]
