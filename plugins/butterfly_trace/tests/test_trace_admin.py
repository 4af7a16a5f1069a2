"""Admin endpoints: runtime log level, stack dump, metrics."""

from __future__ import annotations

import logging

import pytest

from kernel import ConfigError
from kernel.testing import Client


def test_get_and_set_log_level(trace_kernel, read_json_lines):
    kernel = trace_kernel()
    client = Client(kernel)
    assert client.get("/_trace/loglevel").json() == {"stat": "OK", "level": "INFO"}
    reply = client.post("/_trace/loglevel", query={"level": "debug"})
    assert reply.status == 200 and reply.json() == {"stat": "OK", "level": "DEBUG", "previous": "INFO"}
    assert logging.getLogger().level == logging.DEBUG
    assert client.get("/_trace/loglevel").json()["level"] == "DEBUG"
    logging.getLogger("tests.trace_admin").debug("now visible")
    assert "now visible" in [line["event"] for line in read_json_lines(kernel.log_dir / "app.log")]
    changes = [line for line in read_json_lines(kernel.log_dir / "err.log") if line["event"] == "log level changed"]
    assert changes[0]["new_level"] == "DEBUG" and changes[0]["previous_level"] == "INFO"


def test_set_log_level_with_json_body_and_in_process(trace_kernel):
    kernel = trace_kernel()
    assert Client(kernel).post("/_trace/loglevel", json={"level": "WARNING"}).json()["level"] == "WARNING"
    assert kernel.call("/_trace/loglevel", {"level": "error"}).data["level"] == "ERROR"
    assert kernel.call("/_trace/loglevel").data == {"stat": "OK", "level": "ERROR"}


@pytest.mark.parametrize("query", [{"level": "LOUD"}, {}, {"level": ""}])
def test_bad_log_level_is_400(trace_kernel, query):
    client = Client(trace_kernel())
    reply = client.post("/_trace/loglevel", query=query)
    assert reply.status == 400
    body = reply.json()
    assert body["stat"] == "ERR_BAD_PARAMS"
    assert body["errors"][0]["param"] == "level" and "DEBUG" in body["errors"][0]["reason"]
    assert reply.headers["x-reason"].startswith("bad level")
    assert client.get("/_trace/loglevel").json()["level"] == "INFO"  # unchanged


def test_log_level_wrong_method(trace_kernel):
    assert Client(trace_kernel()).request("DELETE", "/_trace/loglevel").status == 405


@pytest.mark.parametrize("path", ["/_trace/loglevel", "/_trace/stacks", "/_trace/metrics"])
def test_admin_routes_refuse_remote_clients(trace_kernel, path):
    client = Client(trace_kernel())
    assert client.get(path, remote_addr="192.0.2.10").status == 403
    assert client.get(path, headers={"X-Forwarded-For": "192.0.2.10"}).status == 403  # proxied = remote
    assert client.post("/_trace/loglevel", query={"level": "DEBUG"}, remote_addr="192.0.2.10").status == 403
    assert logging.getLogger().level != logging.DEBUG
    assert client.get(path).status == 200  # loopback


def test_stack_dump_lists_threads_with_stacks(trace_kernel):
    body = Client(trace_kernel()).get("/_trace/stacks").json()
    assert body["stat"] == "OK"
    main = [thread for thread in body["threads"] if thread["name"] == "MainThread"]
    assert len(main) == 1
    assert set(main[0]) == {"name", "ident", "daemon", "stack"}
    assert any("test_stack_dump_lists_threads_with_stacks" in frame for frame in main[0]["stack"])
    assert "in thread_stacks" in main[0]["stack"][-1]


def test_metrics_in_prometheus_text_format(trace_kernel):
    kernel = trace_kernel()
    client = Client(kernel)
    for _ in range(3):
        client.get("/ok")
    client.get("/no/such/path")
    client.get("/other/unknown")
    kernel.call("/ok", {}, source="mq")
    reply = client.get("/_trace/metrics")
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = reply.text
    assert 'butterfly_requests_total{path="/ok",method="GET",status="200"} 3' in text
    assert 'butterfly_requests_total{path="/ok",method="QUEUE",status="200"} 1' in text
    assert 'butterfly_requests_total{path="<unmatched>",method="GET",status="404"} 2' in text
    assert 'butterfly_request_duration_seconds_bucket{path="/ok",le="+Inf"} 4' in text
    assert 'butterfly_request_duration_seconds_count{path="/ok"} 4' in text
    buckets = [
        int(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith('butterfly_request_duration_seconds_bucket{path="/ok"')
    ]
    assert buckets == sorted(buckets)  # cumulative
    assert "# TYPE butterfly_request_duration_seconds histogram" in text


def test_metrics_can_be_switched_off(trace_kernel):
    kernel = trace_kernel({"trace.metrics": False})
    assert Client(kernel).get("/_trace/metrics").status == 404


def test_odd_methods_do_not_grow_metrics(trace_kernel):
    from butterfly_trace.state import get_state

    kernel = trace_kernel()
    client = Client(kernel)
    for method in ("BREW", "PROPFIND", "X-1"):
        client.request(method, "/raw")
    assert [key[1] for key in get_state(kernel).metrics.requests] == ["OTHER"]


@pytest.mark.parametrize(
    ("key", "value"),
    [("log_max_bytes", -1), ("log_backups", "many"), ("slow_threshold", -0.5), ("access_log", "maybe")],
)
def test_bad_settings_are_config_errors(trace_kernel, key, value):
    with pytest.raises(ConfigError, match=rf"\[trace\] {key}"):
        trace_kernel({f"trace.{key}": value})
