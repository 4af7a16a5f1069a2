"""W3C ``tracestate``: checked, kept with the trace, logged, carried; never echoed, never an error."""

from __future__ import annotations

import socket

import pytest

from butterfly_trace.tracestate import MAX_HEADER_LENGTH, MAX_MEMBERS, MAX_PROPAGATED, parse
from kernel.testing import Client, wait_for

from .servers import Server, json_lines, mq_pair
from .test_trace_context import finished_runs, job

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{PARENT}-01"
STATE = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"


def members(count: int, width: int = 1) -> str:
    return ",".join(f"k{index}={'v' * width}" for index in range(count))


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        (STATE, STATE),
        ("rojo=00f067aa0ba902b7 ,\t congo=t61rcWkgMzE\t", STATE),  # blanks around members
        (",rojo=1,, ,congo=2,", "rojo=1,congo=2"),  # empty members are allowed, not sent on
        ("a=b c", "a=b c"),  # a space inside a value
        ("a=!\"#$%&'()*+-./:;<>?@[\\]^_`{|}~", "a=!\"#$%&'()*+-./:;<>?@[\\]^_`{|}~"),  # every value sign
        ("a-_*/9=1", "a-_*/9=1"),
        ("0tenant@vendor=1,t_-*/@s0-_*/=2", "0tenant@vendor=1,t_-*/@s0-_*/=2"),  # multi-tenant keys
        ("k" * 256 + "=1", "k" * 256 + "=1"),  # the longest simple key
        ("t" * 241 + "@" + "s" * 14 + "=1", "t" * 241 + "@" + "s" * 14 + "=1"),  # longest tenant and system ids
        ("a=" + "x" * 256, "a=" + "x" * 256),  # the longest value
        (members(MAX_MEMBERS), members(MAX_MEMBERS)),
        ("", None),
        (" , ,\t", None),
    ],
)
def test_valid_tracestate(value, kept):
    assert parse(value) == kept


@pytest.mark.parametrize(
    "value",
    [
        None,
        members(MAX_MEMBERS + 1),  # 33 members
        "Rojo=1",  # upper case key
        "1abc=1",  # a simple key starts with a letter
        "_a=1",
        "a.b=1",
        "a b=1",
        "k" * 257 + "=1",  # key too long
        "t" * 242 + "@s=1",  # tenant id too long
        "t@" + "s" * 15 + "=1",  # system id too long
        "t@1s=1",  # a system id starts with a letter
        "t@=1",
        "a@b@c=1",
        "=1",
        "a",
        "a=",  # an empty value
        "a=" + "x" * 257,  # value too long
        "a=b=c",  # "=" is not a value character
        "a=b,a=c",  # keys are unique
        "a=\x01",  # control characters
        "a=b\x7f",
        "a=b\r\nx-injected: 1",
        "a=b\tc",
        "a=é",  # ASCII only
        "rojo=1,congo=2,Bad=3",  # one bad member spoils the header
        "a=1," + " " * MAX_HEADER_LENGTH,  # oversized: not even read
        "x" * 100_000,
    ],
)
def test_invalid_tracestate(value):
    assert parse(value) is None


def test_the_sent_on_list_is_cut_at_whole_members_from_the_end():
    value = members(20, width=40)  # 20 members of 44-45 characters: 887 characters
    kept = parse(value)
    assert kept is not None and len(kept) <= MAX_PROPAGATED
    assert value.startswith(kept + ",")  # whole members, in order
    assert len(kept) + 1 + len(value[len(kept) + 1 :].split(",")[0]) > MAX_PROPAGATED  # the next would not fit
    exactly = "a=" + "x" * 200 + ",b=" + "y" * 200 + ",c=" + "z" * (MAX_PROPAGATED - 408)
    assert len(exactly) == MAX_PROPAGATED and parse(exactly) == exactly
    assert parse(exactly + ",d=1") == exactly
    assert parse("a=" + "x" * 256 + ",b=" + "y" * 256) == "a=" + "x" * 256  # 517 characters: the second goes
    assert parse("k" * 256 + "=" + "v" * 256) is None  # one valid member longer than the limit: nothing to send


# -- over real waitress ----------------------------------------------------------------------


def raw_get(port: int, path: str, header_lines: list[bytes]) -> tuple[int, dict[str, str]]:
    """A GET with exactly these header bytes (no client library in between)."""
    request = b"GET " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    request += b"".join(line + b"\r\n" for line in header_lines) + b"\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(request)
        reply = b""
        while chunk := connection.recv(65536):
            reply += chunk
    head = reply.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(head[0].split()[1]), headers


def served_lines(kernel, read_json_lines) -> tuple[list[dict], list[dict]]:
    kernel.extensions["trace"].access_log.flush()
    return read_json_lines(kernel.log_dir / "acc.log"), read_json_lines(kernel.log_dir / "app.log")


