"""W3C Trace Context: ``traceparent`` accepted, answered, logged, and carried through MQ."""

from __future__ import annotations

import pytest

from butterfly_trace.traceparent import Incoming, parse
from kernel.testing import Client, wait_for

from .servers import Server, json_lines, mq_pair

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{PARENT}-01"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (VALID, Incoming(TRACE, PARENT, "01")),
        (f"00-{TRACE}-{PARENT}-00", Incoming(TRACE, PARENT, "00")),
        (f" {VALID}\t", Incoming(TRACE, PARENT, "01")),  # optional whitespace around a header value
        # a later version is read by its version-00 prefix, with or without more fields
        (f"cc-{TRACE}-{PARENT}-01", Incoming(TRACE, PARENT, "01")),
        (f"cc-{TRACE}-{PARENT}-01-what-the-future-holds", Incoming(TRACE, PARENT, "01")),
    ],
)
def test_valid_traceparent(value, expected):
    assert parse(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        f"ff-{TRACE}-{PARENT}-01",  # version ff is forbidden
        f"00-{'0' * 32}-{PARENT}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"00-{TRACE.upper()}-{PARENT}-01",  # upper case
        f"00-{TRACE}-{PARENT}-01-extra",  # version 00 has exactly four fields
        f"00-{TRACE}-{PARENT}-1",
        f"00-{TRACE[:-1]}-{PARENT}-01",
        f"00-{TRACE}-{PARENT}-0g",
        f"0-{TRACE}-{PARENT}-01",
        f"cc-{TRACE}-{PARENT}-01.more",  # later versions: more fields only after a dash
        f"00_{TRACE}_{PARENT}_01",
        VALID + "x" * 600,
    ],
)
def test_invalid_traceparent(value):
    assert parse(value) is None


def split(traceparent: str) -> tuple[str, str, str, str]:
    version, trace_id, span_id, flags = traceparent.split("-")
    return version, trace_id, span_id, flags


def test_an_incoming_traceparent_is_continued_with_a_span_of_our_own(trace_kernel, read_json_lines):
    kernel = trace_kernel()
    reply = Client(kernel).get("/ok", headers={"traceparent": VALID, "X-Request-Id": "caller-1"})
    version, trace_id, span_id, flags = split(reply.headers["traceparent"])
    assert (version, trace_id, flags) == ("00", TRACE, "01")
    assert span_id != PARENT and len(span_id) == 16 and int(span_id, 16)
    assert reply.headers["x-reqid"] == "caller-1"  # x-reqid unchanged beside it
    (line,) = read_json_lines(kernel.log_dir / "acc.log")
    assert (line["trace_id"], line["span_id"], line["reqid"]) == (TRACE, span_id, "caller-1")
    app = [entry for entry in read_json_lines(kernel.log_dir / "app.log") if entry["event"] == "handling ok"]
    assert (app[0]["trace_id"], app[0]["span_id"]) == (TRACE, span_id)


def test_the_sampled_flag_is_kept(trace_kernel):
    reply = Client(trace_kernel()).get("/ok", headers={"traceparent": f"00-{TRACE}-{PARENT}-00"})
    assert split(reply.headers["traceparent"])[3] == "00"


@pytest.mark.parametrize("bad", ["nonsense", f"ff-{TRACE}-{PARENT}-01", f"00-{'0' * 32}-{PARENT}-01", "x" * 5000])
def test_an_invalid_traceparent_starts_a_new_trace_and_never_fails(trace_kernel, bad):
    reply = Client(trace_kernel()).get("/ok", headers={"traceparent": bad})
    assert reply.status == 200
    version, trace_id, _span_id, flags = split(reply.headers["traceparent"])
    assert version == "00" and trace_id != TRACE and len(trace_id) == 32 and int(trace_id, 16) and flags == "01"


def test_every_request_starts_its_own_trace_without_one(trace_kernel):
    client = Client(trace_kernel())
    first, second = (split(client.get("/ok").headers["traceparent"]) for _ in range(2))
    assert first[1] != second[1] and first[2] != second[2]


