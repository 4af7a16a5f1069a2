"""The request object handed to every hook and handler.

Parsing is lazy: the query string, headers and body are read only when someone
asks, and the body never past ``[server] max_body``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qsl

from kernel.clientinput import ClientInputError, decode_json, parse_cookie_header
from kernel.errors import BadRequest, PayloadTooLarge

if TYPE_CHECKING:
    from kernel.app import Kernel
    from kernel.routes import Route

#: ``source`` of an in-process call → the method recorded in the access log.
SOURCE_METHODS = {"http": None, "mq": "QUEUE", "ruqi": "RUQI", "cli": "CLI"}
FORM_TYPE = "application/x-www-form-urlencoded"
#: Most fields a query string, form body or JSON body object may hold (``a&a&a...``
#: would otherwise cost seconds of parsing for a 10 MiB body, and as many errors).
MAX_FIELDS = 10_000
#: Marks "the JSON body was empty" apart from a body holding ``null``.
_NO_BODY = object()


def _wsgi_text(value: str) -> str:
    """Undo PEP 3333's latin-1 decoding so UTF-8 paths and queries read right."""
    if value.isascii():  # PERF: the round trip would give it back unchanged
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


class BoundedReader:
    """A file-like view of ``wsgi.input`` that refuses to read past ``limit`` bytes.

    :param stream: the WSGI input stream
    :param length: the declared Content-Length, or ``None`` when unknown
    :param limit: ``[server] max_body``
    """

    def __init__(self, stream: Any, length: int | None, limit: int) -> None:
        self._stream = stream
        self._remaining = length
        self._limit = limit
        self._read = 0

    def read(self, size: int = -1) -> bytes:
        """Read at most ``size`` bytes (all that is left when ``size < 0``)."""
        if self._remaining is not None:
            if self._remaining <= 0:
                return b""
            size = self._remaining if size < 0 else min(size, self._remaining)
        elif size < 0:
            size = self._limit + 1 - self._read
        chunk = self._stream.read(size)
        self._read += len(chunk)
        if self._remaining is not None:
            self._remaining -= len(chunk)
        if self._read > self._limit:
            raise PayloadTooLarge(f"body is larger than max_body ({self._limit} bytes)")
        return chunk

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(65536):
            yield chunk