def test_a_valid_tracestate_is_kept_with_the_trace_and_logged(trace_kernel, live_server, read_json_lines):
    kernel = trace_kernel()
    server = live_server(kernel)
    status, headers = raw_get(
        server.port, "/ok", [b"traceparent: " + TRACEPARENT.encode(), b"tracestate: " + STATE.encode()]
    )
    assert status == 200
    span_id = headers["traceparent"].split("-")[2]
    assert "tracestate" not in headers  # not echoed (docs/observability.md says why)
    (access,), app = served_lines(kernel, read_json_lines)
    assert (access["trace_id"], access["span_id"], access["tracestate"]) == (TRACE, span_id, STATE)
    assert list(access).index("tracestate") == list(access).index("span_id") + 1
    handled = [line for line in app if line["event"] == "handling ok"]
    assert handled and all(line["tracestate"] == STATE for line in handled)


def test_two_tracestate_headers_are_one_list(trace_kernel, live_server, read_json_lines):
    kernel = trace_kernel()
    server = live_server(kernel)
    status, _ = raw_get(
        server.port, "/ok", [b"traceparent: " + TRACEPARENT.encode(), b"tracestate: rojo=1", b"tracestate: congo=2"]
    )
    assert status == 200
    (access,), _ = served_lines(kernel, read_json_lines)
    assert access["tracestate"] == "rojo=1,congo=2"


def test_a_new_trace_drops_the_tracestate(trace_kernel, live_server, read_json_lines):
    kernel = trace_kernel()
    server = live_server(kernel)
    for traceparent in (None, f"00-{'0' * 32}-{PARENT}-01", "garbage"):
        header_lines = [b"tracestate: " + STATE.encode()]
        if traceparent:
            header_lines.append(b"traceparent: " + traceparent.encode())
        status, headers = raw_get(server.port, "/ok", header_lines)
        assert status == 200 and headers["traceparent"].split("-")[1] != TRACE
    access, app = served_lines(kernel, read_json_lines)
    assert len(access) == 3
    assert not [line for line in access + app if "tracestate" in line]


def test_a_request_without_tracestate_logs_none(trace_kernel, live_server, read_json_lines):
    kernel = trace_kernel()
    server = live_server(kernel)
    assert raw_get(server.port, "/ok", [b"traceparent: " + TRACEPARENT.encode()])[0] == 200
    (access,), app = served_lines(kernel, read_json_lines)
    assert access["trace_id"] == TRACE
    assert not [line for line in [access, *app] if "tracestate" in line]


