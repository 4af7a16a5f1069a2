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
from urllib.parse import urlsplit

from butterfly_auth.config import state_of
from butterfly_auth.sessions import csrf_token_for
from kernel.routes import SAFE_METHODS

if TYPE_CHECKING:
    from butterfly_auth.identity import Identity
    from kernel import Request

TOKEN_HEADER = "X-CSRF-Token"
DEFAULT_PORTS = {"http": "80", "https": "443"}


def _host_port(netloc: str, scheme: str) -> str:
    """``host[:port]`` lower-cased, without user info and without the scheme's default port."""
    netloc = netloc.strip().lower().rsplit("@", 1)[-1]
    if netloc.startswith("["):  # an IPv6 literal: [::1]:8080
        end = netloc.find("]")
        host, rest = netloc[: end + 1], netloc[end + 1 :]
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = netloc.partition(":")
    if port == DEFAULT_PORTS.get(scheme):
        port = ""
    return f"{host}:{port}" if port else host


def origin_of(url: str) -> tuple[str, str] | None:
    """``(scheme, host[:port])`` of an absolute http(s) URL, else ``None``."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return parts.scheme, _host_port(parts.netloc, parts.scheme)


def source_allowed(request: Request, url: str) -> bool:
    """True when ``url`` (an Origin or Referer) is this site or a trusted origin."""
    origin = origin_of(url)
    if origin is None:
        return False
    scheme, host = origin
    own_host = request.header("Host") or request.environ.get("SERVER_NAME", "")
    # NOTE: compare host[:port] only: behind a TLS-terminating proxy the browser's
    # scheme (https) differs from what the app sees (http).
    if own_host and _host_port(own_host, scheme) == host:
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