class Request:
    """One HTTP request or in-process call.

    Attributes set by the kernel: ``kernel``, ``environ``, ``method``, ``path``,
    ``source`` (``http``, ``mq``, ``ruqi``, ``cli``), ``route`` (after lookup),
    ``client_ip`` (the TCP peer; the trace plugin may replace it for trusted proxies).

    Attributes plugins fill in: ``reqid`` and ``parent_reqid`` (trace), ``user``
    (auth), ``stat`` and ``error`` (protocols, for the access log), ``res`` (short
    strings a handler wants in the access log), ``ctx`` (per-plugin private state),
    ``error_reported`` (an error hook logged the exception; the kernel then does not).
    """

    # PERF: what most requests never set is a class-level default, not an instance
    # attribute per request; assigning one on a request works as before.
    source = "http"
    route: Route | None = None
    reqid: str | None = None
    parent_reqid: str | None = None
    user: str | None = None
    stat: str | None = None
    error: str | None = None
    #: set by a ``butterfly_handle_error`` implementation that logged the exception itself
    error_reported = False
    _query: dict[str, Any] | None = None
    _body: bytes | None = None
    _params: dict[str, Any] | None = None
    _json: Any = None
    _json_parsed = False

    def __init__(self, environ: dict[str, Any], kernel: Kernel | None = None) -> None:
        self.environ = environ
        # NOTE: typed as always present: every served request and call has a kernel; only
        # unit tests build a bare Request, and they do not touch request.kernel.
        self.kernel: Kernel = cast("Kernel", kernel)
        self.method: str = environ.get("REQUEST_METHOD", "GET").upper()
        self.path: str = _wsgi_text(environ.get("PATH_INFO", "") or "/")
        self.client_ip: str = environ.get("REMOTE_ADDR", "") or "-"
        self.res: list[str] = []
        self.ctx: dict[str, Any] = {}
        self.timings: dict[str, float] = {}
        self.start_time = self._mark = time.perf_counter()
        self.started_at = time.time()

    # -- in-process calls ---------------------------------------------------------

    @classmethod
    def for_call(
        cls,
        kernel: Kernel | None,
        path: str,
        params: dict[str, Any] | None,
        *,
        source: str = "cli",
        parent_reqid: str | None = None,
        user: str | None = None,
    ) -> Request:
        """Build a request for :meth:`kernel.app.Kernel.call` (no HTTP involved).

        :param source: one of ``mq``, ``ruqi``, ``cli`` (or any plugin's own word)
        """
        method = SOURCE_METHODS.get(source) or source.upper()
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "REMOTE_ADDR": "local",
            "QUERY_STRING": "",
            "butterfly.source": source,
        }
        request = cls(environ, kernel)
        request.path = path
        request.source = source
        request.parent_reqid = parent_reqid
        request.user = user
        request._params = dict(params or {})
        request._query = {}
        request._body = b""
        return request

    # -- headers, query, cookies --------------------------------------------------

    def header(self, name: str, default: str | None = None) -> str | None:
        """Return request header ``name`` (case-insensitive) or ``default``."""
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            return self.environ.get(key, default) or default
        return self.environ.get("HTTP_" + key, default)

    @property
    def content_type(self) -> str:
        """The media type of the body, lower-cased, without parameters."""
        return (self.environ.get("CONTENT_TYPE") or "").split(";", 1)[0].strip().lower()

    @property
    def query(self) -> dict[str, Any]:
        """Query-string parameters: a ``str`` per key, a ``list`` when repeated."""
        if self._query is None:
            raw = self.environ.get("QUERY_STRING", "")
            if not raw:
                self._query = {}
            elif "&" not in raw and raw.isascii() and "%" not in raw and "+" not in raw and ";" not in raw:
                # PERF: one plain field (``str_info=x``), the most common query string
                key, _, value = raw.partition("=")
                self._query = {key: value}
            elif raw.isascii() and "%" not in raw and "+" not in raw and ";" not in raw and raw.count("&") < MAX_FIELDS:
                # PERF: nothing to decode: split it ourselves (parse_qsl is ~5x slower)
                self._query = _collect(
                    [(key, value) for key, _, value in (part.partition("=") for part in raw.split("&") if part)]
                )
            else:
                self._query = _parse_fields(_wsgi_text(raw), "query string")
        return self._query

    @property
    def cookies(self) -> dict[str, str]:
        """Cookies sent by the client; a malformed pair is skipped, the others kept."""
        raw = self.environ.get("HTTP_COOKIE", "")
        if not raw:
            return {}
        return parse_cookie_header(_wsgi_text(raw))

    # -- body -------------------------------------------------------------------------

    @property
    def max_body(self) -> int:
        """The body limit in bytes, from ``[server] max_body``."""
        if self.kernel is None:
            return 10 * 1024 * 1024
        return self.kernel.max_body

    def _content_length(self) -> int | None:
        raw = self.environ.get("CONTENT_LENGTH")
        if raw in (None, ""):
            return None
        try:
            length = int(raw)
        except ValueError:
            raise BadRequest(f"bad Content-Length: {raw!r}") from None
        if length < 0:
            raise BadRequest(f"bad Content-Length: {raw!r}")
        return length

    @property
    def stream(self) -> BoundedReader:
        """The body as a stream that stops at ``max_body`` (413 past it)."""
        length = self._content_length()
        if length is not None and length > self.max_body:
            raise PayloadTooLarge(f"body is larger than max_body ({self.max_body} bytes)")
        stream = self.environ.get("wsgi.input")
        if stream is None or (length is None and not self.environ.get("wsgi.input_terminated")):
            length = 0
        return BoundedReader(stream, length, self.max_body)

    @property
    def body(self) -> bytes:
        """The whole body as bytes, read once (413 past ``max_body``)."""
        if self._body is None:
            self._body = self.stream.read()
        return self._body

    @property
    def json(self) -> Any:
        """The body decoded as JSON (``None`` for an empty body; 400 when invalid).

        Decoded by :func:`kernel.clientinput.decode_json`: UTF-8 only, no ``NaN`` or
        ``Infinity``, at most 64 levels deep, no lone surrogates.
        """
        value = self._json_body()
        return None if value is _NO_BODY else value

    def _json_body(self) -> Any:
        if not self._json_parsed:
            body = self.body
            if body.strip():
                try:
                    self._json = decode_json(body)
                except ClientInputError as exc:
                    raise BadRequest(
                        f"body is not valid JSON: {exc.reason}",
                        data={"errors": [{"param": "<body>", "reason": f"invalid JSON: {exc.reason}"}]},
                    ) from None
            else:
                self._json = _NO_BODY
            self._json_parsed = True
        return self._json

    @property
    def form(self) -> dict[str, Any]:
        """``application/x-www-form-urlencoded`` fields (``{}`` for other bodies)."""
        if self.content_type != FORM_TYPE:
            return {}
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("form body is not UTF-8") from None
        return _parse_fields(text, "form body")

    @property
    def params(self) -> dict[str, Any]:
        """Query, form and JSON-object body merged; JSON wins over form over query."""
        if self._params is None:
            params = dict(self.query)
            if self.method not in ("GET", "HEAD"):
                ctype = self.content_type
                if ctype == FORM_TYPE:
                    params.update(self.form)
                elif ctype.endswith("json") or (not ctype and self.body[:1] in (b"{", b"[")):
                    payload = self._json_body()
                    if payload is not _NO_BODY:
                        if not isinstance(payload, dict):
                            # NOTE: `null` too: "no parameters" is an empty body or `{}`.
                            raise BadRequest(
                                "JSON body must be an object",
                                data={"errors": [{"param": "<body>", "reason": "JSON body must be an object"}]},
                            )
                        if len(payload) > MAX_FIELDS:
                            raise BadRequest(f"JSON body has more than {MAX_FIELDS} fields")
                        params.update(payload)
            self._params = params
        return self._params

    def parsed_params(self) -> dict[str, Any] | None:
        """The params if something already parsed them, else ``None`` (no body read)."""
        return self._params

    # -- timing points -------------------------------------------------------------------

    def timing(self, name: str) -> float:
        """Record a timing point: milliseconds since the previous point (or the start).

        Repeated names accumulate. Returns the milliseconds just recorded.
        """
        now = time.perf_counter()
        elapsed = (now - self._mark) * 1000.0
        self._mark = now
        self.timings[name] = self.timings.get(name, 0.0) + elapsed
        return elapsed

    @contextmanager
    def timer(self, name: str) -> Iterator[None]:
        """Time the ``with`` block as timing point ``name`` (accumulates)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            now = time.perf_counter()
            self.timings[name] = self.timings.get(name, 0.0) + (now - start) * 1000.0
            self._mark = now

    def elapsed(self) -> float:
        """Seconds since the request started."""
        return time.perf_counter() - self.start_time

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path} reqid={self.reqid}>"


def _parse_fields(text: str, what: str) -> dict[str, Any]:
    """Parse ``a=1&b=2`` (percent-escapes decoded as UTF-8, bad bytes → U+FFFD).

    :raises BadRequest: more than :data:`MAX_FIELDS` fields
    """
    try:
        return _collect(parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS))
    except ValueError:
        raise BadRequest(f"{what} has more than {MAX_FIELDS} fields") from None


def _collect(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Turn parsed pairs into a dict: one value → ``str``, repeated → ``list``."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            previous = result[key]
            if isinstance(previous, list):
                previous.append(value)
            else:
                result[key] = [previous, value]
        else:
            result[key] = value
    return result
