"""``butterfly run --dev``: a line per request, real tracebacks, reload on handler changes.

The server runs as a real subprocess (router and trace on); the test edits the
handler file on disk and polls until the new behaviour is served, breaks it and
sees the error reported while the server keeps answering, and fixes it again.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import time
import urllib.error
import urllib.request

import pytest

from kernel.devconsole import DevRenderer, RequestLines, want_colors
from kernel.testing import free_port

pytestmark = pytest.mark.slow

APP = """
def greet(req, name: str = "world"):
    return "OK", {{"message": "{greeting}, " + name}}


def boom(req):
    raise ValueError("kaput in the handler")
"""
ANSI = "\x1b["
POLL_SECONDS = 60


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def poll(check, what: str):
    """Call ``check`` until it returns something truthy (a server restart takes a moment)."""
    deadline = time.monotonic() + POLL_SECONDS
    while time.monotonic() < deadline:
        try:
            value = check()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not seen within {POLL_SECONDS} s: {what}")


@pytest.fixture
def dev_project(butterfly_cli):
    app = butterfly_cli.cwd / "handlers" / "hello"
    app.mkdir(parents=True)
    (app / "__init__.py").write_text(APP.format(greeting="hello"))
    disabled = [n for n in butterfly_cli.env["BUTTERFLY_DISABLE_PLUGINS"].split(",") if n not in ("router", "trace")]
    butterfly_cli.env["BUTTERFLY_DISABLE_PLUGINS"] = ",".join(disabled)
    return butterfly_cli


def output(cli) -> str:
    return (cli.cwd / "proc.log").read_text(errors="replace")


def test_dev_reloads_on_change_survives_a_syntax_error_and_prints_readable_lines(dev_project):
    cli = dev_project
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    handler = cli.cwd / "handlers" / "hello" / "__init__.py"
    (cli.cwd / "butterfly.toml").write_text("[server]\nthreads = 4\n")
    process = cli.popen("run", "--dev", "--port", str(port))
    try:
        assert poll(lambda: get(f"{base}/hello/greet?name=Ada") == (200, {"stat": "OK", "message": "hello, Ada"}), "v1")

        # a console line per request: time, method, path, status, ms, reqid; no colours off a terminal
        line = poll(
            lambda: re.search(r"^\d\d:\d\d:\d\d\.\d{3} GET +/hello/greet 200 [\d.]+ ms reqid=\S+$", output(cli), re.M),
            "request line",
        )
        assert ANSI not in output(cli)

        # a handler exception: the traceback is printed on real lines, not as one line with \n
        assert get(f"{base}/hello/boom")[0] == 500
        log = poll(lambda: "ValueError: kaput in the handler\n" in output(cli) and output(cli), "traceback")
        assert "\nTraceback (most recent call last):\n" in log and "\\n" not in log.split("handler exception", 1)[1]
        assert re.search(r"GET +/hello/boom 500 [\d.]+ ms ERR_SERVER_EXCEPTION reqid=", log)

        handler.write_text(APP.format(greeting="hi"))
        assert poll(lambda: get(f"{base}/hello/greet?name=Ada")[1].get("message") == "hi, Ada", "v2 served")
        assert "change detected; restarting the server" in output(cli) and "handlers/hello/__init__.py" in output(cli)

        handler.write_text("def greet(req)\n    return 'OK'\n")  # a syntax error
        poll(lambda: "SyntaxError" in output(cli).split(line.group(0))[-1], "syntax error reported")
        assert poll(lambda: get(f"{base}/hello/greet")[0] == 404, "the broken app is not served")
        status, health = get(f"{base}/_meta/health")
        assert status == 200 and "hello" in json.dumps(health)  # still up, and says which app is broken
        assert process.poll() is None

        handler.write_text(APP.format(greeting="welcome back"))
        assert poll(lambda: get(f"{base}/hello/greet?name=Ada")[1].get("message") == "welcome back, Ada", "fixed")

        # the config file, replaced by renaming as many editors save
        (cli.cwd / "butterfly.toml.new").write_text("[server]\nthreads = 3\n")
        os.replace(cli.cwd / "butterfly.toml.new", cli.cwd / "butterfly.toml")
        poll(lambda: "threads=3" in output(cli), "restarted with the new config")
        assert poll(lambda: get(f"{base}/hello/greet")[0] == 200, "served after the config change")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    # the server child stopped with the reloader: nothing listens any more
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_color_forces_colours_and_no_reload_serves_in_process(dev_project):
    cli = dev_project
    port = free_port()
    process = cli.popen("run", "--dev", "--no-reload", "--color", "--port", str(port))
    try:
        poll(lambda: get(f"http://127.0.0.1:{port}/hello/greet")[0] == 200, "served")
        poll(lambda: "/hello/greet" in output(cli) and ANSI + "32m200" in output(cli), "a green 200")
        assert "watching for changes" not in output(cli)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colours_follow_the_terminal_and_no_color(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert want_colors(FakeTerminal()) is True
    assert want_colors(io.StringIO()) is False
    assert want_colors(io.StringIO(), force=True) is True
    monkeypatch.setenv("NO_COLOR", "1")
    assert want_colors(FakeTerminal()) is False


def test_console_output_cannot_drive_the_terminal():
    """A client-chosen path or exception text carries escape sequences: they are shown escaped."""

    class Request:
        method, path, stat, reqid = "GET", "/x\x1b[2J", "OK", "r1"

        def elapsed(self):
            return 0.001

    class Reply:
        status = 200

    stream = io.StringIO()
    RequestLines(stream).butterfly_request_finished(Request(), Reply())
    assert "\x1b" not in stream.getvalue() and "/x\\x1b[2J" in stream.getvalue()
    text = DevRenderer()(None, "error", {"event": "boom \x1b[31m", "traceback": "Traceback\nValueError: \x1b[2J\n"})
    assert "\x1b" not in text and text.endswith("Traceback\nValueError: \\x1b[2J")
