"""Safe defaults: admin routes are POST unless they say otherwise, data_dir is private,
public demo routes compute a bounded amount and let other requests run meanwhile."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

import butterfly_router.plugin
from butterfly_router import api, download, http, upload
from butterfly_router.decorators import options_of
from kernel.routes import RouteTable
from kernel.testing import Client

REPO = Path(__file__).resolve().parents[1]


def test_an_admin_route_registered_without_methods_accepts_post_only():
    table = RouteTable()
    assert table.register("/a/write", lambda request: None, admin=True).methods == {"POST"}
    assert table.register("/a/read", lambda request: None, admin=True, methods=("GET", "HEAD")).methods == {
        "GET",
        "HEAD",
    }
    assert table.register("/open", lambda request: None).methods is None  # not admin: any method, as before
    assert not table.lookup("/a/write").accepts_safe_method and table.lookup("/a/read").accepts_safe_method


def test_admin_decorators_default_to_post_only():
    def handler(req): ...

    assert options_of(api(admin=True)(handler)).methods == ("POST",)
    assert options_of(http(admin=True)(handler)).methods == ("POST",)
    assert options_of(api(admin=True, methods=("GET",))(handler)).methods == ("GET",)
    assert options_of(api(admin=True, methods=None)(handler)).methods == ("POST",)  # never "any" for admin
    assert options_of(download(admin=True)(handler)).methods == ("GET", "HEAD")
    assert options_of(upload(admin=True)(handler)).methods == ("POST", "PUT")
    assert options_of(api(handler)).methods is None and options_of(api()(handler)).methods is None


def test_the_kernel_creates_its_data_dir_private(make_kernel):
    kernel = make_kernel()
    old_umask = os.umask(0o022)  # NOTE: the usual umask, under which directories come out 0755
    try:
        path = kernel.ensure_data_dir()
    finally:
        os.umask(old_umask)
    assert path == kernel.data_dir and stat.S_IMODE(path.stat().st_mode) == 0o700


@pytest.fixture
def demo_client(make_kernel):
    pytest.importorskip("butterfly_mq")  # demo_async_job imports the producer API
    kernel = make_kernel(
        plugins=[butterfly_router.plugin],
        settings={"router.handlers_dir": str(REPO / "handlers"), "router.static_dir": ""},
    )
    return Client(kernel)


def test_public_demo_work_is_bounded(demo_client):
    # it used to hold the GIL for sum(range(10**9)): 21 s in which no other request was served
    for n in (1_000_000_000, 10**30, -1, "9" * 5000):
        reply = demo_client.get("/demo_async_job/work", query={"n": n})
        assert reply.status == 400 and reply.json()["errors"][0]["param"] == "n", reply.text[:200]
    assert demo_client.get("/demo_async_job/work", query={"n": 10}).json()["total"] == 45


def test_demo_work_lets_other_threads_run_while_it_adds(demo_client):
    """The largest allowed ``n`` runs in chunks: another thread gets the GIL between them."""
    from handlers.demo_async_job import MAX_N, sum_below

    started, done = threading.Event(), threading.Event()
    result: list[int] = []

    def work() -> None:
        started.set()
        result.append(sum_below(MAX_N))
        done.set()

    worker = threading.Thread(target=work)
    worker.start()
    started.wait()
    turns = 0
    while not done.is_set():  # one sum(range(MAX_N)) would leave this loop no turn at all
        turns += 1
        done.wait(0.001)
    worker.join()
    assert result == [MAX_N * (MAX_N - 1) // 2]
    assert turns >= 3
