"""Session tokens: HS256 JWTs issued at login, revocable server-side.

A JWT carries ``sub`` (the user's immutable, never reused ``uid`` — not the name),
``name`` (for display only), ``jti`` (random id), ``iat``/``exp`` and ``ver`` (the
user's token version). It is accepted only when the signature checks with the
configured secret under HS256 exactly (``alg: none`` and every other algorithm are
refused), it has not expired, its ``jti`` is not on the logout denylist, the user
with that ``uid`` still exists and is active, and ``ver`` still matches theirs (a
password change, or disabling the user, voids older sessions; deleting the user, or
re-creating one under the same name, leaves no user with that ``uid``).
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING

from pony.orm import db_session

from butterfly_auth import models
from butterfly_auth.config import state_of

if TYPE_CHECKING:
    from butterfly_auth.users import UserInfo
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


def issue(kernel: Kernel, user: UserInfo, *, ttl: int | None = None) -> Session:
    """Sign a session JWT for ``user`` (bound to its ``uid`` and current token version).

    :param user: the user, as :mod:`butterfly_auth.users` returns it
    :param ttl: lifetime in seconds (default ``[auth] token_ttl``)
    """
    state = state_of(kernel)
    now = int(time.time())
    expires_at = now + (ttl if ttl is not None else state.config.token_ttl)
    jti = uuid.uuid4().hex
    claims = {"sub": user.uid, "name": user.name, "jti": jti, "iat": now, "exp": expires_at, "ver": user.token_version}
    token = _jwt().encode(claims, state.secret, algorithm=ALGORITHM)
    return Session(token, jti, expires_at, csrf_token_for(kernel, jti))


@cache
def _jwt() -> ModuleType:
    # PERF: PyJWT (and the cryptography it loads) costs ~0.1 s of start-up; only
    # requests that carry a session token need it.
    import jwt

    return jwt


def decode(kernel: Kernel, token: str) -> dict | None:
    """The claims of a valid, unexpired session JWT signed by us, else ``None``.

    Does not consult the denylist or the user; see :func:`is_revoked`.
    """
    jwt = _jwt()
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
