"""Three real instances with default settings share one PostgreSQL under load.

PostgreSQL's default ``max_connections`` is 100. Each instance here runs the full
default install plus a probe plugin: a route that holds its connection 50 ms, and eight
background threads polling the database the way ruqi's job threads and the MQ
consumers do. Unbounded, pony would open ~26 connections per instance (16 waitress
threads, 8 background threads, ruqi's scheduler, start-up); ``[store]
max_connections`` (default 20) caps each at 20, so the server never sees more than 60.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from kernel.testing import free_port

INSTANCES = 3
DEFAULT_MAX_CONNECTIONS = 20
PG = os.environ.get("BUTTERFLY_TEST_POSTGRES", "127.0.0.1:5432:root").split(":")

PROBE_PLUGIN = """
import threading
import time

from kernel import Response, hookimpl

_stop = threading.Event()


def _background(kernel):
    from pony.orm import db_session

    from butterfly_store import get_db

    db = get_db(kernel)
    while not _stop.is_set():
        try:
            with db_session:
                db.select("SELECT pg_sleep(0.05)")
        except Exception:
            pass  # shutting down
        _stop.wait(0.01)


@hookimpl
def butterfly_register_routes(register, kernel):
    from butterfly_store import get_db

    def hold(request):
        get_db(kernel).select("SELECT pg_sleep(0.05)")
        return Response.json({"stat": "OK"})

    register("/budget/hold", hold, kind="json")


@hookimpl
def butterfly_startup(kernel):
    for index in range(8):
        threading.Thread(target=_background, args=(kernel,), name=f"bg-{index}", daemon=True).start()


@hookimpl
def butterfly_shutdown(kernel):
    _stop.set()
"""


def admin(sql: str, fetch: bool = False):
    import psycopg2

    conn = psycopg2.connect(host=PG[0], port=int(PG[1]), user=PG[2], dbname="postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchone() if fetch else None
    finally:
        conn.close()


@pytest.fixture
def scratch_database():
    from butterfly_store.testing import _reachable, _unavailable

    if not _reachable(PG[0], int(PG[1])):
        _unavailable(f"PostgreSQL not reachable at {PG[0]}:{PG[1]}")
    name = "butterfly_budget_" + uuid.uuid4().hex[:10]
    admin(f'CREATE DATABASE "{name}"')
    yield name
    admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def instances(tmp_path, scratch_database):
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    (plugin_dir / "budget_probe.py").write_text(textwrap.dedent(PROBE_PLUGIN))
    env = {key: value for key, value in os.environ.items() if not key.startswith("BUTTERFLY_")}
    env.update(
        PYTHONPATH=str(plugin_dir),
        BUTTERFLY_PLUGINS="budget_probe",
        BUTTERFLY_STORE_URL=f"postgresql://{PG[2]}@{PG[0]}:{PG[1]}/{scratch_database}",
    )
    started = []
    for index in range(INSTANCES):
        workdir = tmp_path / f"instance{index}"
        workdir.mkdir()
        port = free_port()
        log = (workdir / "out.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "kernel", "run", "--port", str(port)],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        started.append((process, port, workdir))
    try:
        for process, port, workdir in started:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                assert process.poll() is None, (workdir / "out.log").read_text()[-3000:]
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/budget/hold", timeout=10).read()
                    break
                except OSError:
                    time.sleep(0.1)
            else:
                raise AssertionError(f"instance on port {port} did not start")
        yield [port for _, port, _ in started]
    finally:
        for process, _, _ in started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, _, _ in started:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.mark.slow
def test_three_default_instances_stay_within_their_connection_budget(instances, scratch_database):
    peak = 0
    stop = threading.Event()

    def watch():
        nonlocal peak
        while not stop.is_set():
            count = admin(f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{scratch_database}'", fetch=True)
            peak = max(peak, count[0])
            stop.wait(0.005)

    def hold(port: int) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/budget/hold", timeout=60) as reply:
            return reply.status

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    # 32 concurrent clients per instance: twice its 16 threads, so every thread wants a connection
    ports = [port for port in instances for _ in range(100)]
    with ThreadPoolExecutor(32 * INSTANCES) as pool:
        statuses = list(pool.map(hold, ports))
    stop.set()
    watcher.join(10)
    assert statuses == [200] * len(ports)
    budget = INSTANCES * DEFAULT_MAX_CONNECTIONS
    assert peak <= budget, f"{peak} connections open, budget {budget}"
    # the load was real: all three instances held many connections at once
    assert peak > 2 * DEFAULT_MAX_CONNECTIONS
