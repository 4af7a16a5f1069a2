"""Real processes and ports for tests: ``butterfly run`` and ``redis-server`` as subprocesses.

Part of the test kit; import these from :mod:`kernel.testing` (which re-exports them).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from kernel.daemon import child_pids

_T = TypeVar("_T")

#: Environment variables that configure the test kit itself, kept by :func:`hermetic_environ`.
TEST_ENV_PREFIX = "BUTTERFLY_TEST_"


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
