"""``butterfly run --workers N`` and ``start --workers N`` with real processes on one port."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
import urllib.error
import urllib.request

import pytest

from kernel.daemon import child_pids, is_server_alive, read_pid
from kernel.testing import ServerProcess, free_port, port_accepts, wait_for

PROBE_PLUGIN = """
import os
import time
from pathlib import Path
from kernel import Response, hookimpl


def pid(request):
    return Response.json({"stat": "OK", "pid": os.getpid()})


def hold(request):
    name = request.query.get("name", "x")
    Path("gate").mkdir(exist_ok=True)
    (Path("gate") / name).write_text(str(os.getpid()))
    deadline = time.monotonic() + 60
    while not Path("release").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return Response.json({"stat": "OK", "pid": os.getpid(), "name": name})


@hookimpl
def butterfly_register_routes(register):
    register("/probe/pid", pid, kind="json")
    register("/probe/hold", hold, kind="json")
"""

# Fails start-up while the file `crash` exists: a worker restarted after that crash-loops.
CRASH_WHEN_TOLD_PLUGIN = """
from pathlib import Path
from kernel import hookimpl


@hookimpl
def butterfly_startup(kernel):
    if Path("crash").exists():
        raise RuntimeError("told to crash at start-up")
"""


@pytest.fixture
def cli(butterfly_cli):
    butterfly_cli.write_plugin("probe_plugin", PROBE_PLUGIN)
    yield butterfly_cli
    # never leave a daemon behind (`butterfly start`), whatever the test did
    daemon = read_pid(butterfly_cli.cwd / "data" / "butterfly.pid")
    if daemon is not None and is_server_alive(daemon):
        os.killpg(daemon, signal.SIGKILL)


@pytest.fixture
def serve(cli):
    """``serve(*args)``: ``butterfly run --port <free port> args...`` in ``cli``'s folder, output
    in ``proc.log``; returns once the port accepts. Killed with its workers at teardown."""
    servers: list[ServerProcess] = []

    def factory(*args: str) -> ServerProcess:
        server = ServerProcess(cli.cwd, cli.env, stdout="proc.log")
        servers.append(server)
        return server.start(*args)

    yield factory
    for server in servers:
        server.kill()


def get(port: int, path: str, timeout: float = 30) -> dict:
    """One request on a new connection (so SO_REUSEPORT may pick another worker)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as reply:
        return json.loads(reply.read())


