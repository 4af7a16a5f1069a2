"""canghai: the JSON API, admin actions, O(1) counts with 100k messages, and the HTML in Chromium."""

from __future__ import annotations

import json

from butterfly_mq import enqueue, get_message
from butterfly_mq.keys import STATES
from butterfly_mq.pages import REFRESH_SECONDS
from kernel.testing import Client


def test_api_queues_shape(mq_kernel):
    kernel = mq_kernel()
    enqueue("/t/ok", {"n": 1}, kernel=kernel)
    enqueue("/t/ok", {"n": 2}, kernel=kernel, delay=60)
    reply = Client(kernel).get("/canghai/api/queues").json()
    assert reply["stat"] == "OK"
    row = next(q for q in reply["queues"] if q["name"] == "/t/ok")
    assert {s: row[s] for s in STATES} == {
        "queued": 1,
        "started": 0,
        "scheduled": 1,
        "finished": 0,
        "failed": 0,
        "dead": 0,
    }
    assert row["oldest_age"] >= 0 and row["throughput_per_min"] == 0


def test_api_msg_msgs_and_actions(mq_kernel, mq):
    kernel = mq_kernel(start=True)
    client = Client(kernel)
    ids = [enqueue("/t/boom", {}, kernel=kernel, retries=0) for _ in range(3)]
    mq.wait_for(lambda: mq.counts(kernel, "/t/boom")["failed"] == 3)
    page = client.get("/canghai/api/msgs", query={"queue": "/t/boom", "state": "failed", "page_size": 2}).json()
    assert page["total"] == 3 and page["pages"] == 2 and len(page["msgs"]) == 2
    detail = client.get("/canghai/api/msg", query={"msg_id": ids[0]}).json()["msg"]
    assert detail["state"] == "failed" and "kaboom" in detail["error"] and detail["params"] == {}
    assert client.get("/canghai/api/msg", query={"msg_id": "missing"}).json()["stat"] == "ERR_NOT_FOUND"
    assert (
        client.get("/canghai/api/msgs", query={"queue": "/t/boom", "state": "nope"}).json()["stat"] == "ERR_BAD_PARAMS"
    )
    # actions want a JSON body (CSRF-safe) and are admin routes
    form = client.post("/canghai/api/requeue", data={"msg_id": ids[0]})
    assert form.status == 400 and "JSON" in form.headers["x-reason"]
    remote = client.post("/canghai/api/requeue", json={"msg_id": ids[0]}, remote_addr="203.0.113.9")
    assert remote.status == 403
    assert client.post("/canghai/api/requeue", json={"msg_id": ids[0]}).json()["stat"] == "OK"
    assert client.post("/canghai/api/delete", json={"msg_id": ids[1]}).json()["deleted"] is True
    assert get_message(ids[1], kernel=kernel) is None
    assert client.post("/canghai/api/empty", json={"queue": "/t/boom", "state": "failed"}).json()["deleted"] >= 1
    assert client.post("/canghai/api/empty", json={"queue": "/t/boom", "state": "started"}).status == 400
    assert client.post("/canghai/api/pause", json={"queue": "/t/ok"}).json()["paused"] is True
    assert mq.counts(kernel, "/t/ok")["paused"] is True
    assert client.post("/canghai/api/resume", json={"queue": "/t/ok"}).json()["paused"] is False


def test_api_enqueue_and_instances(mq_kernel, mq):
    kernel = mq_kernel(start=True)
    client = Client(kernel)
    reply = client.post("/canghai/api/enqueue", json={"topic": "/t/ok", "params": {"n": 4}}).json()
    assert reply["stat"] == "OK"
    mq.wait_for(lambda: get_message(reply["msg_id"], kernel=kernel)["state"] == "finished")
    bad = client.post("/canghai/api/enqueue", json={"topic": "/t/ok", "params": [1]})
    assert bad.json()["stat"] == "ERR_BAD_PARAMS"
    assert client.post("/canghai/api/enqueue", json={"topic": "/t/ok", "evil": 1}).status == 400
    instances = mq.wait_for(lambda: client.get("/canghai/api/instances").json()["instances"])
    me = next(i for i in instances if i["name"] == kernel.extensions["mq"].name)
    assert me["alive"] and "/t/ok" in me["queues"] and me["pid"] > 0


def test_mq_off_without_redis_url(make_kernel):
    import butterfly_mq.plugin

    kernel = make_kernel(plugins=[butterfly_mq.plugin])
    kernel.startup()
    assert "mq" not in kernel.extensions
    assert Client(kernel).get("/canghai/api/queues").status == 404


def _commands(client) -> dict[str, int]:
    return {name.removeprefix("cmdstat_"): stats["calls"] for name, stats in client.info("commandstats").items()}


def _fill(client, queue, count):
    """``count`` finished messages written straight into the queue's keys (fast set-up)."""
    pipe = client.pipeline(transaction=False)
    for start in range(0, count, 5000):
        ids = [f"x{i}" for i in range(start, min(count, start + 5000))]
        pipe.zadd(queue.keys[3], dict.fromkeys(ids, 1))
        pipe.hset(queue.keys[6], mapping={msg_id: json.dumps({"id": msg_id, "state": "finished"}) for msg_id in ids})
    pipe.execute()


