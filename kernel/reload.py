"""``butterfly run --dev`` reloads: restart the server when a handler or the config changes.

This process never serves: it runs the server as a child (``python -m kernel ...
run --dev --no-reload``), watches ``[router] handlers_dir`` (recursively: new apps
count) and the config file with watchfiles, and on a change stops the child
(SIGTERM, the usual graceful drain) and starts a new one. A handler that no longer
imports is reported by the new server (the router logs the app and its traceback;
the other apps still serve) and watching goes on; a server that exits on its own
(a strict-mode import error, a bad config) is reported and restarted on the next
change.

NOTE: watchfiles (Rust ``notify``: inotify, FSEvents, ...) rather than hupper:
it watches directories, so a new app directory or a file an editor replaces is
seen, and it needs no list of imported modules (an app that fails to import is
never in ``sys.modules``). The config file is watched through its directory, so
a file replaced by renaming (how many editors save) is still seen. It is the
``dev`` extra of butterfly-kernel; without it ``run --dev`` serves without
reloading and says so.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import structlog

from kernel.settings import Settings, read_config_file

log = structlog.get_logger("butterfly.reload")

#: Seconds past ``[server] shutdown_timeout`` before a child that does not stop is killed.
KILL_GRACE = 5.0
#: watchfiles: the most milliseconds a burst of changes (a ``git checkout``) is gathered.
DEBOUNCE_MS = 800
#: watchfiles: a burst ends after this many quiet milliseconds.
STEP_MS = 50


def reloader_available() -> bool:
    """Whether watchfiles can be imported."""
    try:
        import watchfiles  # noqa: F401
    except ImportError:
        return False
    return True


def watched_paths(args: argparse.Namespace) -> list[Path]:
    """What to watch: ``[router] handlers_dir`` and the config file (absolute paths).

    Read from the raw config (file, environment, ``--set``), no plugin imported.

    :param args: the parsed ``run`` command line
    :return: the paths (they may not exist yet)
    """
    from kernel.cli import parse_set_options

    file_data, origin = read_config_file(getattr(args, "config", None))
    settings = Settings(file_data, None, parse_set_options(getattr(args, "set", None)), origin)
    paths = [Path(str(settings.raw("router", "handlers_dir", "handlers"))).absolute()]
    config_file = Path(origin).absolute()
    if config_file.is_file():
        paths.append(config_file)
    return paths


def _is_file(wanted: str, change: Any, name: str) -> bool:
    """watchfiles filter: only changes of the file ``wanted``."""
    return name == wanted


class Reloader:
    """Runs ``command`` and restarts it whenever something under ``paths`` changes.

    One watcher thread per path lives as long as this object: a change made while
    the server restarts is queued, not lost, and restarts it once more. A directory
    is watched recursively; a file through its directory (not recursively), so a file
    that an editor replaces by renaming is still seen.

    :param command: the server's argv
    :param paths: directories (watched recursively) and files
    :param stop_timeout: seconds a stopping child may take before SIGKILL
    """

    def __init__(self, command: Sequence[str], paths: Sequence[Path], stop_timeout: float) -> None:
        self.command = list(command)
        self.paths = list(paths)
        self.stop_timeout = stop_timeout
        self.stopping = threading.Event()
        self.changes: queue.Queue[set[str]] = queue.Queue()
        self.child: subprocess.Popen | None = None
        self.restarts = 0

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT stop watching; the child is stopped gracefully."""

        def handler(signum, frame):
            self.stopping.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def run(self) -> int:
        """Serve, watch, restart, until SIGTERM/SIGINT; returns the exit code (0)."""
        watched = self._start_watchers()
        if not watched:
            log.warning("nothing to watch; reload is off", paths=[str(path) for path in self.paths])
        try:
            while not self.stopping.is_set():
                self._start()
                changed = self._next_change()
                if changed is None:  # stopped
                    break
                log.info("change detected; restarting the server", changed=sorted(changed))
                self._stop()
                self.restarts += 1
        finally:
            self.stopping.set()
            self._stop()
        return 0

    def _start_watchers(self) -> list[Path]:
        from watchfiles import DefaultFilter

        default_filter = DefaultFilter()
        watched = []
        for path in self.paths:
            accept: Callable[[Any, str], bool]
            if path.is_dir():
                target, recursive, accept = path, True, default_filter
            elif path.is_file():
                target, recursive, accept = path.parent, False, functools.partial(_is_file, str(path))
            else:
                continue
            thread = threading.Thread(
                target=self._watch, args=(target, recursive, accept), name="butterfly-reload-watch", daemon=True
            )
            thread.start()
            watched.append(path)
        return watched

    def _watch(self, target: Path, recursive: bool, accept: Callable[[Any, str], bool]) -> None:
        """Watcher thread: queue each burst of changes under ``target`` that ``accept`` takes."""
        from watchfiles import watch

        for changes in watch(
            target,
            watch_filter=accept,
            recursive=recursive,
            debounce=DEBOUNCE_MS,
            step=STEP_MS,
            stop_event=self.stopping,
            raise_interrupt=False,
        ):
            self.changes.put({self._shown(path) for _, path in changes})

    def _next_change(self) -> set[str] | None:
        """Wait for changes (all that queued up), or ``None`` once stopping."""
        while not self.stopping.is_set():
            try:
                changed = self.changes.get(timeout=0.2)
            except queue.Empty:
                continue
            while True:  # a burst: take what else is already queued
                try:
                    changed |= self.changes.get_nowait()
                except queue.Empty:
                    return changed
        return None

    def _shown(self, path: str) -> str:
        try:
            return os.path.relpath(path)
        except ValueError:
            return path

    def _start(self) -> None:
        # NOTE: the child holds one end of a socket pair (run --supervisor-fd); when this
        # process dies, even by SIGKILL, the child sees end-of-file and drains: no orphan
        # keeps the port.
        mine, theirs = socket.socketpair()
        command = [*self.command, "--supervisor-fd", str(theirs.fileno())]
        try:
            child = subprocess.Popen(command, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        finally:
            theirs.close()
        self.child = child
        threading.Thread(
            target=self._watch_child, args=(child, mine), name="butterfly-reload-child", daemon=True
        ).start()

    def _watch_child(self, child: subprocess.Popen, link: socket.socket) -> None:
        """Report a child that exits on its own (not stopped by us)."""
        try:
            while link.recv(64):
                pass
        except OSError:
            pass
        status = child.wait()
        link.close()
        if self.child is child and not self.stopping.is_set():
            log.error("the server exited; fix the problem above, the next change restarts it", status=status)

    def _stop(self) -> None:
        child, self.child = self.child, None
        if child is None or child.poll() is not None:
            return
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            log.warning("the server did not stop in time; killing it", pid=child.pid)
            child.kill()
            child.wait()


def run_with_reload(args: argparse.Namespace, argv: Sequence[str], stop_timeout: float) -> int:
    """``run --dev``: serve in a child process and restart it on changes.

    :param args: the parsed ``run`` command line
    :param argv: the command line this process was started with (without the program)
    :param stop_timeout: ``[server] shutdown_timeout``
    :return: the exit code
    """
    paths = watched_paths(args)
    command = [sys.executable, "-m", "kernel", *argv, "--no-reload"]
    # NOTE: watchfiles logs "N changes detected" at INFO; our own line says which files.
    logging.getLogger("watchfiles").setLevel(logging.WARNING)
    reloader = Reloader(command, paths, stop_timeout + KILL_GRACE)
    reloader.install_signal_handlers()
    log.info("watching for changes", paths=[str(path) for path in paths if path.exists()])
    return reloader.run()
