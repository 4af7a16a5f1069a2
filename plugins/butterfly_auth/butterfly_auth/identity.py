"""Who is calling: a session JWT or an API token, from ``Authorization: Bearer`` or the cookie.

Only credentials the server can verify count. Headers such as ``X-Username`` or
``X-Auth-User`` sent by a client are never read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from butterfly_auth import api_tokens, sessions, users
from butterfly_auth.config import state_of

if TYPE_CHECKING:
    from kernel import Kernel, Request

#: ``request.ctx`` keys this plugin fills in.
CTX_IDENTITY = "auth.identity"
CTX_ROLES = "auth.roles"
CTX_PROBLEM = "auth.problem"
_UNSET = object()


@dataclass(frozen=True)
class Identity:
    """An authenticated caller.

    :param user: the user
    :param kind: ``session`` (a login JWT), ``api_token`` or ``in_process``
    :param via: ``bearer`` (Authorization header), ``cookie``, or the in-process source
    :param claims: the JWT claims of a session, else ``None``
    """

    user: users.UserInfo
    kind: str
    via: str
    claims: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        """The user name."""
        return self.user.name


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else ``None``.

    ``""`` means a Bearer header with no token (a bad credential, not an absent one).
    """
    header = request.header("Authorization")
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip()


def resolve_session(kernel: Kernel, token: str) -> tuple[users.UserInfo | None, dict | None, str]:
    """Check a session JWT end to end.

    :return: ``(user, claims, problem)``; ``user`` is ``None`` with a short ``problem``
        (for ``x-reason``) when the token is not acceptable
    """
    claims = sessions.decode(kernel, token)
    if claims is None:
        return None, None, "invalid or expired token"
    user = users.get_user_by_uid(kernel, claims["sub"])
    if user is None or not user.active:
        return None, None, "unknown or disabled user"
    if user.token_version != claims["ver"]:
        return None, None, "session ended by a password change or a disabled account"
    if sessions.is_revoked(kernel, claims["jti"]):
        return None, None, "session logged out"
    return user, claims, ""


def _resolve(kernel: Kernel, token: str, via: str) -> tuple[Identity | None, str]:
    if not token or len(token) > 4096:
        return None, "malformed token"
    if api_tokens.looks_like_api_token(token):
        user = api_tokens.resolve_token(kernel, token)
        if user is None:
            return None, "invalid, expired or revoked API token"
        return Identity(user, "api_token", via), ""
    user, claims, problem = resolve_session(kernel, token)
    if user is None:
        return None, problem
    return Identity(user, "session", via, claims), ""


def identify(request: Request) -> Identity | None:
    """The authenticated caller of ``request``, or ``None`` (cached on ``request.ctx``).

    A Bearer header wins over the cookie; an invalid Bearer token does not fall
    back to the cookie. Why a credential was refused is kept in
    ``request.ctx["auth.problem"]``.
    """
    cached = request.ctx.get(CTX_IDENTITY, _UNSET)
    if cached is not _UNSET:
        return cached
    kernel = request.kernel
    identity, problem = None, ""
    environ = request.environ
    if request.source == "http" and "HTTP_AUTHORIZATION" not in environ and "HTTP_COOKIE" not in environ:
        # PERF: no credentials at all (most API calls): nothing to look up
        request.ctx[CTX_IDENTITY] = None
        request.ctx[CTX_ROLES] = []
        return None
    token = bearer_token(request)
    if request.source != "http":
        # NOTE: in-process calls (MQ, ruqi, CLI) carry a user set by trusted code.
        user = users.get_user(kernel, request.user) if request.user else None
        identity = Identity(user, "in_process", request.source) if user is not None and user.active else None
    elif token is not None:
        identity, problem = _resolve(kernel, token, "bearer")
    else:
        cookie = request.cookies.get(state_of(kernel).config.cookie_name)
        if cookie:
            identity, problem = _resolve(kernel, cookie, "cookie")
    request.ctx[CTX_IDENTITY] = identity
    request.ctx[CTX_ROLES] = list(identity.user.roles) if identity else []
    if problem:
        request.ctx[CTX_PROBLEM] = problem
    return identity