def test_an_in_process_call_is_a_child_span_of_its_request(trace_kernel, read_json_lines):
    kernel = trace_kernel()
    reply = Client(kernel).get("/nested", headers={"traceparent": VALID})
    _, _trace_id, span_id, _ = split(reply.headers["traceparent"])
    inner, outer = read_json_lines(kernel.log_dir / "acc.log")
    assert (outer["path"], inner["path"]) == ("/nested", "/ok")
    assert inner["trace_id"] == outer["trace_id"] == TRACE
    assert outer["span_id"] == span_id and inner["span_id"] not in (span_id, PARENT)


# -- across two real server processes, through the real MQ -------------------------------------


@pytest.mark.slow
def test_a_message_enqueued_in_a_request_continues_its_trace_in_another_server(tmp_path, redis_server):
    pytest.importorskip("butterfly_mq")  # a sibling, not a dependency of this distribution
    producer, consumer = mq_pair(tmp_path, redis_server.url)
    try:
        producer.start()
        consumer.start()
        body, headers = producer.get("/probe/front", headers={"traceparent": VALID})
        _, trace_id, front_span, _ = split(headers["traceparent"])
        assert trace_id == TRACE

        def consumed() -> list[dict]:
            return [line for line in json_lines(consumer.log_dir / "acc.log") if line["path"] == "/probe/back"]

        (run,) = wait_for(consumed, what="the consumer's run")
        assert (run["method"], run["reqid"], run["status"]) == ("QUEUE", body["msg_id"], 200)
        assert run["parent_reqid"] == headers["x-reqid"]
        assert run["trace_id"] == TRACE and run["span_id"] not in (front_span, PARENT)
        (front,) = wait_for(
            lambda: [line for line in json_lines(producer.log_dir / "acc.log") if line["path"] == "/probe/front"],
            what="the producer's line",  # written off the request thread, moments after the reply
        )
        assert (front["trace_id"], front["span_id"]) == (TRACE, front_span)
        assert producer.stop() == 0 and consumer.stop() == 0
    finally:
        producer.kill()
        consumer.kill()


# -- ruqi: each run starts a trace; an http job sends it as traceparent ------------------------


def job(job_id: str, **fields) -> dict:
    return {"job_id": job_id, "job_trigger": "cron", "rule": "0 0 3 * * *", "payload": {}, **fields}


def finished_runs(kernel, job_id: str) -> list[dict]:
    lines = json_lines(kernel.log_dir / "app.log")
    return [line for line in lines if line["event"] == "ruqi run finished" and line.get("job_id") == job_id]


@pytest.mark.slow
def test_each_ruqi_run_starts_a_trace_and_an_http_job_sends_it(ruqi_with_trace, tmp_path):
    kernel = ruqi_with_trace
    client = Client(kernel)
    target = Server(tmp_path / "target").start()  # a real server process the http job calls
    try:
        assert (
            client.post("/ruqi/add_job", json=job("local", job_type="handler", target="/ruqi_test/tick")).status == 200
        )
        url = f"http://127.0.0.1:{target.port}/probe/pid"
        added = client.post("/ruqi/add_job", json=job("remote", job_type="http", target=url, options={"method": "GET"}))
        assert added.status == 200, added.text
        for job_id in ("local", "local", "remote"):
            count = len(finished_runs(kernel, job_id))
            client.post("/ruqi/run_job", json={"job_id": job_id})
            wait_for(lambda job_id=job_id, count=count: len(finished_runs(kernel, job_id)) > count, what=job_id)
        kernel.extensions["trace"].access_log.flush()

        local = finished_runs(kernel, "local")
        assert len({run["trace_id"] for run in local}) == 2  # one trace per run
        calls = [line for line in json_lines(kernel.log_dir / "acc.log") if line["path"] == "/ruqi_test/tick"]
        assert [call["method"] for call in calls] == ["RUQI", "RUQI"]
        assert [call["trace_id"] for call in calls] == [run["trace_id"] for run in local]
        assert all(call["span_id"] != run["span_id"] for call, run in zip(calls, local, strict=True))

        (remote,) = finished_runs(kernel, "remote")
        assert remote["ok"] is True
        (served,) = wait_for(
            lambda: [line for line in json_lines(target.log_dir / "acc.log") if line["path"] == "/probe/pid"],
            what="the target's line",  # written off the request thread, moments after the reply
        )
        assert served["trace_id"] == remote["trace_id"] and served["span_id"] != remote["span_id"]
    finally:
        target.kill()
