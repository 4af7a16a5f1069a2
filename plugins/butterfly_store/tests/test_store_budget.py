"""``[store] max_connections`` against real PostgreSQL and MariaDB, counted by the servers themselves."""

from __future__ import annotations

import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

import butterfly_store.plugin
from butterfly_store import get_db
from butterfly_store.testing import _reachable, _server, _unavailable
from kernel import Response, hookimpl
from kernel.testing import Client

BACKENDS = ("postgresql", "mysql")


class BudgetProbe:
    """Routes that use a connection: ``/budget/id`` (the server's id of the connection),
    ``/budget/sleep`` (holds it 0.1 s) and ``/budget/hold`` (holds it until released)."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.release = threading.Event()
        self.holding = threading.Semaphore(0)

    @hookimpl
    def butterfly_register_routes(self, register, kernel):
        postgres = self.backend == "postgresql"

        def connection_id(request):
            sql = "SELECT pg_backend_pid()" if postgres else "SELECT CONNECTION_ID()"
            return Response.json({"stat": "OK", "id": get_db(kernel).select(sql)[0]})

        def sleep(request):
            get_db(kernel).select("SELECT pg_sleep(0.1)" if postgres else "SELECT SLEEP(0.1)")
            return Response.json({"stat": "OK"})

        def hold(request):
            get_db(kernel).select("SELECT 1")
            self.holding.release()
            self.release.wait(30)
            return Response.json({"stat": "OK"})

        register("/budget/id", connection_id, kind="json")
        register("/budget/sleep", sleep, kind="json")
        register("/budget/hold", hold, kind="json")


class ScratchServer:
    """A database of its own on one server, so every connection to it is this test's."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.name = "butterfly_budget_" + uuid.uuid4().hex[:10]
        env, default = (
            ("BUTTERFLY_TEST_POSTGRES", "127.0.0.1:5432:root")
            if backend == "postgresql"
            else ("BUTTERFLY_TEST_MYSQL", "127.0.0.1:3306:root")
        )
        self.host, self.port, self.user = _server(env, default)
        if not _reachable(self.host, self.port):
            _unavailable(f"{backend} not reachable at {self.host}:{self.port}")
        self._admin(f'CREATE DATABASE "{self.name}"' if backend == "postgresql" else f"CREATE DATABASE `{self.name}`")

    @property
    def url(self) -> str:
        return f"{self.backend}://{self.user}@{self.host}:{self.port}/{self.name}"

    def _admin(self, sql: str, fetch: bool = False):
        if self.backend == "postgresql":
            import psycopg2

            conn = psycopg2.connect(host=self.host, port=self.port, user=self.user, dbname="postgres")
            conn.autocommit = True
        else:
            import pymysql

            conn = pymysql.connect(host=self.host, port=self.port, user=self.user, password="", autocommit=True)
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql)
                return cursor.fetchone() if fetch else None
        finally:
            conn.close()

    def connections(self) -> int:
        """Open connections to this database, as the server counts them."""
        if self.backend == "postgresql":
            sql = f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{self.name}'"
        else:
            sql = f"SELECT count(*) FROM information_schema.processlist WHERE db = '{self.name}'"
        return int(self._admin(sql, fetch=True)[0])

    def drop(self) -> None:
        if self.backend == "postgresql":
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        else:
            self._admin(f"DROP DATABASE IF EXISTS `{self.name}`")


@pytest.fixture(params=BACKENDS)
def scratch(request):
    server = ScratchServer(request.param)
    yield server
    server.drop()


def budget_kernel(make_kernel, scratch, **settings):
    probe = BudgetProbe(scratch.backend)
    kernel = make_kernel(
        plugins=[butterfly_store.plugin, probe],
        settings={"store.url": scratch.url, **{key.replace("__", "."): value for key, value in settings.items()}},
    )
    return kernel, probe


class PeakWatcher:
    """Counts the server's connections to the scratch database every few milliseconds."""

    def __init__(self, scratch: ScratchServer) -> None:
        self.scratch = scratch
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.scratch.connections())
            self._stop.wait(0.01)

    def __enter__(self) -> PeakWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)
        self.peak = max(self.peak, self.scratch.connections())


