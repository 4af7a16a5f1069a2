"""Pick-up: the ready index, fairness, the consumers' own timers, default topics, and topics
nobody consumes — on a single Redis, through Twemproxy and on a Redis Cluster.

No timing asserts (latency is measured by bench/mq/pickup.py): the sweep that would find
any message eventually is switched off (``poll_max_interval`` of an hour), so a message
that runs at all was found by the mechanism under test.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import butterfly_mq.plugin
from butterfly_mq import enqueue, get_message
from butterfly_mq.keys import RegistryKeys
from kernel import Response, hookimpl
from kernel.testing import Client

NO_SWEEP = {"poll_max_interval": 3600.0}
HANDLERS = Path(__file__).resolve().parents[3] / "handlers"
IDLE = [f"/idle/t{i:02d}" for i in range(30)]


class IdleTopics:
    """A plugin with 30 more topics that only ever get one message each."""

    @hookimpl
    def butterfly_register_routes(self, register):
        for topic in IDLE:
            register(topic, lambda request: Response.json({"stat": "OK"}), kind="json", meta={"mq_topic": True})


def test_a_remote_enqueue_to_an_idle_topic_is_found_through_the_ready_index(
    make_kernel, redis_url, redis_cluster_mode, prefix, mq
):
    kernel = make_kernel(
        plugins=[butterfly_mq.plugin, IdleTopics()],
        settings={
            "mq.redis_url": redis_url,
            "mq.redis_cluster": redis_cluster_mode,
            "mq.prefix": prefix,
            "mq.poll_max_interval": 3600.0,
        },
    )
    kernel.startup()
    consumer = kernel.extensions["mq"].consumer
    mq.wait_for(lambda: consumer.cursor >= 0 and not consumer.hot)  # the start-up sweep is over
    # other processes' producers: no in-process wake-up, only the marks in the ready index
    ids = {topic: enqueue(topic, {}, redis_url=redis_url, prefix=prefix) for topic in IDLE[::7]}
    for topic, msg_id in ids.items():
        mq.wait_for(
            lambda topic=topic, msg_id=msg_id: get_message(msg_id, topic=topic, kernel=kernel)["state"] == "finished"
        )
    assert consumer.cursor >= len(ids)


def test_a_lost_ready_counter_resets_the_cursor(mq_kernel, redis_client, redis_url, prefix, mq):
    kernel = mq_kernel(start=True, **NO_SWEEP)
    consumer = kernel.extensions["mq"].consumer
    first = enqueue("/t/ok", {"n": 1}, redis_url=redis_url, prefix=prefix)
    mq.wait_for(lambda: get_message(first, kernel=kernel)["state"] == "finished")
    # as after a restart of a Redis without persistence: the counter starts again at 0
    keys = RegistryKeys(prefix)
    for key in (keys.ready, keys.ready_counter, keys.ready_epoch):
        redis_client.delete(key)
    epoch = consumer.epoch
    second = enqueue("/t/ok", {"n": 2}, redis_url=redis_url, prefix=prefix)
    mq.wait_for(lambda: get_message(second, kernel=kernel)["state"] == "finished")
    assert consumer.epoch != epoch and consumer.cursor == 1


def test_delayed_and_retried_messages_run_on_the_consumers_own_timers(mq_kernel, redis_url, prefix, mq):
    kernel = mq_kernel(start=True, backoff_base=0.2, **NO_SWEEP)
    delayed = enqueue("/t/ok", {"n": 3}, redis_url=redis_url, prefix=prefix, delay=0.4)
    flaky = enqueue("/t/flaky", {"fail_times": 1, "tag": f"{prefix}-f"}, redis_url=redis_url, prefix=prefix)
    mq.wait_for(lambda: get_message(delayed, kernel=kernel)["state"] == "finished")
    mq.wait_for(lambda: get_message(flaky, kernel=kernel)["state"] == "finished")
    assert get_message(flaky, kernel=kernel)["attempts"] == 2


def test_a_flooded_topic_does_not_starve_an_idle_one(mq_kernel, redis_url, prefix, mq):
    kernel = mq_kernel(workers=1, batch_size=2, **NO_SWEEP)
    flood = [
        enqueue("/t/slow", {"seconds": 0.02}, redis_url=redis_url, prefix=prefix, msg_id=f"flood{i}") for i in range(60)
    ]
    kernel.startup()
    mq.wait_for(lambda: mq.counts(kernel, "/t/slow")["finished"] >= 2)
    lone = enqueue("/t/ok", {"n": 1}, redis_url=redis_url, prefix=prefix)
    mq.wait_for(lambda: get_message(lone, kernel=kernel)["state"] == "finished")
    # the idle topic's message ran while most of the flood was still waiting
    assert mq.counts(kernel, "/t/slow")["queued"] >= 20, "the lone message waited for the flood to drain"
    mq.wait_for(lambda: mq.counts(kernel, "/t/slow")["finished"] == len(flood), timeout=30)


PLUGIN_PACKAGE = """
def status(req):
    return "OK"
