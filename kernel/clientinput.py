"""Decode what clients send — JSON text and cookie headers — without trusting any of it.

Every decoder here either returns plain Python data or raises :class:`ClientInputError`
(a :class:`ValueError`) whose ``reason`` is safe to show the client; hostile input
never escapes as ``RecursionError``, ``OverflowError`` or a value the rest of the
framework cannot handle. The request object and the router's converters use them
for bodies and JSON-valued parameters alike, so the rules are the same everywhere:

- JSON must be UTF-8; a leading byte-order mark is ignored;
- ``NaN``, ``Infinity`` and numbers too large for a float (``1e999``) are refused, so
  every number a handler sees can be encoded back into valid JSON;
- integers are limited to Python's int/str conversion limit (4,300 digits);
- at most :data:`MAX_JSON_CONTAINERS` arrays and objects (parsing millions of them
  keeps the GIL for seconds);
- nesting deeper than :data:`MAX_JSON_DEPTH` is refused (instead of a
  ``RecursionError`` here or in whatever walks the data later);
- strings holding a lone UTF-16 surrogate (``"\\ud800"``) are refused: they are not
  Unicode text and cannot be stored, logged or encoded as UTF-8.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

#: The deepest nesting of arrays and objects a client may send.
MAX_JSON_DEPTH = 64
#: The most arrays and objects one JSON text may hold. PERF: creating millions of
#: containers makes the cyclic GC run over and over (a 10 MB body of `[[],[],...]`
#: took 8 s of CPU, holding the GIL); 200,000 costs a fraction of a second.
MAX_JSON_CONTAINERS = 200_000
#: A JSON string literal (for counting brackets outside strings).
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
#: A JSON string escape that decodes to a UTF-16 surrogate (``\ud800``-``\udfff``).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
#: Characters that may not appear in a cookie name (RFC 6265 token, relaxed).
_COOKIE_NAME_FORBIDDEN = frozenset(' \t\r\n"(),/:;<=>?@[\\]{}')


class ClientInputError(ValueError):
    """Client data that cannot be decoded; ``reason`` is safe to send back."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _refuse_constant(name: str) -> Any:
    raise ClientInputError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ClientInputError(f"number out of range: {text[:40]}")
    return value


def _explain(exc: ValueError) -> str:
    message = str(exc)
    if "integer string conversion" in message:  # Python's int/str digit limit
        return "an integer has too many digits (more than 4300)"
    return message


def decode_json(data: bytes | str) -> Any:
    """Decode client JSON text under the rules in this module's docstring.

    :param data: the raw body (bytes, must be UTF-8) or text (a query value)
    :return: the decoded value
    :raises ClientInputError: with a client-safe ``reason``
    """
    if isinstance(data, bytes | bytearray):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ClientInputError(f"not UTF-8 (bad byte at position {exc.start})") from None
    else:
        text = data
    if text.startswith("\ufeff"):
        text = text[1:]
    brackets = text.count("[") + text.count("{")
    if brackets > MAX_JSON_CONTAINERS:
        # NOTE: brackets inside strings do not count; strip the strings (C speed) to be sure.
        outside = _JSON_STRING.sub('""', text)
        if outside.count("[") + outside.count("{") > MAX_JSON_CONTAINERS:
            raise ClientInputError(f"more than {MAX_JSON_CONTAINERS} arrays and objects")
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except ClientInputError:
        raise
    except RecursionError:
        raise ClientInputError(f"nested more than {MAX_JSON_DEPTH} levels deep") from None
    except ValueError as exc:
        raise ClientInputError(_explain(exc)) from None
    # PERF: the walk below runs only when the text could break a rule: more brackets
    # than the depth limit, or an escape that decodes to a surrogate.
    deep = brackets > MAX_JSON_DEPTH
    surrogates = "\\u" in text and _SURROGATE_ESCAPE.search(text) is not None
    if deep or surrogates:
        check_structure(value)
    return value


def _is_lone_surrogate_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def check_structure(value: Any) -> None:
    """Refuse nesting past :data:`MAX_JSON_DEPTH` and strings that are not valid Unicode.

    Iterative, so arbitrarily deep input cannot exhaust the stack.

    :param value: decoded JSON (dicts, lists, scalars)
    :raises ClientInputError: naming the broken rule
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if _is_lone_surrogate_text(item):
                raise ClientInputError("a string holds a lone UTF-16 surrogate (not valid Unicode)")
        elif isinstance(item, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise ClientInputError(f"nested more than {MAX_JSON_DEPTH} levels deep")
            if isinstance(item, dict):
                stack.extend((key, depth + 1) for key in item)
                stack.extend((element, depth + 1) for element in item.values())
            else:
                stack.extend((element, depth + 1) for element in item)


def _unquote_cookie(value: str) -> str:
    """``"a\\"b"`` → ``a"b``: undo the optional quoting of a cookie value (with octal escapes)."""
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        return value
    inner = value[1:-1]
    if "\\" not in inner:
        return inner
    result, index = [], 0
    while index < len(inner):
        char = inner[index]
        if char == "\\" and index + 1 < len(inner):
            octal = inner[index + 1 : index + 4]
            if len(octal) == 3 and all(c in "01234567" for c in octal):
                result.append(chr(int(octal, 8)))
                index += 4
                continue
            result.append(inner[index + 1])
            index += 2
            continue
        result.append(char)
        index += 1
    return "".join(result)


def parse_cookie_header(header: str) -> dict[str, str]:
    """The ``Cookie`` header as ``{name: value}``, skipping pairs that are malformed.

    Unlike :class:`http.cookies.SimpleCookie`, one bad pair (a value with a space,
    JSON, a stray ``;``) costs only that pair, never the session cookie next to it.
    The first of several cookies with the same name wins (browsers send the most
    specific path first).

    :param header: the raw header value
    :return: the cookies
    """
    cookies: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not name or name in cookies or any(char in _COOKIE_NAME_FORBIDDEN for char in name):
            continue
        cookies[name] = _unquote_cookie(value.strip())
    return cookies
