"""Server-rendered pages (Jinja2, autoescaped, no CDN) and browser-facing helpers."""

from __future__ import annotations

import secrets
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from kernel import HTTPError, Response

if TYPE_CHECKING:
    from kernel import Request

TEMPLATE_DIR = Path(__file__).parent / "templates"
LOGIN_PATH = "/auth/login"
HTML_TYPE = "text/html; charset=utf-8"

_environment = None
_environment_lock = threading.Lock()


def _jinja():
    global _environment
    if _environment is None:
        with _environment_lock:
            if _environment is None:
                import jinja2

                _environment = jinja2.Environment(
                    loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
                    autoescape=True,
                    trim_blocks=True,
                    lstrip_blocks=True,
                )
    return _environment


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


def html_response(status: int, body: str, headers: list[tuple[str, str]] | None = None, nonce: str = "") -> Response:
    """An HTML reply with strict security headers (CSP allows only our nonce'd style).

    :param nonce: the CSP nonce used in the page's ``<style>``
    """
    policy = (
        f"default-src 'none'; style-src 'nonce-{nonce}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    base = [
        ("Content-Type", HTML_TYPE),
        ("Cache-Control", "no-store"),
        ("X-Frame-Options", "DENY"),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "same-origin"),
        ("Content-Security-Policy", policy),
    ]
    return Response(status, base + list(headers or []), body.encode("utf-8"))


def render_page(
    template: str, status: int = 200, headers: list[tuple[str, str]] | None = None, **context: Any
) -> Response:
    """Render ``templates/<template>`` into an HTML :class:`Response`."""
    nonce = secrets.token_urlsafe(16)
    body = _jinja().get_template(template).render(nonce=nonce, **context)
    return html_response(status, body, headers, nonce)


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
        response = render_page("redirect.html", self.status, list(self.headers), location=self.location)
        response.stat = self.stat
        response.set_reason(self.reason)
        return response
