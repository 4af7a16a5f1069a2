"""The console page at ``/`` and the shared assets under ``/_console/``."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from butterfly_router import ui
from butterfly_router.meta import collect_health
from kernel import Response

if TYPE_CHECKING:
    from kernel import Request


@dataclass
class PluginRow:
    """One installed plugin as the console lists it.

    :param name: the plugin name
    :param dist: its distribution
    :param version: the distribution's version
    :param enabled: whether it runs in this kernel
    :param reason: why it is disabled (or how it was loaded)
    :param routes: how many routes it serves
    :param pages: its navigation links this caller may see
    """

    name: str
    dist: str
    version: str
    enabled: bool
    reason: str
    routes: int = 0
    pages: list[ui.NavLink] = field(default_factory=list)


def plugin_rows(kernel: Any, links: list[ui.NavLink]) -> list[PluginRow]:
    """Every plugin the kernel knows (the kernel's own first), with its routes and pages."""
    routes = Counter(route.plugin for route in kernel.routes)
    rows = []
    for info in kernel.plugins:
        pages = [link for link in links if link.owner == info.name or link.owner.startswith(info.name + ".")]
        rows.append(
            PluginRow(info.name, info.dist, info.version, info.enabled, info.reason, routes.get(info.name, 0), pages)
        )
    return rows


def app_pages(links: list[ui.NavLink]) -> list[ui.NavLink]:
    """Links that handler apps registered."""
    return [link for link in links if link.owner.startswith("app ")]


def console_page(request: Request) -> Response:
    """``GET /``: installed plugins and their pages, route count, health, sign-in."""
    kernel: Any = request.kernel
    site = ui.site_for(request, "Console")
    checks = collect_health(kernel)
    failing = sorted(name for name, check in checks.items() if not check["ok"])
    pages = [link for link in site.links if link.path != "/"]
    from butterfly_router.config import state_of

    router = state_of(kernel)
    user_apps = {route.meta.get("app") for route in kernel.routes if route.meta.get("source") == "handlers"}
    body = (
        ui.environment("butterfly_router")
        .get_template("console.html")
        .render(
            site=site,
            pages=pages,
            plugins=plugin_rows(kernel, pages),
            app_links=app_pages(pages),
            route_count=len(kernel.routes),
            checks=sorted(checks.items()),
            failing=failing,
            apps=sorted(app or "(root)" for app in user_apps if app is not None),
            broken_apps=sorted(router.broken_apps.items()),
        )
    )
    return ui.html_response(200, body)


def asset_endpoint(name: str):
    """The endpoint serving the shared asset ``name`` (ETag, long cache: its URL is versioned)."""

    def serve_asset(request: Request) -> Response:
        body, content_type, etag = ui.asset(name)
        tag = f'"{etag}"'
        headers = [
            ("Content-Type", content_type),
            ("ETag", tag),
            ("Cache-Control", "public, max-age=86400"),
            ("X-Content-Type-Options", "nosniff"),
        ]
        if request.header("If-None-Match") == tag:
            return Response(304, headers, b"")
        return Response(200, headers, body)

    serve_asset.__doc__ = f"The shared page asset {name} (stylesheet, script or icon of every page)."
    serve_asset.__qualname__ = f"asset[{name}]"
    return serve_asset
