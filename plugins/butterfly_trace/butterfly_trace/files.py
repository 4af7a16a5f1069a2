"""Shared log files: the reference-counted registry of writers and the app/err log handlers.

Two kernels in one process (tests build many) may point at the same log
directory. Every open file is therefore shared through a small reference-counted
registry keyed by its absolute path: one writer per file, so two writers can never
rotate the same file behind each other's back. Each kernel acquires what it uses
in ``butterfly_configure`` and releases it at shutdown (or when it is garbage
collected without ever being started).

The writers themselves (:class:`RotatingWriter`, :class:`StreamWriter`, ``STDOUT``)
live in :mod:`butterfly_trace.writers`; they are importable from here too.
"""

from __future__ import annotations

import copy
import logging
import sys
import threading
from collections import deque
from pathlib import Path
from typing import Any

from butterfly_trace.writers import FILE_MODE, STDOUT, RotatingWriter, StreamWriter, rotate_files

__all__ = [
    "FILE_MODE",
    "STDOUT",
    "TRACEBACK_KEYS",
    "LogFileHandler",
    "RotatingWriter",
    "StreamWriter",
    "acquire_root_handlers",
    "acquire_stdout_handler",
    "acquire_writer",
    "detach_console",
    "open_keys",
    "release",
    "release_soon",
    "reopen_all",
    "rotate_files",
    "without_traceback",
    "writer_key",
]


class _Shared:
    """One shared resource and how many kernels hold it."""

    __slots__ = ("resource", "users")

    def __init__(self, resource: Any) -> None:
        self.resource = resource
        self.users = 0


_registry: dict[str, _Shared] = {}
_registry_lock = threading.Lock()
#: Keys given back from garbage-collector callbacks, released at the next registry call.
_pending_release: deque[str] = deque()


def release_soon(key: str) -> None:
    """Queue ``key`` for release; safe from a GC callback (takes no lock)."""
    # NOTE: a weakref finalizer can fire inside any allocation, including while this
    # thread holds _registry_lock; releasing right there would deadlock.
    _pending_release.append(key)


def _drain_pending() -> None:
    while True:
        try:
            key = _pending_release.popleft()
        except IndexError:
            return
        _release(key)


def acquire_writer(path: Path, max_bytes: int, backups: int) -> RotatingWriter:
    """The shared :class:`RotatingWriter` for ``path`` (created on first use).

    :param path: absolute file path
    :return: the writer; give it back with :func:`release`
    """
    key = f"writer:{path}"
    _drain_pending()
    with _registry_lock:
        shared = _registry.get(key)
        if shared is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            shared = _registry[key] = _Shared(RotatingWriter(path, max_bytes, backups))
        shared.users += 1
        return shared.resource


#: Event-dict keys that carry a traceback (ours, structlog's exception renderer).
TRACEBACK_KEYS = ("traceback", "exc_info", "exception", "stack_info")


def without_traceback(record: logging.LogRecord) -> logging.LogRecord:
    """``record`` itself when it has no traceback, else a copy without it.

    The copy says where the traceback went (``"traceback": "in err.log"``); the
    original record is left alone, since the err.log handler formats it next.
    """
    message = record.msg
    carries = isinstance(message, dict) and any(key in message for key in TRACEBACK_KEYS)
    if not (carries or record.exc_info or record.exc_text or record.stack_info):
        return record
    clone = copy.copy(record)
    clone.exc_info = clone.exc_text = clone.stack_info = None
    if isinstance(message, dict):
        clone.msg = {key: value for key, value in message.items() if key not in TRACEBACK_KEYS}
        clone.msg["traceback"] = "in err.log"
    return clone


# PERF: logging.handlers.RotatingFileHandler formats every record twice and stats the
# file twice per record to decide on rollover; this formats once and counts bytes.
class LogFileHandler(logging.Handler):
    """A stdlib handler writing formatted records through a :class:`RotatingWriter`.

    :param writer: the file
    :param level: the handler's threshold
    :param formatter: renders the record
    :param omit_tracebacks_from: records at this level or above are written without
        their traceback (``app.log``: err.log already has it); ``None`` keeps them
    """

    def __init__(
        self,
        writer: RotatingWriter | StreamWriter,
        level: int,
        formatter: logging.Formatter,
        *,
        omit_tracebacks_from: int | None = None,
    ) -> None:
        super().__init__(level)
        self.writer = writer
        self.omit_tracebacks_from = omit_tracebacks_from
        self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        """Write one record as one line (a logging failure never raises)."""
        try:
            if self.omit_tracebacks_from is not None and record.levelno >= self.omit_tracebacks_from:
                record = without_traceback(record)
            self.writer.write((self.format(record) + "\n").encode("utf-8", "replace"))
        except Exception:  # noqa: BLE001 - logging's contract: report, don't raise
            self.handleError(record)

    def close(self) -> None:
        """Close the file."""
        self.writer.close()
        super().close()


