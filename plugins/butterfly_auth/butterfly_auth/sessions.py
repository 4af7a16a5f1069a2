"""Session tokens: HS256 JWTs issued at login, revocable server-side.

A JWT carries ``sub`` (user name), ``jti`` (random id), ``iat``/``exp`` and ``ver``
(the user's token version). It is accepted only when the signature checks with
the configured secret under HS256 exactly (``alg: none`` and every other algorithm
are refused), it has not expired, its ``jti`` is not on the logout denylist, and
``ver`` still matches the user (a password change voids older sessions).
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import jwt
from pony.orm import db_session

from butterfly_auth import models
from butterfly_auth.config import state_of

if TYPE_CHECKING:
    from kernel import Kernel

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["sub", "jti", "iat", "exp", "ver"]


@dataclass(frozen=True)
class Session:
    """A freshly issued session token.

    :param token: the encoded JWT
    :param jti: its id
    :param expires_at: Unix time of expiry
    :param csrf_token: the double-submit token bound to this session
    """

    token: str
    jti: str
    expires_at: int
    csrf_token: str


def csrf_token_for(kernel: Kernel, jti: str) -> str:
    """The CSRF token of session ``jti``: an HMAC only the server can compute."""
    secret = state_of(kernel).secret.encode()
    return hmac.new(secret, b"csrf:" + jti.encode(), hashlib.sha256).hexdigest()


def issue(kernel: Kernel, user_name: str, token_version: int, *, ttl: int | None = None) -> Session:
    """Sign a session JWT for ``user_name``.

    :param token_version: the user's current token version
    :param ttl: lifetime in seconds (default ``[auth] token_ttl``)
    """
    state = state_of(kernel)
    now = int(time.time())
    expires_at = now + (ttl if ttl is not None else state.config.token_ttl)
    jti = uuid.uuid4().hex
    claims = {"sub": user_name, "jti": jti, "iat": now, "exp": expires_at, "ver": token_version}
    token = jwt.encode(claims, state.secret, algorithm=ALGORITHM)
    return Session(token, jti, expires_at, csrf_token_for(kernel, jti))


def decode(kernel: Kernel, token: str) -> dict | None:
    """The claims of a valid, unexpired session JWT signed by us, else ``None``.

    Does not consult the denylist or the user; see :func:`is_revoked`.
    """
    try:
        claims = jwt.decode(
            token, state_of(kernel).secret, algorithms=[ALGORITHM], options={"require": REQUIRED_CLAIMS}
        )
    except jwt.InvalidTokenError:
        return None
    if (
        not isinstance(claims.get("sub"), str)
        or not isinstance(claims.get("jti"), str)
        or not isinstance(claims.get("ver"), int)
    ):
        return None
    return claims


def is_revoked(kernel: Kernel, jti: str) -> bool:
    """True when session ``jti`` was logged out."""
    from butterfly_store import get_db

    db = get_db(kernel)
    with db_session:
        return db.entities[models.REVOKED_SESSION].exists(jti=jti)


def revoke(kernel: Kernel, claims: dict) -> None:
    """Put a session on the denylist until it would have expired; prune expired entries."""
    from butterfly_store import get_db

    db = get_db(kernel)
    revoked = db.entities[models.REVOKED_SESSION]
    expires_at = datetime.fromtimestamp(int(claims["exp"]), UTC).replace(tzinfo=None)
    with db_session:
        # PERF: pruning on logout keeps the denylist as small as the live sessions.
        revoked.select(lambda r: r.expires_at < models.utcnow()).delete(bulk=True)
        if not revoked.exists(jti=claims["jti"]):
            revoked(jti=claims["jti"], expires_at=expires_at)
