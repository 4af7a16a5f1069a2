"""Daemon mode: ``butterfly start | stop | restart | status``.

``start`` spawns ``python -m kernel run`` detached (a new session, no shell; with
``--workers N`` that process supervises N workers, see :mod:`kernel.workers`), its
stdout/stderr appended to ``<log_dir>/stdout.log``, records the pid in
``<data_dir>/butterfly.pid`` and waits until the port accepts connections or the
child dies. ``stop`` sends SIGTERM (graceful drain; a supervisor forwards it to its
workers), waits, then SIGKILLs the process group (workers included). A pid file
whose process is gone, or is not a Butterfly server (the pid was reused), is stale:
reported and removed.

``stop`` and ``status`` read only ``[server] data_dir`` from the config (no plugin
is imported), so a broken config or plugin cannot keep you from stopping a server.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from kernel.settings import Settings, read_config_file

PID_FILE_NAME = "butterfly.pid"
STDOUT_LOG_NAME = "stdout.log"
START_MARK = "--- butterfly start"
#: LSB exit status of ``status`` when the program is not running.
EXIT_NOT_RUNNING = 3
POLL_SECONDS = 0.1


# -- pid files and processes ----------------------------------------------------------------


def read_pid(pid_file: Path) -> int | None:
    """The pid recorded in ``pid_file``, or ``None`` (missing or garbage).

    :param pid_file: the pid file
    :return: the pid or ``None``
    """
    try:
        text = pid_file.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def write_pid(pid_file: Path, pid: int) -> None:
    """Record ``pid`` in ``pid_file`` (created with its directory).

    :param pid_file: the pid file
    :param pid: the process id
    :return: ``None``
    """
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{pid}\n")


def remove_pid_file(pid_file: Path, pid: int | None = None) -> None:
    """Remove ``pid_file``; with ``pid``, only if it still records that pid.

    :param pid_file: the pid file
    :param pid: remove only if it records this pid
    :return: ``None``
    """
    if pid is not None and read_pid(pid_file) != pid:
        return
    try:
        pid_file.unlink()
    except FileNotFoundError:
        pass


def process_argv(pid: int) -> list[str] | None:
    """The command line of ``pid`` from ``/proc``; ``[]`` for a zombie; ``None`` if unknown.

    :param pid: the process id
    :return: its arguments
    """
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return [] if Path("/proc/self").exists() else None
    except OSError:
        return None
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def looks_like_server(argv: Sequence[str]) -> bool:
    """True for ``python -m kernel ... run ...`` or ``butterfly ... run ...``.

    :param argv: a process's arguments
    :return: whether it is a Butterfly server
    """
    launcher = "kernel" in argv or any(Path(arg).name == "butterfly" for arg in argv)
    return launcher and "run" in argv


def child_pids(pid: int) -> list[int]:
    """The live Butterfly servers whose parent is ``pid`` (``run --workers`` workers).

    :param pid: the supervisor's process id
    :return: the workers' pids, sorted; ``[]`` without ``/proc``
    """
    children = []
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            # NOTE: field 2 (the name) is in parentheses and may hold spaces; fields after it are plain.
            fields = entry.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if len(fields) > 1 and fields[1] == str(pid) and is_server_alive(int(entry.parent.name)):
            children.append(int(entry.parent.name))
    return sorted(children)


def is_server_alive(pid: int) -> bool:
    """True when ``pid`` exists, is not a zombie and is a Butterfly server.

    Without ``/proc`` the command line cannot be checked; a live pid then counts.
    :param pid: the process id
    :return: whether it is a live Butterfly server
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process: the pid was reused
    argv = process_argv(pid)
    if argv is None:
        return True
    return bool(argv) and looks_like_server(argv)


def running_pid(pid_file: Path) -> tuple[int | None, bool]:
    """The pid of the running server, and whether a stale pid file was removed.

    :param pid_file: the pid file
    :return: ``(pid or None, stale_file_removed)``
    """
    pid = read_pid(pid_file)
    if pid is not None and is_server_alive(pid):
        return pid, False
    stale = pid_file.exists()
    if stale:
        remove_pid_file(pid_file)
    return None, stale


def port_accepts(host: str, port: int) -> bool:
    """True when something accepts TCP connections on ``host:port``.

    :param host: the listen address (``0.0.0.0`` is probed on loopback)
    :param port: the port
    :return: whether a connection succeeds
    """
    target = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    try:
        with socket.create_connection((target, port), timeout=1):
            return True
    except OSError:
        return False


