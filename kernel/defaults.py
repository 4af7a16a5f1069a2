"""The kernel's built-in plugin: the ``[server]`` settings and the default admin policy.

Registered first by the factory, so every installed plugin's implementation of a
firstresult hook is asked before the fallbacks here (they are also ``trylast``).
:func:`caller_is_admin` asks the installed policy whether a request's caller is an
admin, for handlers that show admins more on a route anyone may call.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from kernel.errors import Forbidden
from kernel.fasthooks import for_routes
from kernel.markers import hookimpl
from kernel.origin import foreign_source, is_loopback_host
from kernel.routes import SAFE_METHODS, Route
from kernel.settings import as_int

if TYPE_CHECKING:
    from kernel.request import Request

#: Headers that show a request came through a proxy, even from a loopback peer.
PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_REAL_IP", "HTTP_FORWARDED")
#: ``[server] send_buffer``'s default: bytes of a reply held before they are sent (kernel/server.py).
SEND_BUFFER = 18_000
#: ``request.ctx`` key caching :func:`caller_is_admin`.
CTX_IS_ADMIN = "kernel.is_admin"


def _admin_probe(request):
    """The endpoint of :data:`ADMIN_PROBE`; never called."""
    raise NotImplementedError


#: A stand-in admin route: what the authorize hooks say about it is whether a caller is an admin.
ADMIN_PROBE = Route("/", _admin_probe, kind="probe", methods=frozenset({"GET", "HEAD"}), admin=True)


def positive_int(value: Any) -> int:
    """Setting converter: an integer ``>= 1``."""
    number = as_int(value)
    if number < 1:
        raise ValueError(f"expected an integer >= 1, got {number}")
    return number


@hookimpl
def butterfly_add_settings(settings):
    """Declare ``[server]``."""
    add = settings.add
    add("server", "host", str, "127.0.0.1", "listen address (--host)", owner="kernel")
    add("server", "port", int, 8585, "listen port (--port)", owner="kernel")
    add("server", "threads", int, 16, "waitress worker threads", owner="kernel")
    add(
        "server",
        "workers",
        positive_int,
        1,
        "server processes sharing the port (SO_REUSEPORT), supervised; run --workers",
        owner="kernel",
    )
    add("server", "max_body", int, 10 * 1024 * 1024, "request body limit in bytes (413 past it)", owner="kernel")
    add(
        "server",
        "data_dir",
        str,
        "data",
        "data directory (pid file, SQLite), relative to the working directory",
        owner="kernel",
    )
    add("server", "log_dir", str, "logs", "log directory, relative to the working directory", owner="kernel")
    add(
        "server",
        "log_level",
        str,
        "INFO",
        "level of the app and error logs",
        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
        owner="kernel",
    )
    add(
        "server",
        "log_format",
        str,
        "json",
        "json lines, or console (run --dev)",
        choices=("json", "console"),
        owner="kernel",
    )
    add(
        "server",
        "disable_plugins",
        list,
        [],
        "installed plugins to switch off (also BUTTERFLY_DISABLE_PLUGINS)",
        owner="kernel",
    )
    add(
        "server",
        "shutdown_timeout",
        float,
        30.0,
        "seconds to finish in-flight work on SIGTERM/SIGINT before giving up",
        owner="kernel",
    )
    add("server", "ident", str, "", "Server header value; empty sends none", owner="kernel")
    # NOTE: waitress stops accepting at connection_limit; at its default (1000) a
    # thousand idle keep-alive sockets lock everyone out for channel_timeout seconds.
    add(
        "server",
        "connection_limit",
        int,
        4096,
        "most simultaneous connections (the open-file limit is raised to fit); put nginx in front for slow clients",
        owner="kernel",
    )
    add("server", "channel_timeout", int, 60, "seconds before an idle connection is closed", owner="kernel")
    # PERF: see kernel/server.py: a reply buffered whole leaves in one send(2).
    add(
        "server",
        "send_buffer",
        positive_int,
        SEND_BUFFER,
        "bytes of a reply held before they are sent: a smaller reply leaves in one write when the handler"
        " returns, a streamed body in pieces this large; 1 sends each streamed piece at once (server-sent events)",
        owner="kernel",
    )


def is_loopback(address: str) -> bool:
    """True for ``127.0.0.0/8``, ``::1`` and in-process callers (``local``)."""
    if address == "local":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def caller_is_admin(request: Request) -> bool:
    """Would the caller of ``request`` be let into an admin route?

    For handlers that show more to admins (unmasked secrets) on a route anyone may
    call. The installed policy decides, as for a real admin route: the admin role
    with butterfly-auth, a loopback peer without it. In-process calls (MQ, ruqi, CLI)
    are trusted code. The answer is cached on ``request.ctx``.

    :param request: the current request
    :return: the verdict
    """
    if request.source != "http":
        return True
    verdict = request.ctx.get(CTX_IS_ADMIN)
    if verdict is None:
        decision = request.kernel.hook.butterfly_authorize(request=request, route=ADMIN_PROBE)
        verdict = decision is None or decision is True
        request.ctx[CTX_IS_ADMIN] = verdict
    return bool(verdict)


@hookimpl(trylast=True)
@for_routes(lambda route: route.admin)
def butterfly_authorize(request, route):
    """Default policy: admin routes answer loopback HTTP clients only, and not other sites' pages.

    A loopback peer that forwards proxy headers is treated as remote, since a
    reverse proxy on the same host would otherwise make every client "local".
    A loopback peer is still refused when a browser on this machine was steered here:

    * the ``Host`` header must name this machine (``localhost``, ``127.0.0.0/8``,
      ``[::1]``): a page of another site whose name was made to resolve to 127.0.0.1
      (DNS rebinding) sends its own name, and would otherwise read admin pages;
    * a write (any method but GET, HEAD, OPTIONS) must not come from another site's
      page (``Sec-Fetch-Site``, ``Origin``, ``Referer``; :func:`kernel.origin.foreign_source`):
      a cross-site HTML form would otherwise drive admin writes. curl, the CLI and
      scripts send none of these headers and pass.

    In-process calls (``cli``, ``ruqi``, ``mq``) are trusted code and allowed.
    """
    if not route.admin or request.source != "http":
        return None
    environ = request.environ
    if not is_loopback(environ.get("REMOTE_ADDR", "")) or any(h in environ for h in PROXY_HEADERS):
        return Forbidden("admin route: loopback clients only (install butterfly-auth for remote admin)")
    host = request.header("Host")
    if host and not is_loopback_host(host):
        return Forbidden(
            f"admin route: Host {host[:100]!r} is not this machine; open it as http://127.0.0.1 or "
            "http://localhost (install butterfly-auth to use other names)"
        )
    if request.method not in SAFE_METHODS:
        reason = foreign_source(request)
        if reason:
            return Forbidden(f"admin write refused: {reason}")
    return True
