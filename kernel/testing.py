"""The kernel's test kit: a pytest plugin for Butterfly and third-party plugin distributions.

Installing butterfly-kernel registers it with pytest (the ``pytest11`` entry point
``butterfly``): every fixture below is available without a ``conftest.py`` line.
``-p no:butterfly`` switches it off. Importing this module has no side effects and
it defines no autouse fixture; see docs/testing.md.

Fixtures: ``make_kernel`` (in-process kernel: entry points off, no config file, no
environment, temp data/log dirs), ``live_server`` (a real waitress server on a free
port), ``captured_logs`` (structlog events as dicts), ``isolated_logging`` (undo a
test's changes to logging), ``redis_server`` (a private ``redis-server`` per
session), ``chromium`` (headless Chromium through Playwright). Helpers:
:class:`Client` (in-process WSGI client), :func:`free_port`, :func:`port_accepts`,
:func:`wait_for`, :class:`RedisServer`, :class:`ServerProcess` (``butterfly run`` as a
real subprocess), :func:`hermetic_environ` (``os.environ`` without Butterfly's settings,
for subprocesses).
"""

from __future__ import annotations

import json as jsonlib
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import structlog

from kernel import logs
from kernel.app import Kernel
from kernel.server import Server
from kernel.testprocs import (
    TEST_ENV_PREFIX,
    ExternalRedis,
    RedisServer,
    ServerProcess,
    free_port,
    hermetic_environ,
    port_accepts,
    wait_for,
)

__all__ = [
    "CHROMIUM",
    "TEST_ENV_PREFIX",
    "Client",
    "ExternalRedis",
    "LiveServer",
    "RedisServer",
    "ServerProcess",
    "TestResponse",
    "build_kernel",
    "free_port",
    "hermetic_environ",
    "port_accepts",
    "wait_for",
]


CHROMIUM = os.environ.get("BUTTERFLY_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


_CACHE_LOGGERS_KEY = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``slow`` marker; turn off structlog's logger cache for the session.

    NOTE: structlog loggers cached under one test's config would ignore the next
    test's ``capture_logs()``; never cache in tests (structlog's own advice).
    Restored by :func:`pytest_unconfigure`.
    """
    config.addinivalue_line("markers", "slow: takes more than a few seconds (end-to-end, crash tests)")
    config.stash[_CACHE_LOGGERS_KEY] = logs.CACHE_LOGGERS
    logs.CACHE_LOGGERS = False


def pytest_unconfigure(config: pytest.Config) -> None:
    """Restore what :func:`pytest_configure` changed."""
    logs.CACHE_LOGGERS = config.stash.get(_CACHE_LOGGERS_KEY, logs.CACHE_LOGGERS)


class TestResponse:
    """What :class:`Client` returns: ``status``, ``headers``, ``body``, ``text``, ``json()``."""

    __test__ = False  # not a pytest test class

    def __init__(self, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status_line = status
        self.status = int(status.split(" ", 1)[0])
        self.header_list = headers
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body decoded as JSON."""
        return jsonlib.loads(self.body)

    def __repr__(self) -> str:
        return f"<TestResponse {self.status_line} {self.body[:80]!r}>"


class Client:
    """An in-process WSGI client: no sockets, no waitress.

    :param app: a WSGI callable (usually a :class:`Kernel`)
    :param remote_addr: the peer address the app sees
    """

    def __init__(self, app: Any, remote_addr: str = "127.0.0.1") -> None:
        self.app = app
        self.remote_addr = remote_addr

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | str | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        remote_addr: str | None = None,
    ) -> TestResponse:
        """Send one request; ``json``/``data`` (form) set the body and its type."""
        if "?" in path and query is None:
            path, query = path.split("?", 1)
        query_string = query if isinstance(query, str) else urlencode(query or {}, doseq=True)
        headers = dict(headers or {})
        if json is not None:
            body = jsonlib.dumps(json).encode()
            headers.setdefault("Content-Type", "application/json")
        elif data is not None:
            body = urlencode(data, doseq=True).encode()
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        body = body or b""
        environ = {
            "REQUEST_METHOD": method.upper(),
            "PATH_INFO": path.encode("utf-8").decode("latin-1"),
            "QUERY_STRING": query_string,
            "SERVER_NAME": "testserver",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": remote_addr or self.remote_addr,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
            "CONTENT_LENGTH": str(len(body)) if body else "",
        }
        for name, value in headers.items():
            key = name.upper().replace("-", "_")
            if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                environ[key] = value
            else:
                environ["HTTP_" + key] = value
        captured: dict[str, Any] = {}

        def start_response(status, response_headers, exc_info=None):
            captured["status"], captured["headers"] = status, response_headers

        result = self.app(environ, start_response)
        try:
            payload = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        return TestResponse(captured["status"], captured["headers"], payload)

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        """``GET path``."""
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> TestResponse:
        """``POST path``."""
        return self.request("POST", path, **kwargs)


