"""File permissions of the SQLite store: private to the user the server runs as.

The database holds password hashes, wuxing values and job definitions, so its
directory is created ``0700`` and the file ``0600`` (SQLite gives its ``-wal`` and
``-shm`` files the database file's mode). A file that already exists keeps its
mode — someone may share it with a group on purpose — but a start-up warning says
when other users can read or write it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import structlog

log = structlog.get_logger("butterfly.store")

PRIVATE_DIRECTORY_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def secure_database_file(path: Path) -> None:
    """Create ``path``'s directory (0700) and an empty ``path`` (0600) unless they exist.

    :param path: the SQLite database file
    :raises OSError: when the directory or file cannot be created
    """
    path.parent.mkdir(mode=PRIVATE_DIRECTORY_MODE, parents=True, exist_ok=True)
    try:
        # NOTE: O_EXCL: create it ourselves with the private mode, or leave an existing file alone.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        warn_if_shared(path)
    else:
        os.close(descriptor)


def warn_if_shared(path: Path) -> bool:
    """Log a warning when other users may read or write ``path``.

    :param path: an existing file
    :return: ``True`` when it is readable or writable by group or others
    """
    mode = stat.S_IMODE(path.stat().st_mode)
    if not mode & 0o077:
        return False
    log.warning(
        "the database file can be read or written by other users; chmod 600 it",
        path=str(path),
        mode=oct(mode),
    )
    return True
