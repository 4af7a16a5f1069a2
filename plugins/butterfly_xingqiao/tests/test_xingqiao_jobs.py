"""Jobs end to end in one process: real redis-server, SQLite and PostgreSQL, the HTTP API in-process."""

from __future__ import annotations

import pytest

from butterfly_mq import get_message
from butterfly_xingqiao import jobs
from kernel.testing import Client


def create(client, job_type, **body):
    return client.post("/xingqiao/create_job", json={"job_type": job_type, **body})


def runs(counter, key) -> dict[str, int]:
    return {tag: int(n) for tag, n in counter.hgetall(key).items()}


def test_fan_out_fan_in_finishes_once_with_results(xq_kernel, store_url, counter, counter_key, xq):
    kernel = xq_kernel(store_url)
    client = Client(kernel)
    reply = create(client, "fan", job_extra={"key": counter_key, "width": 12}, job_name=f"fan-{counter_key}")
    assert reply.status == 200 and reply.json()["stat"] == "OK", reply.text
    job_id = reply.json()["job_id"]
    detail = xq.wait_job(kernel, job_id)
    assert detail["job_status"] == "finished" and detail["ret_stat"] == "OK"
    assert detail["ret_data"] == {"collect": {"total": sum(range(12)), "count": 12}}
    assert detail["tasks_finished"] == detail["tasks_total"] == 14
    assert runs(counter, counter_key) == {"start": 1, "collect": 1, **{f"part{i}": 1 for i in range(12)}}
    tasks = client.get("/xingqiao/get_tasklist_by_jobid", query={"job_id": job_id}).json()["data"]["list"]
    assert [t["task_status"] for t in tasks] == ["finished"] * 14
    assert tasks[-1]["run_params"]["values"] == list(range(12)) and tasks[-1]["upstream"] == list(range(1, 13))
    # every transition once: waiting→pending→(started)→finished per task, started→finished for the job;
    # "started" is live state written off the run's thread: a quick run may end before it is written
    seen = xq.transitions(kernel, job_id)
    assert len(seen) == len(set(seen))
    for index in range(14):
        assert [to for task, _, to in seen if task == index and to != "started"] == ["pending", "finished"]
        assert [to for task, _, to in seen if task == index].count("started") <= 1
    assert [to for task, _, to in seen if task == -1] == ["started", "finished"]
    # each task's message carried the job's reqid, as producer reqid
    message = get_message(tasks[5]["msg_id"], topic="/xq_test/work", kernel=kernel)
    assert message["reqid"] == detail["job_reqid"] and message["retries"] == 0
    # the same job_name again is refused, naming the job
    again = create(client, "fan", job_extra={"key": counter_key}, job_name=f"fan-{counter_key}")
    assert again.status == 409 and again.json()["stat"] == "ERR_JOB_EXIST" and again.json()["job_id"] == job_id
    listed = client.get("/xingqiao/list_jobs", query={"job_name": counter_key}).json()["data"]
    assert listed["total"] == 1 and listed["list"][0]["job_id"] == job_id


def test_bad_graphs_and_params_are_400_and_nothing_runs(xq_kernel, store_url, counter, counter_key):
    kernel = xq_kernel(store_url)
    client = Client(kernel)
    state = kernel.extensions["xingqiao"]
    before = jobs.list_jobs(state, page_size=1)["total"]

    reply = create(client, "no_such_type")
    assert reply.status == 400 and reply.json()["errors"][0]["param"] == "job_type"
    assert "fan" in reply.json()["errors"][0]["reason"]  # the known types are listed

    reply = create(client, "fan", job_extra={"key": counter_key, "width": "wide", "colour": 1})
    assert reply.status == 400 and reply.headers["x-reason"]
    assert {e["param"] for e in reply.json()["errors"]} == {"width", "colour"}

    reply = create(client, "loop", job_extra={"key": counter_key})
    assert reply.status == 400
    (error,) = reply.json()["errors"]
    assert error["param"] == "after" and "cycle" in error["reason"] and "→" in error["reason"]

    reply = create(client, "bad_tasks", job_extra={"key": counter_key})
    assert reply.status == 400
    found = {(e["task"], e["param"]): e["reason"] for e in reply.json()["errors"]}
    assert set(found) == {
        ("typed", "n"),  # n="many" is not an int
        ("at_all", "route"),  # no such route
        ("typed_2", "colour"),  # unknown parameter
        ("typed_3", "shade"),  # unknown parameter fed from an upstream result
        ("work_2", "tag"),  # required parameter missing
    }, found
    assert "no route /nowhere/at_all" in found[("at_all", "route")]
    assert found[("typed_3", "shade")] == "unknown parameter"  # n=first["value"] is fine by name

    reply = client.post("/xingqiao/create_job", data={"job_type": "fan", "job_extra": "[1, 2]"})
    assert reply.status == 400 and reply.json()["errors"][0]["param"] == "job_extra"
    reply = create(client, "fan", job_extra={"key": "nul\u0000"})  # PostgreSQL could not store it
    assert reply.status == 400 and reply.json()["errors"][0]["param"] == "job_extra"
    assert client.get("/xingqiao/get_job_detail", query={"job_id": 2**70}).status == 404
    assert client.get("/xingqiao/list_jobs", query={"job_id": 2**70}).json()["data"]["total"] == 0
    assert client.get("/xingqiao/list_jobs", query={"page_index": 10**12}).status == 400
    assert client.get("/xingqiao/list_jobs", query={"job_name": "a\u0000"}).status == 400

    assert jobs.list_jobs(state, page_size=1)["total"] == before  # nothing stored
    assert counter.hgetall(counter_key) == {}  # nothing ran
    service = kernel.extensions["mq"]
    from butterfly_mq.queue import Queue

    counts = Queue(service.client, "/xq_test/work", service.config.prefix).counts()
    assert counts["queued"] + counts["finished"] + counts["started"] == 0  # nothing enqueued


