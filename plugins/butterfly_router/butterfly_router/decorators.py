"""The handler decorators: ``@api``, ``@http``, ``@download``, ``@upload``.

They only *mark* a function (the ``__butterfly_route__`` attribute) and return the
very same function, so its signature, docstring and identity stay intact and it
can still be called directly in tests. Each works bare (``@api``) or with options
(``@api(admin=True, methods=("POST",))``).

A state change never runs on a safe method: an admin route that does not name its
methods accepts ``POST`` only (``@api(admin=True)``, ``@http(admin=True)``); an admin
route that only reads declares ``methods=("GET",)``. ``@download`` keeps ``GET``/``HEAD``
and ``@upload`` ``POST``/``PUT`` either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

#: The attribute the decorators set and discovery reads.
MARK = "__butterfly_route__"
KINDS = ("json", "http", "file", "upload")


@dataclass(frozen=True)
class RouteOptions:
    """How a handler is served.

    :param kind: ``json`` (``@api``), ``http`` (``@http``), ``file`` (``@download``)
        or ``upload`` (``@upload``)
    :param admin: admin-only route (loopback only without the auth plugin)
    :param methods: allowed HTTP methods, ``None`` for any (never ``None`` on an admin route)
    """

    kind: str = "json"
    admin: bool = False
    methods: tuple[str, ...] | None = None


#: What an undecorated ``req``-first function gets.
DEFAULT_OPTIONS = RouteOptions()
#: The methods of an admin route that names none (a write, so never a safe method).
ADMIN_DEFAULT_METHODS = ("POST",)


def _normalize_methods(methods: str | Iterable[str] | None) -> tuple[str, ...] | None:
    if methods is None:
        return None
    if isinstance(methods, str):
        methods = [methods]
    normalized = tuple(sorted({str(m).strip().upper() for m in methods if str(m).strip()}))
    if not normalized:
        raise ValueError("methods must name at least one HTTP method, or be None for any")
    return normalized


def _make_decorator(kind: str, default_methods: tuple[str, ...] | None, doc: str):
    def decorator(
        func: F | None = None, *, admin: bool = False, methods: str | Iterable[str] | None = default_methods
    ) -> Any:
        if func is not None and not callable(func):
            raise TypeError(f"@{decorator.__name__} takes keyword options only, got {func!r}")
        if admin and methods is None:
            # NOTE: an admin route reached by GET is a CSRF hole (a link or an <img> carries
            # the SameSite=Lax cookie); admin reads say methods=("GET",) explicitly.
            methods = ADMIN_DEFAULT_METHODS
        options = RouteOptions(kind, bool(admin), _normalize_methods(methods))

        def mark(target: F) -> F:
            setattr(target, MARK, options)
            return target

        return mark(func) if func is not None else mark

    decorator.__doc__ = doc
    return decorator


api = _make_decorator(
    "json",
    None,
    """Serve the function as a JSON API (the default for undecorated handlers).

The handler returns ``stat``, ``(stat, data)`` or ``(stat, data, headers)``.

:param admin: admin-only route
:param methods: allowed HTTP methods (e.g. ``("GET",)``); default any, or ``POST``
    only for an admin route
:return: the same function, marked
""",
)
api.__name__ = api.__qualname__ = "api"

http = _make_decorator(
    "http",
    None,
    """Serve the function as a raw HTTP handler.

The handler returns ``status``, ``(status, body)`` or ``(status, body, headers)``;
a dict/list body is sent as JSON, str/bytes as ``text/html; charset=utf-8``
unless the headers set a Content-Type. Returning a :class:`kernel.Response` sends it as is.

:param admin: admin-only route
:param methods: allowed HTTP methods; default any, or ``POST`` only for an admin route
:return: the same function, marked
""",
)
http.__name__ = http.__qualname__ = "http"

download = _make_decorator(
    "file",
    ("GET", "HEAD"),
    """Serve a file the handler names.

The handler returns a path (relative to ``[router] download_dir``, or absolute
inside it) or ``(path, download_name)``; the file is streamed as an attachment.

:param admin: admin-only route
:param methods: allowed HTTP methods, default ``GET``/``HEAD``
:return: the same function, marked
""",
)
download.__name__ = download.__qualname__ = "download"

upload = _make_decorator(
    "upload",
    ("POST", "PUT"),
    """Serve the function as a raw-body upload with a JSON reply.

The handler must take a parameter named ``stream``: the request body as a
file-like object bounded by ``[server] max_body``. Other parameters come from
the query string. Returns like ``@api``.

:param admin: admin-only route
:param methods: allowed HTTP methods, default ``POST``/``PUT``
:return: the same function, marked
""",
)
upload.__name__ = upload.__qualname__ = "upload"


def options_of(func: Callable[..., Any]) -> RouteOptions:
    """The :class:`RouteOptions` a function was marked with (``@api`` by default).

    :param func: a handler function
    :return: its options
    """
    options = getattr(func, MARK, None)
    return options if isinstance(options, RouteOptions) else DEFAULT_OPTIONS
