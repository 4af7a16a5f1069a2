"""Every task of a job runs in the job's W3C trace, linked to the request that created it."""

from __future__ import annotations

import json

from butterfly_mq import get_message
from kernel.testing import Client

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_tasks_of_a_job_share_its_trace(xq_kernel, store_url, counter, counter_key, xq):
    kernel = xq_kernel(store_url)
    client = Client(kernel)
    reply = client.post(
        "/xingqiao/create_job",
        json={"job_type": "chain", "job_extra": {"key": counter_key, "length": 3}},
        headers={"traceparent": TRACEPARENT},
    )
    assert reply.status == 200, reply.text
    job_id = reply.json()["job_id"]
    detail = xq.wait_job(kernel, job_id)
    assert detail["job_status"] == "finished"
    job_trace = detail["job_trace_id"]
    assert len(job_trace) == 32 and int(job_trace, 16)
    # the creating request (in the caller's trace) names the job's trace
    (created,) = [line for line in lines(kernel.log_dir / "app.log") if line["event"] == "xingqiao job created"]
    assert created["trace_id"] == TRACEPARENT.split("-")[1] and created["job_trace_id"] == job_trace
    # each task's message carries it, and each run continues it
    tasks = client.get("/xingqiao/get_tasklist_by_jobid", query={"job_id": job_id}).json()["data"]["list"]
    for task in tasks:
        message = get_message(task["msg_id"], topic="/xq_test/work", kernel=kernel)
        assert message["traceparent"].split("-")[1] == job_trace
    kernel.extensions["trace"].access_log.flush()
    msg_ids = {task["msg_id"] for task in tasks}
    runs = [line for line in lines(kernel.log_dir / "acc.log") if line["reqid"] in msg_ids]
    assert len(runs) == 3 and {run["trace_id"] for run in runs} == {job_trace}
    assert len({run["span_id"] for run in runs}) == 3


def test_the_creating_requests_tracestate_stays_with_its_own_trace(xq_kernel, store_url, counter, counter_key, xq):
    # a job's trace is a trace of its own: the tracestate of the request that created it is not carried
    kernel = xq_kernel(store_url)
    client = Client(kernel)
    tracestate = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
    reply = client.post(
        "/xingqiao/create_job",
        json={"job_type": "chain", "job_extra": {"key": counter_key, "length": 2}},
        headers={"traceparent": TRACEPARENT, "tracestate": tracestate},
    )
    assert reply.status == 200, reply.text
    job_id = reply.json()["job_id"]
    assert xq.wait_job(kernel, job_id)["job_status"] == "finished"
    (created,) = [line for line in lines(kernel.log_dir / "app.log") if line["event"] == "xingqiao job created"]
    assert created["tracestate"] == tracestate  # the creating request keeps its own
    tasks = client.get("/xingqiao/get_tasklist_by_jobid", query={"job_id": job_id}).json()["data"]["list"]
    assert len(tasks) == 2
    for task in tasks:
        message = get_message(task["msg_id"], topic="/xq_test/work", kernel=kernel)
        assert message["traceparent"] and "tracestate" not in message
    kernel.extensions["trace"].access_log.flush()
    msg_ids = {task["msg_id"] for task in tasks}
    runs = [line for line in lines(kernel.log_dir / "acc.log") if line["reqid"] in msg_ids]
    assert len(runs) == 2 and not [run for run in runs if "tracestate" in run]
    (creating,) = [line for line in lines(kernel.log_dir / "acc.log") if line["path"] == "/xingqiao/create_job"]
    assert creating["tracestate"] == tracestate
