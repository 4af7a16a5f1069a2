"""Server-rendered pages (the shared layout of every Butterfly page, no CDN) and browser-facing helpers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from butterfly_router import ui
from kernel import HTTPError, Response

if TYPE_CHECKING:
    from kernel import Request

SOURCE = "butterfly_auth"
LOGIN_PATH = "/auth/login"
HTML_TYPE = ui.HTML_TYPE


def _quality(accept: str, wanted: str) -> float:
    """The q-value ``accept`` gives ``wanted`` exactly (wildcards do not count), else 0."""
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if media.lower() != wanted:
            continue
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    return float(value)
                except ValueError:
                    return 0.0
        return 1.0
    return 0.0


def accepts_html(request: Request) -> bool:
    """True when the client lists ``text/html`` explicitly in Accept, ranked over JSON."""
    accept = request.header("Accept") or ""
    html = _quality(accept, "text/html")
    return html > 0 and html >= _quality(accept, "application/json")


def prefers_html(request: Request) -> bool:
    """True for a browser navigation: a GET/HEAD whose Accept ranks ``text/html`` first.

    ``fetch()`` and command-line clients send ``*/*`` and keep getting JSON.
    """
    return request.method in ("GET", "HEAD") and accepts_html(request)


def safe_next(value: Any, default: str = "/") -> str:
    """``value`` when it is a same-site relative path, else ``default`` (no open redirect).

    Refuses absolute and scheme-relative URLs (``//evil``), backslashes (browsers read
    ``/\\evil`` as ``//evil``), control characters and anything that is not a path.
    """
    if not isinstance(value, str) or not value.startswith("/") or len(value) > 2000:
        return default
    if value.startswith("//") or "\\" in value or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value


#: Characters a ``Location`` path keeps as they are: the URL delimiters and ``%`` (so
#: an already percent-encoded path is not encoded twice).
LOCATION_SAFE = "/?#&=+,;:@!$'()*[]%~"


def location_of(path: str) -> str:
    """``path`` (from :func:`safe_next`) as a ``Location`` value: ASCII, percent-encoded.

    Header values must be Latin-1; ``/中文`` becomes ``/%E4%B8%AD%E6%96%87``, which
    the browser shows as the same path. Encoding never adds a ``/`` or ``\\``, so a
    same-site path stays same-site.
    """
    return quote(path, safe=LOCATION_SAFE)


def current_target(request: Request) -> str:
    """The path and query of ``request``, for ``?next=``."""
    query = request.environ.get("QUERY_STRING", "")
    return request.path + ("?" + query if query else "")


def login_url(next_path: str) -> str:
    """``/auth/login?next=...`` for a safe ``next_path``."""
    return f"{LOGIN_PATH}?next={quote(safe_next(next_path), safe='/')}"


def render_page(
    request: Request,
    template: str,
    status: int = 200,
    headers: list[tuple[str, str]] | None = None,
    *,
    title: str,
    **context: Any,
) -> Response:
    """Render ``templates/<template>`` in the shared layout into an HTML :class:`Response`.

    The reply carries the pages' strict security headers (:func:`butterfly_router.ui.html_response`).
    """
    return ui.render(request, template, source=SOURCE, title=title, http_status=status, headers=headers, **context)


class LoginRedirect(HTTPError):
    """Send an unauthenticated browser to the login page (302), coming back to ``next``.

    :param next_path: where to return after logging in
    """

    status = 302
    stat = "ERR_UNAUTHORIZED"

    def __init__(self, next_path: str) -> None:
        self.location = login_url(next_path)
        super().__init__("login required", headers=[("Location", self.location)])

    def to_response(self) -> Response:
        """A tiny HTML body with the link, for clients that do not follow redirects."""
        # NOTE: no request here (an error object renders itself): a page without the navigation bar.
        site = ui.Site("Sign in required", LOGIN_PATH)
        body = ui.environment(SOURCE).get_template("redirect.html").render(site=site, location=self.location)
        response = ui.html_response(self.status, body, list(self.headers))
        response.stat = self.stat
        response.set_reason(self.reason)
        return response
