"""Many cores: ``butterfly run --workers N`` — N server processes on one port.

The parent process, the *supervisor*, never serves HTTP and never builds a kernel.
It binds the address once with ``SO_REUSEPORT`` and does not listen on it: that
reserves the port (and resolves ``--port 0``) while workers come and go. Each worker
is a fresh interpreter, ``python -m kernel run --worker-slot I`` (no fork after
threads, nothing pickled), that builds its own kernel — with its own MQ consumer and
ruqi scheduler, both leaderless — and listens on its own ``SO_REUSEPORT`` socket
bound to the same address. Linux spreads new connections over the listening
sockets; the supervisor's bound-only socket is not one of them.

Each worker holds one end of a socket pair whose other end the supervisor keeps.
The worker writes ``ready`` once it listens, and treats end-of-file as "the
supervisor is gone": it drains and exits, so no worker outlives a killed supervisor.

Supervision:

* worker 0 starts alone and the others once it is ready, so a config error is
  reported once and first-run table creation does not race;
* a worker that dies is restarted after a backoff that doubles with each death in a
  row (:data:`BACKOFF_FIRST` up to :data:`BACKOFF_MAX`; serving
  :data:`STABLE_SECONDS` resets it);
* the supervisor gives up — stops the other workers and exits 1 — when no worker
  was ever ready and one exits (a config error), or when one slot fails before it is
  ready :data:`MAX_STARTUP_FAILURES` times in a row;
* SIGTERM/SIGINT is forwarded to every worker as SIGTERM (each drains within its
  ``[server] shutdown_timeout``); stragglers are SIGKILLed after that timeout plus
  :data:`KILL_GRACE`. A second signal kills them at once;
* SIGHUP is forwarded to every worker (the trace plugin reopens its log files).
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from kernel import logs
from kernel.errors import ButterflyError
from kernel.settings import Section, Settings, read_config_file

log = structlog.get_logger("butterfly.workers")

#: Seconds before the first restart of a dead worker; doubled for each death in a row.
BACKOFF_FIRST = 0.5
#: The longest wait before a restart.
BACKOFF_MAX = 30.0
#: A worker that served this long before dying starts its backoff over.
STABLE_SECONDS = 10.0
#: Start-up failures in a row (exit before ``ready``) after which the supervisor gives up.
MAX_STARTUP_FAILURES = 5
#: Seconds past ``[server] shutdown_timeout`` before stragglers are SIGKILLed.
KILL_GRACE = 5.0
#: How often the supervisor looks at its workers.
POLL_SECONDS = 0.2
READY = b"ready\n"


# -- settings and sockets ----------------------------------------------------------------


def server_settings(args: argparse.Namespace, overrides: Mapping[str, Any]) -> Section:
    """The resolved ``[server]`` section, without importing any plugin.

    :param args: the parsed command line (``config`` and ``set`` are read)
    :param overrides: ``{"section.key": value}`` from flags; ``None`` values ignored
    :return: the ``[server]`` settings (file, environment, ``--set``, flags)
    :raises ConfigError: for a bad ``[server]`` value or an unreadable config file
    """
    from kernel import defaults
    from kernel.cli import parse_set_options

    file_data, origin = read_config_file(getattr(args, "config", None))
    merged: dict[str, Any] = parse_set_options(getattr(args, "set", None))
    merged.update({key: value for key, value in overrides.items() if value is not None})
    settings = Settings(file_data, None, merged, origin)
    defaults.butterfly_add_settings(settings)
    return settings.section("server")


def bind_shared_port(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT``, not listening yet.

    Every socket of the group must set ``SO_REUSEPORT`` before ``bind``; Linux lets
    only the same user join, so another account cannot steal a share of the traffic.

    :param host: the listen address (the first address it resolves to is used)
    :param port: the port; ``0`` picks a free one (read it with ``getsockname()``)
    :return: the bound socket
    :raises ButterflyError: on a system without ``SO_REUSEPORT``
    :raises OSError: when the address cannot be bound
    """
    reuse_port = getattr(socket, "SO_REUSEPORT", None)
    if reuse_port is None:
        raise ButterflyError("--workers needs SO_REUSEPORT (Linux, BSD, macOS); run one process per port instead")
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, reuse_port, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


# -- the worker's side ---------------------------------------------------------------------


def connect_to_supervisor(fd: int, on_lost: Callable[[], None]) -> None:
    """Tell the supervisor this worker listens, and call ``on_lost`` when it goes away.

    :param fd: this worker's end of the socket pair (``--supervisor-fd``)
    :param on_lost: called once, on a thread, when the supervisor's end closes
    :return: ``None``
    """
    link = socket.socket(fileno=fd)
    link.sendall(READY)

    def watch() -> None:
        try:
            while link.recv(64):
                pass
        except OSError:
            pass
        log.warning("supervisor gone; draining")
        on_lost()

    threading.Thread(target=watch, name="butterfly-supervisor-link", daemon=True).start()


# -- the supervisor ------------------------------------------------------------------------