def test_failing_task_retried_then_retry_job_after_the_fix(xq_kernel, store_url, counter, counter_key, xq):
    kernel = xq_kernel(store_url)
    client = Client(kernel)
    counter.sadd(f"{counter_key}:broken", "weak")
    job_id = create(client, "fragile", job_extra={"key": counter_key, "retries": 2}).json()["job_id"]
    detail = xq.wait_job(kernel, job_id)
    assert detail["job_status"] == "failed" and detail["ret_stat"] == "ERR_JOB_EXE_FAILED"
    assert runs(counter, counter_key) == {"first": 1, "weak": 3}  # 1 run + 2 retries, "last" never ran
    tasks = {t["task_label"]: t for t in jobs.get_tasklist(kernel.extensions["xingqiao"], job_id)}
    assert tasks["fragile"]["task_status"] == "failed" and tasks["fragile"]["ret_stat"] == "ERR_BROKEN"
    assert tasks["fragile"]["attempts"] == 3 and "attempt 3: ERR_BROKEN" in tasks["fragile"]["error"]
    assert tasks["work_2"]["task_status"] == "waiting"

    assert client.post("/xingqiao/cancel_job", json={"job_id": job_id}).status == 409  # not running
    counter.srem(f"{counter_key}:broken", "weak")  # fix the cause
    reply = client.post("/xingqiao/retry_job", json={"job_id": job_id})
    assert reply.status == 200 and reply.json()["retried"] == 1, reply.text
    detail = xq.wait_job(kernel, job_id)
    assert detail["job_status"] == "finished" and detail["run"] == 2
    assert runs(counter, counter_key) == {"first": 1, "weak": 4, "last": 1}  # only the failed task ran again
    assert detail["ret_data"] == {"work_2": {"value": 4, "tag": "last"}}
    assert client.post("/xingqiao/retry_job", json={"job_id": job_id}).json()["stat"] == "ERR_JOB_STATUS"
    seen = xq.transitions(kernel, job_id)
    assert len(seen) == len(set(seen))
    assert [(t, a) for t, a, s in seen if t == -1] == [(-1, 1), (-1, 1), (-1, 2), (-1, 2)]  # started, failed, again


