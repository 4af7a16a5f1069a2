"""handlers/demo_async_job through the real router: enqueue over HTTP, run by the queue, status over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest

import butterfly_mq.plugin
from butterfly_mq import enqueue
from kernel import BadRequest
from kernel.testing import Client

HANDLERS = Path(__file__).resolve().parents[3] / "handlers"
router_plugin = pytest.importorskip("butterfly_router.plugin")


@pytest.fixture
def demo_kernel(make_kernel, redis_url, redis_cluster_mode, prefix):
    kernel = make_kernel(
        plugins=[router_plugin, butterfly_mq.plugin],
        settings={
            "router.handlers_dir": str(HANDLERS),
            "router.static_dir": "",
            "mq.redis_url": redis_url,
            "mq.redis_cluster": redis_cluster_mode,
            "mq.prefix": prefix,
            "mq.queues": ["/demo_async_job/work"],
            "mq.poll_max_interval": 0.1,
        },
    )
    kernel.startup()
    return kernel


def test_add_job_then_status(demo_kernel, mq):
    client = Client(demo_kernel)
    reply = client.post("/demo_async_job/add_job", data={"n": 10}).json()
    assert reply["stat"] == "OK"
    msg_id = reply["msg_id"]

    def finished():
        status = client.get("/demo_async_job/job_status", query={"msg_id": msg_id}).json()
        return status if status["state"] == "finished" else None

    status = mq.wait_for(finished)
    assert status["result"]["total"] == 45 and status["result"]["source"] == "mq" and status["attempts"] == 1
    missing = client.get("/demo_async_job/job_status", query={"msg_id": "nope"}).json()
    assert missing["stat"] == "ERR_NOT_FOUND"


def test_bad_input_is_refused_before_queueing(demo_kernel, mq):
    client = Client(demo_kernel)
    assert client.post("/demo_async_job/add_job", data={"n": "many"}).json()["stat"] == "ERR_BAD_PARAMS"
    assert client.post("/demo_async_job/add_job", data={"n": -1}).json()["stat"] == "ERR_BAD_PARAMS"
    assert client.get("/demo_async_job/add_job", query={"n": 1}).status == 405  # a write: never on GET
    # the router's signature check runs at enqueue time for topics this kernel serves
    with pytest.raises(BadRequest) as caught:
        enqueue("/demo_async_job/work", {"n": "x", "extra": 1}, kernel=demo_kernel)
    assert {e["param"] for e in caught.value.data["errors"]} >= {"n"}
    assert mq.counts(demo_kernel, "/demo_async_job/work")["queued"] == 0
