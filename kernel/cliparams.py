"""The one parameter syntax of the command line: ``k=v``, ``k:=json`` and bare values.

Used by ``butterfly call``, ``butterfly mq enqueue``, ruqi job payloads and wuxing
item values::

    name=Ada            # a string; the handler's type hints convert it ("3" → 3 for an int)
    n:=3                # a JSON value: numbers, true/false/null, lists, objects, "strings"
    tags:='["a", "b"]'
    Ada                 # a bare value: bound to the next parameter in signature order

A word is ``k=v`` when the text before its first ``=`` is a non-empty key without
whitespace; anything else is a bare value. Bare values are only accepted where the
command knows the handler's signature (``call``, ``mq enqueue`` of a known route),
and fill its parameters in order, the way the original ``test_handler.py`` passed
them; a value containing ``=`` is given by name (``expr=a=b``).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence
from typing import Any

from kernel.cliargs import UsageError

#: Kinds of parameter a bare value may fill (as in a Python call).
POSITIONAL_KINDS = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def split_word(word: str) -> tuple[str, bool, str] | None:
    """Split ``k=v`` / ``k:=json``; ``None`` for a bare value.

    :param word: one command-line word
    :return: ``(key, is_json, raw_value)`` or ``None``
    :raises UsageError: for ``=v`` / ``:=v`` (an empty key)
    """
    key, sep, value = word.partition("=")
    if not sep or any(char.isspace() for char in key):
        return None
    is_json = key.endswith(":")
    if is_json:
        key = key[:-1]
    if not key:
        raise UsageError(f"bad parameter {word!r}: the key is empty (expected key=value or key:=json)")
    return key, is_json, value


def parse_json_object(text: str, option: str) -> dict[str, Any]:
    """Parse the JSON object given with ``option`` (``--json-params``, ``--payload``).

    :param text: the option's value
    :param option: its name, for the message
    :return: the object
    :raises UsageError: not JSON, or not an object
    """
    try:
        loaded = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{option} is not valid JSON: {exc}") from None
    if not isinstance(loaded, dict):
        raise UsageError(f'{option} must be a JSON object, e.g. \'{{"name": "Ada"}}\'')
    return loaded


def parse_params(
    words: Sequence[str],
    *,
    json_object: str | None = None,
    json_option: str = "--json-params",
    signature: Sequence[inspect.Parameter] | None = None,
    target: str = "",
) -> dict[str, Any]:
    """Turn command-line words into parameters.

    :param words: ``k=v``, ``k:=json`` and bare values, in command-line order
    :param json_object: a JSON object given as one option; ``k=v`` words override its keys
    :param json_option: that option's name, for messages
    :param signature: the parameters (without ``req``) bare values bind to in order;
        ``None`` refuses bare values
    :param target: what is called (``/app/handler``), for messages
    :return: the parameters
    :raises UsageError: bad JSON, empty keys, a bare value where none is allowed,
        more bare values than positional parameters, a parameter given twice
    """
    params: dict[str, Any] = parse_json_object(json_object, json_option) if json_object is not None else {}
    named: set[str] = set()
    bare: list[str] = []
    for word in words:
        split = split_word(word)
        if split is None:
            bare.append(word)
            continue
        key, is_json, raw = split
        if is_json:
            try:
                params[key] = json.loads(raw)
            except ValueError as exc:
                raise UsageError(f"bad JSON for parameter {key!r}: {exc} (quote strings: {key}:='\"text\"')") from None
        else:
            params[key] = raw
        named.add(key)
    if bare:
        params.update(bind_values(bare, signature, named, target))
    return params


def bind_values(
    values: Sequence[str], signature: Sequence[inspect.Parameter] | None, named: set[str], target: str
) -> dict[str, str]:
    """Bind bare ``values`` to the positional parameters of ``signature``, in order.

    :param values: the bare words
    :param signature: the parameters without ``req``; ``None`` when unknown
    :param named: keys already given as ``k=v``
    :param target: what is called, for messages
    :return: ``{parameter: value}``
    :raises UsageError: see :func:`parse_params`
    """
    where = f" for {target}" if target else ""
    if signature is None:
        raise UsageError(f"bad parameter {values[0]!r}{where}: expected key=value or key:=json")
    slots = []
    for param in signature:
        if param.kind not in POSITIONAL_KINDS:
            break
        slots.append(param.name)
    if len(values) > len(slots):
        takes = f"{len(slots)} ({', '.join(slots)})" if slots else "none"
        extra = " ".join(repr(value) for value in values[len(slots) :])
        raise UsageError(f"too many values{where}: it takes {takes} by position, got {len(values)}; not bound: {extra}")
    bound = dict(zip(slots, values))
    twice = sorted(named & set(bound))
    if twice:
        name = twice[0]
        raise UsageError(f"parameter {name!r}{where} given twice: by position ({bound[name]!r}) and as {name}=...")
    return bound
