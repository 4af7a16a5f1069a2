"""Malformed HTTP against real waitress: clear errors, no tracebacks, and the server keeps serving."""

from __future__ import annotations

import json
import socket

import pytest

from kernel import Response, hookimpl

MAX_BODY = 1024
TIMEOUT = 10


class EchoPlugin:
    @hookimpl
    def butterfly_register_routes(self, register):
        register("/e2e/echo", lambda request: Response.json({"stat": "OK", "params": request.params}), kind="json")
        register("/e2e/ping", lambda request: Response.json({"stat": "OK", "pong": True}), kind="json")
        register("/e2e/size", lambda request: Response.json({"stat": "OK", "size": len(request.body)}), kind="json")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One live waitress server for the module (the cases do not share state)."""
    from kernel.testing import LiveServer, build_kernel

    kernel = build_kernel(tmp_path_factory.mktemp("e2e"), [(EchoPlugin(), "echo")], {"server.max_body": MAX_BODY})
    live = LiveServer(kernel).start()
    yield live
    live.stop()


def exchange(port: int, raw: bytes, *, read_all: bool = True) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read the reply; returns ``(status, headers, body)`` (status 0: no reply)."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(raw)
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
            if not read_all and b"\r\n\r\n" in data:
                head, _, rest = data.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    None,
                )
                if length is not None and len(rest) >= length:
                    break
    head, _, body = data.partition(b"\r\n\r\n")
    if not head:
        return 0, {}, b""
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split(" ", 2)[1]), headers, body


def get(path: str, extra: bytes = b"") -> bytes:
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + extra + b"\r\n"


def post(path: str, body: bytes, content_type: bytes = b"application/json") -> bytes:
    return (
        b"POST "
        + path.encode()
        + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: "
        + content_type
        + b"\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


def assert_still_serving(port: int) -> None:
    status, _, body = exchange(port, get("/e2e/ping"))
    assert (status, json.loads(body)) == (200, {"stat": "OK", "pong": True})


CASES = {
    "garbage request line": (b"GARBAGE\r\n\r\n", 400),
    "header without colon": (b"GET /e2e/ping HTTP/1.1\r\nHost: t\r\nNoColonHere\r\n\r\n", 400),
    "header with bad chars": (b"GET /e2e/ping HTTP/1.1\r\nHost: t\r\nBad Name: x\r\n\r\n", 400),
    "huge headers": (get("/e2e/ping", b"X-Big: " + b"a" * 300_000 + b"\r\n"), 431),
    "invalid utf-8 in path (escaped)": (get("/e2e/%ff%fe"), 404),
    "raw non-ascii bytes in path": (b"GET /e2e/\xff\xfe HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 400),
    "bad json body": (post("/e2e/echo", b'{"a": 1,'), 400),
    "json body not an object": (post("/e2e/echo", b"[1, 2]"), 400),
    "form body not utf-8": (post("/e2e/echo", b"a=\xff\xfe", b"application/x-www-form-urlencoded"), 400),
    "chunked garbage": (
        b"POST /e2e/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/json\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    "chunked body over max_body": (
        b"POST /e2e/size HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        + (b"400\r\n" + b"x" * 0x400 + b"\r\n") * 2
        + b"0\r\n\r\n",
        413,
    ),
    "bad content-length": (b"POST /e2e/echo HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n", 400),
    "negative content-length": (b"POST /e2e/echo HTTP/1.1\r\nHost: t\r\nContent-Length: -5\r\n\r\n", 400),
    "unsupported transfer-encoding": (b"POST /e2e/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_request_gets_an_error_and_the_server_keeps_serving(server, name):
    raw, expected = CASES[name]
    status, headers, body = exchange(server.port, raw)
    assert status == expected, (status, body[:300])
    assert b"Traceback" not in body and b'File "' not in body
    if headers.get("content-type", "").startswith("application/json"):
        reply = json.loads(body)
        assert reply["stat"].startswith("ERR_")
        assert headers["x-reason"]
    assert_still_serving(server.port)


def test_bad_json_reply_names_the_body_as_the_bad_parameter(server):
    status, headers, body = exchange(server.port, post("/e2e/echo", b"{nope"))
    assert status == 400
    reply = json.loads(body)
    assert reply["stat"] == "ERR_BAD_PARAMS"
    assert reply["errors"][0]["param"] == "<body>"
    assert headers["x-reason"].startswith("body is not valid JSON")


def test_invalid_utf8_in_query_is_replaced_not_fatal(server):
    status, _, body = exchange(server.port, get("/e2e/echo?a=%ff&b=%C3%A9&c="))
    assert status == 200
    assert json.loads(body)["params"] == {"a": "\ufffd", "b": "é", "c": ""}


def test_huge_content_length_gets_413_without_the_body_being_read(server):
    # Declares 100 MB but sends a few bytes: a server waiting for the body would hang
    # until the socket timeout; the 413 must come from the headers alone.
    raw = (
        b"POST /e2e/size HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b'Content-Length: 104857600\r\n\r\n{"a": 1'
    )
    status, _, body = exchange(server.port, raw, read_all=False)
    assert status == 413
    assert b"Traceback" not in body
    assert_still_serving(server.port)


def test_body_of_exactly_max_body_is_accepted_one_more_byte_is_not(server):
    status, _, body = exchange(server.port, post("/e2e/size", b"x" * MAX_BODY, b"application/octet-stream"))
    assert (status, json.loads(body)) == (200, {"stat": "OK", "size": MAX_BODY})
    status, _, _ = exchange(
        server.port, post("/e2e/size", b"x" * (MAX_BODY + 1), b"application/octet-stream"), read_all=False
    )
    assert status == 413
    assert_still_serving(server.port)


def test_keep_alive_connection_survives_an_application_error(server):
    pipelined = (
        b"POST /e2e/echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 1\r\n"
        b"\r\n{" + get("/e2e/ping")
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        sock.sendall(pipelined)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.count(b"HTTP/1.1 ") == 2
    assert b"HTTP/1.1 400 " in data and b'"pong":true' in data
    assert b"Traceback" not in data
