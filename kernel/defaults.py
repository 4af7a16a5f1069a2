"""The kernel's built-in plugin: the ``[server]`` settings and the default admin policy.

Registered first by the factory, so every installed plugin's implementation of a
firstresult hook is asked before the fallbacks here (they are also ``trylast``).
"""

from __future__ import annotations

import ipaddress

from kernel.errors import Forbidden
from kernel.markers import hookimpl

#: Headers that show a request came through a proxy, even from a loopback peer.
PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_REAL_IP", "HTTP_FORWARDED")


@hookimpl
def butterfly_add_settings(settings):
    """Declare ``[server]``."""
    add = settings.add
    add("server", "host", str, "127.0.0.1", "listen address (--host)", owner="kernel")
    add("server", "port", int, 8585, "listen port (--port)", owner="kernel")
    add("server", "threads", int, 16, "waitress worker threads", owner="kernel")
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


def is_loopback(address: str) -> bool:
    """True for ``127.0.0.0/8``, ``::1`` and in-process callers (``local``)."""
    if address == "local":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


@hookimpl(trylast=True)
def butterfly_authorize(request, route):
    """Default policy: admin routes answer loopback HTTP clients only.

    A loopback peer that forwards proxy headers is treated as remote, since a
    reverse proxy on the same host would otherwise make every client "local".
    In-process calls (``cli``, ``ruqi``, ``mq``) are trusted code and allowed.
    """
    if not route.admin or request.source != "http":
        return None
    environ = request.environ
    if is_loopback(environ.get("REMOTE_ADDR", "")) and not any(h in environ for h in PROXY_HEADERS):
        return True
    return Forbidden("admin route: loopback clients only (install butterfly-auth for remote admin)")