def test_exception_retries_and_a_missing_upstream_value(xq_kernel, store_url, counter, counter_key, xq):
    kernel = xq_kernel(store_url)
    state = kernel.extensions["xingqiao"]
    job_id = jobs.create_job(state, "explodes", job_extra={"key": counter_key})["job_id"]
    assert xq.wait_job(kernel, job_id)["job_status"] == "failed"
    assert runs(counter, counter_key) == {"explode": 3}
    (task,) = jobs.get_tasklist(state, job_id)
    assert task["ret_stat"] == "ERR_SERVER_EXCEPTION" and "RuntimeError: boom" in task["error"]

    job_id = jobs.create_job(state, "nul_result", job_extra={"key": counter_key})["job_id"]
    detail = xq.wait_job(kernel, job_id)
    assert detail["job_status"] == "finished" and detail["ret_data"]["typed"]["names"] == ["a\ufffdb"]

    job_id = jobs.create_job(state, "missing_value", job_extra={"key": counter_key})["job_id"]
    assert xq.wait_job(kernel, job_id)["job_status"] == "failed"
    typed = jobs.get_tasklist(state, job_id)[1]
    assert typed["task_status"] == "failed" and typed["ret_stat"] == "ERR_BAD_PARAMS"
    assert "no_such_key" in typed["error"] and typed["msg_id"] and typed["run_params"] is None  # never sent


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_cancel_stops_pending_tasks(xq_kernel, store_url, counter, counter_key, xq):
    kernel = xq_kernel(store_url)
    client = Client(kernel)
    state = kernel.extensions["xingqiao"]
    job_id = jobs.create_job(state, "slow_start", job_extra={"key": counter_key, "seconds": 1.0})["job_id"]
    started = jobs.create_job(state, "chain", job_extra={"key": counter_key + "b", "length": 2})["job_id"]
    assert xq.wait_job(kernel, started)["job_status"] == "finished"
    xq.wait_for(lambda: jobs.get_tasklist(state, job_id)[0]["task_status"] == "started")
    assert client.post("/xingqiao/delete_job", json={"job_id": job_id}).status == 409  # still running
    reply = client.post("/xingqiao/cancel_job", json={"job_id": job_id})
    assert reply.status == 200 and reply.json()["canceled"] == 4
    detail = jobs.get_job_detail(state, job_id)
    assert detail["job_status"] == "canceled" and detail["ret_stat"] == "ERR_JOB_CANCELED"
    xq.wait_for(lambda: counter.hget(counter_key, "slow"))  # the running task finishes...
    import time

    time.sleep(0.5)
    assert runs(counter, counter_key) == {"slow": 1}  # ...and nothing after it ever runs
    assert {t["task_status"] for t in jobs.get_tasklist(state, job_id)} == {"canceled"}
    assert client.post("/xingqiao/delete_job", json={"job_id": job_id}).status == 200
    assert client.get("/xingqiao/get_job_detail", query={"job_id": job_id}).status == 404


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_task_timeout_and_job_timeout(xq_kernel, store_url, counter, counter_key, xq):
    kernel = xq_kernel(store_url)
    state = kernel.extensions["xingqiao"]
    job_id = jobs.create_job(state, "slow_start", job_extra={"key": counter_key, "seconds": 1.5, "timeout": 0.3})[
        "job_id"
    ]
    detail = xq.wait_job(kernel, job_id, timeout=10)
    assert detail["job_status"] == "failed"
    first = jobs.get_tasklist(state, job_id)[0]
    assert first["ret_stat"] == "ERR_TIMEOUT" and "timeout" in first["error"]
    timed = jobs.create_job(state, "slow_start", job_extra={"key": counter_key + "b", "seconds": 1.5}, job_timeout=0.4)[
        "job_id"
    ]
    detail = xq.wait_job(kernel, timed, timeout=10)
    assert detail["job_status"] == "failed" and detail["ret_stat"] == "ERR_JOB_EXE_TIMEOUT"


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_routes_are_admin_and_method_bound_and_draw_svg(xq_kernel, store_url, counter_key, xq):
    kernel = xq_kernel(store_url)
    client = Client(kernel)
    job_id = create(client, "fan", job_extra={"key": counter_key, "width": 3}).json()["job_id"]
    xq.wait_job(kernel, job_id)
    assert client.get("/xingqiao/create_job", query={"job_type": "fan"}).status == 405
    assert client.get("/xingqiao/cancel_job", query={"job_id": job_id}).status == 405
    assert client.post("/xingqiao/get_job_detail", json={"job_id": job_id}).status == 405
    assert client.get("/xingqiao/list_jobs", remote_addr="203.0.113.9").status == 403
    assert client.get("/xingqiao/get_job_detail", query={"job_id": "x"}).status == 400
    assert client.get("/xingqiao/get_job_detail", query={"job_id": 10**9}).json()["stat"] == "ERR_JOB_NOT_EXIST"
    svg = client.get("/xingqiao/get_graph", query={"job_id": job_id})
    assert svg.status == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text.startswith("<svg") and svg.text.count('class="task finished"') == 5
    assert "default-src 'none'" in svg.headers["content-security-policy"]
    assert client.get("/xingqiao/get_graph", query={"job_id": job_id, "direction": "up"}).status == 400
    types = client.get("/xingqiao/list_job_types").json()["data"]["list"]
    fan = next(t for t in types if t["job_type"] == "fan")
    assert [p["name"] for p in fan["params"]] == ["key", "width", "seconds"]


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_very_large_job_is_listed_not_drawn_on_its_page(xq_kernel, store_url, counter_key):
    kernel = xq_kernel(store_url, start=False)
    client = Client(kernel)
    job_id = create(client, "fan", job_extra={"key": counter_key, "width": 600}).json()["job_id"]
    page = client.get("/xingqiao/job", query={"job_id": job_id})
    assert page.status == 200 and "open the graph" in page.text and "<svg" not in page.text
    assert page.text.count("<tr data-status=") == 500 and "… and 102 more" in page.text
    assert client.get("/xingqiao/get_graph", query={"job_id": job_id}).text.count('class="task ') == 602
    assert client.get("/xingqiao/job", query={"job_id": "x"}).status == 400
    assert client.get("/xingqiao/job").status == 400
    assert client.get("/xingqiao/job", query={"job_id": 10**30}).status == 400  # past the documented maximum
    assert client.get("/xingqiao/job", query={"job_id": 2**63 - 1}).status == 404
