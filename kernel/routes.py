"""The kernel's route table: exact paths, plus a few prefix routes (``/static/``).

Plugins add routes through ``butterfly_register_routes(register, kernel)``; the
``register`` callback is :meth:`RouteTable.register`. A duplicate path is an error
that names both owners.

A state change never runs on a safe method: an admin route registered without
``methods`` accepts ``POST`` only; admin reads pass ``methods=("GET", "HEAD")``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kernel.errors import ConfigError

if TYPE_CHECKING:
    from kernel.request import Request
    from kernel.response import Response

Protocol = Callable[["Request", "Route"], "Response"]
#: Methods that must never change state (RFC 9110 §9.2.1); the CSRF check skips them.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: What an admin route accepts when it names no methods.
ADMIN_DEFAULT_METHODS = frozenset({"POST"})


def call_endpoint(request: Request, route: Route) -> Response:
    """The default protocol: the endpoint takes the request and returns a Response."""
    return route.endpoint(request)


def normalize_path(path: str) -> str:
    """Strip one trailing ``/`` (``/`` itself stays)."""
    if len(path) > 1 and path.endswith("/"):
        return path[:-1]
    return path


@dataclass(eq=False)
class Route:
    """One served path.

    :param path: the URL path (``/app/handler``); for prefix routes the prefix
    :param endpoint: the user's function (or a plain ``request -> Response`` callable)
    :param protocol: ``(request, route) -> Response``; calls ``endpoint`` its way
    :param kind: short protocol name for listings (``json``, ``http``, ``file``, ...)
    :param methods: allowed HTTP methods, ``None`` for any (an admin route always has a set)
    :param admin: only admins may call it (loopback only without the auth plugin)
    :param plugin: the plugin that registered it
    :param prefix: match every path under ``path`` (used for static files)
    :param meta: protocol-specific data (e.g. the router's parsed signature)
    """

    path: str
    endpoint: Callable[..., Any]
    protocol: Protocol = call_endpoint
    kind: str = "raw"
    methods: frozenset[str] | None = None
    admin: bool = False
    plugin: str = ""
    prefix: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def accepts_safe_method(self) -> bool:
        """True when a GET, HEAD or OPTIONS request reaches the endpoint."""
        return self.methods is None or not self.methods.isdisjoint(SAFE_METHODS)

    @property
    def name(self) -> str:
        """``module.function`` of the endpoint, for listings and logs."""
        func = self.endpoint
        return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"


class RouteTable:
    """Routes by exact path, and prefix routes tried longest first."""

    def __init__(self) -> None:
        self.exact: dict[str, Route] = {}
        self.prefixes: list[Route] = []

    def register(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        protocol: Protocol | None = None,
        kind: str = "raw",
        methods: Iterable[str] | None = None,
        admin: bool = False,
        plugin: str = "",
        prefix: bool = False,
        meta: dict[str, Any] | None = None,
    ) -> Route:
        """Add a route; see :class:`Route` for the parameters.

        An admin route without ``methods`` accepts ``POST`` only.

        :raises ConfigError: when ``path`` is not absolute or is already taken
        """
        if not path.startswith("/"):
            raise ConfigError(f"route path must start with '/': {path!r}")
        key = path if prefix else normalize_path(path)
        allowed = frozenset(m.upper() for m in methods) if methods else None
        if admin and allowed is None:
            allowed = ADMIN_DEFAULT_METHODS
        route = Route(
            key,
            endpoint,
            protocol or call_endpoint,
            kind,
            allowed,
            admin,
            plugin,
            prefix,
            dict(meta or {}),
        )
        existing = self._find_same(route)
        if existing is not None:
            raise ConfigError(
                f"duplicate route {key}: {existing.name} (plugin {existing.plugin or '?'}) "
                f"and {route.name} (plugin {plugin or '?'})"
            )
        if prefix:
            self.prefixes.append(route)
            self.prefixes.sort(key=lambda r: len(r.path), reverse=True)
        else:
            self.exact[key] = route
        return route

    def _find_same(self, route: Route) -> Route | None:
        if route.prefix:
            return next((r for r in self.prefixes if r.path == route.path), None)
        return self.exact.get(route.path)

    def lookup(self, path: str) -> Route | None:
        """The route serving ``path``: exact first (one trailing ``/`` ignored), then prefixes."""
        # PERF: one dict lookup for the common case.
        route = self.exact.get(path)
        if route is not None:
            return route
        if len(path) > 1 and path.endswith("/"):
            route = self.exact.get(path[:-1])
            if route is not None:
                return route
        for candidate in self.prefixes:
            if path.startswith(candidate.path):
                return candidate
        return None

    def __iter__(self):
        return iter(sorted([*self.exact.values(), *self.prefixes], key=lambda r: r.path))

    def __len__(self) -> int:
        return len(self.exact) + len(self.prefixes)
