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
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from io import BytesIO
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import pytest
import structlog

from kernel import logs
from kernel.app import Kernel
from kernel.daemon import child_pids
from kernel.server import Server

_T = TypeVar("_T")

#: Environment variables that configure the test kit itself, kept by :func:`hermetic_environ`.
TEST_ENV_PREFIX = "BUTTERFLY_TEST_"

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


def hermetic_environ(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of the environment without Butterfly's settings, for a subprocess or ``Kernel.create``.

    Drops every ``BUTTERFLY_*`` variable (settings, ``BUTTERFLY_CONFIG``,
    ``BUTTERFLY_DISABLE_PLUGINS``, ``BUTTERFLY_PLUGINS``) except the test kit's own
    ``BUTTERFLY_TEST_*``, so a developer's shell cannot change what a test sees.

    :param base: the environment to copy (default ``os.environ``)
    :return: the filtered copy
    """
    source = os.environ if base is None else base
    return {
        key: value
        for key, value in source.items()
        if not key.startswith("BUTTERFLY_") or key.startswith(TEST_ENV_PREFIX)
    }


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_accepts(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a TCP connection to ``host:port`` succeeds now (it is closed at once)."""
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def wait_for(condition: Callable[[], _T], timeout: float = 30, what: str = "condition") -> _T:
    """Call ``condition`` every 50 ms until it returns something true, and return that.

    :param condition: what to wait for (may raise, which ends the wait)
    :param timeout: seconds before giving up
    :param what: named in the failure
    :raises AssertionError: ``timed out waiting for <what>``
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


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
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("live server did not start")

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


class ServerProcess:
    """``butterfly run`` as a real subprocess (``python -m kernel run --port <port>``).

    For what only a real process shows: signals (SIGHUP, SIGTERM), ``--workers``, what
    reaches stdout. Build ``env`` from :func:`hermetic_environ`, so a developer's shell
    cannot change what the server sees; kill it at teardown (:meth:`kill`).

    :param cwd: the working directory (its ``butterfly.toml``, ``data/`` and ``logs/``)
    :param env: the server's whole environment
    :param stdout: the file under ``cwd`` that collects the output (appended)
    :param stderr: a file under ``cwd`` for stderr alone; default: with the output
    :param port: the port to serve on; default: :func:`free_port`
    """

    def __init__(
        self,
        cwd: Path,
        env: Mapping[str, str],
        *,
        stdout: str = "server.log",
        stderr: str | None = None,
        port: int | None = None,
    ) -> None:
        self.cwd = cwd
        self.env = dict(env)
        self.stdout = cwd / stdout
        self.stderr = None if stderr is None else cwd / stderr
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    def start(self, *args: str, timeout: float = 30) -> ServerProcess:
        """Start ``butterfly run --port <port> args...`` and wait until :meth:`ready`.

        :param args: more ``run`` arguments (``--workers``, ``--pid-file``, ...)
        :param timeout: seconds to wait
        :raises AssertionError: the process exited first (the message holds its output), or
            it was not ready in time
        """
        self.cwd.mkdir(parents=True, exist_ok=True)
        with self.stdout.open("ab") as out:
            if self.stderr is None:
                self.process = self._popen(args, out, subprocess.STDOUT)
            else:
                with self.stderr.open("ab") as err:
                    self.process = self._popen(args, out, err)
        process = self.process

        def started() -> bool:
            assert process.poll() is None, f"the server exited with status {process.returncode}:\n{self.output()}"
            return self.ready()

        wait_for(started, timeout, what="the server to be ready")
        return self

    def ready(self) -> bool:
        """Whether the server is ready: its port accepts connections (override to ask more)."""
        return port_accepts(self.port)

    def _popen(self, args: tuple[str, ...], stdout: Any, stderr: Any) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "kernel", "run", "--port", str(self.port), *args],
            cwd=self.cwd,
            env=self.env,
            stdout=stdout,
            stderr=stderr,
        )

    def output(self) -> str:
        """What the process wrote so far: the output file, then the stderr file if separate."""
        files = [self.stdout] if self.stderr is None else [self.stdout, self.stderr]
        return "".join(path.read_text() for path in files if path.exists())

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM (a graceful drain) and wait for the exit.

        :return: the exit status
        """
        assert self.process is not None, "the server was not started"
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the server's workers (``--workers``) and the server, if still running."""
        if self.process is None or self.process.poll() is not None:
            return
        for pid in child_pids(self.process.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # exited meanwhile
        self.process.kill()
        self.process.wait()


class RedisServer:
    """A private ``redis-server`` on a free port.

    :param durable: ``appendonly yes`` + ``appendfsync always``, so an acknowledged
        write survives :meth:`kill` and :meth:`start` again; default: no persistence
    """

    def __init__(self, port: int | None = None, *, durable: bool = False) -> None:
        self.port = port or free_port()
        self.durable = durable
        self.dir = tempfile.mkdtemp(prefix="butterfly-redis-")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start it and wait until it answers PING."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                *(["--appendonly", "yes", "--appendfsync", "always"] if self.durable else ["--appendonly", "no"]),
                "--dir",
                self.dir,
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        """Terminate it."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL it (a crash: no shutdown save); harmless when it is not running."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self) -> None:
        """Stop and start again on the same port (data survives only when ``durable``)."""
        self.stop()
        self.start()


class ExternalRedis:
    """A Redis server the tests did not start (``BUTTERFLY_TEST_REDIS_URL``); never stopped."""

    def __init__(self, url: str) -> None:
        self.url = url


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
