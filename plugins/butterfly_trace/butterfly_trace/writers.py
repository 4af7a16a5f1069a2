"""Log file writers: a fast rotating writer for files, and one for stdout.

:class:`RotatingWriter` appends whole lines with group commit, rotates by size,
follows a rotation done by another process sharing the file and reopens its file
after ``logrotate`` renamed it (SIGHUP, :mod:`butterfly_trace.reopen`).
:class:`StreamWriter` writes to an inherited descriptor (stdout) and is never rotated.

Rotation is size based and never truncates: ``acc.log`` → ``acc.log.1`` → ... →
``acc.log.<backups>``; the oldest backup is the only thing ever deleted.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

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
