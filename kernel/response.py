"""The response object every protocol builds and every hook may amend.

A JSON response keeps its ``data`` dict until the very end of the request path, so
``butterfly_response_headers`` implementations can still add fields (the router's
``stat_adaptor`` does); the kernel encodes it once, after the hooks ran.
"""

from __future__ import annotations

import datetime
import decimal
import json
import math
import urllib.parse
import uuid
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

_STATUS_LINES = {s.value: f"{s.value} {s.phrase}" for s in HTTPStatus}
JSON_TYPE = "application/json; charset=utf-8"


def status_line(status: int) -> str:
    """Return the WSGI status line (``"404 Not Found"``) for an integer status."""
    # PERF: a dict lookup; HTTPStatus(...) construction is slow on the hot path.
    return _STATUS_LINES.get(status) or f"{status} Unknown"


def json_default(value: Any) -> Any:
    """Encode the types handlers commonly return that :mod:`json` does not know."""
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=json_default, allow_nan=False)
# NOTE: the fallback escapes everything outside ASCII, so a lone surrogate a handler
# produced comes out as the JSON escape "\\ud800": valid JSON, valid UTF-8.
_ascii_encoder = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), default=json_default, allow_nan=False)
#: Control characters (and DEL) a header value may not carry.
_CONTROL = dict.fromkeys([*range(32), 127], " ")


def dumps(data: Any) -> bytes:
    """Encode ``data`` as compact UTF-8 JSON (datetimes as ISO strings).

    Values that would make invalid JSON or fail to encode are made safe rather than
    failing the reply: ``NaN``/``Infinity`` become ``null``, integers past Python's
    4,300-digit conversion limit become strings of their digits, and strings with a
    lone surrogate are sent escaped (``"\\ud800"``).

    :raises TypeError: a value of a type JSON cannot represent
    :raises ValueError: a circular reference
    """
    try:
        # PERF: a small flat object (most API replies) is assembled directly, about 3x
        # faster than the encoder; anything else takes the encoder. The walk below runs
        # only when the normal path fails.
        text = _flat_object(data) if type(data) is dict and len(data) <= 16 else None
        return (text if text is not None else _encoder.encode(data)).encode("utf-8")
    except ValueError:  # UnicodeEncodeError included
        return _ascii_encoder.encode(_json_safe(data, ())).encode("ascii")


_encode_str = json.encoder.encode_basestring  # what the encoder uses with ensure_ascii=False
_LITERALS = {None: "null", True: "true", False: "false"}


def _flat_object(data: dict[Any, Any]) -> str | None:
    """``data`` as compact JSON when every key is a ``str`` and every value a ``str``,
    ``None``, ``bool`` or a small ``int`` (exactly what the encoder would produce), else ``None``."""
    parts = []
    for key, value in data.items():
        if type(key) is not str:
            return None
        kind = type(value)
        if kind is str:
            parts.append(f"{_encode_str(key)}:{_encode_str(value)}")
        elif kind is int and -(10**15) < value < 10**15:
            parts.append(f"{_encode_str(key)}:{int.__repr__(value)}")
        elif value is None or kind is bool:
            parts.append(f"{_encode_str(key)}:{_LITERALS[value]}")
        else:
            return None
    return "{" + ",".join(parts) + "}"


def _json_safe(value: Any, path: tuple[int, ...]) -> Any:
    """A copy of ``value`` that the strict encoder accepts (see :func:`dumps`)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, int) and not isinstance(value, bool):
        return value if _int_fits(value) else str(decimal.Decimal(value))
    if isinstance(value, dict | list | tuple | set | frozenset):
        if id(value) in path:
            raise ValueError("Circular reference detected")
        inner = (*path, id(value))
        if isinstance(value, dict):
            return {_json_safe_key(key): _json_safe(item, inner) for key, item in value.items()}
        return [_json_safe(item, inner) for item in value]
    return value


def _json_safe_key(key: Any) -> Any:
    if isinstance(key, float) and not math.isfinite(key):
        return str(key)
    if isinstance(key, int) and not isinstance(key, bool) and not _int_fits(key):
        return str(decimal.Decimal(key))
    return key


def _int_fits(value: int) -> bool:
    """Whether ``str(value)`` stays within Python's int/str digit limit."""
    # PERF: bit_length is O(1); only numbers near the limit pay for a real attempt.
    if value.bit_length() < 14_000:  # fewer than 4,215 decimal digits
        return True
    try:
        int.__repr__(value)
    except ValueError:
        return False
    return True


