"""The access log: one JSON line per request and per in-process call."""

from __future__ import annotations

import datetime as dt
import io
import json
import sys
import time

import pytest

from kernel.testing import Client

FIELDS = [
    "time",
    "ip",
    "reqid",
    "parent_reqid",
    "trace_id",
    "span_id",
    "method",
    "path",
    "status",
    "stat",
    "cost",
    "user",
    "talk",
    "params",
    "error",
    "res",
]


def test_access_line_has_every_field(trace_kernel, read_json_lines):
    kernel = trace_kernel()
    response = Client(kernel).get("/ok", query={"a": "1", "b": "two"})
    (line,) = read_json_lines(kernel.log_dir / "acc.log")
    assert list(line) == FIELDS
    assert line["ip"] == "127.0.0.1"
    assert line["reqid"] == response.headers["x-reqid"]
    assert line["parent_reqid"] is None
    assert (line["method"], line["path"], line["status"], line["stat"]) == ("GET", "/ok", 200, "OK")
    assert isinstance(line["cost"], float) and line["cost"] >= 0
    assert line["user"] is None
    assert set(line["talk"]) == {"db", "render"}
    assert line["params"] == {"a": "1", "b": "two"}
    assert line["error"] is None
    assert line["res"] == ["rows=3"]
    # UTC, ISO 8601, as app.log: 2024-05-01T12:00:00.123456Z
    stamp = dt.datetime.fromisoformat(line["time"])
    assert line["time"].endswith("Z") and stamp.utcoffset() == dt.timedelta(0)
    assert abs(stamp.timestamp() - time.time()) < 3600
    assert f"00-{line['trace_id']}-{line['span_id']}-01" == response.headers["traceparent"]


def test_error_and_status_of_failures(trace_kernel, read_json_lines):
    kernel = trace_kernel()
    client = Client(kernel)
    client.get("/missing")
    client.get("/boom")
    missing, boom = read_json_lines(kernel.log_dir / "acc.log")
    assert (missing["status"], missing["stat"], missing["error"]) == (404, "ERR_NOT_FOUND", "no route for /missing")
    assert (boom["status"], boom["stat"]) == (500, "ERR_SERVER_EXCEPTION")
    assert boom["error"] == "ZeroDivisionError: division by zero in boom"


def test_secrets_are_redacted(trace_kernel, read_json_lines, read_lines):
    kernel = trace_kernel({"trace.redact_keys": ["ssn"]})
    secrets = {
        "password": "s3cret-pw",
        "Authorization": "Bearer abc.def",
        "api_key": "k-123",
        "X-Api-Key": "k-456",
        "access_token": "tok-789",
        "session_cookie": "c-1",
        "my_ssn": "078-05",
        # the kernel's rule (kernel.redaction.is_secret_name): "key" as the last word
        "s|ssh_key": "ssh-ed25519 AAAA",
        "privateKey": "-----BEGIN",
        "key": "k-0",
    }
    harmless = {"name": "alice", "monkey": "george", "key_count": "3"}
    Client(kernel).post("/ok", json={**secrets, **harmless})
    (line,) = read_json_lines(kernel.log_dir / "acc.log")
    assert line["params"] == {**dict.fromkeys(secrets, "***"), **harmless}
    text = "\n".join(read_lines(kernel.log_dir / "acc.log"))
    assert not any(value in text for value in secrets.values())


def test_nested_secrets_and_long_values(trace_kernel, read_json_lines):
    kernel = trace_kernel()
    kernel.call(
        "/ok",
        {
            "profile": {"name": "bob", "newPassword": "p"},
            "blob": "y" * 5000,
            "items": list(range(100)),
            "raw": b"\x00" * 10,
        },
    )
    params = read_json_lines(kernel.log_dir / "acc.log")[-1]["params"]
    assert params["profile"] == {"name": "bob", "newPassword": "***"}
    assert params["blob"].startswith("y" * 256) and params["blob"].endswith("…(+4744 chars)")
    assert len(params["items"]) == 33 and params["items"][-1] == "… 68 more"
    assert params["raw"] == "<10 bytes>"


