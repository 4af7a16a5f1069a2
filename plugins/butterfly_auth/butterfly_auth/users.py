"""Users and roles: the Python API behind the CLI, the login route and the policy.

Every function takes the kernel (for the store's database) and opens its own
``db_session`` — a no-op inside a request, where the store already opened one.
Functions return plain :class:`UserInfo` values, never pony entities.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pony.orm import db_session

from butterfly_auth import models
from butterfly_auth.config import state_of
from kernel import BadRequest, ButterflyError, NotFound

if TYPE_CHECKING:
    from kernel import Kernel

ADMIN_ROLE = "admin"
#: The longest password accepted; a longer one fails a login without being hashed.
MAX_PASSWORD_LENGTH = 1024
USER_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
ROLE_NAME = re.compile(r"^[a-z0-9_.-]{1,64}$")


class AuthError(ButterflyError):
    """A user-management request that cannot be done (bad name, unknown user...)."""


@dataclass(frozen=True)
class UserInfo:
    """A user as the rest of the plugin sees it.

    :param name: the login name (may be given to another user after a delete)
    :param roles: role names, sorted
    :param active: a disabled user cannot log in and their credentials stop working
    :param token_version: sessions and API tokens carrying another value are void
    :param created_at: naive UTC
    :param uid: the immutable, never reused id that sessions are bound to
    """

    name: str
    roles: tuple[str, ...]
    active: bool
    token_version: int
    created_at: datetime
    uid: str = ""

    def has_role(self, role: str) -> bool:
        """True when the user holds ``role``; the admin role holds every role."""
        return role in self.roles or ADMIN_ROLE in self.roles


def hasher(kernel: Kernel) -> PasswordHasher:
    """The kernel's argon2id :class:`PasswordHasher` (``[auth] argon2_*`` settings)."""
    return state_of(kernel).password_hasher()


def _db(kernel: Kernel):
    from butterfly_store import get_db

    return get_db(kernel)


def user_info(user) -> UserInfo:
    """A pony ``AuthUser`` as a plain :class:`UserInfo` (inside a db_session)."""
    return UserInfo(
        user.name,
        tuple(sorted(role.name for role in user.roles)),
        user.active,
        user.token_version,
        user.created_at,
        user.uid,
    )


def check_user_name(name: str) -> str:
    """Return ``name`` if it is a valid user name, else raise :class:`AuthError`."""
    if not isinstance(name, str) or not USER_NAME.match(name):
        raise AuthError(f"invalid user name {name!r}: 1-64 letters, digits, '_', '.', '@' or '-'")
    return name


