"""The suite is hermetic (issue 12): a developer's ``./butterfly.toml``, ``BUTTERFLY_*``
environment and ``data/`` change nothing.

A scratch copy of the repository's tests gets a hostile ``butterfly.toml`` at its root (MQ
on against a Redis that is not there, strict router, a MySQL store nobody runs, the router
disabled), a ``data/`` with a corrupt database, and an environment full of overrides; a
representative part of the suite then runs there, as ``make test`` would, and must pass.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kernel.testing import hermetic_environ

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
#: A representative part of the suite: subprocesses run from the repo root, in-process
#: kernels, settings, the in-process CLI, a database-backed plugin. Two halves of about
#: the same length, run side by side (they share nothing: free ports, scratch databases
#: and working directories of their own).
SAMPLE = [
    [
        "tests/test_demo_quickstart.py",
        "tests/test_settings.py",
        "tests/test_request_path.py",
        "tests/test_install_hints.py",
        "plugins/butterfly_mq/tests/test_mq_cli.py",
    ],
    ["plugins/butterfly_store/tests"],
]
HOSTILE_TOML = """\
[server]
port = 1
data_dir = "hostile-data"
log_level = "CRITICAL"
disable_plugins = ["router"]

[router]
strict = true

[mq]
redis_url = "redis://127.0.0.1:1/0"

[store]
url = "mysql://nobody:hostile@127.0.0.1:1/none"
"""
HOSTILE_ENV = {
    "BUTTERFLY_SERVER_PORT": "1",
    "BUTTERFLY_SERVER_THREADS": "not-a-number",
    "BUTTERFLY_MQ_REDIS_URL": "redis://127.0.0.1:1/0",
    "BUTTERFLY_STORE_URL": "mysql://nobody:hostile@127.0.0.1:1/none",
    "BUTTERFLY_DISABLE_PLUGINS": "router,trace",
    "BUTTERFLY_PLUGINS": "no_such_module",
}


def copy_sample(scratch: Path) -> None:
    """The sample tests, their conftest files, the demo apps and the root test config."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for relative in ("tests", "handlers", "static", "plugins/butterfly_mq/tests", "plugins/butterfly_store/tests"):
        shutil.copytree(REPO / relative, scratch / relative, ignore=ignore)
    for relative in ("conftest.py", "pyproject.toml"):
        shutil.copy(REPO / relative, scratch / relative)


def test_a_hostile_config_environment_and_data_dir_change_nothing(tmp_path):
    scratch = tmp_path / "repo"
    copy_sample(scratch)
    (scratch / "butterfly.toml").write_text(HOSTILE_TOML)
    (scratch / "data").mkdir()
    (scratch / "data" / "butterfly.db").write_bytes(b"this is not an SQLite database")
    env = {**hermetic_environ(), **HOSTILE_ENV, "BUTTERFLY_CONFIG": str(scratch / "butterfly.toml")}

    # The hostility is real: butterfly run from this folder would refuse to start.
    refused = subprocess.run(
        [sys.executable, "-m", "kernel", "config", "--json"], cwd=scratch, env=env, capture_output=True, text=True
    )
    assert refused.returncode == 1 and "butterfly: error:" in refused.stderr, refused.stdout

    # NOTE: the halves run at once, each as ``make test`` would run it; side by side they
    # take about the time of the longer one.
    started = []
    for number, paths in enumerate(SAMPLE):
        output = open(tmp_path / f"half-{number}.txt", "w+", encoding="utf-8")
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *paths]
        process = subprocess.Popen(command, cwd=scratch, env=env, stdout=output, stderr=subprocess.STDOUT)
        started.append((process, output))
    finished = []
    for process, output in started:
        try:
            process.wait(600)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        output.seek(0)
        finished.append((process.returncode, output.read()))
        output.close()
    for returncode, text in finished:
        assert returncode == 0, text[-5000:]
        assert re.search(r"\b\d+ passed\b", text) and " failed" not in text and " error" not in text, text[-2000:]
    assert (scratch / "data" / "butterfly.db").read_bytes() == b"this is not an SQLite database"
    assert not (scratch / "hostile-data").exists() and not (scratch / "logs").exists()