#: What may stay as is in a ``Location`` URL (RFC 3986 reserved and unreserved, and ``%``).
_URL_SAFE = "/:?#[]@!$&'()*+,;=%~-._"


def wsgi_header_value(name: str, value: Any) -> str:
    """A header value WSGI servers accept: a Latin-1 ``str`` without control characters.

    A ``Location`` keeps its meaning: non-ASCII characters are percent-encoded as
    UTF-8 (``/中文`` → ``/%E4%B8%AD%E6%96%87``); other values lose what Latin-1
    cannot hold. Nothing is cut (cookies and policies may be long).

    :param name: the header name
    :param value: what a handler or plugin set
    """
    text = str(value).translate(_CONTROL)
    if name.lower() == "location":
        return urllib.parse.quote(text, safe=_URL_SAFE)
    return text.encode("latin-1", "replace").decode("latin-1")


def safe_header_value(value: Any) -> str:
    """Make ``value`` safe for a header: no control characters, latin-1 only, at most 200 chars."""
    if type(value) is str and value.isascii() and value.isprintable():
        return value[:200]  # PERF: nothing to replace (two C-level checks)
    text = str(value).translate(_CONTROL)
    return text.encode("latin-1", "replace").decode("latin-1")[:200]


class Response:
    """An HTTP response.

    :param status: integer HTTP status
    :param headers: list of ``(name, value)`` pairs
    :param body: ``bytes`` or an iterable of ``bytes`` (streamed)
    :param data: for JSON responses, the dict to encode; ``body`` is then ignored

    ``stat`` is the business status shown in the access log (``OK``, ``ERR_...``).
    A streamed body that holds a resource gives itself a ``close()`` (WSGI calls it).
    """

    __slots__ = ("body", "data", "headers", "stat", "status")

    def __init__(
        self,
        status: int = 200,
        headers: list[tuple[str, str]] | None = None,
        body: bytes | Iterable[bytes] = b"",
        *,
        data: dict[str, Any] | None = None,
        stat: str | None = None,
    ) -> None:
        self.status = status
        self.headers = headers if headers is not None else []
        self.body = body
        self.data = data
        self.stat = stat

    @classmethod
    def json(cls, data: dict[str, Any], status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
        """A JSON response; ``data`` stays editable until the kernel encodes it."""
        response = cls(status, headers, data=data)
        response.stat = data.get("stat") if isinstance(data, dict) else None
        return response

    def get_header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or ``None``."""
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None

    def set_header(self, name: str, value: Any) -> None:
        """Replace every header ``name`` with one sanitised ``value``."""
        lowered = name.lower()
        self.headers = [(k, v) for k, v in self.headers if k.lower() != lowered]
        self.headers.append((name, safe_header_value(value)))

    def set_reason(self, reason: str) -> None:
        """Set ``x-reason``, the short error explanation every error carries."""
        self.set_header("x-reason", reason)

    def finalize(self) -> None:
        """Encode ``data`` into the body and set ``Content-Type``/``Content-Length``.

        Called once by the kernel after every hook ran; calling it twice is harmless.
        """
        if self.data is not None:
            try:
                self.body = dumps(self.data)
            except (TypeError, ValueError, RecursionError) as exc:
                # NOTE: a handler returned something we cannot encode: that is a
                # server error, reported as one, never an empty 200.
                self.status = 500
                self.stat = "ERR_SERVER_EXCEPTION"
                self.body = dumps({"stat": self.stat})
                self.set_reason(f"reply is not JSON serialisable: {exc}")
            self.data = None
            json_body = True
        else:
            json_body = False
        if isinstance(self.body, str):
            self.body = self.body.encode("utf-8")
        # PERF: one pass over the headers instead of a lookup per header name.
        present = {name.lower() for name, _ in self.headers} if self.headers else ()
        if json_body and "content-type" not in present:
            self.headers.append(("Content-Type", JSON_TYPE))
        if isinstance(self.body, bytes | bytearray) and "content-length" not in present:
            self.headers.append(("Content-Length", str(len(self.body))))

    def iter_body(self) -> Iterable[bytes]:
        """The body as a WSGI iterable."""
        if isinstance(self.body, bytes | bytearray):
            return [bytes(self.body)]
        return self.body
