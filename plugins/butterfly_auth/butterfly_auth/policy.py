"""The authorization policy behind ``butterfly_authorize``.

* In-process calls (MQ, ruqi, CLI) are trusted code: the policy abstains.
* Over HTTP the caller is identified from verified credentials only, and
  ``request.user`` / ``request.ctx["auth.roles"]`` are set from them (or cleared).
* Cookie-authenticated writes must pass the CSRF check (403).
* ``route.admin`` needs the ``admin`` role — from every client address, loopback
  included; ``@login_required`` needs a caller; ``@role(...)`` one of the roles.
  No credentials: 401 (a browser navigation gets a 302 to the login page);
  credentials without the role: 403.
* Anything else: the policy abstains (``None``), so other plugins may still decide.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from butterfly_auth import csrf
from butterfly_auth.decorators import requirement_of
from butterfly_auth.identity import CTX_PROBLEM, identify
from butterfly_auth.pages import LoginRedirect, current_target, prefers_html
from butterfly_auth.users import ADMIN_ROLE
from kernel import Forbidden, HTTPError, Unauthorized

if TYPE_CHECKING:
    from kernel import Request
    from kernel.routes import Route

CHALLENGE = ("WWW-Authenticate", 'Bearer realm="butterfly"')


def unauthenticated(request: Request, *, redirect: bool = True) -> HTTPError:
    """The denial for a caller without usable credentials: 302 to login for browsers, else 401.

    :param redirect: allow the browser redirect (``/auth/verify`` never redirects)
    """
    if redirect and prefers_html(request):
        return LoginRedirect(current_target(request))
    problem = request.ctx.get(CTX_PROBLEM)
    reason = f"authentication required: {problem}" if problem else "authentication required"
    return Unauthorized(reason, headers=[CHALLENGE])


def authorize(request: Request, route: Route) -> bool | HTTPError | None:
    """Decide for one request; see the module docstring.

    :return: ``True`` (allowed, decided here), an :class:`HTTPError`, or ``None`` (abstain)
    """
    if request.source != "http":
        return None
    identity = identify(request)
    # NOTE: never keep a user someone else derived from client headers.
    request.user = identity.name if identity is not None else None
    if identity is not None:
        problem = csrf.check(request, identity)
        if problem:
            return Forbidden(problem)
    requirement = requirement_of(route.endpoint)
    if not route.admin and not requirement.login:
        return None
    if identity is None:
        return unauthenticated(request)
    if route.admin and not identity.user.has_role(ADMIN_ROLE):
        return Forbidden(f"admin route: user {identity.name} lacks the admin role")
    if requirement.roles and not any(identity.user.has_role(name) for name in requirement.roles):
        wanted = ", ".join(sorted(requirement.roles))
        return Forbidden(f"user {identity.name} lacks a required role ({wanted})")
    return True


#: The OpenAPI response of :class:`~butterfly_auth.pages.LoginRedirect`.
SIGN_IN_REDIRECT = {
    "description": "a browser (Accept ranks text/html first) that is not signed in: off to the sign-in page",
    "headers": {"Location": {"description": "/auth/login?next=...", "schema": {"type": "string"}}},
}


def document_sign_in_redirect(route: Route, method: str, operation: dict) -> None:
    """Add the 302 a browser gets from an admin or login-only route it reads while signed out.

    :param route: the route
    :param method: the lower-case OpenAPI method
    :param operation: the operation, changed in place
    """
    if method in ("get", "head") and (route.admin or requirement_of(route.endpoint).login):
        operation["responses"].setdefault("302", dict(SIGN_IN_REDIRECT))