def check_password(kernel: Kernel, password: str) -> str:
    """Return ``password`` if it is long enough, else raise :class:`AuthError`."""
    minimum = state_of(kernel).config.min_password_length
    if not isinstance(password, str) or len(password) < minimum:
        raise AuthError(f"password too short: at least {minimum} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AuthError(f"password too long: at most {MAX_PASSWORD_LENGTH} characters")
    return password


def _roles(db, names: Iterable[str]):
    roles = []
    for name in names:
        if not ROLE_NAME.match(name):
            raise AuthError(f"invalid role name {name!r}: 1-64 of a-z, 0-9, '_', '.', '-'")
        role_entity = db.entities[models.ROLE]
        roles.append(role_entity.get(name=name) or role_entity(name=name))
    return roles


def create_user(kernel: Kernel, name: str, password: str, roles: Iterable[str] = ()) -> UserInfo:
    """Add a user with an argon2-hashed password.

    :param name: the login name
    :param password: the clear-text password (never stored)
    :param roles: role names, created when new (``admin`` for administrators)
    :return: the new user
    :raises AuthError: bad name or password, or the name is taken
    """
    check_user_name(name)
    check_password(kernel, password)
    password_hash = hasher(kernel).hash(password)
    db = _db(kernel)
    with db_session:
        user_entity = db.entities[models.USER]
        if user_entity.get(name=name) is not None:
            raise AuthError(f"user {name!r} already exists")
        user = user_entity(name=name, password_hash=password_hash)
        user.roles = _roles(db, roles)
        return user_info(user)


def create_first_user(kernel: Kernel, name: str, password: str, roles: Iterable[str] = ()) -> UserInfo | None:
    """Add a user only when the users table is empty (the initial-admin bootstrap).

    The emptiness check and the insert share one transaction; two instances racing on
    one store still both get past the check, and the loser's commit then fails on the
    unique user/role name — the caller catches that and re-checks.

    :param name: the login name
    :param password: the clear-text password (never stored)
    :param roles: role names, created when new
    :return: the new user, or ``None`` when some user already exists
    :raises AuthError: bad name or password
    :raises pony.orm.core.TransactionError: the commit failed (e.g. a concurrent insert won)
    """
    check_user_name(name)
    check_password(kernel, password)
    db = _db(kernel)
    with db_session:
        if db.entities[models.USER].select().exists():
            return None
    # PERF: hash outside any transaction; argon2 costs tens of milliseconds and holds no lock.
    password_hash = hasher(kernel).hash(password)
    with db_session:
        user_entity = db.entities[models.USER]
        if user_entity.select().exists():
            return None
        user = user_entity(name=name, password_hash=password_hash)
        user.roles = _roles(db, roles)
        return user_info(user)


def has_users(kernel: Kernel) -> bool:
    """True when at least one user exists."""
    db = _db(kernel)
    with db_session:
        return db.entities[models.USER].select().exists()


def set_password(kernel: Kernel, name: str, password: str) -> UserInfo:
    """Change a password and end every session and API token the user had (version bump).

    :raises AuthError: unknown user or bad password
    """
    check_password(kernel, password)
    password_hash = hasher(kernel).hash(password)
    db = _db(kernel)
    with db_session:
        user = _get(db, name)
        user.password_hash = password_hash
        user.token_version += 1
        return user_info(user)


def set_roles(kernel: Kernel, name: str, roles: Iterable[str]) -> UserInfo:
    """Replace a user's roles.

    :raises AuthError: unknown user or bad role name
    """
    db = _db(kernel)
    with db_session:
        user = _get(db, name)
        user.roles = _roles(db, roles)
        return user_info(user)


def set_active(kernel: Kernel, name: str, active: bool) -> UserInfo:
    """Enable or disable a user.

    Disabling ends every session and API token the user had, for good: the version
    bump means enabling the user again does not bring them back.

    :raises AuthError: unknown user
    """
    db = _db(kernel)
    with db_session:
        user = _get(db, name)
        if user.active != bool(active):
            user.active = bool(active)
            user.token_version += 1
        return user_info(user)


def delete_user(kernel: Kernel, name: str) -> UserInfo:
    """Delete a user with their API tokens and role grants.

    Their sessions end: a JWT names the user's random ``uid``, which no later user
    (not even one re-created under the same name) ever gets.

    :return: the deleted user as it was
    :raises AuthError: unknown user
    """
    db = _db(kernel)
    with db_session:
        user = _get(db, name)
        info = user_info(user)
        user.delete()  # NOTE: pony cascades to the user's AuthApiToken rows (a Required reverse)
        return info


def list_users(kernel: Kernel) -> list[UserInfo]:
    """Every user, by name."""
    db = _db(kernel)
    with db_session:
        return [user_info(user) for user in db.entities[models.USER].select().order_by(lambda u: u.name)]


def get_user(kernel: Kernel, name: str) -> UserInfo | None:
    """The user called ``name``, or ``None``."""
    db = _db(kernel)
    with db_session:
        user = db.entities[models.USER].get(name=name) if isinstance(name, str) and USER_NAME.match(name) else None
        return user_info(user) if user is not None else None


def get_user_by_uid(kernel: Kernel, uid: str) -> UserInfo | None:
    """The user whose immutable id is ``uid``, or ``None`` (deleted, or never existed)."""
    if not isinstance(uid, str) or not 1 <= len(uid) <= 32:
        return None
    db = _db(kernel)
    with db_session:
        user = db.entities[models.USER].get(uid=uid)
        return user_info(user) if user is not None else None


def verify_credentials(kernel: Kernel, name: str, password: str) -> UserInfo | None:
    """The active user whose password matches, else ``None``.

    Unknown users cost one argon2 verification too, so timing does not tell
    which user names exist. A password longer than any that can be set fails at
    once (hashing a megabyte would only cost the server).
    """
    if not isinstance(password, str) or len(password) > MAX_PASSWORD_LENGTH:
        return None
    db = _db(kernel)
    state = state_of(kernel)
    ph, dummy_hash = state.password_hasher(), state.dummy_hash()
    with db_session:
        user = db.entities[models.USER].get(name=name) if USER_NAME.match(name or "") else None
        stored = user.password_hash if user is not None else dummy_hash
        try:
            ph.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if user is None or not user.active:
            return None
        if ph.check_needs_rehash(stored):
            user.password_hash = ph.hash(password)
        return user_info(user)


def _get(db, name: str):
    user = db.entities[models.USER].get(name=name) if isinstance(name, str) else None
    if user is None:
        raise AuthError(f"no such user: {name!r}")
    return user


def http_error(exc: AuthError) -> BadRequest | NotFound:
    """Map an :class:`AuthError` to the HTTP error a route should raise."""
    reason = str(exc)
    if reason.startswith("no such"):
        return NotFound(reason)
    return BadRequest(reason)
