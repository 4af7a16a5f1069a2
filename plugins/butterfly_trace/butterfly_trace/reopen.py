"""Reopen the log files on SIGHUP: rotation by ``logrotate`` (no ``copytruncate``).

``logrotate`` renames ``acc.log`` to ``acc.log.1`` and then runs its ``postrotate``
script, which sends SIGHUP (``systemctl reload``, or ``kill -HUP`` with the pid
file). Every line written before the signal is in the renamed file; on the signal
the process writes what is queued there, then opens ``acc.log`` afresh, so every
later line is in the new file. Under ``run --workers`` the supervisor forwards the
signal to each worker.
"""

from __future__ import annotations

import signal
import threading

import structlog

from butterfly_trace import access, files

log = structlog.get_logger("butterfly.trace")
_installed = False
_lock = threading.Lock()


def reopen_logs() -> None:
    """Reopen every log file of this process and say so in the (new) app log."""
    # NOTE: lines of requests that finished before the signal belong in the renamed file
    access.flush_started()
    try:
        paths = files.reopen_all()
    except OSError as exc:
        log.error("log files not reopened", error=f"{type(exc).__name__}: {exc}")
        return
    log.info("log files reopened", files=len(paths))


def _on_sighup(signum, frame) -> None:
    # NOTE: a signal handler runs on the main thread between two bytecodes, maybe in
    # the middle of a log write holding a writer's role: reopen on a thread of its own.
    threading.Thread(target=reopen_logs, name="butterfly-log-reopen", daemon=True).start()


def install_sighup_handler() -> bool:
    """Make SIGHUP reopen the log files, once per process.

    Only from the main thread (Python's rule for signal handlers), and only when
    nobody else handles SIGHUP already.

    :return: whether the handler is (now) installed
    """
    global _installed
    with _lock:
        if _installed:
            return True
        if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGHUP"):
            return False
        if signal.getsignal(signal.SIGHUP) not in (signal.SIG_DFL, None):
            return False
        signal.signal(signal.SIGHUP, _on_sighup)
        _installed = True
        return True