def acquire_root_handlers(log_dir: Path, formatter: logging.Formatter, max_bytes: int, backups: int) -> str:
    """Attach ``app.log`` (every level) and ``err.log`` (WARNING+) to the root logger.

    Tracebacks of WARNING+ records go to ``err.log`` only (see :func:`without_traceback`).

    A second kernel with the same ``log_dir`` shares the handlers already attached.

    :param log_dir: absolute log directory (created if missing)
    :param formatter: renders each record (JSON lines or console)
    :return: the registry key to pass to :func:`release`
    """
    key = f"root:{log_dir}"
    _drain_pending()
    with _registry_lock:
        shared = _registry.get(key)
        if shared is None:
            log_dir.mkdir(parents=True, exist_ok=True)
            # NOTE: a traceback is written once, to err.log; app.log keeps the line
            # without it, so one failing request does not fill both files.
            handlers = [
                LogFileHandler(
                    RotatingWriter(log_dir / "app.log", max_bytes, backups),
                    logging.NOTSET,
                    formatter,
                    omit_tracebacks_from=logging.WARNING,
                ),
                LogFileHandler(RotatingWriter(log_dir / "err.log", max_bytes, backups), logging.WARNING, formatter),
            ]
            root = logging.getLogger()
            for handler in handlers:
                root.addHandler(handler)
            shared = _registry[key] = _Shared(handlers)
        shared.users += 1
    return key


def acquire_stdout_handler(formatter: logging.Formatter) -> str:
    """Send every root-logger record to stdout, as one line each (``log_to = "stdout"``).

    Tracebacks stay in their record (there is no err.log). The kernel's own console
    handler (stderr) is detached meanwhile, so a container's log shows each line once;
    the last release puts it back, writing to stdout from then on.

    :param formatter: renders each record (JSON lines or console)
    :return: the registry key to pass to :func:`release`
    """
    key = "root:stdout"
    _drain_pending()
    with _registry_lock:
        shared = _registry.get(key)
        if shared is None:
            root = logging.getLogger()
            console = [handler for handler in root.handlers if getattr(handler, "_butterfly", False)]
            for handler in console:
                root.removeHandler(handler)
            handler = LogFileHandler(STDOUT, logging.NOTSET, formatter)
            root.addHandler(handler)
            shared = _registry[key] = _Shared(([handler], console))
        shared.users += 1
    return key


def detach_console() -> None:
    """Detach the kernel's console handler again (``log_to = "stdout"``).

    ``butterfly run`` reconfigures its console once the plugins are configured; the
    trace plugin calls this at start-up so the app log still reaches stdout only once.
    """
    with _registry_lock:
        shared = _registry.get("root:stdout")
        if shared is None:
            return
        root = logging.getLogger()
        for handler in [h for h in root.handlers if getattr(h, "_butterfly", False)]:
            root.removeHandler(handler)
            shared.resource[1].append(handler)


def reopen_all() -> list[str]:
    """Reopen every log file this process writes (after ``logrotate`` renamed them).

    :return: the paths reopened
    :raises OSError: the first file that could not be reopened (the others still are)
    """
    _drain_pending()
    with _registry_lock:
        writers: list[RotatingWriter] = []
        for shared in _registry.values():
            resource = shared.resource
            if isinstance(resource, RotatingWriter):
                writers.append(resource)
            elif isinstance(resource, list):
                writers += [h.writer for h in resource if isinstance(getattr(h, "writer", None), RotatingWriter)]
    failure: OSError | None = None
    done = []
    for writer in writers:
        try:
            writer.reopen()
            done.append(str(writer.path))
        except OSError as exc:
            failure = failure or exc
    if failure is not None:
        raise failure
    return done


def release(key: str) -> None:
    """Give back a writer or root-handler pair; the last user closes it.

    :param key: ``writer:<path>`` (see :func:`writer_key`) or a key from
        :func:`acquire_root_handlers`
    """
    _drain_pending()
    _release(key)


def _release(key: str) -> None:
    with _registry_lock:
        shared = _registry.get(key)
        if shared is None:
            return
        shared.users -= 1
        if shared.users > 0:
            return
        del _registry[key]
    resource = shared.resource
    if isinstance(resource, RotatingWriter):
        resource.close()
        return
    root = logging.getLogger()
    handlers, detached = resource if isinstance(resource, tuple) else (resource, [])
    for handler in handlers:
        root.removeHandler(handler)
        handler.close()
    for handler in detached[-1:]:  # the newest console handler (older ones were replaced)
        # NOTE: what is logged after the plugins shut down ("stopped") goes to stdout too
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stderr:
            handler.setStream(sys.stdout)
        if handler not in root.handlers:
            root.addHandler(handler)


def writer_key(path: Path) -> str:
    """The registry key of the writer for ``path`` (for :func:`release`)."""
    return f"writer:{path}"


def open_keys() -> list[str]:
    """Keys of everything currently open (tests, diagnostics)."""
    _drain_pending()
    with _registry_lock:
        return sorted(_registry)
