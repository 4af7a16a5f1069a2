"""Graceful drain of ``butterfly run``: SIGTERM/SIGINT mid-request (real process, real waitress)."""

from __future__ import annotations

import json
import signal
import socket

import pytest

from kernel.testing import ServerProcess, wait_for

# A handler that blocks until the test opens the gate (no sleeps: the test decides).
GATE_PLUGIN = """
import time
from pathlib import Path
from kernel import Response, hookimpl

GATE = Path("gate")


def slow(request):
    GATE.mkdir(exist_ok=True)
    (GATE / "started").touch()
    deadline = time.monotonic() + 30
    while not (GATE / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return Response.json({"stat": "OK", "released": (GATE / "release").exists()})


def ping(request):
    return Response.json({"stat": "OK"})


@hookimpl
def butterfly_register_routes(register):
    register("/gate/slow", slow, kind="json")
    register("/gate/ping", ping, kind="json")


@hookimpl
def butterfly_shutdown(kernel):
    (Path("gate") / "plugin_shutdown").touch()
"""

DEADLINE = 20


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True


def read_reply(sock: socket.socket) -> tuple[int, bytes]:
    sock.settimeout(DEADLINE)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]) if head else 0, body


@pytest.fixture
def server(butterfly_cli):
    """Start ``butterfly run`` with the gate plugin; kill it at teardown if still alive."""
    butterfly_cli.write_plugin("gate_plugin", GATE_PLUGIN)
    started: list[ServerProcess] = []

    def start(pid_file=None, **env):
        extra = ["--pid-file", str(pid_file)] if pid_file else []
        made = ServerProcess(butterfly_cli.cwd, {**butterfly_cli.env, **env}, stdout="proc.log")
        started.append(made)
        made.start(*extra, timeout=DEADLINE)  # fails with proc.log if the server exits first
        return made.process, made.port

    yield start
    for made in started:
        made.kill()


def send_slow_request(cli, port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    sock.sendall(b"GET /gate/slow HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
    wait_for(lambda: (cli.cwd / "gate" / "started").exists(), DEADLINE, "the handler to start")
    return sock


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_drains_in_flight_request_and_refuses_new_connections(butterfly_cli, server, signum):
    proc, port = server(BUTTERFLY_SERVER_SHUTDOWN_TIMEOUT="25")
    sock = send_slow_request(butterfly_cli, port)

    proc.send_signal(signum)
    wait_for(lambda: refused(port), DEADLINE, "the listening socket to close")
    assert proc.poll() is None, "the server must wait for the in-flight request"
    assert not (butterfly_cli.cwd / "gate" / "release").exists()

    (butterfly_cli.cwd / "gate" / "release").touch()
    status, body = read_reply(sock)
    sock.close()
    assert status == 200
    assert json.loads(body) == {"stat": "OK", "released": True}
    assert proc.wait(timeout=DEADLINE) == 0
    assert (butterfly_cli.cwd / "gate" / "plugin_shutdown").exists()  # butterfly_shutdown ran
    log = (butterfly_cli.cwd / "proc.log").read_text()
    assert "signal received, draining" in log and signal.Signals(signum).name in log
    assert "Traceback" not in log


@pytest.mark.slow
def test_idle_server_stops_at_once_on_sigterm_and_removes_its_pid_file(butterfly_cli, server):
    pid_file = butterfly_cli.cwd / "run.pid"
    proc, port = server(pid_file=pid_file)
    assert pid_file.read_text().strip() == str(proc.pid)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=DEADLINE) == 0
    assert refused(port)
    assert not pid_file.exists()


@pytest.mark.slow
def test_stuck_request_does_not_hold_shutdown_past_the_timeout(butterfly_cli, server):
    proc, port = server(BUTTERFLY_SERVER_SHUTDOWN_TIMEOUT="1")
    sock = send_slow_request(butterfly_cli, port)
    proc.send_signal(signal.SIGTERM)
    # the gate never opens: the server gives up after [server] shutdown_timeout
    assert proc.wait(timeout=DEADLINE) == 0
    assert not (butterfly_cli.cwd / "gate" / "release").exists()
    status, _ = read_reply(sock)
    sock.close()
    assert status == 0  # closed without a reply
    assert "shutdown timeout reached" in (butterfly_cli.cwd / "proc.log").read_text()