"""


def test_default_topics_are_the_user_apps_routes_only(make_kernel, redis_server, prefix, tmp_path, monkeypatch):
    router_plugin = pytest.importorskip("butterfly_router.plugin")
    package = tmp_path / "mq_test_plugin_api"
    package.mkdir()
    (package / "__init__.py").write_text(PLUGIN_PACKAGE)
    monkeypatch.syspath_prepend(str(tmp_path))

    class PluginWithPackage:
        """A plugin serving its own API through the router (as ruqi serves /ruqi/*)."""

        @hookimpl
        def butterfly_router_handler_packages(self):
            return [("pluginapi", "mq_test_plugin_api")]

    kernel = make_kernel(
        plugins=[router_plugin, butterfly_mq.plugin, IdleTopics(), PluginWithPackage()],
        settings={
            "router.handlers_dir": str(HANDLERS),
            "router.static_dir": "",
            "mq.redis_url": redis_server.url,
            "mq.prefix": prefix,
        },
    )
    topics = set(kernel.extensions["mq"].topics())
    user_routes = {r.path for r in kernel.routes if r.meta.get("source") == "handlers" and not r.admin}
    assert "/demo_api/hello" in user_routes and user_routes <= topics  # every route of the user's apps
    assert set(IDLE) <= topics  # a plugin's routes that asked (meta mq_topic)
    assert kernel.routes.lookup("/pluginapi/status") is not None and "/pluginapi/status" not in topics
    assert not [t for t in topics if t.startswith(("/_meta", "/canghai"))]


def test_a_topic_nobody_consumes_is_flagged(mq_kernel, mq):
    kernel = mq_kernel(start=True)
    client = Client(kernel)
    me = kernel.extensions["mq"].name
    mq.wait_for(
        lambda: any(i["name"] == me and i["alive"] for i in client.get("/canghai/api/instances").json()["instances"])
    )
    served = client.post("/canghai/api/enqueue", json={"topic": "/t/ok", "params": {"n": 1}}).json()
    assert served["stat"] == "OK" and served["consumers"] >= 1 and "warning" not in served
    orphan = client.post("/canghai/api/enqueue", json={"topic": "/nobody/home", "params": {}}).json()
    assert orphan["stat"] == "OK" and orphan["consumers"] == 0
    assert "no live instance consumes /nobody/home" in orphan["warning"]
    assert get_message(orphan["msg_id"], kernel=kernel)["state"] == "queued"  # accepted all the same
    rows = {q["name"]: q for q in client.get("/canghai/api/queues").json()["queues"]}
    assert rows["/nobody/home"]["consumers"] == 0 and rows["/t/ok"]["consumers"] >= 1
    page = client.get("/canghai/").text
    orphan_row = page[page.index('data-queue="/nobody/home"') :].split("</tr>")[0]
    served_row = page[page.index('data-queue="/t/ok"') :].split("</tr>")[0]
    assert 'class="pill unconsumed"' in orphan_row and "unconsumed" not in served_row
    warning = page[page.index("that no running instance consumes") :].split("</p>")[0]
    assert "/nobody/home" in warning and "/t/ok" not in warning  # the warning card names the waiting queue


def test_an_idle_consumer_is_woken_by_the_bell_or_polls_where_there_is_none(
    mq_kernel, redis_mode, redis_url, prefix, mq
):
    """With the bell (single Redis, cluster) the poller does not poll at all here — a pick-up
    interval and sweep of an hour — so a remote message that runs was announced by the bell.
    Twemproxy refuses XREAD BLOCK: the bell gives up and the consumer polls the ready index."""
    behind_proxy = redis_mode == "twemproxy"
    kernel = mq_kernel(start=True, pickup_interval=0.05 if behind_proxy else 3600.0, **NO_SWEEP)
    consumer = kernel.extensions["mq"].consumer
    if behind_proxy:
        mq.wait_for(lambda: consumer.bell.unsupported)
        assert consumer.pickup == "polling" and consumer.idle_wait(time.monotonic()) == 0.05
    else:
        mq.wait_for(lambda: consumer.pickup == "bell" and not consumer.hot and not consumer.marked)
        assert consumer.idle_wait(time.monotonic()) > 1000  # idle: sleeps until its next sweep
    rounds = consumer.rounds
    msg_id = enqueue("/t/ok", {"n": 1}, redis_url=redis_url, prefix=prefix)
    mq.wait_for(lambda: get_message(msg_id, kernel=kernel)["state"] == "finished")
    assert consumer.rounds > rounds
    # NOTE: after a ring the bell rests pickup_interval (an idle instance wakes no more often
    # than it used to poll); so here, one message: the first after a quiet spell rings at once
    assert consumer.bell.rings >= (0 if behind_proxy else 1) and consumer.bell.rest == consumer.config.pickup_interval
    assert kernel.extensions["mq"].counters()["pickup"] == ("polling" if behind_proxy else "bell")


def test_the_bell_can_be_switched_off(mq_kernel, redis_url, prefix, mq):
    kernel = mq_kernel(start=True, bell=False, **NO_SWEEP)
    consumer = kernel.extensions["mq"].consumer
    assert consumer.bell is None and consumer.pickup == "polling"
    msg_id = enqueue("/t/ok", {"n": 1}, redis_url=redis_url, prefix=prefix)
    mq.wait_for(lambda: get_message(msg_id, kernel=kernel)["state"] == "finished")
