"""Protocols: call a bound handler and turn what it returns into a :class:`Response`.

One factory per route kind builds a closure over the route's precomputed
:class:`~butterfly_router.binder.Binder` at registration, so the per-request path
is: bind params → call → build the reply. Handler exceptions propagate to the
kernel (logged by the error hooks, a bare 500 for the client); a return value of
the wrong shape is a logged 500 that names the handler.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import structlog

from butterfly_router.files import (
    content_disposition,
    etag_of,
    file_response,
    guess_type,
    last_modified,
    resolve_inside,
)
from kernel import Request, Response, ServerError
from kernel.response import dumps, safe_header_value

if TYPE_CHECKING:
    from butterfly_router.binder import Binder
    from kernel.routes import Route

log = structlog.get_logger("butterfly.router")
Protocol = Callable[[Request, "Route"], Response]
HTML_TYPE = "text/html; charset=utf-8"
JSON_TYPE = "application/json; charset=utf-8"
JSON_SHAPE = "a JSON handler returns stat, (stat, data) or (stat, data, headers)"
RAW_SHAPE = "an @http handler returns status, (status, body) or (status, body, headers)"
FILE_SHAPE = "a @download handler returns a path or (path, download_name)"
#: What a handler's header name may not contain.
_BAD_NAME = re.compile(r"[ \t\r\n:]")


def bad_return(request: Request, what: str, value: Any) -> ServerError:
    """Log a handler's malformed return value and build the 500 to raise.

    :param request: the current request (its route names the handler)
    :param what: the expected shape
    :param value: what the handler returned
    """
    handler = request.route.name if request.route is not None else "?"
    shown = repr(value)
    log.error(
        "handler returned an invalid reply",
        path=request.path,
        handler=handler,
        expected=what,
        got=shown if len(shown) <= 200 else shown[:197] + "...",
    )
    return ServerError(f"invalid reply from handler: {what}")


def handler_headers(request: Request, headers: Any, shape: str) -> list[tuple[str, str]]:
    """Normalise handler headers (a dict or a list of pairs) into safe pairs."""
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    result = []
    try:
        for name, value in items:
            name = str(name)
            if not name or _BAD_NAME.search(name):
                raise ValueError(name)
            result.append((name, safe_header_value(value)))
    except (TypeError, ValueError):
        raise bad_return(request, f"{shape}; headers are a dict or a list of (name, value) pairs", headers) from None
    return result


def json_reply(request: Request, result: Any) -> Response:
    """Build the JSON response for ``stat`` / ``(stat, data[, headers])``."""
    headers = None
    # PERF: exact type checks first; this runs for every JSON request.
    if type(result) is tuple:
        size = len(result)
        if size == 2:
            stat, data = result
        elif size == 3:
            stat, data, headers = result
        else:
            raise bad_return(request, JSON_SHAPE, result)
    else:
        stat, data = result, None
    if type(stat) is str:
        stat_text = stat
    elif type(stat) is int:
        stat_text = str(stat)
    else:
        raise bad_return(request, JSON_SHAPE + "; stat is a string", result)
    if data is None:
        body = {"stat": stat}
    elif isinstance(data, dict):
        # NOTE: a new dict (the handler's own is left alone); "stat" first, and the
        # repeated key makes the handler's stat lose.
        body = {"stat": stat, **data, "stat": stat}  # noqa: F601
    else:
        raise bad_return(request, JSON_SHAPE + "; data is a dict or None", result)
    request.stat = stat_text
    return Response(200, handler_headers(request, headers, JSON_SHAPE) if headers else [], data=body, stat=stat_text)


def json_protocol(binder: Binder) -> Protocol:
    """The ``@api`` protocol: params from query + form + JSON body, JSON reply."""
    bind, func = binder.bind, binder.func

    def protocol(request: Request, route: Route) -> Response:
        return json_reply(request, func(request, **bind(request.params)))

    return protocol


def upload_protocol(binder: Binder) -> Protocol:
    """The ``@upload`` protocol: the body as ``stream``, params from the query string."""
    bind, func = binder.bind, binder.func

    def protocol(request: Request, route: Route) -> Response:
        # NOTE: over HTTP the body is the upload, so only the query string holds
        # params; an in-process call passes them directly.
        params = request.query if request.source == "http" else request.params
        kwargs = bind(params)
        return json_reply(request, func(request, stream=request.stream, **kwargs))

    return protocol


def _charset_of(content_type: str) -> str:
    for part in content_type.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"')
    return "utf-8"


def raw_reply(request: Request, result: Any) -> Response:
    """Build the response for ``status`` / ``(status, body[, headers])``."""
    if isinstance(result, Response):
        return result
    headers: Any = None
    if type(result) is tuple and len(result) in (2, 3):
        status, body = result[0], result[1]
        headers = result[2] if len(result) == 3 else None
    else:
        status, body = result, b""
    if type(status) is not int or not 100 <= status <= 599:
        raise bad_return(request, RAW_SHAPE + "; status is an int from 100 to 599", result)
    pairs = handler_headers(request, headers, RAW_SHAPE)
    content_type = next((value for name, value in pairs if name.lower() == "content-type"), None)
    if isinstance(body, dict):
        response = Response(status, pairs, data=body, stat=None)
        response.stat = body.get("stat") if isinstance(body.get("stat"), str) else None
        return response
    if isinstance(body, list):
        body, default_type = dumps(body), JSON_TYPE
    elif isinstance(body, str):
        charset = _charset_of(content_type) if content_type else "utf-8"
        try:
            body = body.encode(charset)
        except (LookupError, UnicodeEncodeError):
            raise bad_return(
                request, f"a str body encodable in the Content-Type charset {charset}", content_type
            ) from None
        default_type = HTML_TYPE
    elif isinstance(body, bytes | bytearray):
        body, default_type = bytes(body), HTML_TYPE
    elif body is None:
        body, default_type = b"", HTML_TYPE
    else:
        raise bad_return(request, RAW_SHAPE + "; body is a dict, list, str, bytes or None", result)
    if content_type is None and (body or status not in (204, 304)):
        pairs.insert(0, ("Content-Type", default_type))
    return Response(status, pairs, body)


def raw_protocol(binder: Binder) -> Protocol:
    """The ``@http`` protocol: params like ``@api``, the handler picks status and body."""
    bind, func = binder.bind, binder.func

    def protocol(request: Request, route: Route) -> Response:
        return raw_reply(request, func(request, **bind(request.params)))

    return protocol


def file_protocol(binder: Binder, download_dir: str) -> Protocol:
    """The ``@download`` protocol: stream the file the handler names, from ``download_dir`` only."""
    bind, func = binder.bind, binder.func

    def protocol(request: Request, route: Route) -> Response:
        result = func(request, **bind(request.params))
        name = None
        if type(result) is tuple and len(result) == 2:
            result, name = result
        if not isinstance(result, str | os.PathLike) or not (name is None or isinstance(name, str)):
            raise bad_return(request, FILE_SHAPE, result)
        path, info = resolve_inside(download_dir, result)
        name = name or os.path.basename(path)
        headers = [
            ("Content-Type", guess_type(name)),
            ("Content-Disposition", content_disposition(name)),
            ("ETag", etag_of(info)),
            ("Last-Modified", last_modified(info)),
        ]
        request.stat = "OK"
        return file_response(request, path, info, headers)

    return protocol
