"""Operating a real server: logrotate + SIGHUP, ``log_to = "stdout"``, no access line lost
at a graceful stop — each against ``python -m kernel run`` subprocesses."""

from __future__ import annotations

import json
import os
import signal
import threading
import urllib.request
from pathlib import Path

import pytest

from kernel.daemon import child_pids, is_server_alive
from kernel.testing import wait_for

from .servers import PROBE, Server, json_lines


@pytest.fixture
def server(tmp_path):
    servers: list[Server] = []

    def factory(env: dict[str, str] | None = None, probe: str = PROBE) -> Server:
        made = Server(tmp_path, env, probe)
        servers.append(made)
        return made

    yield factory
    for made in servers:
        made.kill()


def reqids(path: Path) -> list[str]:
    return [line["reqid"] for line in json_lines(path) if line.get("path") == "/probe/pid"]


def send(server: Server, count: int) -> list[str]:
    """``count`` requests; the request ids the replies carried."""
    return [server.get(f"/probe/pid?n={index}")[1]["x-reqid"] for index in range(count)]


@pytest.mark.slow
def test_sighup_after_a_logrotate_rename_moves_every_later_line_to_the_new_file(server):
    srv = server().start()
    before = send(srv, 20)
    acc, app = srv.log_dir / "acc.log", srv.log_dir / "app.log"
    wait_for(lambda: set(before) <= set(reqids(acc)), what="the first lines")
    # what logrotate does without copytruncate: rename, then postrotate sends SIGHUP
    os.rename(acc, srv.log_dir / "acc.log.1")
    os.rename(app, srv.log_dir / "app.log.1")
    srv.process.send_signal(signal.SIGHUP)
    wait_for(lambda: any(line.get("event") == "log files reopened" for line in json_lines(app)), what="the reopen")
    after = send(srv, 20)
    assert srv.stop() == 0
    assert srv.process.returncode == 0
    # nothing lost, nothing after the signal in the rotated file
    assert reqids(srv.log_dir / "acc.log.1") == before
    assert reqids(acc) == after
    assert not any(line.get("event") == "log files reopened" for line in json_lines(srv.log_dir / "app.log.1"))
    # UTC with an explicit Z in both logs
    assert all(line["time"].endswith("Z") for line in json_lines(acc))
    assert all(line["timestamp"].endswith("Z") for line in json_lines(app))


@pytest.mark.slow
def test_the_supervisor_forwards_sighup_to_every_worker(server):
    srv = server().start("--workers", "2")
    workers = wait_for(lambda: (pids := child_pids(srv.process.pid)) and len(pids) == 2 and set(pids), what="workers")

    def answered(pids: set[int]) -> bool:
        seen = set()
        for _ in range(200):
            seen.add(srv.get("/probe/pid")[0]["pid"])
            if pids <= seen:
                return True
        return False

    wait_for(lambda: answered(workers), what="both workers to answer")
    acc, app = srv.log_dir / "acc.log", srv.log_dir / "app.log"
    os.rename(acc, srv.log_dir / "acc.log.1")
    os.rename(app, srv.log_dir / "app.log.1")
    srv.process.send_signal(signal.SIGHUP)

    def reopened() -> set[int]:
        return {line["pid"] for line in json_lines(app) if line.get("event") == "log files reopened"}

    wait_for(lambda: reopened() == workers, what="every worker to reopen")
    assert srv.process.poll() is None and set(child_pids(srv.process.pid)) == workers  # nobody died of it
    rotated = set(reqids(srv.log_dir / "acc.log.1"))
    later = send(srv, 30)
    assert srv.stop() == 0
    assert not any(is_server_alive(pid) for pid in workers)
    assert sorted(reqids(acc)) == sorted(later)
    assert set(reqids(srv.log_dir / "acc.log.1")) == rotated
    assert {line["pid"] for line in json_lines(acc)} == workers


@pytest.mark.slow
def test_log_to_stdout_writes_every_log_as_json_lines_and_no_file(server):
    srv = server({"BUTTERFLY_TRACE_LOG_TO": "stdout"}).start()
    sent = send(srv, 5)
    failed = urllib.request.Request(f"http://127.0.0.1:{srv.port}/nowhere")
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(failed, timeout=30)
    assert srv.stop() == 0
    lines = [json.loads(line) for line in (srv.cwd / "out.log").read_text().splitlines()]  # every line is JSON
    access = [line for line in lines if line.get("logger") == "butterfly.access"]
    assert [line["reqid"] for line in access if line["path"] == "/probe/pid"] == sent
    assert [line["status"] for line in access if line["path"] == "/nowhere"] == [404]
    events = [line.get("event") for line in lines]
    assert events.count("serving") == 1 and events.count("stopped") == 1
    assert all(line["time" if "time" in line else "timestamp"].endswith("Z") for line in lines)
    assert not srv.log_dir.exists() or not list(srv.log_dir.iterdir())
    # the app log is on stdout only: nothing repeated on stderr after start-up
    assert '"serving"' not in (srv.cwd / "err.log").read_text()


# The probe, plus a writer thread that never writes on its own: every line reaches the file
# through the graceful stop's drain, so a stop that dropped queued lines would lose them all.
LAZY_WRITER_PROBE = (
    PROBE
    + """
import butterfly_trace.access

butterfly_trace.access.BATCH_WINDOW = 3600.0
"""
)


@pytest.mark.slow
def test_a_graceful_stop_writes_the_access_line_of_every_request(server):
    srv = server(probe=LAZY_WRITER_PROBE).start()
    count, threads = 400, 8
    replies: list[str] = []
    lock = threading.Lock()

    def client(share: int) -> None:
        got = send(srv, share)
        with lock:
            replies.extend(got)

    pool = [threading.Thread(target=client, args=(count // threads,)) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(120)
    assert len(replies) == count
    assert reqids(srv.log_dir / "acc.log") == []  # all still queued
    assert srv.stop() == 0  # SIGTERM: the queue is written before the process exits
    assert sorted(reqids(srv.log_dir / "acc.log")) == sorted(replies)