def answering_pids(port: int, want: set[int], timeout: float = 30) -> set[int]:
    """Ask ``/probe/pid`` until every pid in ``want`` answered (a worker may still be starting)."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while not want <= seen and time.monotonic() < deadline:
        try:
            seen.add(get(port, "/probe/pid")["pid"])
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.05)  # a killed worker's queued connection was reset; ask again
    return seen


@pytest.mark.slow
def test_start_two_workers_kill_one_and_stop(cli):
    port = free_port()
    started = cli.run("start", "--port", str(port), "--workers", "2")
    assert started.returncode == 0, started.stderr
    supervisor = read_pid(cli.cwd / "data" / "butterfly.pid")
    workers = wait_for(lambda: (pids := child_pids(supervisor)) and len(pids) == 2 and pids, what="two workers")
    # both workers answer on the one port
    assert answering_pids(port, set(workers)) == set(workers)

    status = cli.run("status")
    assert status.returncode == 0
    assert status.stdout.strip() == (
        f"butterfly is running: pid {supervisor}, http://127.0.0.1:{port}, 2 workers (pids {workers[0]}, {workers[1]})"
    )

    victim, survivor = workers
    os.kill(victim, signal.SIGKILL)
    replaced = wait_for(
        lambda: (pids := child_pids(supervisor)) and len(pids) == 2 and victim not in pids and pids,
        what="the killed worker to be replaced",
    )
    assert survivor in replaced
    assert answering_pids(port, set(replaced)) == set(replaced)
    output = (cli.cwd / "logs" / "stdout.log").read_text()
    died = [json.loads(line) for line in output.splitlines() if '"worker died; restarting"' in line]
    assert [(line["worker_pid"], line["status"], line["worker"]) for line in died] == [
        (victim, "signal SIGKILL", "supervisor")
    ]
    # every worker's lines say which worker wrote them
    serving = [json.loads(line) for line in output.splitlines() if '"event": "serving"' in line]
    assert {line["worker"] for line in serving} == {0, 1}
    assert {line["pid"] for line in serving} == set(workers) | set(replaced)

    stopped = cli.run("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.strip() == f"butterfly stopped: pid {supervisor}"
    for pid in (supervisor, *replaced):
        wait_for(lambda pid=pid: not is_server_alive(pid), what=f"pid {pid} to exit")
    assert not port_accepts(port)
    assert cli.run("status").returncode == 3


@pytest.mark.slow
def test_sigterm_drains_in_flight_requests_of_every_worker(cli, serve):
    pid_file = cli.cwd / "run.pid"
    server = serve("--workers", "2", "--pid-file", str(pid_file))  # returns once the port accepts
    process, port = server.process, server.port
    assert read_pid(pid_file) == process.pid
    workers = wait_for(lambda: (pids := child_pids(process.pid)) and len(pids) == 2 and pids, what="two workers")
    assert answering_pids(port, set(workers)) == set(workers)

    # hold requests open until one is in flight on each worker
    replies: dict[str, dict | BaseException] = {}

    def hold(name: str) -> None:
        try:
            replies[name] = get(port, f"/probe/hold?name={name}", timeout=60)
        except BaseException as exc:  # reported by the assertion below
            replies[name] = exc

    threads = []
    gate = cli.cwd / "gate"

    def holders_by_worker() -> set[str]:
        return {path.read_text() for path in gate.iterdir()} if gate.exists() else set()

    for index in range(40):
        thread = threading.Thread(target=hold, args=(f"r{index}",), daemon=True)
        thread.start()
        threads.append(thread)
        wait_for(lambda index=index: len(list(gate.glob("r*"))) == index + 1 if gate.exists() else False)
        if holders_by_worker() == {str(pid) for pid in workers}:
            break
    assert holders_by_worker() == {str(pid) for pid in workers}

    process.send_signal(signal.SIGTERM)
    # draining: no worker accepts new connections, yet the held requests are still open
    wait_for(lambda: not port_accepts(port), what="the listeners to close")
    assert all(thread.is_alive() for thread in threads)
    (cli.cwd / "release").touch()
    for thread in threads:
        thread.join(30)
    assert all(isinstance(reply, dict) and reply["stat"] == "OK" for reply in replies.values()), replies
    assert {reply["pid"] for reply in replies.values()} == set(workers)
    assert process.wait(30) == 0
    assert not pid_file.exists()
    assert not any(is_server_alive(pid) for pid in workers)


@pytest.mark.slow
def test_workers_drain_and_exit_when_the_supervisor_is_killed(cli, serve):
    server = serve("--workers", "2")
    process, port = server.process, server.port
    workers = wait_for(lambda: (pids := child_pids(process.pid)) and len(pids) == 2 and pids, what="two workers")
    assert answering_pids(port, set(workers)) == set(workers)
    process.kill()
    process.wait()
    for pid in workers:
        wait_for(lambda pid=pid: not is_server_alive(pid), what=f"worker {pid} to exit")
    assert not port_accepts(port)
    assert (cli.cwd / "proc.log").read_text().count('"event": "supervisor gone; draining"') == 2


@pytest.mark.slow
def test_a_config_error_stops_the_supervisor_at_once(cli):
    (cli.cwd / "butterfly.toml").write_text("[server]\nthreads_typo = 4\n")
    result = cli.run("run", "--port", str(free_port()), "--workers", "3", timeout=60)
    assert result.returncode == 1
    # worker 0 starts alone: the error is printed once, not once per worker
    assert result.stderr.count("unknown setting [server] threads_typo") == 1
    assert "butterfly: error: worker 0 exited (status 1) before it was ready" in result.stderr
    assert '"worker starting"' in result.stderr and '"worker_slot": 1' not in result.stderr


@pytest.mark.slow
def test_a_worker_crash_looping_at_start_up_makes_the_supervisor_give_up(cli, serve):
    cli.write_plugin("crash_plugin", CRASH_WHEN_TOLD_PLUGIN)
    server = serve("--workers", "2")
    process, port = server.process, server.port
    workers = wait_for(lambda: (pids := child_pids(process.pid)) and len(pids) == 2 and pids, what="two workers")
    assert answering_pids(port, set(workers)) == set(workers)

    (cli.cwd / "crash").touch()
    os.kill(workers[0], signal.SIGKILL)
    # restarts with a growing backoff, then gives up and stops the healthy worker too
    assert process.wait(90) == 1
    assert not is_server_alive(workers[1])
    output = (cli.cwd / "proc.log").read_text()
    assert output.count("RuntimeError: told to crash at start-up") == 5
    delays = [json.loads(line)["restart_in"] for line in output.splitlines() if '"worker died; restarting"' in line]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert re.search(
        r"butterfly: error: worker \d failed to start 5 times in a row \(last: status 1\); giving up", output
    )


def test_workers_must_be_a_positive_number(cli):
    result = cli.run("run", "--workers", "0")
    assert result.returncode == 2
    assert "--workers: expected at least 1, got 0" in result.stderr
    result = cli.run("run", "--set", "server.workers=0", "--port", str(free_port()))
    assert result.returncode == 1
    assert "bad value for [server] workers (from the command line): expected an integer >= 1, got 0" in result.stderr
