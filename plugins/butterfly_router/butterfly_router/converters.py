"""Type-hint converters: turn a raw parameter value into what the hint asks for.

:func:`converter_for` is called once per handler parameter at registration; the
returned callable runs per request. A converter raises :class:`ParamError` with a
human reason; the binder turns those into a 400 listing every problem.

Values arrive either as strings (query string, form body; a list of strings when a
key repeats) or as JSON values (JSON body, MQ message, in-process call).
"""

from __future__ import annotations

import datetime
import enum
import math
import re
import types
import typing
from collections.abc import Callable, Iterator
from typing import Any

import annotated_types

from kernel import settings
from kernel.clientinput import ClientInputError, decode_json

Converter = Callable[[Any], Any]

# The settings' words; a blank parameter is not "false", though (``?flag=`` is an error).
TRUE_WORDS = frozenset(settings.TRUE_WORDS)
FALSE_WORDS = frozenset(settings.FALSE_WORDS - {""})
_LIST_ORIGINS = (list, tuple, set, frozenset, typing.List, typing.Sequence)  # noqa: UP006


class ParamError(ValueError):
    """A value does not fit its parameter; ``reason`` says why (sent to the client)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _show(value: Any) -> str:
    """A short, safe rendering of a client value for error messages."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _single(value: Any, what: str) -> Any:
    if isinstance(value, list):
        raise ParamError(f"expected a single {what}, got a list (was the parameter given more than once?)")
    return value


