"""Where a browser request comes from: ``Host``, ``Origin``, ``Referer``, ``Sec-Fetch-Site``.

Shared by the kernel's default admin policy (:mod:`kernel.defaults`: admin routes
without butterfly-auth) and butterfly-auth's CSRF rule (``butterfly_auth.csrf``).
Origins are compared by ``host[:port]`` only, the scheme's default port left out:
behind a TLS-terminating proxy the browser's scheme (``https``) differs from the
one the app sees (``http``).
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from kernel.request import Request

DEFAULT_PORTS = {"http": "80", "https": "443"}
#: ``Sec-Fetch-Site`` values a browser sends for a request started by another site
#: (``same-site`` is another port or subdomain of the same site: still not this server).
FOREIGN_FETCH_SITES = frozenset({"cross-site", "same-site"})
#: Host names that always mean this machine (``localhost.`` is the same name, fully qualified).
LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


def host_port(netloc: str, scheme: str = "http") -> str:
    """``host[:port]`` lower-cased, without user info and without the scheme's default port.

    :param netloc: a URL's network location or a ``Host`` header (``Example.com:80``, ``[::1]:8585``)
    :param scheme: the scheme whose default port is left out
    :return: e.g. ``example.com``, ``127.0.0.1:8585``, ``[::1]:8585``
    """
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
    """``(scheme, host[:port])`` of an absolute http(s) URL (an ``Origin`` or ``Referer``), else ``None``."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return parts.scheme, host_port(parts.netloc, parts.scheme)


def names_this_host(request: Request, url: str) -> bool:
    """True when ``url`` (an ``Origin`` or ``Referer``) names the request's own ``Host``.

    :param request: the request
    :param url: the header's value
    """
    origin = origin_of(url)
    if origin is None:
        return False
    scheme, host = origin
    own_host = request.header("Host") or request.environ.get("SERVER_NAME", "")
    return bool(own_host) and host_port(own_host, scheme) == host


def host_name(host_header: str) -> str:
    """The name or address of a ``Host`` header, without port and brackets (``[::1]:80`` → ``::1``)."""
    host = host_port(host_header)
    if host.startswith("["):
        return host[1 : host.find("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback_host(host_header: str) -> bool:
    """True when a ``Host`` header names this machine: ``localhost``, ``127.0.0.0/8`` or ``[::1]``.

    A browser that was made to resolve an attacker's name to 127.0.0.1 (DNS
    rebinding) still sends that name, so it fails this test.
    """
    name = host_name(host_header)
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def foreign_source(request: Request) -> str:
    """Why a browser sent ``request`` from another site, or ``""`` when nothing says so.

    The signs, in order: ``Sec-Fetch-Site: cross-site`` or ``same-site`` (every current
    browser sends it); an ``Origin`` that is ``null`` (a sandboxed frame, a data URL) or
    names another host; a ``Referer`` that names another host. A client that sends none
    of these (curl, the CLI, scripts) is not a browser page of another site.

    :param request: the request
    :return: the reason, for ``x-reason``
    """
    fetch_site = (request.header("Sec-Fetch-Site") or "").strip().lower()
    if fetch_site in FOREIGN_FETCH_SITES:
        return f"sent by another site (Sec-Fetch-Site: {fetch_site})"
    origin = (request.header("Origin") or "").strip()
    if origin:
        if origin == "null" or not names_this_host(request, origin):
            return f"sent by another site (Origin: {origin[:100]})"
        return ""
    referer = (request.header("Referer") or "").strip()
    if referer and not names_this_host(request, referer):
        return "sent by another site (Referer)"
    return ""
