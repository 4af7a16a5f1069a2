"""Raw sockets against real waitress: every error is the JSON envelope, and idle crowds lock no one out."""

from __future__ import annotations

import json
import socket

import pytest

from kernel import Response, hookimpl
from kernel.testing import LiveServer, build_kernel

MAX_BODY = 1024
#: Far below channel_timeout: an answer within it proves the server did not wait for idle sockets to expire.
PROMPT = 15
IDLE_CONNECTIONS = 1000


class Echo:
    @hookimpl
    def butterfly_register_routes(self, register):
        register("/s/size", lambda request: Response.json({"stat": "OK", "size": len(request.body)}))
        register("/s/ping", lambda request: Response.json({"stat": "OK", "pong": True}))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    kernel = build_kernel(tmp_path_factory.mktemp("sockets"), [(Echo(), "echo")], {"server.max_body": MAX_BODY})
    live = LiveServer(kernel).start()
    yield live
    live.stop()


def exchange(port: int, raw: bytes, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw``, read until the server closes or a full reply arrived."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
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
            head, sep, rest = data.partition(b"\r\n\r\n")
            if sep:
                lengths = [
                    line.split(b":", 1)[1]
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ]
                if lengths and len(rest) >= int(lengths[0]):
                    break
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split(" ", 2)[1]), headers, body


TRANSPORT_ERRORS = {
    # Content-Length over max_body: answered from the headers, the body is never sent
    "declared body over max_body": (
        b"POST /s/size HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 104857600\r\n\r\n{",
        413,
        "ERR_PAYLOAD_TOO_LARGE",
    ),
    "chunked body over max_body": (
        b"POST /s/size HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        + (b"400\r\n" + b"x" * 0x400 + b"\r\n") * 2
        + b"0\r\n\r\n",
        413,
        "ERR_PAYLOAD_TOO_LARGE",
    ),
    "headers too large": (
        b"GET /s/ping HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 300_000 + b"\r\n\r\n",
        431,
        "ERR_HEADERS_TOO_LARGE",
    ),
    "garbage request line": (b"GARBAGE\r\n\r\n", 400, "ERR_BAD_PARAMS"),
    "header without colon": (b"GET /s/ping HTTP/1.1\r\nHost: t\r\nNoColonHere\r\n\r\n", 400, "ERR_BAD_PARAMS"),
    "raw non-ascii bytes in the path": (b"GET /s/\xff\xfe HTTP/1.1\r\nHost: t\r\n\r\n", 400, "ERR_BAD_PARAMS"),
    "bad chunk": (
        b"POST /s/size HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        400,
        "ERR_BAD_PARAMS",
    ),
    "unsupported transfer-encoding": (
        b"POST /s/size HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n",
        501,
        "ERR_NOT_IMPLEMENTED",
    ),
}


@pytest.mark.parametrize("name", sorted(TRANSPORT_ERRORS))
def test_waitress_errors_are_the_json_envelope_with_x_reason(server, name):
    raw, status, stat = TRANSPORT_ERRORS[name]
    got, headers, body = exchange(server.port, raw)
    assert got == status, body[:200]
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert json.loads(body) == {"stat": stat}
    assert headers["x-reason"] and int(headers["content-length"]) == len(body)
    assert exchange(server.port, b"GET /s/ping HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")[0] == 200


def test_413_names_max_body_not_waitress_internals(server):
    _, headers, _ = exchange(server.port, TRANSPORT_ERRORS["declared body over max_body"][0])
    assert headers["x-reason"] == f"body is larger than max_body ({MAX_BODY} bytes)"


def test_a_thousand_idle_connections_do_not_lock_out_a_real_client(server):
    assert server.kernel.settings.get("server", "connection_limit") > IDLE_CONNECTIONS
    idle = []
    try:
        for _ in range(IDLE_CONNECTIONS):
            idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=PROMPT))
        status, _, body = exchange(
            server.port, b"GET /s/ping HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", timeout=PROMPT
        )
        assert (status, json.loads(body)) == (200, {"stat": "OK", "pong": True})
    finally:
        for sock in idle:
            sock.close()


class OddHeaders:
    """A plugin setting header values waitress would refuse (the login redirect to `/中文` of issue 9)."""

    @hookimpl
    def butterfly_register_routes(self, register):
        register("/o/redirect", lambda request: Response(303, [("Location", "/中文?next=/ü")], b""))
        register("/o/header", lambda request: Response(200, [("X-Note", "é\r\nSet-Cookie: evil=1"), ("X-N", 5)], b"ok"))


@pytest.fixture(scope="module")
def odd_server(tmp_path_factory):
    live = LiveServer(build_kernel(tmp_path_factory.mktemp("odd"), [(OddHeaders(), "odd")])).start()
    yield live
    live.stop()


def test_a_non_latin1_location_is_percent_encoded_not_a_500(odd_server):
    status, headers, _ = exchange(odd_server.port, b"GET /o/redirect HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert status == 303
    assert headers["location"] == "/%E4%B8%AD%E6%96%87?next=/%C3%BC"


def test_header_values_cannot_inject_headers_or_break_the_reply(odd_server):
    status, headers, body = exchange(odd_server.port, b"GET /o/header HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert (status, body) == (200, b"ok")
    assert headers["x-note"] == "é  Set-Cookie: evil=1".encode("latin-1").decode("latin-1")
    assert "set-cookie" not in headers and headers["x-n"] == "5"
