"""Daemon mode: ``butterfly start | stop | restart | status`` with real processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from kernel.daemon import is_server_alive, looks_like_server, read_pid
from kernel.testing import free_port

PING_PLUGIN = """
import time
from pathlib import Path
from kernel import Response, hookimpl


def ping(request):
    return Response.json({"stat": "OK", "pong": True})


def hold(request):
    gate = Path("gate")
    gate.mkdir(exist_ok=True)
    (gate / "started").touch()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.05)
    return Response.json({"stat": "OK"})


@hookimpl
def butterfly_register_routes(register):
    register("/daemon/ping", ping, kind="json")
    register("/daemon/hold", hold, kind="json")
"""

CRASH_PLUGIN = """
from kernel import hookimpl


@hookimpl
def butterfly_startup(kernel):
    raise RuntimeError("database on fire: cannot start")
"""


@pytest.fixture
def cli(butterfly_cli):
    butterfly_cli.write_plugin("ping_plugin", PING_PLUGIN)
    yield butterfly_cli
    # never leave a daemon behind, whatever the test did
    pid = read_pid(butterfly_cli.cwd / "data" / "butterfly.pid")
    if pid is not None and is_server_alive(pid):
        os.killpg(pid, signal.SIGKILL)


def pid_file(cli) -> Path:
    return cli.cwd / "data" / "butterfly.pid"


def wait_gone(pid: int, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_server_alive(pid):
            return True
        time.sleep(0.05)
    return False


def ping(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/daemon/ping", timeout=10) as reply:
        return json.loads(reply.read())


@pytest.mark.slow
def test_start_status_stop_cycle(cli):
    port = free_port()
    started = cli.run("start", "--port", str(port))
    assert started.returncode == 0, started.stderr
    pid = read_pid(pid_file(cli))
    assert pid is not None and is_server_alive(pid)
    assert f"butterfly started: pid {pid}, http://127.0.0.1:{port}" in started.stdout
    assert ping(port) == {"stat": "OK", "pong": True}

    status = cli.run("status")
    assert status.returncode == 0
    assert status.stdout.strip() == f"butterfly is running: pid {pid}, http://127.0.0.1:{port}"

    again = cli.run("start", "--port", str(free_port()))
    assert again.returncode == 1
    assert f"already running (pid {pid}" in again.stderr
    assert read_pid(pid_file(cli)) == pid

    stopped = cli.run("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.strip() == f"butterfly stopped: pid {pid}"
    assert not pid_file(cli).exists()
    assert wait_gone(pid)

    status = cli.run("status")
    assert status.returncode == 3
    assert status.stdout.strip() == "butterfly is not running"
    not_running = cli.run("stop")
    assert not_running.returncode == 0
    assert not_running.stdout.strip() == "butterfly is not running"
    assert "--- butterfly start" in (cli.cwd / "logs" / "stdout.log").read_text()


@pytest.mark.slow
def test_restart_works_when_stopped_and_replaces_a_running_server(cli):
    port = free_port()
    first = cli.run("restart", "--port", str(port))
    assert first.returncode == 0, first.stderr
    assert "butterfly is not running" in first.stdout
    first_pid = read_pid(pid_file(cli))
    second = cli.run("restart", "--port", str(port))
    assert second.returncode == 0, second.stderr
    second_pid = read_pid(pid_file(cli))
    assert second_pid != first_pid
    assert wait_gone(first_pid)
    assert ping(port)["pong"] is True
    assert cli.run("stop").returncode == 0
    assert wait_gone(second_pid)


@pytest.mark.slow
def test_stale_pid_files_are_detected_and_removed(cli):
    pid_file(cli).parent.mkdir(parents=True)
    # a live process that is not a Butterfly server (the pid was reused)
    other = subprocess.Popen(["sleep", "30"])
    try:
        pid_file(cli).write_text(f"{other.pid}\n")
        status = cli.run("status")
        assert status.returncode == 3
        assert "removed stale pid file" in status.stdout
        assert not pid_file(cli).exists()
        assert other.poll() is None  # never signalled

        # a pid that no longer exists
        dead = subprocess.Popen(["true"])
        dead.wait()
        pid_file(cli).write_text(f"{dead.pid}\n")
        started = cli.run("start", "--port", str(free_port()))
        assert started.returncode == 0, started.stderr
        assert "removed stale pid file" in started.stdout
        assert other.poll() is None
        assert cli.run("stop").returncode == 0
    finally:
        other.kill()
        other.wait()


def test_looks_like_server_matches_our_command_lines_only():
    assert looks_like_server(["/venv/bin/python", "-m", "kernel", "run", "--port", "1"])
    assert looks_like_server(["/venv/bin/python", "/venv/bin/butterfly", "--config", "x", "run"])
    assert not looks_like_server(["sleep", "30"])
    assert not looks_like_server(["/venv/bin/python", "-m", "kernel", "status"])
    assert not looks_like_server([])


@pytest.mark.slow
def test_stop_escalates_to_sigkill_after_the_timeout(cli):
    port = free_port()
    started = cli.run("start", "--port", str(port), env={"BUTTERFLY_SERVER_SHUTDOWN_TIMEOUT": "120"})
    assert started.returncode == 0, started.stderr
    pid = read_pid(pid_file(cli))
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"GET /daemon/hold HTTP/1.1\r\nHost: t\r\n\r\n")
    deadline = time.monotonic() + 20
    while not (cli.cwd / "gate" / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    stopped = cli.run("stop", "--timeout", "1")
    sock.close()
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.strip() == f"butterfly killed (SIGKILL): pid {pid} after 1 s without exiting"
    assert wait_gone(pid, 5)
    assert not pid_file(cli).exists()


@pytest.mark.slow
def test_start_reports_a_dying_server_with_its_output(cli):
    cli.write_plugin("crash_plugin", CRASH_PLUGIN)
    started = cli.run("start", "--port", str(free_port()))
    assert started.returncode == 1
    assert "butterfly: error: the server exited with status" in started.stderr
    assert "database on fire: cannot start" in started.stderr  # the log tail
    assert not pid_file(cli).exists()
    assert cli.run("status").returncode == 3


def test_start_refuses_a_port_in_use_and_a_bad_config(cli):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli.run("start", "--port", str(port))
    assert result.returncode == 1
    assert f"127.0.0.1:{port} is already in use" in result.stderr
    assert not pid_file(cli).exists()

    bad = cli.run("start", "--set", "server.threads=many")
    assert bad.returncode == 1
    assert bad.stderr.startswith("butterfly: error: bad value for [server] threads (from the command line)")
    assert "Traceback" not in bad.stderr