def test_in_process_calls_log_their_source_as_method(trace_kernel, read_json_lines):
    kernel = trace_kernel()
    kernel.call("/ok", {"a": "1"}, source="mq", parent_reqid="parent-1", reqid="msg-1", user="alice")
    kernel.call("/ok", {}, source="cli")
    kernel.call("/ok", {}, source="ruqi")
    queue, cli, ruqi = read_json_lines(kernel.log_dir / "acc.log")
    assert (queue["method"], queue["reqid"], queue["parent_reqid"], queue["user"], queue["ip"]) == (
        "QUEUE",
        "msg-1",
        "parent-1",
        "alice",
        "local",
    )
    assert queue["params"] == {"a": "1"}
    assert cli["method"] == "CLI" and ruqi["method"] == "RUQI"


def test_user_never_comes_from_a_client_header(trace_kernel, read_json_lines):
    kernel = trace_kernel()
    Client(kernel).get("/ok", headers={"X-Username": "admin", "X-User": "root"})
    assert read_json_lines(kernel.log_dir / "acc.log")[-1]["user"] is None


def test_nested_call_gets_the_outer_request_as_parent(trace_kernel, read_json_lines):
    kernel = trace_kernel()
    outer = Client(kernel).get("/nested")
    inner_line, outer_line = read_json_lines(kernel.log_dir / "acc.log")
    assert outer_line["reqid"] == outer.headers["x-reqid"]
    assert inner_line["method"] == "CLI" and inner_line["parent_reqid"] == outer_line["reqid"]
    assert inner_line["reqid"] != outer_line["reqid"]


def test_params_are_never_forced_from_the_body(trace_kernel, read_json_lines):
    kernel = trace_kernel()
    body = b'{"password": "' + b"x" * 2_000_000 + b'"}'
    for path in ("/missing", "/raw"):
        stream = io.BytesIO(body)
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "REMOTE_ADDR": "127.0.0.1",
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": stream,
            "wsgi.errors": sys.stderr,
        }
        statuses = []
        b"".join(kernel(environ, lambda status, headers, exc_info=None, statuses=statuses: statuses.append(status)))
        assert stream.tell() == 0, f"{path} read the body"
        assert statuses[0].startswith("404" if path == "/missing" else "200")
    lines = read_json_lines(kernel.log_dir / "acc.log")
    assert [line["params"] for line in lines] == [None, None]


def test_access_log_can_be_switched_off(trace_kernel):
    kernel = trace_kernel({"trace.access_log": False})
    assert Client(kernel).get("/ok").status == 200
    assert not (kernel.log_dir / "acc.log").exists()


def test_hostile_values_cannot_break_a_line(trace_kernel, read_json_lines):
    kernel = trace_kernel()
    Client(kernel).get('/ok\n{"fake": 1}', query={"a\tb": 'line\nbreak"quote\u2028'})
    Client(kernel).get("/ok", query={"x": "1"})
    first, second = read_json_lines(kernel.log_dir / "acc.log")
    assert first["path"] == '/ok\n{"fake": 1}' and first["status"] == 404
    assert second["params"] == {"x": "1"}


def test_console_format_is_one_readable_line(trace_kernel, read_lines):
    kernel = trace_kernel({"server.log_format": "console"})
    reqid = Client(kernel).get("/ok", query={"password": "pw", "note": "two words"}).headers["x-reqid"]
    (line,) = read_lines(kernel.log_dir / "acc.log")
    assert f" 127.0.0.1 {reqid} GET /ok 200 OK cost=" in line
    assert "talk=db=" in line and '"password":"***"' in line and '"two words"' in line
    assert '"pw"' not in line and "=pw" not in line
    with pytest.raises(ValueError):
        json.loads(line)


def test_write_failure_does_not_fail_requests(trace_kernel, read_lines):
    from butterfly_trace.files import RotatingWriter
    from butterfly_trace.state import get_state

    kernel = trace_kernel()
    access_log = get_state(kernel).access_log
    access_log.writer = RotatingWriter("/dev/full", 0, 0)  # a real ENOSPC on every write
    try:
        client = Client(kernel)
        assert [client.get("/ok").status for _ in range(3)] == [200, 200, 200]
    finally:
        access_log.writer.close()
    failures = [line for line in read_lines(kernel.log_dir / "err.log") if "access log write failed" in line]
    assert len(failures) == 1  # reported once, not per request
