"""How real waitress sends the kernel's replies: buffered small replies, streamed bodies still streamed.

The server holds a reply until the handler returns or ``[server] send_buffer`` bytes
are pending (kernel/server.py). A reply must still be whole, keep-alive must still
work, a streamed body must reach the client in pieces of that size before it ends,
and with ``send_buffer = 1`` every small piece at once (server-sent events).
"""

from __future__ import annotations

import http.client
import socket
import threading

import pytest

from kernel import ConfigError, Response, hookimpl
from kernel.defaults import SEND_BUFFER
from kernel.testing import LiveServer, build_kernel

#: How long a streaming handler waits for the client to confirm a piece (a hang guard, not a timing assert).
GUARD = 10


class Streams:
    """Routes whose bodies are generators that wait for the client between pieces."""

    def __init__(self) -> None:
        self.received = threading.Event()
        self.finished = threading.Event()

    def pieces(self, first: bytes, rest: bytes):
        yield first
        # NOTE: the body goes on only once the client has the first piece: if the
        # server held small pieces until the body ends, the client would never get it.
        arrived = self.received.wait(GUARD)
        self.finished.set()
        yield rest if arrived else b"TIMEOUT"

    @hookimpl
    def butterfly_register_routes(self, register):
        register("/s/ping", lambda request: Response.json({"stat": "OK", "pong": True}))
        register("/s/large", lambda request: Response.json({"stat": "OK", "text": "x" * (3 * SEND_BUFFER)}))
        register(
            "/s/stream-small",
            lambda request: Response(200, [("Content-Type", "text/plain")], self.pieces(b"a" * 100, b"b" * 50)),
        )
        register(
            "/s/stream-large",
            lambda request: Response(
                200, [("Content-Type", "text/plain")], self.pieces(b"c" * (2 * SEND_BUFFER), b"d" * 10)
            ),
        )


@pytest.fixture(params=[{}, {"server.send_buffer": 1}], ids=["default", "send_buffer=1"])
def streams(request, tmp_path):
    routes = Streams()
    kernel = build_kernel(tmp_path, [(routes, "streams")], request.param)
    wanted = request.param.get("server.send_buffer", SEND_BUFFER)
    live = LiveServer(kernel).start()
    assert live.server._waitress.adj.send_bytes == wanted  # the setting reaches waitress
    yield routes, live
    routes.received.set()
    live.stop()


def test_small_replies_are_whole_on_one_kept_alive_connection(streams):
    _, live = streams
    connection = http.client.HTTPConnection("127.0.0.1", live.port, timeout=GUARD)
    try:
        for _ in range(50):
            connection.request("GET", "/s/ping")
            reply = connection.getresponse()
            assert reply.status == 200
            assert reply.read() == b'{"stat":"OK","pong":true}'
            assert reply.getheader("Content-Length") == "25"
    finally:
        connection.close()


def test_a_reply_larger_than_the_buffer_arrives_whole(streams):
    _, live = streams
    connection = http.client.HTTPConnection("127.0.0.1", live.port, timeout=GUARD)
    try:
        connection.request("GET", "/s/large")
        reply = connection.getresponse()
        body = reply.read()
    finally:
        connection.close()
    assert reply.status == 200
    assert body == b'{"stat":"OK","text":"' + b"x" * (3 * SEND_BUFFER) + b'"}'


def test_a_streamed_body_reaches_the_client_in_pieces_before_it_ends(streams):
    routes, live = streams
    assert_streamed(routes, live, "/s/stream-large", b"c" * (2 * SEND_BUFFER), b"d" * 10)


def test_with_send_buffer_1_each_small_piece_is_sent_at_once(tmp_path):
    routes = Streams()
    live = LiveServer(build_kernel(tmp_path, [(routes, "streams")], {"server.send_buffer": 1})).start()
    try:
        assert_streamed(routes, live, "/s/stream-small", b"a" * 100, b"b" * 50)
    finally:
        routes.received.set()
        live.stop()


def test_send_buffer_must_be_positive(tmp_path):
    with pytest.raises(ConfigError, match="send_buffer"):
        build_kernel(tmp_path, [], {"server.send_buffer": 0})


def assert_streamed(routes: Streams, live: LiveServer, path: str, first: bytes, rest: bytes) -> None:
    """GET ``path``; the handler sends ``first``, waits until we have it, then ``rest``."""
    with socket.create_connection(("127.0.0.1", live.port), timeout=GUARD) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        data = b""
        while first not in data:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed before the first piece: {data[:200]!r}"
            data += chunk
        assert not routes.finished.is_set()  # the handler is still waiting: this piece was streamed
        routes.received.set()
        while not data.endswith(b"0\r\n\r\n"):  # chunked: no Content-Length for a generator
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"Transfer-Encoding: chunked" in head
    assert first in body and rest in body
    assert b"TIMEOUT" not in body