def log_tail(log_path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines written since the latest ``start`` mark.

    :param log_path: the ``stdout.log``
    :param lines: how many lines
    :return: the text
    """
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return ""
    text = text[text.rfind(START_MARK) :] if START_MARK in text else text
    return "\n".join(text.splitlines()[-lines:])


# -- paths without building the kernel ----------------------------------------------------


def daemon_paths(args: argparse.Namespace) -> tuple[Path, Path]:
    """``(pid_file, log_dir)`` from the raw config (file, env, ``--set``), no plugins.

    :param args: parsed arguments (``config``, ``set``)
    :return: absolute paths
    """
    from kernel.cli import parse_set_options

    file_data, origin = read_config_file(getattr(args, "config", None))
    settings = Settings(file_data, None, parse_set_options(getattr(args, "set", None)), origin)
    data_dir = Path(str(settings.raw("server", "data_dir", "data"))).absolute()
    log_dir = Path(str(settings.raw("server", "log_dir", "logs"))).absolute()
    return data_dir / PID_FILE_NAME, log_dir


def _url_of(argv: Sequence[str] | None, fallback: str) -> str:
    args = list(argv or [])
    try:
        host, port = args[args.index("--host") + 1], args[args.index("--port") + 1]
    except (ValueError, IndexError):
        return fallback
    return f"http://{host if ':' not in host else f'[{host}]'}:{port}"


# -- commands --------------------------------------------------------------------------------


def cmd_start(args: argparse.Namespace) -> int:
    """``butterfly start``: spawn the server detached and wait until it listens.

    :param args: the parsed command line
    :return: the exit code
    """
    from kernel.cli import load_kernel

    # Build the kernel once here: a bad config or plugin is reported before spawning.
    kernel = load_kernel(args, **{"server.host": args.host, "server.port": args.port})
    server = kernel.settings.section("server")
    host, port = server.host, server.port
    pid_file = kernel.ensure_data_dir() / PID_FILE_NAME
    pid, stale = running_pid(pid_file)
    if stale:
        print(f"removed stale pid file {pid_file}")
    if pid is not None:
        print(f"butterfly: error: already running (pid {pid}, pid file {pid_file})", file=sys.stderr)
        return 1
    if port == 0:
        print("butterfly: error: start needs a fixed [server] port, not 0", file=sys.stderr)
        return 1
    if port_accepts(host, port):
        print(f"butterfly: error: {host}:{port} is already in use by another program", file=sys.stderr)
        return 1
    kernel.log_dir.mkdir(parents=True, exist_ok=True)
    log_path = kernel.log_dir / STDOUT_LOG_NAME
    argv = [sys.executable, "-m", "kernel"]
    if getattr(args, "config", None):
        argv += ["--config", str(Path(args.config).absolute())]
    for assignment in getattr(args, "set", None) or []:
        argv += ["--set", assignment]
    argv += ["run", "--host", host, "--port", str(port), "--pid-file", str(pid_file)]
    if getattr(args, "workers", None):
        argv += ["--workers", str(args.workers)]
    with log_path.open("ab") as log:
        log.write(f"{START_MARK} {datetime.now().isoformat(timespec='seconds')} ---\n".encode())
        log.flush()
        child = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True
        )
    write_pid(pid_file, child.pid)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            remove_pid_file(pid_file, child.pid)
            print(
                f"butterfly: error: the server exited with status {child.returncode}; "
                f"last lines of {log_path}:\n{log_tail(log_path)}",
                file=sys.stderr,
            )
            return 1
        if port_accepts(host, port):
            url = _url_of(["--host", host, "--port", str(port)], "")
            print(f"butterfly started: pid {child.pid}, {url} (output: {log_path})")
            return 0
        time.sleep(POLL_SECONDS)
    _terminate(child.pid, timeout=5)
    remove_pid_file(pid_file, child.pid)
    print(
        f"butterfly: error: not listening on {host}:{port} after {args.timeout:g} s, stopped it; "
        f"last lines of {log_path}:\n{log_tail(log_path)}",
        file=sys.stderr,
    )
    return 1


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_server_alive(pid):
            return True
        time.sleep(POLL_SECONDS)
    return not is_server_alive(pid)


def _terminate(pid: int, timeout: float) -> str:
    """SIGTERM ``pid``; after ``timeout`` s SIGKILL its process group. Returns what happened."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return "stopped"
    if _wait_gone(pid, timeout):
        return "stopped"
    try:
        # NOTE: the server leads its own session; kill the group so children go too.
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return "stopped"
    return "killed (SIGKILL)" if _wait_gone(pid, 10) else "still running"


def _running_server(args: argparse.Namespace) -> tuple[Path, int | None]:
    """The pid file and the running server's pid; says so (and cleans up) when none runs."""
    pid_file, _ = daemon_paths(args)
    pid, stale = running_pid(pid_file)
    if pid is None:
        print("butterfly is not running" + (f" (removed stale pid file {pid_file})" if stale else ""))
    return pid_file, pid


def cmd_stop(args: argparse.Namespace) -> int:
    """``butterfly stop``: SIGTERM, wait ``--timeout`` s, then SIGKILL; 0 also when not running.

    :param args: the parsed command line
    :return: the exit code
    """
    pid_file, pid = _running_server(args)
    if pid is None:
        return 0
    outcome = _terminate(pid, args.timeout)
    if outcome == "still running":
        print(f"butterfly: error: pid {pid} survived SIGKILL", file=sys.stderr)
        return 1
    remove_pid_file(pid_file, pid)
    suffix = f" after {args.timeout:g} s without exiting" if outcome.startswith("killed") else ""
    print(f"butterfly {outcome}: pid {pid}{suffix}")
    return 0


def cmd_restart(args: argparse.Namespace) -> int:
    """``butterfly restart``: stop (if running) then start.

    :param args: the parsed command line
    :return: the exit code
    """
    stopped = cmd_stop(args)
    if stopped != 0:
        return stopped
    return cmd_start(args)


def cmd_status(args: argparse.Namespace) -> int:
    """``butterfly status``: 0 and the pid/url when running, 3 (LSB) when not.

    :param args: the parsed command line
    :return: the exit code
    """
    _, pid = _running_server(args)
    if pid is None:
        return EXIT_NOT_RUNNING
    workers = child_pids(pid)
    suffix = f", {len(workers)} workers (pids {', '.join(map(str, workers))})" if workers else ""
    print(f"butterfly is running: pid {pid}, {_url_of(process_argv(pid), '(address unknown)')}{suffix}")
    return 0


def _positive_count(text: str) -> int:
    from kernel.cli import positive_count

    return positive_count(text)


def add_daemon_commands(subparsers, parents: Sequence[argparse.ArgumentParser] = ()) -> None:
    """Register ``start``, ``stop``, ``restart`` and ``status`` on ``subparsers``.

    :param subparsers: the ``butterfly`` sub-parsers action
    :param parents: parsers whose options every built-in command shares
    :return: ``None``
    """
    files = f"pid file <data_dir>/{PID_FILE_NAME}; server output appended to <log_dir>/{STDOUT_LOG_NAME}"
    start = subparsers.add_parser(
        "start",
        parents=list(parents),
        help="start the server in the background",
        description=f"Start `butterfly run` detached and wait until it listens. Refuses when already "
        f"running; exit 1 (with the output's last lines) when it dies. {files}.",
    )
    restart = subparsers.add_parser(
        "restart",
        parents=list(parents),
        help="stop (if running), then start",
        description=f"Stop the background server if it runs, then start it. {files}.",
    )
    for parser in (start, restart):
        parser.add_argument("--host", help="listen address (default [server] host)")
        parser.add_argument("--port", type=int, help="listen port (default [server] port)")
        parser.add_argument(
            "--timeout",
            type=float,
            default=30.0,
            metavar="S",
            help="seconds to wait for stop and for the port to accept (default 30)",
        )
        parser.add_argument(
            "--workers",
            type=_positive_count,
            metavar="N",
            help="N server processes sharing the port, supervised (default [server] workers)",
        )
    start.set_defaults(run=cmd_start)
    restart.set_defaults(run=cmd_restart)

    stop = subparsers.add_parser(
        "stop",
        parents=list(parents),
        help="stop the background server (SIGTERM, then SIGKILL)",
        description=f"Send SIGTERM (graceful drain), wait up to --timeout seconds, then SIGKILL. "
        f"Exit 0, also when it was not running. {files}.",
    )
    stop.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds to wait after SIGTERM before SIGKILL (default 30)",
    )
    stop.set_defaults(run=cmd_stop)

    status = subparsers.add_parser(
        "status",
        parents=list(parents),
        help="is the background server running? (exit 0 yes, 3 no)",
        description=f"Print the pid and address of the background server. Exit 0 when running, "
        f"3 when not (LSB). A stale pid file is removed. {files}.",
    )
    status.set_defaults(run=cmd_status)