HOSTILE = {
    "oversized": b"a=1," + b"b" * 20_000,
    "oversized-but-valid-members": b",".join(b"k%d=%s" % (index, b"v" * 250) for index in range(40)),
    "33 members": members(33).encode(),
    "bad keys": b"Rojo=1,congo=2",
    "duplicate keys": b"rojo=1,rojo=2",
    "tab inside a value": b"rojo=1,congo=t61\trcW",
    "non-ASCII": b"rojo=1,congo=\xe9t\xe9",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_tracestate_is_dropped_and_the_request_answered(name, trace_kernel, live_server, read_lines):
    kernel = trace_kernel()
    server = live_server(kernel)
    hostile = HOSTILE[name]
    status, headers = raw_get(server.port, "/ok", [b"traceparent: " + TRACEPARENT.encode(), b"tracestate: " + hostile])
    assert status == 200
    assert headers["traceparent"].split("-")[1] == TRACE  # the trace goes on, without its tracestate
    kernel.extensions["trace"].access_log.flush()
    written = read_lines(kernel.log_dir / "acc.log") + read_lines(kernel.log_dir / "app.log")
    assert len(read_lines(kernel.log_dir / "acc.log")) == 1
    assert not [line for line in written if "tracestate" in line or "rojo" in line or "k0=" in line]


@pytest.mark.parametrize("control", ["\x00", "\x01", "\x1f", "\x7f", "\r\n", "\x85"])
def test_control_characters_drop_the_tracestate(control, trace_kernel, read_lines):
    # NOTE: waitress refuses a control character in a header value itself (400, before any
    # application code runs), so these reach the plugin through the WSGI environ directly.
    kernel = trace_kernel()
    hostile = f"rojo=1,congo=t61{control}rcW"
    reply = Client(kernel).get("/ok", headers={"traceparent": TRACEPARENT, "tracestate": hostile})
    assert reply.status == 200
    assert reply.headers["traceparent"].split("-")[1] == TRACE
    written = read_lines(kernel.log_dir / "acc.log") + read_lines(kernel.log_dir / "app.log")
    assert len(read_lines(kernel.log_dir / "acc.log")) == 1
    assert not [line for line in written if "tracestate" in line or "rojo" in line]


def test_an_in_process_call_carries_the_tracestate(trace_kernel, read_json_lines):
    kernel = trace_kernel()
    reply = Client(kernel).get("/nested", headers={"traceparent": TRACEPARENT, "tracestate": STATE})
    assert reply.status == 200
    inner, outer = read_json_lines(kernel.log_dir / "acc.log")
    assert (outer["path"], inner["path"]) == ("/nested", "/ok")
    assert inner["tracestate"] == outer["tracestate"] == STATE
    app = [line for line in read_json_lines(kernel.log_dir / "app.log") if line["event"].endswith("inner call")]
    assert len(app) == 2 and all(line["tracestate"] == STATE for line in app)  # the outer's again after the call


# -- through the real MQ, between two real server processes ---------------------------------


@pytest.mark.slow
def test_a_message_carries_the_tracestate_to_its_run(tmp_path, redis_server):
    pytest.importorskip("butterfly_mq")  # a sibling, not a dependency of this distribution
    producer, consumer = mq_pair(tmp_path, redis_server.url)
    try:
        producer.start()
        consumer.start()
        with_state, _ = producer.get("/probe/front", headers={"traceparent": TRACEPARENT, "tracestate": STATE})
        assert with_state["tracestate"] == STATE  # in the message's metadata
        without, _ = producer.get("/probe/front", headers={"traceparent": TRACEPARENT})
        assert without["tracestate"] is None
        dropped, _ = producer.get("/probe/front", headers={"tracestate": STATE})  # a new trace: dropped
        assert dropped["tracestate"] is None

        def runs() -> dict[str, dict]:
            lines = json_lines(consumer.log_dir / "acc.log")
            return {line["reqid"]: line for line in lines if line["path"] == "/probe/back"}

        ran = wait_for(lambda: len(runs()) == 3 and runs(), what="the consumer's three runs")
        assert ran[with_state["msg_id"]]["tracestate"] == STATE
        assert ran[with_state["msg_id"]]["trace_id"] == TRACE
        assert "tracestate" not in ran[without["msg_id"]] and "tracestate" not in ran[dropped["msg_id"]]
        logged = {
            line["reqid"]: line for line in json_lines(consumer.log_dir / "app.log") if line["event"] == "back ran"
        }
        assert logged[with_state["msg_id"]]["tracestate"] == STATE
        assert "tracestate" not in logged[without["msg_id"]] and "tracestate" not in logged[dropped["msg_id"]]
        assert producer.stop() == 0 and consumer.stop() == 0
    finally:
        producer.kill()
        consumer.kill()


# -- ruqi: an http job sends the tracestate bound with its trace; a scheduled run has none ----


def served(target: Server) -> list[dict]:
    return [line for line in json_lines(target.log_dir / "acc.log") if line["path"] == "/probe/pid"]


@pytest.mark.slow
def test_an_http_job_sends_the_tracestate_of_its_trace(ruqi_with_trace, tmp_path):
    kernel = ruqi_with_trace
    client = Client(kernel)
    target = Server(tmp_path / "target").start()  # a real server process the job's request reaches
    try:
        url = f"http://127.0.0.1:{target.port}/probe/pid"
        # the job type's request made from inside a traced request carries the request's trace
        reply = client.get(
            "/ruqi_test/call_out", query={"url": url}, headers={"traceparent": TRACEPARENT, "tracestate": STATE}
        )
        assert reply.status == 200, reply.text
        (received,) = wait_for(lambda: served(target), what="the target's line")
        assert (received["trace_id"], received["tracestate"]) == (TRACE, STATE)
        reply = client.get("/ruqi_test/call_out", query={"url": url}, headers={"traceparent": TRACEPARENT})
        assert reply.status == 200, reply.text
        _, plain = wait_for(lambda: len(served(target)) == 2 and served(target), what="the second line")
        assert plain["trace_id"] == TRACE and "tracestate" not in plain

        # a run starts a trace of its own: the tracestate of the request that asked for it stays behind
        added = client.post("/ruqi/add_job", json=job("remote", job_type="http", target=url, options={"method": "GET"}))
        assert added.status == 200, added.text
        asked = client.post(
            "/ruqi/run_job", json={"job_id": "remote"}, headers={"traceparent": TRACEPARENT, "tracestate": STATE}
        )
        assert asked.status == 200, asked.text
        (run,) = wait_for(lambda: finished_runs(kernel, "remote"), what="the run")
        assert run["ok"] is True and run["trace_id"] != TRACE and "tracestate" not in run
        *_, scheduled = wait_for(lambda: len(served(target)) == 3 and served(target), what="the run's line")
        assert scheduled["trace_id"] == run["trace_id"] and "tracestate" not in scheduled
    finally:
        target.kill()