def to_int(value: Any) -> int:
    """``int``: JSON integers, integral floats and decimal strings; never booleans."""
    value = _single(value, "integer")
    if isinstance(value, bool):
        raise ParamError(f"expected an integer, got {_show(value)}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        # NOTE: int() accepts "1_000"; a client sending that almost certainly made a mistake.
        if text and "_" not in text:
            try:
                return int(text)
            except ValueError:
                pass
    raise ParamError(f"expected an integer, got {_show(value)}")


def to_float(value: Any) -> float:
    """``float``: JSON numbers and numeric strings; finite only, never booleans."""
    value = _single(value, "number")
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            result = float(value)
        except OverflowError:  # an integer beyond the float range
            raise ParamError(f"number out of range: {_show(value)}") from None
    elif isinstance(value, str) and value.strip() and "_" not in value:
        try:
            result = float(value)
        except ValueError:
            raise ParamError(f"expected a number, got {_show(value)}") from None
    else:
        raise ParamError(f"expected a number, got {_show(value)}")
    if not math.isfinite(result):
        raise ParamError(f"expected a finite number, got {_show(value)}")
    return result


def to_bool(value: Any) -> bool:
    """``bool``: JSON booleans, 0/1, and true/false/1/0/yes/no/on/off (any case)."""
    value = _single(value, "boolean")
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise ParamError(f"expected a boolean (true/false/1/0/yes/no/on/off), got {_show(value)}")


def to_str(value: Any) -> str:
    """``str``: strings as given; JSON numbers become their text; nothing else."""
    value = _single(value, "string")
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ParamError(f"expected a string, got {_show(value)}")


def to_dict(value: Any) -> dict:
    """``dict``: a JSON object, or (from a query string) JSON text of one."""
    value = _single(value, "JSON object")
    if isinstance(value, str):
        # NOTE: the same hostile-input rules as a JSON body (depth, NaN, surrogates).
        try:
            value = decode_json(value)
        except ClientInputError as exc:
            raise ParamError(f"expected a JSON object, got text that is not JSON ({exc.reason})") from None
    if not isinstance(value, dict):
        raise ParamError(f"expected a JSON object, got {_show(value)}")
    return value


def to_datetime(value: Any) -> datetime.datetime:
    """``datetime``: ISO 8601 text (``2024-05-01T12:00:00+08:00``, ``...Z``)."""
    value = _single(value, "datetime")
    if isinstance(value, datetime.datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.datetime.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ParamError(f"expected an ISO 8601 datetime, got {_show(value)}")


def to_date(value: Any) -> datetime.date:
    """``date``: ISO 8601 text (``2024-05-01``)."""
    value = _single(value, "date")
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ParamError(f"expected an ISO 8601 date (YYYY-MM-DD), got {_show(value)}")


SIMPLE: dict[Any, Converter] = {
    int: to_int,
    float: to_float,
    bool: to_bool,
    str: to_str,
    dict: to_dict,
    datetime.datetime: to_datetime,
    datetime.date: to_date,
}


def _list_converter(item: Converter | None) -> Converter:
    def convert(value: Any) -> list:
        items = value if isinstance(value, list) else [value]
        if item is None:
            return list(items)
        result = []
        for index, element in enumerate(items):
            try:
                result.append(item(element))
            except ParamError as exc:
                raise ParamError(f"item {index}: {exc.reason}") from None
        return result

    return convert


def _dict_converter(value_converter: Converter | None) -> Converter:
    def convert(value: Any) -> dict:
        mapping = to_dict(value)
        if value_converter is None:
            return mapping
        result = {}
        for key, element in mapping.items():
            try:
                result[key] = value_converter(element)
            except ParamError as exc:
                raise ParamError(f"key {_show(key)}: {exc.reason}") from None
        return result

    return convert


def _optional_converter(inner: Converter | None) -> Converter:
    def convert(value: Any) -> Any:
        if value is None or value == "":
            return None
        return value if inner is None else inner(value)

    return convert


def _union_converter(members: list[Converter | None], hint: Any) -> Converter:
    def convert(value: Any) -> Any:
        for member in members:
            if member is None:
                return value
            try:
                return member(value)
            except ParamError:
                continue
        raise ParamError(f"expected {describe(hint)}, got {_show(value)}")

    return convert


def _literal_text(option: Any) -> str:
    if isinstance(option, bool):
        return "true" if option else "false"
    return str(option.value if isinstance(option, enum.Enum) else option)


def _literal_converter(options: tuple[Any, ...]) -> Converter:
    by_text = {_literal_text(option): option for option in options}
    shown = ", ".join(_literal_text(option) for option in options)

    def convert(value: Any) -> Any:
        value = _single(value, "value")
        for option in options:
            # NOTE: compare types too, so True never matches 1 and 1 never matches "1" by accident.
            if type(value) is type(option) and value == option:
                return option
        if isinstance(value, str) and value in by_text:
            return by_text[value]
        if isinstance(value, int | float) and not isinstance(value, bool) and str(value) in by_text:
            return by_text[str(value)]
        raise ParamError(f"expected one of: {shown}; got {_show(value)}")

    return convert


def _enum_converter(enum_type: type[enum.Enum]) -> Converter:
    literal = _literal_converter(tuple(member.value for member in enum_type))

    def convert(value: Any) -> enum.Enum:
        if isinstance(value, enum_type):
            return value
        return enum_type(literal(value))

    return convert


def unwrap_annotated(hint: Any) -> Any:
    """``Annotated[X, ...]`` → ``X``; anything else unchanged."""
    if typing.get_origin(hint) is typing.Annotated:
        return typing.get_args(hint)[0]
    return hint


#: The ``annotated_types`` constraints the binder enforces and OpenAPI documents.
CONSTRAINTS = (
    annotated_types.Gt,
    annotated_types.Ge,
    annotated_types.Lt,
    annotated_types.Le,
    annotated_types.MinLen,
    annotated_types.MaxLen,
)


#: A pattern constraint: a string parameter must contain something other than blanks.
#: ``Annotated[str, MinLen(1), NOT_BLANK]`` refuses ``""``, ``" \t"`` and ``"\x1d\x85"``
#: alike: every character ``str.strip()`` (and so the store) removes is a blank. The
#: OpenAPI document shows the same pattern; ``\x1c``-``\x1f`` and ``\x85`` are spelled out
#: because a JSON Schema pattern's ``\s`` (ECMA-262) does not count them as blanks.
NOT_BLANK = re.compile(r"[^\s\x1c-\x1f\x85]")


def constraints_of(hint: Any) -> list[Any]:
    r"""The supported constraints of ``Annotated[X, ...]``, flattened.

    The ``annotated_types`` ones in :data:`CONSTRAINTS` (``Interval(ge=1, le=10)`` and
    ``Len(1, 64)`` count as their parts), and compiled regular expressions
    (``re.compile(r"\S")``: the string must contain a match, as JSON Schema's
    ``pattern``). Other metadata is ignored (it may belong to another tool).
    """
    if typing.get_origin(hint) is not typing.Annotated:
        return []
    return [item for item in _flatten(typing.get_args(hint)[1:]) if isinstance(item, (*CONSTRAINTS, re.Pattern))]


def _flatten(metadata: tuple[Any, ...]) -> Iterator[Any]:
    for item in metadata:
        if isinstance(item, annotated_types.GroupedMetadata):
            yield from item
        else:
            yield item


def _check(constraint: Any, value: Any) -> str | None:
    """Why ``value`` breaks ``constraint``, or ``None`` when it holds."""
    if isinstance(constraint, re.Pattern):
        if not isinstance(value, str) or constraint.search(value) is None:
            return "must not be blank" if constraint is NOT_BLANK else f"must match {constraint.pattern!r}"
    elif isinstance(constraint, annotated_types.MinLen):
        if len(value) < constraint.min_length:
            return (
                "must not be empty" if constraint.min_length == 1 else f"needs at least {constraint.min_length} items"
            )
    elif isinstance(constraint, annotated_types.MaxLen):
        if len(value) > constraint.max_length:
            return f"is longer than {constraint.max_length}"
    elif isinstance(constraint, annotated_types.Gt):
        if not value > constraint.gt:
            return f"must be greater than {constraint.gt}"
    elif isinstance(constraint, annotated_types.Ge):
        if not value >= constraint.ge:
            return f"must be at least {constraint.ge}"
    elif isinstance(constraint, annotated_types.Lt):
        if not value < constraint.lt:
            return f"must be less than {constraint.lt}"
    elif isinstance(constraint, annotated_types.Le) and not value <= constraint.le:
        return f"must be at most {constraint.le}"
    return None


def _constrained_converter(inner: Converter | None, constraints: list[Any]) -> Converter:
    def convert(value: Any) -> Any:
        result = value if inner is None else inner(value)
        if result is None:  # an Optional left empty: nothing to check
            return result
        for constraint in constraints:
            try:
                reason = _check(constraint, result)
            except TypeError:  # len() or a comparison the value does not support
                reason = f"does not fit {constraint!r}"
            if reason is not None:
                raise ParamError(reason)
        return result

    return convert


def is_optional(hint: Any) -> bool:
    """True when ``None`` is one of the hint's members (``Optional[X]``, ``X | None``)."""
    hint = unwrap_annotated(hint)
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)


def converter_for(hint: Any) -> Converter | None:
    """The converter for a type hint, or ``None`` when the value passes as given.

    :param hint: a resolved annotation (``int``, ``list[int]``, ``Optional[date]`` ...);
        unknown types, ``Any`` and missing hints pass values through;
        ``Annotated[X, MinLen(1)]`` and the other :data:`CONSTRAINTS` are enforced
    :return: a callable raising :class:`ParamError`, or ``None``
    """
    constraints = constraints_of(hint)
    if constraints:
        return _constrained_converter(converter_for(unwrap_annotated(hint)), constraints)
    hint = unwrap_annotated(hint)
    if hint is None or hint is typing.Any or hint is type(None):
        return None
    if hint in SIMPLE:
        return SIMPLE[hint]
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is list or origin in _LIST_ORIGINS:
        return _list_converter(converter_for(args[0]) if args else None)
    if origin is dict:
        return _dict_converter(converter_for(args[1]) if len(args) == 2 else None)
    if origin is typing.Literal:
        return _literal_converter(args)
    if origin in (typing.Union, types.UnionType):
        members = [arg for arg in args if arg is not type(None)]
        inner = (
            converter_for(members[0])
            if len(members) == 1
            else _union_converter([converter_for(member) for member in members], hint)
        )
        return _optional_converter(inner) if len(members) < len(args) else inner
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _enum_converter(hint)
    return None


def describe(hint: Any) -> str:
    """A short readable name for a hint (``list[int]``, ``int | None``)."""
    hint = unwrap_annotated(hint)
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__name__
    return str(hint).replace("typing.", "")