def describe_status(returncode: int) -> str:
    """``"status 1"`` or ``"signal SIGKILL"`` for a ``Popen.returncode``."""
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"status {returncode}"


@dataclass
class Worker:
    """One worker slot and the process currently filling it."""

    slot: int
    process: subprocess.Popen | None = None
    link: socket.socket | None = None
    ready: bool = False
    started_at: float = 0.0
    deaths_in_a_row: int = 0
    startup_failures: int = 0
    #: monotonic time of the next (re)start; ``None`` while running or not wanted
    start_at: float | None = None


class Supervisor:
    """Starts, watches, restarts and stops the workers.

    :param command: ``command(slot, fd)`` → the argv of worker ``slot`` whose
        supervisor link is file descriptor ``fd``
    :param count: how many workers
    :param shutdown_timeout: the workers' ``[server] shutdown_timeout``
    """

    def __init__(self, command: Callable[[int, int], list[str]], count: int, shutdown_timeout: float) -> None:
        self.command = command
        self.workers = [Worker(slot) for slot in range(count)]
        self.shutdown_timeout = shutdown_timeout
        #: why the supervisor gave up, or ``None``
        self.failure: str | None = None
        self._signals = 0
        self._hangups = 0
        self._hangup_when_ready: set[int] = set()
        self._stopping = False
        self._killed = False
        self._deadline = 0.0
        self._ever_ready = False

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT stop the workers gracefully; a second one kills them. SIGHUP is
        forwarded to every worker (they reopen their log files: ``logrotate``)."""

        def handler(signum, frame):
            self._signals += 1

        def hangup(signum, frame):
            self._hangups += 1

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, hangup)

    def _forward_hangups(self) -> None:
        # NOTE: forwarded from the loop, not the handler: a handler could interrupt a
        # _spawn or _reap halfway through.
        if not self._hangups:
            return
        self._hangups = 0
        for worker in self.workers:
            process = worker.process
            if process is None or process.poll() is not None:
                continue
            if worker.ready:
                process.send_signal(signal.SIGHUP)
            else:
                # NOTE: one still starting has no handler yet (SIGHUP would kill it) and may
                # have opened its files before the rename: it gets the signal once ready.
                self._hangup_when_ready.add(worker.slot)
        log.info("SIGHUP forwarded to the workers")

    def run(self) -> None:
        """Supervise until stopped by a signal or until giving up (see :attr:`failure`)."""
        self.workers[0].start_at = time.monotonic()
        try:
            while True:
                if self._signals and not self._stopping:
                    log.info("signal received, stopping workers", timeout=self.shutdown_timeout)
                    self._begin_stop()
                if self._signals > 1 or (self._stopping and time.monotonic() > self._deadline):
                    self._kill_all()
                self._forward_hangups()
                self._read_links()
                self._reap()
                if self._stopping:
                    if not any(worker.process for worker in self.workers):
                        return
                    continue
                self._start_due()
        finally:
            self._kill_all()

    # -- steps of the loop -------------------------------------------------------------

    def _start_due(self) -> None:
        now = time.monotonic()
        for worker in self.workers:
            if worker.process is None and worker.start_at is not None and now >= worker.start_at:
                self._spawn(worker)

    def _spawn(self, worker: Worker) -> None:
        mine, theirs = socket.socketpair()
        try:
            worker.process = subprocess.Popen(
                self.command(worker.slot, theirs.fileno()), pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL
            )
        except OSError as exc:
            mine.close()
            self._give_up(f"cannot start worker {worker.slot}: {exc}")
            return
        finally:
            theirs.close()
        worker.link, worker.ready, worker.start_at = mine, False, None
        worker.started_at = time.monotonic()
        log.info("worker starting", worker_slot=worker.slot, worker_pid=worker.process.pid)

    def _read_links(self) -> None:
        links = {worker.link: worker for worker in self.workers if worker.link is not None}
        if not links:
            time.sleep(POLL_SECONDS)
            return
        readable, _, _ = select.select(list(links), [], [], POLL_SECONDS)
        for link in readable:
            worker = links[link]
            try:
                data = link.recv(64)
            except OSError:
                data = b""
            if not data:  # the worker closed its end: it is exiting; _reap collects it
                link.close()
                worker.link = None
                continue
            if READY.strip() in data and not worker.ready:
                worker.ready = True
                log.info("worker ready", worker_slot=worker.slot, worker_pid=worker.process and worker.process.pid)
                if worker.slot in self._hangup_when_ready and worker.process is not None:
                    self._hangup_when_ready.discard(worker.slot)
                    worker.process.send_signal(signal.SIGHUP)
                if not self._ever_ready:
                    self._ever_ready = True
                    for other in self.workers[1:]:
                        other.start_at = time.monotonic()

    def _reap(self) -> None:
        for worker in self.workers:
            process = worker.process
            if process is None or process.poll() is None:
                continue
            was_ready = worker.ready
            self._forget(worker)
            status = describe_status(process.returncode)
            if self._stopping:
                log.info("worker stopped", worker_slot=worker.slot, worker_pid=process.pid, status=status)
                continue
            self._schedule_restart(worker, process, status, was_ready)

    def _schedule_restart(self, worker: Worker, process: subprocess.Popen, status: str, was_ready: bool) -> None:
        now = time.monotonic()
        if not was_ready:
            worker.startup_failures += 1
        else:
            worker.startup_failures = 0
            if now - worker.started_at >= STABLE_SECONDS:
                worker.deaths_in_a_row = 0
        worker.deaths_in_a_row += 1
        if not self._ever_ready:
            self._give_up(f"worker {worker.slot} exited ({status}) before it was ready; its output above says why")
            return
        if worker.startup_failures >= MAX_STARTUP_FAILURES:
            self._give_up(
                f"worker {worker.slot} failed to start {worker.startup_failures} times in a row "
                f"(last: {status}); giving up"
            )
            return
        delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (worker.deaths_in_a_row - 1))
        worker.start_at = now + delay
        log.error(
            "worker died; restarting",
            worker_slot=worker.slot,
            worker_pid=process.pid,
            status=status,
            restart_in=delay,
            deaths_in_a_row=worker.deaths_in_a_row,
        )

    def _forget(self, worker: Worker) -> None:
        if worker.link is not None:
            worker.link.close()
        worker.link = None
        worker.process = None
        worker.ready = False

    # -- stopping ----------------------------------------------------------------------

    def _give_up(self, reason: str) -> None:
        log.error("giving up; stopping every worker", reason=reason)
        self.failure = reason
        self._begin_stop()

    def _begin_stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        self._deadline = time.monotonic() + self.shutdown_timeout + KILL_GRACE
        for worker in self.workers:
            worker.start_at = None
            if worker.process is not None:
                worker.process.send_signal(signal.SIGTERM)

    def _kill_all(self) -> None:
        for worker in self.workers:
            process = worker.process
            if process is None:
                continue
            if process.poll() is None:
                if not self._killed:
                    log.warning("killing worker", worker_slot=worker.slot, worker_pid=process.pid)
                process.kill()
            process.wait()
            log.info("worker stopped", worker_slot=worker.slot, worker_pid=process.pid, status="killed")
            self._forget(worker)
        self._killed = True


# -- the `run --workers N` entry point -------------------------------------------------------


def worker_command(args: argparse.Namespace, host: str, port: int, slot: int, fd: int) -> list[str]:
    """The argv of one worker: ``python -m kernel [--config F] [--set ...] run ...``.

    :param args: the supervisor's parsed command line
    :param host: the listen address as given (each worker resolves it the same way)
    :param port: the actual port (never 0)
    :param slot: the worker's index
    :param fd: its end of the supervisor link
    :return: the argument list
    """
    argv = [sys.executable, "-m", "kernel"]
    if getattr(args, "config", None):
        argv += ["--config", str(Path(args.config).absolute())]
    for assignment in getattr(args, "set", None) or []:
        argv += ["--set", assignment]
    argv += ["run", "--host", host, "--port", str(port), "--worker-slot", str(slot), "--supervisor-fd", str(fd)]
    if getattr(args, "dev", False):
        argv.append("--dev")
    return argv


def supervise(args: argparse.Namespace, server: Section, count: int) -> int:
    """Run ``count`` workers on ``[server] host:port`` until SIGTERM/SIGINT.

    :param args: the parsed ``run`` command line (``pid_file``, ``config``, ``set``, ``dev``)
    :param server: the resolved ``[server]`` settings
    :param count: how many workers (at least 2)
    :return: 0 after a graceful stop
    :raises ButterflyError: when the port cannot be bound or the workers crash-loop
    """
    from kernel.daemon import port_accepts, remove_pid_file, write_pid

    logs.PROCESS_FIELDS.update(worker="supervisor", pid=os.getpid())
    logs.configure(server.log_level, server.log_format)
    host = server.host
    # NOTE: SO_REUSEPORT would let us join another Butterfly's port silently; refuse instead.
    if server.port and port_accepts(host, server.port):
        raise ButterflyError(f"cannot listen on {host}:{server.port}: already in use")
    try:
        reserved = bind_shared_port(host, server.port)
    except OSError as exc:
        raise ButterflyError(f"cannot listen on {host}:{server.port}: {exc}") from None
    port = reserved.getsockname()[1]
    pid_file = Path(args.pid_file).absolute() if getattr(args, "pid_file", None) else None
    if pid_file is not None:
        write_pid(pid_file, os.getpid())
    supervisor = Supervisor(lambda slot, fd: worker_command(args, host, port, slot, fd), count, server.shutdown_timeout)
    supervisor.install_signal_handlers()
    shown = host if ":" not in host else f"[{host}]"
    log.info("supervising workers", url=f"http://{shown}:{port}", workers=count)
    try:
        supervisor.run()
    finally:
        reserved.close()
        if pid_file is not None:
            remove_pid_file(pid_file, os.getpid())
    if supervisor.failure:
        raise ButterflyError(supervisor.failure)
    log.info("stopped")
    return 0