def build_kernel(
    tmp_dir: Path,
    plugins: list[Any] | tuple[Any, ...] = (),
    settings: Mapping[str, Any] | None = None,
    *,
    config: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    load_entrypoints: bool = False,
) -> Kernel:
    """Build a hermetic kernel: data and logs under ``tmp_dir``, no env leakage.

    :param settings: ``{"section.key": value}`` overrides
    """
    overrides = {"server.data_dir": str(tmp_dir / "data"), "server.log_dir": str(tmp_dir / "logs")}
    overrides.update(settings or {})
    return Kernel.create(
        config=dict(config or {}),
        overrides=overrides,
        environ=dict(environ or {}),
        plugins=plugins,
        load_entrypoints=load_entrypoints,
    )


@pytest.fixture
def isolated_logging() -> Iterator[None]:
    """Undo what a test did to logging: root handlers, root level, structlog config.

    Use it (or depend on it from an autouse fixture in your ``conftest.py``) when a
    test runs the CLI in-process: ``kernel.logs.configure`` points a handler at
    pytest's captured stderr; once that is closed, later tests would log into it.
    ``make_kernel``, ``live_server`` and ``captured_logs`` use it already.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    config = structlog.get_config() if structlog.is_configured() else None
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    if config is None:
        structlog.reset_defaults()
    else:
        structlog.configure(**config)


@pytest.fixture
def make_kernel(tmp_path: Path, isolated_logging: None) -> Iterator[Callable[..., Kernel]]:
    """Factory: ``make_kernel(plugins=[...], settings={"section.key": v}, config=...)``.

    The kernel is hermetic: no ``butterfly.toml`` is read, no environment variable
    applies (pass ``environ=`` to test one), no installed plugin is loaded unless
    ``load_entrypoints=True``; data and logs go under ``tmp_path``. Kernels that were
    started are shut down at teardown.
    """
    made: list[Kernel] = []

    def factory(plugins: Any = (), settings: Mapping[str, Any] | None = None, **kwargs: Any) -> Kernel:
        kernel = build_kernel(tmp_path, plugins, settings, **kwargs)
        made.append(kernel)
        return kernel

    yield factory
    for kernel in made:
        kernel.shutdown()


class LiveServer:
    """A kernel served by real waitress on a thread; ``url`` is its base URL."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.server = Server(kernel, host="127.0.0.1", port=0)
        self.thread = threading.Thread(target=self.server.run, name="live-server", daemon=True)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return self.server.url

    @property
    def port(self) -> int:
        """The bound port."""
        return self.server.port

    def start(self) -> LiveServer:
        """Start serving; returns once the socket accepts connections."""
        self.thread.start()
        wait_for(lambda: port_accepts(self.port), timeout=10, what="the live server to accept connections")
        return self

    def stop(self, timeout: float = 15) -> None:
        """Stop gracefully and wait for the drain to finish."""
        self.server.stop()
        self.server.stopped.wait(timeout)
        self.thread.join(timeout)


@pytest.fixture
def live_server(isolated_logging: None) -> Iterator[Callable[[Kernel], LiveServer]]:
    """Factory: ``live_server(kernel)`` serves it on a free port; stopped at teardown."""
    servers: list[LiveServer] = []

    def factory(kernel: Kernel) -> LiveServer:
        server = LiveServer(kernel).start()
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer | ExternalRedis]:
    """A ``redis-server`` for the whole session (or ``BUTTERFLY_TEST_REDIS_URL``'s).

    Tests must use their own key prefixes or DB numbers; never FLUSHALL a shared one.
    """
    url = os.environ.get("BUTTERFLY_TEST_REDIS_URL")
    if url:
        yield ExternalRedis(url)
        return
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """A headless Chromium (Debian's) driven by Playwright; one per session."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is missing: pip install 'butterfly-kernel[testing-browser]'")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            # NOTE: contexts a test left open are closed first, as Playwright advises.
            for context in browser.contexts:
                context.close()
            browser.close()


@pytest.fixture
def captured_logs(isolated_logging: None) -> Iterator[list[MutableMapping[str, Any]]]:
    """structlog events as dicts (``event``, ``log_level`` and the bound keys), contextvars cleared."""
    structlog.contextvars.clear_contextvars()
    with structlog.testing.capture_logs() as logs:
        yield logs
    structlog.contextvars.clear_contextvars()
