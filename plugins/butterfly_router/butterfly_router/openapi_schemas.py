"""JSON schemas (OpenAPI 3.0 dialect) for type hints, and the shared components.

:func:`schema_for` turns a handler parameter's type hint into the schema the binder
really enforces, ``annotated_types`` constraints included; :data:`COMPONENTS` holds
the reply envelope, the error envelope and one reusable response per framework error.
"""

from __future__ import annotations

import datetime
import enum
import inspect
import re
import types
import typing
from typing import Any

import annotated_types

from butterfly_router.converters import constraints_of, unwrap_annotated

ERROR_REF = {"$ref": "#/components/schemas/Error"}
REPLY_REF = {"$ref": "#/components/schemas/Reply"}
X_REASON = {"x-reason": {"$ref": "#/components/headers/XReason"}}

#: status → (component name, description) of the errors every route can answer.
FRAMEWORK_ERRORS = {
    "400": ("BadRequest", "bad parameters (``errors`` names each) or a malformed request"),
    "401": ("Unauthorized", "credentials are needed (with butterfly-auth)"),
    "403": ("Forbidden", "the caller may not use this route (admin routes, CSRF)"),
    "404": ("NotFound", "no such object or file"),
    "405": ("MethodNotAllowed", "the route does not accept this method; ``Allow`` lists those it does"),
    "413": ("PayloadTooLarge", "the body is larger than ``[server] max_body``"),
    "431": ("HeadersTooLarge", "the request line and headers are too large"),
    "500": ("ServerError", "the handler raised (the traceback is in the error log, never here)"),
    "501": ("NotImplemented", "the request needs something the server does not do (a Transfer-Encoding)"),
}
#: Statuses plugins may add to a route by name (``"503"`` → ServiceUnavailable).
EXTRA_ERRORS = {
    "429": ("TooManyRequests", "rate limited; ``Retry-After`` says when to try again"),
    "503": ("ServiceUnavailable", "a dependency is down (see ``checks``)"),
}


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": dict(X_REASON),
        "content": {"application/json": {"schema": ERROR_REF}},
    }


COMPONENTS: dict[str, Any] = {
    "schemas": {
        "Reply": {
            "type": "object",
            "required": ["stat"],
            "properties": {
                # NOTE: a handler may return an int stat (the original's `401`); it is sent as given.
                "stat": {"anyOf": [{"type": "string"}, {"type": "integer"}], "example": "OK"},
            },
            "additionalProperties": True,
        },
        "Error": {
            "type": "object",
            "required": ["stat"],
            "properties": {
                "stat": {"type": "string", "example": "ERR_BAD_PARAMS"},
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["param", "reason"],
                        "properties": {"param": {"type": "string"}, "reason": {"type": "string"}},
                    },
                },
            },
            "additionalProperties": True,
        },
    },
    "headers": {
        "XReason": {
            "description": "why the request failed, in a few words",
            "required": True,
            "schema": {"type": "string"},
        }
    },
    "responses": {
        name: _error_response(description) for name, description in (*FRAMEWORK_ERRORS.values(), *EXTRA_ERRORS.values())
    },
}
COMPONENTS["responses"]["MethodNotAllowed"]["headers"]["Allow"] = {
    "description": "the methods the route accepts",
    "required": True,
    "schema": {"type": "string"},
}

_SIMPLE: dict[Any, dict[str, Any]] = {
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    str: {"type": "string"},
    dict: {"type": "object"},
    list: {"type": "array", "items": {}},
    datetime.datetime: {"type": "string", "format": "date-time"},
    datetime.date: {"type": "string", "format": "date"},
}


def error_ref(status: str) -> dict[str, Any]:
    """The ``$ref`` to the reusable response of a framework error status (``"404"``)."""
    name = (FRAMEWORK_ERRORS.get(status) or EXTRA_ERRORS[status])[0]
    return {"$ref": f"#/components/responses/{name}"}


def _literal_schema(values: tuple[Any, ...]) -> dict[str, Any]:
    kinds = {type(value) for value in values}
    schema: dict[str, Any] = {"enum": list(values)}
    if len(kinds) == 1:
        kind = kinds.pop()
        base = _SIMPLE.get(kind)
        if base is not None:
            schema["type"] = base["type"]
    return schema


def schema_for(hint: Any) -> dict[str, Any]:
    """The JSON schema of a type hint; ``{}`` means any value.

    :param hint: a resolved annotation, or ``inspect.Parameter.empty``
    :return: a schema dict
    """
    constraints = constraints_of(hint)
    if constraints:
        return _constrained_schema(schema_for(unwrap_annotated(hint)), constraints)
    hint = unwrap_annotated(hint)
    if hint is inspect.Parameter.empty or hint is typing.Any or hint is None:
        return {}
    if hint in _SIMPLE:
        return dict(_SIMPLE[hint])
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (list, tuple, set, frozenset):
        return {"type": "array", "items": schema_for(args[0]) if args else {}}
    if origin is dict:
        schema: dict[str, Any] = {"type": "object"}
        if len(args) == 2:
            schema["additionalProperties"] = schema_for(args[1]) or True
        return schema
    if origin is typing.Literal:
        return _literal_schema(args)
    if origin in (typing.Union, types.UnionType):
        members = [arg for arg in args if arg is not type(None)]
        schema = schema_for(members[0]) if len(members) == 1 else {"anyOf": [schema_for(m) for m in members]}
        if len(members) < len(args):
            schema["nullable"] = True
        return schema
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _literal_schema(tuple(member.value for member in hint))
    return {}


def _constrained_schema(schema: dict[str, Any], constraints: list[Any]) -> dict[str, Any]:
    """Add ``minLength``/``maximum``/... for the ``annotated_types`` constraints."""
    kind = schema.get("type")
    sized = {
        "string": ("minLength", "maxLength"),
        "array": ("minItems", "maxItems"),
        "object": ("minProperties", "maxProperties"),
    }.get(str(kind), ("minLength", "maxLength"))
    for constraint in constraints:
        if isinstance(constraint, re.Pattern):
            schema["pattern"] = constraint.pattern
        elif isinstance(constraint, annotated_types.MinLen):
            schema[sized[0]] = constraint.min_length
        elif isinstance(constraint, annotated_types.MaxLen):
            schema[sized[1]] = constraint.max_length
        elif isinstance(constraint, annotated_types.Ge):
            schema["minimum"] = constraint.ge
        elif isinstance(constraint, annotated_types.Le):
            schema["maximum"] = constraint.le
        elif isinstance(constraint, annotated_types.Gt):  # OpenAPI 3.0: boolean exclusiveMinimum
            schema.update(minimum=constraint.gt, exclusiveMinimum=True)
        elif isinstance(constraint, annotated_types.Lt):
            schema.update(maximum=constraint.lt, exclusiveMaximum=True)
    return schema


def query_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A body schema made fit for a query parameter, where every value is text.

    A query string cannot say ``null`` (leaving the parameter out gives its
    default), and an untyped parameter arrives as a string.
    """
    if not schema:
        return {"type": "string"}
    result = dict(schema)
    result.pop("nullable", None)
    if "anyOf" in result:
        result["anyOf"] = [query_schema(member) for member in result["anyOf"]]
    if result.get("default", 0) is None:
        result.pop("default")
    return result
