"""API tokens for machines: random, shown once, stored as SHA-256, revocable.

A token looks like ``bf_<43 url-safe characters>`` (256 random bits); the ``bf_``
prefix tells it apart from a JWT in ``Authorization: Bearer``. SHA-256 (no salt,
no stretching) is enough for secrets with this much entropy, and lets the token
be found by its hash.

A token records its user's ``token_version`` when it is made: a password change or
disabling the user (both bump the version) voids it, and deleting the user deletes it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from pony.orm import db_session

from butterfly_auth import models
from butterfly_auth.users import AuthError, UserInfo, check_user_name, user_info

if TYPE_CHECKING:
    from kernel import Kernel

PREFIX = "bf_"
SHOWN_PREFIX_LENGTH = 10


@dataclass(frozen=True)
class TokenInfo:
    """An API token as listings show it (never the token itself)."""

    id: int
    user: str
    prefix: str
    label: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    #: False once a password change or disabling the user voided the token.
    current: bool = True

    @property
    def usable(self) -> bool:
        """Not revoked, not expired and not voided by a password change or a disabled user."""
        return (
            self.current and self.revoked_at is None and (self.expires_at is None or self.expires_at > models.utcnow())
        )


def hash_token(token: str) -> str:
    """The stored form of ``token``: its SHA-256 in hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def looks_like_api_token(token: str) -> bool:
    """True for ``bf_...`` tokens (anything else in Bearer is treated as a JWT)."""
    return token.startswith(PREFIX)


def _db(kernel: Kernel):
    from butterfly_store import get_db

    return get_db(kernel)


def _token_info(row) -> TokenInfo:
    return TokenInfo(
        row.id,
        row.user.name,
        row.prefix,
        row.label or "",
        row.created_at,
        row.expires_at,
        row.revoked_at,
        row.last_used_at,
        row.user.active and row.user_version == row.user.token_version,
    )


def create_token(
    kernel: Kernel, user_name: str, *, label: str = "", expires_in: int | None = None
) -> tuple[str, TokenInfo]:
    """Create an API token for ``user_name``.

    :param label: what the token is for (shown in listings)
    :param expires_in: lifetime in seconds; ``None`` never expires
    :return: ``(token, info)`` — the token is shown this once and never again
    :raises AuthError: unknown user, bad label or lifetime
    """
    check_user_name(user_name)
    if expires_in is not None and expires_in <= 0:
        raise AuthError(f"expires_in must be a positive number of seconds, got {expires_in}")
    if len(label or "") > 100:
        raise AuthError("label too long: at most 100 characters")
    token = PREFIX + secrets.token_urlsafe(32)
    db = _db(kernel)
    with db_session:
        user = db.entities[models.USER].get(name=user_name)
        if user is None:
            raise AuthError(f"no such user: {user_name!r}")
        expires_at = models.utcnow() + timedelta(seconds=expires_in) if expires_in else None
        row = db.entities[models.API_TOKEN](
            token_hash=hash_token(token),
            prefix=token[:SHOWN_PREFIX_LENGTH],
            label=label or "",
            user=user,
            user_version=user.token_version,
            expires_at=expires_at,
        )
        row.flush()
        return token, _token_info(row)


def list_tokens(kernel: Kernel, user_name: str | None = None) -> list[TokenInfo]:
    """API tokens, newest first; only ``user_name``'s when given."""
    db = _db(kernel)
    with db_session:
        query = db.entities[models.API_TOKEN].select()
        if user_name is not None:
            query = query.filter(lambda t: t.user.name == user_name)
        return [_token_info(row) for row in query.order_by(lambda t: (t.user.name, t.id))]


def revoke_token(kernel: Kernel, token_id: int, *, owner: str | None = None) -> TokenInfo:
    """Revoke API token ``token_id`` (idempotent).

    :param owner: when given, the token must belong to this user
    :raises AuthError: no such token (for this owner)
    """
    db = _db(kernel)
    with db_session:
        row = db.entities[models.API_TOKEN].get(id=int(token_id))
        if row is None or (owner is not None and row.user.name != owner):
            raise AuthError(f"no such token: {token_id}")
        if row.revoked_at is None:
            row.revoked_at = models.utcnow()
        return _token_info(row)


def resolve_token(kernel: Kernel, token: str) -> UserInfo | None:
    """The active user a usable API token belongs to, else ``None``."""
    digest = hash_token(token)
    db = _db(kernel)
    with db_session:
        row = db.entities[models.API_TOKEN].get(token_hash=digest)
        # NOTE: the lookup is by hash, so its timing reveals nothing about the token;
        # the explicit constant-time comparison guards against a collation that
        # matched loosely (e.g. case-insensitive MySQL columns).
        if row is None or not hmac.compare_digest(row.token_hash, digest):
            return None
        now = models.utcnow()
        if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
            return None
        if not row.user.active or row.user_version != row.user.token_version:
            return None
        # PERF: write last_used_at at most once a minute per token.
        if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
            row.last_used_at = now
        return user_info(row.user)
