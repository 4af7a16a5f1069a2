"""The auth entities, declared through the store's ``butterfly_store_define_entities`` hook.

Entity names carry an ``Auth`` prefix because every plugin shares one pony
``Database``; tables are ``auth_*``. Timestamps are naive UTC.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from pony.orm import Optional, PrimaryKey, Required, Set

USER = "AuthUser"
ROLE = "AuthRole"
API_TOKEN = "AuthApiToken"
REVOKED_SESSION = "AuthRevokedSession"


def utcnow() -> datetime:
    """Now, as naive UTC (what the entities store)."""
    return datetime.now(UTC).replace(tzinfo=None)


def new_user_uid() -> str:
    """A fresh user id: 128 random bits in hex, so no id is ever handed out twice."""
    return secrets.token_hex(16)


def define_entities(db) -> None:
    """Declare the auth entities on the shared pony ``db``.

    :param db: the store's unbound :class:`pony.orm.Database`
    :return: ``None``; fetch entities later with ``db.entities["AuthUser"]``
    """

    class AuthUser(db.Entity):
        """A person or machine that can log in."""

        _table_ = "auth_user"
        id = PrimaryKey(int, auto=True)
        #: What sessions name (JWT ``sub``): random and immutable. Not the name (a user
        #: deleted and re-created under it is someone else) and not ``id`` (SQLite and
        #: older MySQL hand a deleted row's id out again).
        uid = Required(str, 32, unique=True, default=new_user_uid)
        name = Required(str, 64, unique=True)
        password_hash = Required(str, 255)
        active = Required(bool, default=True)
        #: Bumped by a password change and by disabling or enabling the user: every
        #: session JWT and API token issued before carries an older value and is void.
        token_version = Required(int, default=0)
        created_at = Required(datetime, default=utcnow)
        roles = Set("AuthRole", table="auth_user_role")
        api_tokens = Set("AuthApiToken")

    class AuthRole(db.Entity):
        """A named permission (``admin`` guards every admin route)."""

        _table_ = "auth_role"
        id = PrimaryKey(int, auto=True)
        name = Required(str, 64, unique=True)
        users = Set(AuthUser, table="auth_user_role")

    class AuthApiToken(db.Entity):
        """A machine credential; only its SHA-256 is stored."""

        _table_ = "auth_api_token"
        id = PrimaryKey(int, auto=True)
        token_hash = Required(str, 64, unique=True)
        #: The first characters of the token, to recognise it in listings.
        prefix = Required(str, 16)
        label = Optional(str, 100)
        user = Required(AuthUser)
        #: The user's ``token_version`` when the token was made; a later bump voids it.
        user_version = Required(int, default=0)
        created_at = Required(datetime, default=utcnow)
        expires_at = Optional(datetime)
        revoked_at = Optional(datetime)
        last_used_at = Optional(datetime)

    class AuthRevokedSession(db.Entity):
        """A logged-out session JWT (by ``jti``), kept until it would have expired."""

        _table_ = "auth_revoked_session"
        id = PrimaryKey(int, auto=True)
        jti = Required(str, 64, unique=True)
        expires_at = Required(datetime, index=True)

    del AuthUser, AuthRole, AuthApiToken, AuthRevokedSession  # pony keeps them in db.entities