def test_counts_do_constant_redis_work_with_100k_messages(make_kernel, redis_server, prefix):
    """O(1): the API issues the same commands whether a state holds 10 or 100,000 messages."""
    import butterfly_mq.plugin
    from butterfly_mq.connection import connect
    from butterfly_mq.queue import Queue

    kernel = make_kernel(
        plugins=[butterfly_mq.plugin], settings={"mq.redis_url": redis_server.url, "mq.prefix": prefix}
    )
    client = connect(redis_server.url)
    small, big = Queue(client, "/small/q", prefix), Queue(client, "/big/q", prefix)
    _fill(client, small, 10)
    _fill(client, big, 100_000)
    client.sadd(f"{prefix}:{{registry}}:queues", "/small/q")
    http = Client(kernel)

    def work_for_one_request(path, query=None):
        before = _commands(client)
        reply = http.get(path, query=query).json()
        after = _commands(client)
        delta = {name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name, 0)}
        delta["info"] = delta.get("info", 0)
        return reply, delta

    reply_small, work_small = work_for_one_request("/canghai/api/queues")
    client.srem(f"{prefix}:{{registry}}:queues", "/small/q")
    client.sadd(f"{prefix}:{{registry}}:queues", "/big/q")
    reply_big, work_big = work_for_one_request("/canghai/api/queues")
    assert reply_small["queues"][0]["finished"] == 10 and reply_big["queues"][0]["finished"] == 100_000
    assert work_small == work_big
    # a page of the big state is bounded by the page size, not the state size
    page, work_page = work_for_one_request("/canghai/api/msgs", {"queue": "/big/q", "state": "finished"})
    assert page["total"] == 100_000 and len(page["msgs"]) == 20
    assert work_page.get("hget", 0) == 20


def test_dashboard_in_chromium(mq_kernel, mq, live_server, chromium, tmp_path):
    import butterfly_router.plugin

    # NOTE: with butterfly-router, whose console serves the pages' stylesheet and script
    kernel = mq_kernel(
        start=True,
        plugins=[butterfly_router.plugin],
        other_settings={"router.handlers_dir": str(tmp_path / "no-handlers")},
    )
    done = enqueue("/t/ok", {"n": 7}, kernel=kernel)
    failed = enqueue("/t/boom", {}, kernel=kernel, retries=0)
    mq.wait_for(
        lambda: (
            get_message(failed, kernel=kernel)["state"] == "failed"
            and get_message(done, kernel=kernel)["state"] == "finished"
        )
    )
    server = live_server(kernel)
    page = chromium.new_page()
    # NOTE: the page's clock runs as usual, but the test may move it on (``run_for``)
    # instead of waiting for the live refresh's timer.
    page.clock.install()
    try:
        page.goto(server.url + "/canghai/")
        page.wait_for_selector("#queues tbody tr[data-queue='/t/ok']")
        row = page.locator("#queues tr[data-queue='/t/boom']")
        assert row.locator("td[data-state='failed'] a").inner_text() == "1"
        assert page.locator("#instances tbody tr").count() >= 1
        page.clock.run_for(REFRESH_SECONDS * 1000)  # the refresh timer fires: a real fetch of the page
        page.locator("#live-status", has_text="updated").wait_for(timeout=10_000)  # the live refresh ran
        page.screenshot(path=str(tmp_path / "canghai-overview.png"), full_page=True)
        row.locator("td[data-state='failed'] a").click()
        page.wait_for_selector("#msgs tbody tr[data-msg]")
        assert page.locator("#msgs .pill.failed").count() == 1
        page.locator(f"#msgs tr[data-msg='{failed}'] td a").first.click()
        page.wait_for_selector("#detail")
        assert "kaboom" in page.locator("#detail").inner_text()
        page.screenshot(path=str(tmp_path / "canghai-message.png"), full_page=True)
        page.on("dialog", lambda dialog: dialog.accept())
        page.locator("button[data-post='/canghai/api/requeue']").click()
        mq.wait_for(lambda: get_message(failed, kernel=kernel)["attempts"] == 2)
    finally:
        page.close()
    assert (tmp_path / "canghai-overview.png").stat().st_size > 10_000


def test_list_values_where_text_is_expected_are_a_400(mq_kernel):
    client = Client(mq_kernel())
    for path, body in (
        ("/canghai/api/pause", {"queue": []}),
        ("/canghai/api/resume", {"queue": []}),
        ("/canghai/api/empty", {"queue": [], "state": "queued"}),
        ("/canghai/api/requeue", {"msg_id": []}),
        ("/canghai/api/delete", {"msg_id": []}),
        ("/canghai/api/enqueue", {"topic": []}),
        ("/canghai/api/enqueue_many", {"topic": [], "messages": []}),
    ):
        reply = client.post(path, json=body)
        assert reply.status == 400 and reply.json()["stat"] == "ERR_BAD_PARAMS", (path, reply.status)