def test_concurrent_requests_never_open_more_than_max_connections(make_kernel, live_server, scratch):
    kernel, _ = budget_kernel(make_kernel, scratch, store__max_connections=3, server__threads=8)
    server = live_server(kernel)
    import urllib.request

    def call(_):
        with urllib.request.urlopen(server.url + "/budget/sleep", timeout=30) as reply:
            return reply.status

    with PeakWatcher(scratch) as watcher, ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(call, range(32)))
    assert statuses == [200] * 32
    # 8 threads wanted 8 connections; the server saw at most 3 (and the load did reach it)
    assert 2 <= watcher.peak <= 3
    assert kernel.extensions["store.budget"].peak <= 3
    [health] = [result for result in kernel.hook.butterfly_health(kernel=kernel) if result and "store" in result]
    ok, detail = health["store"]
    assert ok and re.search(r"SELECT 1 ok \([0-3] of max_connections 3 open\)$", detail), detail


def test_without_pressure_a_thread_keeps_its_connection(make_kernel, live_server, scratch):
    kernel, _ = budget_kernel(make_kernel, scratch, store__max_connections=4, server__threads=2)
    client_url = live_server(kernel).url + "/budget/id"
    import json
    import urllib.request

    ids = set()
    for _ in range(10):
        with urllib.request.urlopen(client_url, timeout=30) as reply:
            ids.add(json.loads(reply.read())["id"])
    assert 1 <= len(ids) <= 2  # one connection per waitress thread, reused, never reopened


def test_idle_connections_of_http_threads_are_evicted_for_a_thread_that_needs_one(make_kernel, live_server, scratch):
    # 4 waitress threads take turns; only 2 connections: each newcomer closes an idle one
    kernel, _ = budget_kernel(
        make_kernel, scratch, store__max_connections=2, store__pool_timeout=0.5, server__threads=4
    )
    url = live_server(kernel).url + "/budget/id"
    import urllib.request

    with PeakWatcher(scratch) as watcher:
        for _ in range(12):
            with urllib.request.urlopen(url, timeout=30) as reply:
                assert reply.status == 200
    assert watcher.peak <= 2


def test_a_request_that_finds_no_free_connection_gets_a_503(make_kernel, live_server, scratch):
    kernel, probe = budget_kernel(
        make_kernel, scratch, store__max_connections=2, store__pool_timeout=0.2, server__threads=4
    )
    server = live_server(kernel)
    import urllib.error
    import urllib.request

    holders = [
        threading.Thread(target=lambda: urllib.request.urlopen(server.url + "/budget/hold", timeout=30).read())
        for _ in range(2)
    ]
    for holder in holders:
        holder.start()
    for _ in holders:
        assert probe.holding.acquire(timeout=30)
    with pytest.raises(urllib.error.HTTPError) as busy:
        urllib.request.urlopen(server.url + "/budget/id", timeout=30)
    assert busy.value.code == 503
    assert busy.value.headers["x-reason"] == (
        "no database connection free within 0.2 s ([store] max_connections = 2, all in use)"
    )
    assert busy.value.headers["Retry-After"] == "1"
    probe.release.set()
    for holder in holders:
        holder.join(30)
    assert Client(kernel).get("/budget/id").status == 200
    assert scratch.connections() <= 2


def test_background_threads_leave_one_connection_for_requests(make_kernel, live_server, scratch):
    kernel, _ = budget_kernel(make_kernel, scratch, store__max_connections=2, server__threads=2)
    url = live_server(kernel).url + "/budget/id"
    from pony.orm import db_session

    db = get_db(kernel)
    done_first = threading.Event()
    stop_first = threading.Event()
    second_connected = threading.Event()

    def first():  # connects outside any request and keeps its connection while alive
        with db_session:
            db.select("SELECT 1")
        done_first.set()
        stop_first.wait(30)

    def second():
        with db_session:
            db.select("SELECT 1")
        second_connected.set()

    first_thread = threading.Thread(target=first)
    first_thread.start()
    assert done_first.wait(30)
    second_thread = threading.Thread(target=second)
    second_thread.start()
    # the second background connection would take the last slot: it waits...
    assert not second_connected.wait(1.0)
    # ...and requests still get one
    import urllib.request

    for _ in range(3):
        with urllib.request.urlopen(url, timeout=30) as reply:
            assert reply.status == 200
    assert scratch.connections() <= 2
    # when the first thread ends, pony drops its connection and the second one goes ahead
    stop_first.set()
    first_thread.join(30)
    assert second_connected.wait(30)
    second_thread.join(30)


def test_the_setting_is_validated(make_kernel, tmp_path):
    from kernel import ConfigError

    with pytest.raises(ConfigError, match=r"\[store\] max_connections .*expected 0 \(no limit\) or at least 2, got 1"):
        make_kernel(plugins=[butterfly_store.plugin], settings={"store.max_connections": 1})
