"""``butterfly run`` warns when ``handlers/`` has apps and no installed plugin serves them."""

from __future__ import annotations

import json
import signal
import socket
import time
import urllib.error
import urllib.request

from kernel import Response, hookimpl
from kernel.hints import STANDARD_INSTALL, unserved_handler_apps, warn_unserved_handlers
from kernel.testing import free_port


def write_app(root, name: str) -> None:
    (root / "handlers" / name).mkdir(parents=True)
    (root / "handlers" / name / "__init__.py").write_text("def ping():\n    return 'OK', {}\n")


class ServesHello:
    """Stands in for a router: serves one path of the ``hello`` app."""

    @hookimpl
    def butterfly_register_routes(self, register):
        register("/hello/ping", lambda request: Response.json({"stat": "OK"}))


def test_apps_without_routes_are_reported_once(make_kernel, captured_logs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_app(tmp_path, "hello")
    write_app(tmp_path, "shop")
    (tmp_path / "handlers" / "_private").mkdir()  # not an app: no __init__.py, leading _
    kernel = make_kernel()
    assert unserved_handler_apps(kernel) == ["hello", "shop"]
    assert warn_unserved_handlers(kernel) is True
    [event] = [e for e in captured_logs if e["log_level"] == "warning"]
    assert event["event"] == f"handlers/ has apps (hello, shop) but no installed plugin serves them: {STANDARD_INSTALL}"


def test_no_warning_when_an_app_is_served_or_there_are_no_apps(make_kernel, captured_logs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert warn_unserved_handlers(make_kernel()) is False  # no handlers/ at all
    write_app(tmp_path, "hello")
    assert warn_unserved_handlers(make_kernel(plugins=[(ServesHello(), "hello-server")])) is False
    assert captured_logs == []


def test_butterfly_run_with_the_kernel_alone_prints_the_hint(butterfly_cli):
    write_app(butterfly_cli.cwd, "hello")
    port = free_port()
    proc = butterfly_cli.popen("run", "--port", str(port))
    try:
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        assert proc.poll() is None, (butterfly_cli.cwd / "proc.log").read_text()
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/hello/ping", timeout=10)
            raise AssertionError("the kernel alone must not serve handlers")
        except urllib.error.HTTPError as error:
            assert error.code == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    lines = [json.loads(line) for line in (butterfly_cli.cwd / "proc.log").read_text().splitlines() if line]
    hints = [line for line in lines if STANDARD_INSTALL in line.get("event", "")]
    assert len(hints) == 1 and hints[0]["level"] == "warning" and hints[0]["apps"] == ["hello"]
