"""Log files: a fast rotating writer for the access log, and the app/err log handlers.

Two kernels in one process (tests build many) may point at the same log
directory. Every open file is therefore shared through a small reference-counted
registry keyed by its absolute path: one writer per file, so two writers can never
rotate the same file behind each other's back. Each kernel acquires what it uses
in ``butterfly_configure`` and releases it at shutdown (or when it is garbage
collected without ever being started).

Rotation is size based and never truncates: ``acc.log`` → ``acc.log.1`` → ... →
``acc.log.<backups>``; the oldest backup is the only thing ever deleted.
"""

from __future__ import annotations

import copy
import logging
import os
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

#: Permission bits of newly created log files (logs hold IPs and user ids).
FILE_MODE = 0o640
_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)


def rotate_files(path: Path, backups: int) -> None:
    """Shift ``path`` → ``path.1`` → ... → ``path.<backups>`` (the oldest is dropped).

    :param path: the live file
    :param backups: how many old files to keep (at least 1)
    """
    for index in range(backups - 1, 0, -1):
        older = path.with_name(f"{path.name}.{index}")
        if older.exists():
            os.replace(older, path.with_name(f"{path.name}.{index + 1}"))
    if path.exists():
        os.replace(path, path.with_name(f"{path.name}.1"))


class RotatingWriter:
    """Appends whole lines to a file, rotating by size; thread-safe, write-through.

    Group commit: a thread that finds another thread in the middle of a write
    leaves its line in a queue and returns; the writing thread writes everything
    queued before it lets go. An idle server therefore writes each line at once,
    and a busy one writes several lines per ``write(2)``; no line ever waits for a
    timer, and none is left behind when traffic stops.

    :param path: the file (created with mode 0640 if missing)
    :param max_bytes: rotate before a write would take the file past this size;
        ``0`` never rotates
    :param backups: old files to keep; ``0`` never rotates (the file only grows)
    :param rename_check_interval: seconds between checks that the file was not
        rotated by another process sharing it (``run --workers``, two instances on
        one log directory); such a rename makes this writer reopen the new file
    """

    def __init__(
        self, path: str | os.PathLike[str], max_bytes: int, backups: int, *, rename_check_interval: float = 1.0
    ) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self.rename_check_interval = rename_check_interval
        self._rotates = max_bytes > 0 and backups > 0
        # NOTE: re-entrant: a signal handler that logs may interrupt this thread mid-write.
        self._lock = threading.RLock()
        self._queue: list[bytes] = []
        self._writing = False
        self._fd: int | None = None
        self._size = 0
        self._open()

    def _open(self) -> None:
        self._fd = os.open(self.path, _OPEN_FLAGS, FILE_MODE)
        info = os.fstat(self._fd)
        self._size = info.st_size
        self._identity = (info.st_dev, info.st_ino)
        self._checked = time.monotonic()

    def _renamed_elsewhere(self) -> bool:
        """Whether ``path`` is no longer the file this writer holds open."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return True
        return (info.st_dev, info.st_ino) != self._identity

    def _follow_rename(self) -> None:
        # NOTE: another process may have rotated the file (then write to the new one) or
        # appended to it (then its bytes count). PERF: a stat at most once per
        # rename_check_interval.
        now = time.monotonic()
        if now - self._checked < self.rename_check_interval:
            return
        self._checked = now
        if self._renamed_elsewhere():
            os.close(self._fd)
            self._fd = None
            self._open()
        else:  # other processes append too: count their bytes before deciding to rotate
            self._size = os.fstat(self._fd).st_size

    def write(self, data: bytes) -> None:
        """Append ``data`` (one or more complete lines), rotating first if needed.

        :param data: encoded lines, each ending with ``\\n``
        :raises OSError: when the disk refuses the write (the lines are dropped)
        """
        # PERF: under load most callers only append to the queue: each write(2)
        # releases the GIL, and fewer of them means fewer thread switches.
        lock = self._lock
        with lock:
            if self._writing:
                self._queue.append(data)
                return
            self._writing = True
            # PERF: an idle writer writes the caller's line at once, without queueing it;
            # lines stranded by an earlier failed write still go out first, in order.
            if self._queue:
                batch, self._queue = self._queue, []
                batch.append(data)
            else:
                batch = [data]
        try:
            while True:
                self._write_batch(batch)
                with lock:
                    batch = self._queue
                    if not batch:
                        # NOTE: let go in the same critical section that saw the queue
                        # empty, or a line appended in between would be stranded.
                        self._writing = False
                        return
                    self._queue = []
        except BaseException:
            with lock:
                self._writing = False  # lines queued meanwhile go out with the next write or close()
            raise

    def _write_batch(self, lines: list[bytes]) -> None:
        """Write ``lines`` (only ever one thread at a time), rotating between lines."""
        if self._fd is None:
            self._open()
        else:
            self._follow_rename()
        if len(lines) == 1:  # PERF: the common case, one line and no rotation due
            line = lines[0]
            if not self._rotates or self._size == 0 or self._size + len(line) <= self.max_bytes:
                self._write_all(line)
                return
        elif not self._rotates:
            self._write_all(b"".join(lines))
            return
        chunk: list[bytes] = []
        size = self._size
        for line in lines:
            if size > 0 and size + len(line) > self.max_bytes:
                if chunk:
                    self._write_all(b"".join(chunk))
                    chunk = []
                self._rotate()
                size = self._size  # 0, or what another process wrote since it rotated
            chunk.append(line)
            size += len(line)
        if chunk:
            self._write_all(b"".join(chunk))

    def _write_all(self, data: bytes) -> None:
        written = os.write(self._fd, data)
        while written < len(data):  # rare: a short write (signal, nearly full disk)
            written += os.write(self._fd, memoryview(data)[written:])
        self._size += written

    def _rotate(self) -> None:
        os.close(self._fd)
        self._fd = None
        if not self._renamed_elsewhere():  # else another process rotated it a moment ago
            rotate_files(self.path, self.backups)
        self._open()

    def _take_role(self) -> list[bytes]:
        """Become the writing thread (wait for one mid-write); return the queued lines."""
        while True:
            with self._lock:
                if not self._writing:  # take the writer's role, like write() does
                    self._writing = True
                    queued, self._queue = self._queue, []
                    return queued
            time.sleep(0.001)  # NOTE: rare (shutdown, SIGHUP); a writer finishes in microseconds

    def close(self) -> None:
        """Write what is queued, then close the file; a later :meth:`write` reopens it."""
        queued = self._take_role()
        try:
            if queued:
                self._write_batch(queued)
        except OSError:
            pass  # closing after a disk error: nothing better to do with these lines
        finally:
            with self._lock:
                if self._fd is not None:
                    os.close(self._fd)
                    self._fd = None
                self._writing = False

    def reopen(self) -> None:
        """Write what is queued to the file held open, then open ``path`` afresh.

        What ``logrotate`` (without ``copytruncate``) needs after renaming the file: every
        line written before this call is in the renamed file, every line after it in the
        new one (created if missing).

        :raises OSError: when the new file cannot be opened (the next write retries)
        """
        queued = self._take_role()
        try:
            if queued:
                if self._fd is None:
                    self._write_batch(queued)
                else:  # NOTE: to the file held open (the renamed one), not following the rename
                    self._write_all(b"".join(queued))
        finally:
            with self._lock:
                if self._fd is not None:
                    os.close(self._fd)
                    self._fd = None
                try:
                    self._open()
                finally:
                    self._writing = False
        if self._queue:  # lines queued while the role was held go out now
            self.write(b"")


class StreamWriter:
    """Whole lines to an inherited file descriptor (stdout); never rotated nor reopened.

    :param fd: the descriptor (``1``)
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.path = None
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        """Write ``data`` (complete lines) in one piece: lines never interleave."""
        if not data:
            return
        with self._lock:
            written = os.write(self.fd, data)
            while written < len(data):
                written += os.write(self.fd, memoryview(data)[written:])

    def reopen(self) -> None:
        """Nothing to reopen."""

    def close(self) -> None:
        """The descriptor belongs to the process: left open."""


#: The one writer of this process' stdout (``[trace] log_to = "stdout"``): the app log
#: and the access log share it, so their lines never interleave.
STDOUT = StreamWriter(1)


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
