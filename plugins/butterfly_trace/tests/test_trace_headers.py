"""x-reqid, x-cost and Server-Timing on every reply; incoming X-Request-Id handling."""

from __future__ import annotations

import re
import urllib.request

import pytest

from kernel.testing import Client

HEX16 = re.compile(r"[0-9a-f]{16}")
COST = re.compile(r"\d+\.\d{6}")


@pytest.mark.parametrize(("path", "status"), [("/ok", 200), ("/missing", 404), ("/boom", 500)])
def test_trace_headers_on_every_status(trace_kernel, path, status):
    response = Client(trace_kernel()).get(path)
    assert response.status == status
    assert HEX16.fullmatch(response.headers["x-reqid"])
    assert COST.fullmatch(response.headers["x-cost"])
    timing = response.headers["server-timing"]
    assert re.search(r"(^|, )total;dur=\d+\.\d{3}$", timing), timing


def test_server_timing_lists_timing_points(trace_kernel):
    timing = Client(trace_kernel()).get("/ok").headers["server-timing"]
    names = [part.split(";")[0] for part in timing.split(", ")]
    assert names == ["db", "render", "total"]
    for part in timing.split(", "):
        assert re.fullmatch(r"[A-Za-z0-9_.-]+;dur=\d+\.\d{3}", part), part


def test_server_timing_sanitises_names():
    from butterfly_trace.headers import server_timing

    header = server_timing({"my db;x, y\r\n": 1.5}, 2.0)
    assert header == "my_db_x__y__;dur=1.500, total;dur=2.000"


def test_each_request_gets_a_new_reqid(trace_kernel):
    client = Client(trace_kernel())
    ids = {client.get("/raw").headers["x-reqid"] for _ in range(50)}
    assert len(ids) == 50


@pytest.mark.parametrize("incoming", ["abc-123", "a", "x" * 64, "2f1c.9:A_b-c", "123e4567-e89b-12d3-a456-426614174000"])
def test_safe_incoming_request_id_is_kept(trace_kernel, incoming, read_json_lines):
    kernel = trace_kernel()
    response = Client(kernel).get("/ok", headers={"X-Request-Id": incoming})
    assert response.headers["x-reqid"] == incoming
    assert read_json_lines(kernel.log_dir / "acc.log")[-1]["reqid"] == incoming


@pytest.mark.parametrize(
    "incoming",
    [
        "x" * 65,
        "",
        "has space",
        "semi;colon",
        'quote"d',
        "caf\u00e9",
        "abc\r\nSet-Cookie: pwned=1",
        "abc\n",
        "<script>",
    ],
)
def test_unsafe_incoming_request_id_is_replaced(trace_kernel, incoming):
    response = Client(trace_kernel()).get("/ok", headers={"X-Request-Id": incoming})
    assert response.status == 200
    assert HEX16.fullmatch(response.headers["x-reqid"])
    assert "set-cookie" not in response.headers


def test_in_process_call_keeps_preset_reqid(trace_kernel, read_json_lines):
    kernel = trace_kernel()
    response = kernel.call("/ok", {"a": "1"}, source="mq", reqid="msg-0001")
    assert response.get_header("x-reqid") == "msg-0001"
    assert read_json_lines(kernel.log_dir / "acc.log")[-1]["reqid"] == "msg-0001"


def test_in_process_call_ignores_nothing_and_generates(trace_kernel):
    response = trace_kernel().call("/ok", {}, source="cli")
    assert HEX16.fullmatch(response.get_header("x-reqid"))


def test_no_version_or_host_leaks_over_real_http(trace_kernel, live_server):
    import socket

    server = live_server(trace_kernel())
    with urllib.request.urlopen(server.url + "/ok?a=1", timeout=10) as reply:
        headers = {k.lower(): v for k, v in reply.headers.items()}
        assert reply.status == 200
    assert HEX16.fullmatch(headers["x-reqid"])
    assert "server" not in headers
    assert not any(name.startswith("butterfly") for name in headers)
    hostname = socket.gethostname()
    assert all(hostname not in value for value in headers.values())
