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
never in ``sys.modules``). A fresh watcher per run follows files replaced by
renaming (how many editors save). It is the ``dev`` extra of butterfly-kernel;
without it ``run --dev`` serves without reloading and says so.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

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


class Reloader:
    """Runs ``command`` and restarts it whenever something under ``paths`` changes.

    :param command: the server's argv
    :param paths: directories (watched recursively) and files
    :param stop_timeout: seconds a stopping child may take before SIGKILL
    """

    def __init__(self, command: Sequence[str], paths: Sequence[Path], stop_timeout: float) -> None:
        self.command = list(command)
        self.paths = list(paths)
        self.stop_timeout = stop_timeout
        self.stopping = threading.Event()
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
        from watchfiles import DefaultFilter, watch

        watch_filter = DefaultFilter()
        try:
            while not self.stopping.is_set():
                self._start()
                existing = [str(path) for path in self.paths if path.exists()]
                if not existing:
                    log.warning("nothing to watch; reload is off", paths=[str(path) for path in self.paths])
                    while not self.stopping.wait(0.5) and self.child.poll() is None:
                        pass
                    break
                # NOTE: a new watcher per run: a file replaced by renaming (editors) is watched again.
                changes = next(
                    watch(
                        *existing,
                        watch_filter=watch_filter,
                        debounce=DEBOUNCE_MS,
                        step=STEP_MS,
                        stop_event=self.stopping,
                        raise_interrupt=False,
                    ),
                    None,
                )
                if changes is None:  # stopped
                    break
                changed = sorted({self._shown(path) for _, path in changes})
                log.info("change detected; restarting the server", changed=changed)
                self._stop()
                self.restarts += 1
        finally:
            self._stop()
        return 0

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
    reloader = Reloader(command, paths, stop_timeout + KILL_GRACE)
    reloader.install_signal_handlers()
    log.info("watching for changes", paths=[str(path) for path in paths if path.exists()])
    return reloader.run()
