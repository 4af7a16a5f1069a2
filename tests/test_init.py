"""``butterfly init``: a starter project that serves, calls and tests out of the box.

As a user who installed from pip would: an empty directory, ``butterfly init``,
then ``python -m kernel run`` there with every installed plugin, a real HTTP
request to the hello handler, and the generated tests under pytest.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request

import pytest

from kernel.init import FILES, toml_value
from kernel.testing import free_port

pytestmark = pytest.mark.slow


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


@pytest.fixture
def project(butterfly_cli):
    """``butterfly init`` run in an empty directory, every installed plugin on."""
    butterfly_cli.env.pop("BUTTERFLY_DISABLE_PLUGINS")
    result = butterfly_cli.run("init")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"created {', '.join(FILES.values())}\n")
    assert "butterfly run --dev" in result.stdout
    return butterfly_cli


def test_init_writes_a_project_that_serves_and_tests_itself(project):
    cwd = project.cwd
    assert sorted(str(p.relative_to(cwd)) for p in cwd.rglob("*") if p.is_file()) == sorted(FILES.values())

    # butterfly.toml: valid TOML, every line a comment, every installed plugin's settings with defaults
    config = (cwd / "butterfly.toml").read_text()
    assert tomllib.loads(config) == {}
    assert "# [server]" in config and "# port = 8585" in config and '# host = "127.0.0.1"' in config
    for section in ("router", "store", "trace", "mq", "ruqi", "wuxing", "auth"):
        assert f"# [{section}]" in config
    assert '# url = ""' in config and "postgresql://user:password@host:5432/db" in config  # [store] url and its help

    port = free_port()
    server = project.popen("run", "--port", str(port))
    try:
        wait_for_port(port, server)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/hello/greet?name=Ada&times=2", timeout=10) as reply:
            assert reply.status == 200
            assert json.loads(reply.read()) == {"stat": "OK", "message": "hello, Ada! hello, Ada!"}
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(60) == 0

    called = project.run("call", "/hello/greet", "Ada")
    assert called.returncode == 0, called.stderr
    assert json.loads(called.stdout) == {"stat": "OK", "message": "hello, Ada!"}

    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=cwd,
        env=project.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "2 passed" in tests.stdout


def test_init_never_overwrites_without_force(project):
    handler = project.cwd / "handlers" / "hello" / "__init__.py"
    original = handler.read_text()
    handler.write_text("# my own work\n")
    refused = project.run("init")
    assert refused.returncode == 1
    assert "butterfly: error: handlers/hello/__init__.py, butterfly.toml, tests/test_hello.py already exist" in (
        refused.stderr
    )
    assert "nothing was written (--force overwrites)" in refused.stderr
    assert handler.read_text() == "# my own work\n"
    forced = project.run("init", "--force")
    assert forced.returncode == 0, forced.stderr
    assert handler.read_text() == original


def test_init_into_a_new_directory(butterfly_cli):
    result = butterfly_cli.run("init", "svc")
    assert result.returncode == 0, result.stderr
    assert "cd svc" in result.stdout
    assert (butterfly_cli.cwd / "svc" / "handlers" / "hello" / "__init__.py").is_file()


@pytest.mark.parametrize(
    "value, text",
    [(True, "true"), (3, "3"), (0.5, "0.5"), ('a "b"\n', '"a \\"b\\"\\n"'), (["x", 1], '["x", 1]'), ([], "[]")],
)
def test_toml_values_round_trip(value, text):
    assert toml_value(value) == text
    assert tomllib.loads(f"v = {text}")["v"] == value
