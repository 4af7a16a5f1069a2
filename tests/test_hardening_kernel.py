"""Kernel hardening (issue 9): methods, cookies, errors that are never silent, repeated tracebacks, file budget."""

from __future__ import annotations

import logging
import resource
import time

import pytest
import structlog

from kernel import Response, hookimpl, logs
from kernel.clientinput import parse_cookie_header
from kernel.testing import Client
from kernel.transport import RESERVED_FILES, fit_connection_limit


class Routes:
    """A few raw routes: one per method policy, one that raises."""

    @hookimpl
    def butterfly_register_routes(self, register):
        register("/k/any", lambda request: Response.json({"stat": "OK", "method": request.method}))
        register("/k/cookies", lambda request: Response.json({"stat": "OK", "cookies": request.cookies}))
        register("/k/boom", self.boom)

    def boom(self, request):
        raise ZeroDivisionError("boom for the log")


class ReportsItself:
    """An error hook that logs the exception itself and says so."""

    def __init__(self):
        self.seen = []

    @hookimpl
    def butterfly_handle_error(self, request, exc):
        self.seen.append(type(exc).__name__)
        request.error_reported = True


@pytest.fixture
def client(make_kernel):
    return Client(make_kernel(plugins=[(Routes(), "routes")]))


def test_a_route_registered_without_methods_accepts_any_method(client):
    # the router's handlers default to GET/HEAD/POST; a plugin's route without methods= takes all
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND"):
        assert client.request(method, "/k/any").status == 200, method


def test_one_malformed_cookie_does_not_drop_the_others(client):
    # SimpleCookie gives up on the whole header for any of these neighbours
    for neighbour in ('prefs={"theme": "dark"}', "tracking=a b c", 'odd="unterminated', "=novalue", "flag"):
        header = f"{neighbour}; butterfly_token=abc.def-ghi; other=1"
        reply = client.get("/k/cookies", headers={"Cookie": header})
        cookies = reply.json()["cookies"]
        assert cookies["butterfly_token"] == "abc.def-ghi" and cookies["other"] == "1", neighbour


def test_cookie_parser_rules():
    assert parse_cookie_header('a=1; a=2; b="quoted \\"x\\""; c=\\; d') == {"a": "1", "b": 'quoted "x"', "c": "\\"}
    assert parse_cookie_header('bad name=1; ok=2; j={"k":1}') == {"ok": "2", "j": '{"k":1}'}
    assert parse_cookie_header('e="\\101\\102"') == {"e": "AB"}
    assert parse_cookie_header("") == {}


def test_without_an_error_plugin_the_kernel_logs_the_traceback(client, captured_logs):
    reply = client.get("/k/boom")
    assert reply.status == 500 and reply.json() == {"stat": "ERR_SERVER_EXCEPTION"}
    assert b"boom for the log" not in reply.body
    (event,) = [e for e in captured_logs if e["event"] == "handler exception"]
    assert event["log_level"] == "error" and event["path"] == "/k/boom" and event["method"] == "GET"
    assert event["error"] == "ZeroDivisionError: boom for the log"
    assert "Traceback (most recent call last)" in event["traceback"] and "in boom" in event["traceback"]


def test_without_any_logging_setup_the_traceback_reaches_stdlib(client, caplog):
    structlog.reset_defaults()  # an embedding WSGI server that configured nothing
    assert not structlog.is_configured()
    with caplog.at_level(logging.ERROR, logger="butterfly.kernel"):
        assert client.get("/k/boom").status == 500
    (record,) = [r for r in caplog.records if r.name == "butterfly.kernel"]
    assert "handler exception" in record.getMessage() and "ZeroDivisionError: boom for the log" in record.getMessage()


def test_an_error_hook_that_reported_the_exception_stops_the_kernel_logging_it(make_kernel, captured_logs):
    reporter = ReportsItself()
    client = Client(make_kernel(plugins=[(Routes(), "routes"), (reporter, "reporter")]))
    assert client.get("/k/boom").status == 500
    assert reporter.seen == ["ZeroDivisionError"]
    assert not [e for e in captured_logs if e["event"] == "handler exception"]


def test_identical_tracebacks_are_rate_limited_then_counted(make_kernel, captured_logs):
    kernel = make_kernel(plugins=[(Routes(), "routes")])
    client = Client(kernel)
    for _ in range(10):
        assert client.get("/k/boom").status == 500
    assert len([e for e in captured_logs if e["event"] == "handler exception"]) == kernel.error_limiter.burst == 3
    kernel.error_limiter.flush()  # at shutdown, or when the minute is over
    (report,) = [e for e in captured_logs if e["event"] == "identical errors suppressed"]
    assert report["suppressed"] == 7 and report["error"] == "ZeroDivisionError: boom for the log"
    assert report["log_level"] == "warning"
    # a new window logs the first few in full again
    assert client.get("/k/boom").status == 500
    assert len([e for e in captured_logs if e["event"] == "handler exception"]) == 4


def test_the_suppressed_count_is_reported_when_the_window_ends():
    reports = []
    limiter = logs.RepeatLimiter(lambda *args: reports.append(args), burst=1, window=0.05)
    signature = ("demo",)
    assert [limiter.allow(signature, "E: x") for _ in range(4)] == [True, False, False, False]
    deadline = time.monotonic() + 10
    while not reports and time.monotonic() < deadline:  # a timer thread reports it; wait for it
        time.sleep(0.01)
    assert reports == [("E: x", 3, 0.05)]
    assert limiter.allow(signature, "E: x") is True  # the next window starts fresh


def test_different_errors_are_limited_separately():
    limiter = logs.RepeatLimiter(lambda *args: None, burst=1, window=60)
    try:
        raise KeyError("a")
    except KeyError as first:
        one = logs.exception_signature(first)
    try:
        raise ValueError("b")
    except ValueError as second:
        two = logs.exception_signature(second)
    assert one != two
    assert limiter.allow(one, "a") and limiter.allow(two, "b")
    assert not limiter.allow(one, "a")


def test_the_open_file_limit_is_raised_to_fit_the_connection_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        assert fit_connection_limit(1000) == 1000
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= 1000 + RESERVED_FILES
        if hard != resource.RLIM_INFINITY:  # more than the hard limit allows: lowered, not failed
            assert fit_connection_limit(hard) == hard - RESERVED_FILES
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
