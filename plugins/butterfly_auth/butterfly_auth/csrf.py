"""CSRF defence for cookie-authenticated writes.

Every cookie-authenticated request whose method is not GET, HEAD or OPTIONS (POST,
PUT, PATCH, DELETE and any other, ``PROPFIND`` included) passes only when either

* its ``Origin`` (or, without one, its ``Referer``) names the request's own
  ``Host`` or one of ``[auth] trusted_origins``, or
* it carries ``X-CSRF-Token`` equal to the session's token (double submit: the
  value is in the readable ``<cookie_name>_csrf`` cookie and the login reply).

Bearer-authenticated requests are exempt: a browser never adds that header by itself.
Safe methods are exempt because no route changes state on them (admin routes without
``methods`` accept POST only; see :mod:`kernel.routes`).
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from butterfly_auth.config import state_of
from butterfly_auth.sessions import csrf_token_for
from kernel.origin import names_this_host, origin_of
from kernel.routes import SAFE_METHODS

if TYPE_CHECKING:
    from butterfly_auth.identity import Identity
    from kernel import Request

TOKEN_HEADER = "X-CSRF-Token"


def source_allowed(request: Request, url: str) -> bool:
    """True when ``url`` (an Origin or Referer) is this site or a trusted origin.

    The comparison (``host[:port]``, default ports left out) is the kernel's
    (:mod:`kernel.origin`), shared with the default admin policy.
    """
    origin = origin_of(url)
    if origin is None:
        return False
    if names_this_host(request, url):
        return True
    trusted = state_of(request.kernel).config.trusted_origins
    return any(origin_of(item) == origin for item in trusted)


def check(request: Request, identity: Identity, method: str | None = None) -> str:
    """Why a cookie-authenticated request fails the CSRF check, or ``""`` when it passes.

    :param method: the method to judge (default the request's; ``/auth/verify``
        passes the original request's method)
    """
    method = (method or request.method).upper()
    if identity.via != "cookie" or method in SAFE_METHODS:
        return ""
    sent = request.header(TOKEN_HEADER)
    if sent and identity.claims is not None:
        expected = csrf_token_for(request.kernel, identity.claims["jti"])
        if hmac.compare_digest(sent.encode(), expected.encode()):
            return ""
        return "CSRF token does not match the session"
    origin = request.header("Origin")
    if origin and origin != "null":
        return "" if source_allowed(request, origin) else "cross-site request refused (Origin)"
    referer = request.header("Referer")
    if referer:
        return "" if source_allowed(request, referer) else "cross-site request refused (Referer)"
    return f"cookie-authenticated {method} needs an Origin header or {TOKEN_HEADER}"
