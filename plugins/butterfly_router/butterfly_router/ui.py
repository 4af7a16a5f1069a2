"""The shared look of every HTML page: one layout, one stylesheet, one navigation bar.

A plugin's page template extends the layout, and the page is rendered with
:func:`render`, which fills in the navigation bar (fed by the
``butterfly_console_links`` hook), the signed-in user and the security headers::

    # butterfly_mine/pages.py
    from butterfly_router import ui

    def mine_page(request):
        return ui.render(request, "mine.html", source="butterfly_mine", title="Mine", rows=[...])

    {# butterfly_mine/templates/mine.html #}
    {% extends "butterfly/layout.html" %}
    {% import "butterfly/macros.html" as ui %}
    {% block main %}<section class="card">{{ ui.time(row.created_at) }}</section>{% endblock %}

``source`` is the plugin's package (its ``templates/`` folder is searched first) or a
directory of templates. Names under ``butterfly/`` are the shared ones: ``layout.html``
(blocks ``heading``, ``actions``, ``main``), ``macros.html`` (``time``, ``sparkline``,
``pager``, ``post_button``, ``pill``). The stylesheet and script are served by
butterfly-router under ``/_console/``; pages carry a strict Content-Security-Policy
(no inline scripts or styles, nothing from other origins).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from butterfly_router.ui_filters import FILTERS
from kernel import BadRequest, Response
from kernel.defaults import caller_is_admin

if TYPE_CHECKING:
    import jinja2

    from kernel import Request

#: Template names under this prefix are the shared ones (``butterfly/layout.html``).
SHARED_PREFIX = "butterfly"
#: Where the shared assets are served.
ASSET_PREFIX = "/_console/"
#: The shared assets: file name → Content-Type.
ASSETS = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "butterfly.svg": "image/svg+xml",
}
#: The auth plugin's pages, linked from the bar when that plugin serves them.
SIGN_IN_PATH = "/auth/login"
SIGN_OUT_PATH = "/auth/logout"
HTML_TYPE = "text/html; charset=utf-8"
#: No inline script or style, nothing from another origin (no CDN can sneak in).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@functools.cache
def environment(source: str | Path) -> jinja2.Environment:
    """A Jinja2 environment (autoescaping on) whose loader also sees the shared templates.

    :param source: a package name (its ``templates/`` folder) or a directory of templates
    :return: the environment, built once per source
    """
    import jinja2

    if isinstance(source, Path):
        own: jinja2.BaseLoader = jinja2.FileSystemLoader(source)
    else:
        own = jinja2.PackageLoader(source, "templates")
    shared = jinja2.PrefixLoader({SHARED_PREFIX: jinja2.PackageLoader("butterfly_router", "templates")})
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader([shared, own]),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    return env


@functools.cache
def asset(name: str) -> tuple[bytes, str, str]:
    """One shared asset: ``(body, content_type, etag)``.

    :param name: a key of :data:`ASSETS`
    :raises KeyError: for any other name
    """
    content_type = ASSETS[name]
    body = resources.files("butterfly_router").joinpath("static", name).read_bytes()
    return body, content_type, hashlib.sha256(body).hexdigest()[:16]


def asset_url(name: str) -> str:
    """The URL of a shared asset, versioned by its content (so it may be cached long)."""
    return f"{ASSET_PREFIX}{name}?v={asset(name)[2]}"


@dataclass(frozen=True)
class NavLink:
    """One entry of the navigation bar.

    :param title: the link text
    :param path: the page's path
    :param admin: shown to admins only
    :param description: one line for the console's list of pages
    :param owner: the plugin (or ``app <name>``) that registered it
    """

    title: str
    path: str
    admin: bool = False
    description: str = ""
    owner: str = ""


@dataclass
class Site:
    """What the layout needs about the page being rendered (the template's ``site``).

    :param title: the page title
    :param path: the request path
    :param query: the request's query parameters
    :param links: the navigation links this caller may see
    :param user: the signed-in user, if any
    :param admin: whether the caller is an admin
    :param sign_in: the sign-in URL (coming back here), when the auth plugin serves one
    :param sign_out: the sign-out URL, when the auth plugin serves one
    :param refresh: seconds between live refreshes of the page's ``data-live`` parts (0: none)
    """

    title: str
    path: str
    query: dict[str, Any] = field(default_factory=dict)
    links: list[NavLink] = field(default_factory=list)
    user: str | None = None
    admin: bool = False
    sign_in: str | None = None
    sign_out: str | None = None
    refresh: int = 0

    @property
    def css(self) -> str:
        """URL of the shared stylesheet."""
        return asset_url("console.css")

    @property
    def js(self) -> str:
        """URL of the shared script."""
        return asset_url("console.js")

    @property
    def icon(self) -> str:
        """URL of the icon."""
        return asset_url("butterfly.svg")

    def is_current(self, link: NavLink) -> bool:
        """True when ``link`` is this page or the section it belongs to (``/canghai/queue`` → ``/canghai/``)."""
        target = link.path.split("?", 1)[0].rstrip("/") or "/"
        here = self.path.rstrip("/") or "/"
        return here == target or (target != "/" and here.startswith(target + "/"))

    def url_with(self, key: str | None = None, value: Any = None, **changes: Any) -> str:
        """This page's URL with some query parameters changed (``None`` drops one).

        ``site.url_with("page", 2)`` or ``site.url_with(page=2, all=None)``.
        """
        if key is not None:
            changes[key] = value
        query = {k: v for k, v in self.query.items() if k not in changes}
        query.update({k: v for k, v in changes.items() if v is not None})
        pairs = [(k, item) for k, v in query.items() for item in (v if isinstance(v, list) else [v])]
        return self.path + ("?" + urlencode(pairs) if pairs else "")


def nav_links(kernel: Any) -> list[NavLink]:
    """Every link registered through ``butterfly_console_links`` (empty without the console)."""
    state = kernel.extensions.get("router.console")
    return list(state.links) if state is not None else []


def serves(kernel: Any, path: str) -> bool:
    """True when ``path`` is an exact route of ``kernel``."""
    route = kernel.routes.lookup(path)
    return route is not None and route.path == path


def current_target(request: Request) -> str:
    """The path and query of ``request`` (for ``?next=``)."""
    query = request.environ.get("QUERY_STRING", "")
    return request.path + ("?" + query if query else "")


def site_for(request: Request, title: str, refresh: int = 0) -> Site:
    """The :class:`Site` of a page rendered for ``request``.

    :param title: the page title
    :param refresh: seconds between live refreshes (0: none)
    """
    kernel = request.kernel
    admin = caller_is_admin(request)
    user = request.user
    links = [link for link in nav_links(kernel) if admin or not link.admin]
    sign_in = sign_out = None
    if serves(kernel, SIGN_IN_PATH):
        if user:
            sign_out = SIGN_OUT_PATH
        elif request.path != SIGN_IN_PATH:
            sign_in = f"{SIGN_IN_PATH}?next={quote(current_target(request), safe='/')}"
        else:
            sign_in = SIGN_IN_PATH
    return Site(title, request.path, dict(request.query), links, user, admin, sign_in, sign_out, refresh)


def html_response(status: int, body: str, headers: list[tuple[str, str]] | None = None) -> Response:
    """An HTML reply with the pages' security headers (CSP, no framing, no sniffing, no caching).

    :param status: the HTTP status
    :param body: the document
    :param headers: more headers (``Set-Cookie``, ``Retry-After`` ...)
    """
    base = [
        ("Content-Type", HTML_TYPE),
        ("Cache-Control", "no-store"),
        ("X-Frame-Options", "DENY"),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "same-origin"),
        ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ]
    return Response(status, base + list(headers or []), body.encode("utf-8"))


def render(
    request: Request,
    template: str,
    *,
    source: str | Path,
    title: str,
    http_status: int = 200,
    headers: list[tuple[str, str]] | None = None,
    refresh: int = 0,
    **context: Any,
) -> Response:
    """Render a page that extends ``butterfly/layout.html`` into an HTML :class:`Response`.

    :param request: the request (for the navigation bar and the signed-in user)
    :param template: the template's name in ``source``
    :param source: the plugin's package name or a template directory (see :func:`environment`)
    :param title: the page title
    :param http_status: the HTTP status (not ``status``: pages often show a variable of that name)
    :param headers: more headers
    :param refresh: seconds between live refreshes of the page's ``data-live`` parts (0: none)
    :param context: the template's variables
    """
    site = site_for(request, title, refresh)
    body = environment(source).get_template(template).render(site=site, **context)
    return html_response(http_status, body, headers)


def sign_in_redirect(request: Request) -> Response | None:
    """A 302 to the sign-in page that comes back here, or ``None`` without the auth plugin."""
    if not serves(request.kernel, SIGN_IN_PATH):
        return None
    location = f"{SIGN_IN_PATH}?next={quote(current_target(request), safe='/')}"
    return Response(302, [("Location", location), ("Cache-Control", "no-store")], b"")


# -- query parameters of pages ---------------------------------------------------------


def _bad(name: str, reason: str) -> BadRequest:
    return BadRequest(f"{name}: {reason}", data={"errors": [{"param": name, "reason": reason}]})


def query_text(request: Request, name: str, default: str | None = None, *, max_length: int = 200) -> str | None:
    """A page's text query parameter (the last one when repeated).

    :param default: the value when absent or empty; ``None`` and no default → ``None``
    :param max_length: longer values are a 400 naming the parameter
    :raises BadRequest: the value is too long
    """
    value = request.query.get(name)
    if isinstance(value, list):
        value = value[-1] if value else None
    if value is None or value == "":
        return default
    if len(value) > max_length:
        raise _bad(name, f"is longer than {max_length}")
    return value


def required_text(request: Request, name: str, *, max_length: int = 200) -> str:
    """:func:`query_text` that must be present (a 400 naming it otherwise)."""
    value = query_text(request, name, max_length=max_length)
    if value is None:
        raise _bad(name, "required")
    return value


def query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    """A page's integer query parameter within ``low..high`` (a 400 naming it otherwise)."""
    raw = query_text(request, name, max_length=20)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad(name, f"expected an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise _bad(name, f"must be between {low} and {high}")
    return value


def query_flag(request: Request, name: str) -> bool:
    """True when a page's query parameter is ``1``, ``true``, ``yes`` or ``on``."""
    value = query_text(request, name, max_length=10)
    return value is not None and value.lower() in ("1", "true", "yes", "on")


def template_dir(module_file: str) -> Path:
    """``templates/`` next to a module (for handler apps: ``ui.template_dir(__file__)``)."""
    return Path(module_file).with_name("templates")
