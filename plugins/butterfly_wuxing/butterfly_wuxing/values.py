"""Item types, value checking, name checking and the time format.

The type of an item is fixed by its section; every value a client sends is
converted and checked here against that type, never trusted as given.
"""

from __future__ import annotations

import datetime
import json
import math
import re
from typing import Any

from butterfly_wuxing import stats
from butterfly_wuxing.errors import WuxingError

#: The item types and the value column each is stored in.
COLUMNS = {
    "int": "value_int",
    "float": "value_float",
    "bool": "value_bool",
    "string": "value_string",
    "text": "value_text",
    "json": "value_text",
}
TYPES = tuple(COLUMNS)
#: The original's item-name prefixes (``s|region``) → type.
PREFIXES = {"i": "int", "f": "float", "b": "bool", "s": "string", "t": "text", "j": "json"}
#: Value of an item created without one.
ZERO_VALUES: dict[str, Any] = {"int": 0, "float": 0.0, "bool": False, "string": "", "text": "", "json": None}
STRING_MAX = 128
TEXT_MAX = 20_000
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})
_INT_TEXT = re.compile(r"[+-]?\d+")

#: (stat, max length) per kind of name, as in the original.
NAME_RULES = {
    "namespace": (stats.ERR_NAMESPACE_IS_INVALID, 16),
    "section_name": (stats.ERR_SECTION_NAME_IS_INVALID, 64),
    "section_version": (stats.ERR_SECTION_VERSION_IS_INVALID, 16),
    "instance_name": (stats.ERR_INSTANCE_NAME_IS_INVALID, 64),
    "item_name": (stats.ERR_ITEM_NAME_IS_INVALID, 64),
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_name(kind: str, value: Any) -> str:
    """Check a name against its rule: 1..N characters, no control characters.

    Item names may not contain ``,`` either (lists of them are comma-separated).

    :param kind: a key of :data:`NAME_RULES`
    :param value: the client's value
    :return: the name
    :raises WuxingError: with the kind's ``ERR_*_IS_INVALID`` stat
    """
    stat, limit = NAME_RULES[kind]
    if not isinstance(value, str) or not value.strip():
        raise WuxingError(stat, f"{kind} must be a non-empty string")
    if len(value) > limit:
        raise WuxingError(stat, f"{kind} is {len(value)} characters long; at most {limit} are allowed")
    if _CONTROL.search(value) or value != value.strip():
        raise WuxingError(stat, f"{kind} {value!r} has control characters or surrounding spaces")
    if kind == "item_name" and "," in value:
        raise WuxingError(stat, f"item_name {value!r} may not contain ','")
    return value


def resolve_item_type(item_name: str, item_type: str | None) -> str:
    """The type of a new section item: ``item_type``, or the original's name prefix.

    :param item_name: e.g. ``s|region`` (prefix ``s`` = string) or ``region``
    :param item_type: one of :data:`TYPES`, or ``None`` to use the prefix
    :return: the type
    :raises WuxingError: ``ERR_SECTION_ITEM_TYPE_INVALID`` when neither names a
        valid type, or both are given and disagree
    """
    prefix, bar, _ = item_name.partition("|")
    from_prefix = PREFIXES.get(prefix) if bar else None
    if item_type is None:
        if from_prefix is None:
            raise WuxingError(
                stats.ERR_SECTION_ITEM_TYPE_INVALID,
                f"give item_type (one of {', '.join(TYPES)}) or prefix the item name with "
                f"one of {', '.join(p + '|' for p in PREFIXES)}",
            )
        return from_prefix
    if item_type not in COLUMNS:
        raise WuxingError(
            stats.ERR_SECTION_ITEM_TYPE_INVALID, f"unknown item_type {item_type!r}; use one of {', '.join(TYPES)}"
        )
    if from_prefix is not None and from_prefix != item_type:
        raise WuxingError(
            stats.ERR_SECTION_ITEM_TYPE_INVALID,
            f"item_type {item_type!r} contradicts the name prefix of {item_name!r} ({from_prefix})",
        )
    return item_type


def _invalid(item_type: str, value: Any, why: str = "") -> WuxingError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return WuxingError(stats.ERR_ITEM_VALUE_INVALID, f"expected {why or 'a ' + item_type} value, got {shown}")


def parse_value(item_type: str, value: Any) -> Any:
    """Convert a client value (query-string text or a JSON value) to ``item_type``.

    ``json`` items take JSON text when given a string (send ``"\\"abc\\""`` for
    the JSON string ``abc``) and any JSON value otherwise.

    :param item_type: one of :data:`TYPES`
    :param value: the value as the client sent it
    :return: the typed value
    :raises WuxingError: ``ERR_ITEM_VALUE_INVALID``, naming the expected type
    """
    if item_type == "int":
        if isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
            value = int(value.strip())
        elif isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise _invalid(item_type, value, "an integer")
        if not INT_MIN <= value <= INT_MAX:
            raise _invalid(item_type, value, "a 64-bit integer")
        return value
    if item_type == "float":
        if isinstance(value, str):
            try:
                value = float(value.strip()) if "_" not in value else None
            except ValueError:
                value = None
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            raise _invalid(item_type, value, "a finite number")
        return float(value)
    if item_type == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
            return value.strip().lower() in TRUE_WORDS
        raise _invalid(item_type, value, "a boolean (true/false, 1/0, yes/no, on/off)")
    if item_type in ("string", "text"):
        limit = STRING_MAX if item_type == "string" else TEXT_MAX
        if not isinstance(value, str):
            raise _invalid(item_type, value, "a string")
        if len(value) > limit:
            raise WuxingError(
                stats.ERR_ITEM_VALUE_INVALID,
                f"a {item_type} value holds at most {limit} characters, got {len(value)}"
                + ("; use a text item" if item_type == "string" else ""),
            )
        return value
    if item_type == "json":
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise _invalid(item_type, value, "JSON text") from None
        try:
            encoded = encode_json(value)
        except (TypeError, ValueError):
            raise _invalid(item_type, value, "a JSON value") from None
        if len(encoded) > TEXT_MAX:
            raise WuxingError(
                stats.ERR_ITEM_VALUE_INVALID,
                f"a json value encodes to at most {TEXT_MAX} characters, got {len(encoded)}",
            )
        return value
    raise WuxingError(stats.ERR_ITEM_TYPE_NOT_FOUND, f"unknown item type {item_type!r}")


def encode_json(value: Any) -> str:
    """Canonical JSON text (sorted keys, compact), so equal values compare equal in SQL."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def to_column(item_type: str, value: Any) -> Any:
    """The stored form of a typed value (``json`` → canonical text)."""
    return encode_json(value) if item_type == "json" else value


def from_column(item_type: str, stored: Any) -> Any:
    """The typed value of a stored column value."""
    if item_type == "json":
        return None if stored is None else json.loads(stored)
    if item_type == "bool" and stored is not None:
        return bool(stored)
    return stored


def parse_time(value: str | None, param: str) -> datetime.datetime | None:
    """Parse the original's ``YYYYmmddHHMMSS`` (or ISO 8601), in server local time.

    :param value: the client's text, or ``None``
    :param param: ``start_time`` / ``end_time`` (for the message)
    :return: a naive local datetime, or ``None``
    :raises WuxingError: ``ERR_TIME_FORMATE_INVALID``
    """
    if value is None or value == "":
        return None
    text = str(value).strip()
    try:
        if text.isdigit() and len(text) == 14:
            return datetime.datetime.strptime(text, "%Y%m%d%H%M%S")
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        parsed = None
    if parsed is None:
        raise WuxingError(
            stats.ERR_TIME_FORMATE_INVALID,
            f"{param} {text[:40]!r} is not YYYYmmddHHMMSS (e.g. 20240501120000) or ISO 8601",
        )
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone().replace(tzinfo=None)
    return parsed


def format_time(value: datetime.datetime | None) -> str | None:
    """``2024-05-01 12:00:00`` (server local time), as the original showed times."""
    return None if value is None else value.isoformat(sep=" ", timespec="seconds")


def now() -> datetime.datetime:
    """The current server local time (naive), the clock of every ``c_time``/``u_time``."""
    return datetime.datetime.now()


def carry_value(value: Any, new_type: str) -> Any:
    """Convert an item's value to the type a new section version gives it.

    ``5`` → string ``"5"``, ``"7"`` → int ``7``, anything → json as is.

    :raises WuxingError: ``ERR_ITEM_VALUE_INVALID`` when it does not fit
    """
    if new_type in ("string", "text"):
        candidate = value if isinstance(value, str) else encode_json(value)
    elif new_type == "json":
        candidate = encode_json(value)
    else:
        candidate = value
    return parse_value(new_type, candidate)
