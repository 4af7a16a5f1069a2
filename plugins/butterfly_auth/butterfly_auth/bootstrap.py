"""The initial admin: a fresh store gets one ``admin`` user, Jenkins/Grafana style.

At server start-up (never for one-shot CLI commands, never at import), when
``[auth] bootstrap_admin`` is on and the users table is empty, user ``admin``
(role ``admin``) is created with a random password that is written to
``<data_dir>/initial_admin_password`` (mode 0600). One warning names the file
and the login page; the password itself is never logged.

Once any user exists nothing happens — a later password change or new users
leave the file alone, and it can be deleted at any time.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from pony.orm.core import TransactionError
from pony.orm.dbapiprovider import DatabaseError

from butterfly_auth import users
from butterfly_auth.config import state_of

if TYPE_CHECKING:
    from kernel import Kernel

log = structlog.get_logger("butterfly.auth")

ADMIN_NAME = "admin"
PASSWORD_FILE = "initial_admin_password"
LOGIN_PATH = "/auth/login"
#: Failed commits tolerated before giving up (each one is re-checked first).
ATTEMPTS = 3


def generate_password(min_length: int) -> str:
    """A random URL-safe password of 24+ characters, longer when ``min_length`` asks for it.

    :param min_length: ``[auth] min_password_length``
    :return: the password
    """
    # NOTE: token_urlsafe(n) yields ceil(4n/3) characters; 18 bytes = 24 characters, 144 bits.
    return secrets.token_urlsafe(max(18, (min_length * 3 + 3) // 4))


def stage_private_file(path: Path, text: str) -> Path:
    """Write ``text`` to a new mode-0600 temporary file next to ``path`` (creating the directory).

    Staging before the user is committed means an unwritable data directory fails
    start-up *before* an admin exists whose password nobody could read.

    :param path: the final destination
    :param text: the content
    :return: the temporary file; :func:`os.replace` it onto ``path``, or unlink it
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(text + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, 0o600)  # NOTE: mkstemp already does; be explicit about the contract
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return Path(temp_name)


def bootstrap_admin(kernel: Kernel) -> Path | None:
    """Create the initial admin when the store has no user at all.

    Safe with several instances starting on one store: the loser of the race sees
    its commit fail on the unique name, re-checks, finds the winner's admin and stops.

    :param kernel: a configured kernel with the store and auth plugins
    :return: the password file when this call created the admin, else ``None``
    """
    state = state_of(kernel)
    if not state.config.bootstrap_admin:
        return None
    for attempt in range(1, ATTEMPTS + 1):
        if users.has_users(kernel):
            return None
        password = generate_password(state.config.min_password_length)
        path = kernel.ensure_data_dir() / PASSWORD_FILE
        staged = stage_private_file(path, password)
        try:
            created = users.create_first_user(kernel, ADMIN_NAME, password, [users.ADMIN_ROLE])
        except (TransactionError, DatabaseError) as exc:
            staged.unlink(missing_ok=True)
            # NOTE: log the exception type only; its text is the database's, but keep secrets impossible.
            log.info("initial admin not created here; re-checking", attempt=attempt, error=type(exc).__name__)
            continue
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        if created is None:
            staged.unlink(missing_ok=True)
            return None
        os.replace(staged, path)  # atomic: readers see the old file or the whole new one
        # NOTE: the password file's path only, never the password (logs are shipped and kept).
        log.warning(
            "initial admin user created: sign in at login_path as user, password in password_file; "
            "then change the password and delete the file",
            user=ADMIN_NAME,
            password_file=str(path),
            login_path=LOGIN_PATH,
        )
        return path
    if not users.has_users(kernel):
        log.error(
            "could not create the initial admin user; create one with `butterfly auth add-user admin --role admin`",
            attempts=ATTEMPTS,
        )
    return None
