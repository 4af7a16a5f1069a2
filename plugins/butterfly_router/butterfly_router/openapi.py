"""Generate an OpenAPI 3.0 document from the route table, signatures and type hints.

JSON handlers without a method restriction get a ``get`` operation (parameters in
the query string) and a ``post`` one (a JSON object body); restricted handlers
get only their methods. Other plugins' routes appear with their summary.
"""

from __future__ import annotations

import copy
import datetime
import enum
import inspect
import json
import types
import typing
from typing import TYPE_CHECKING, Any

import annotated_types

from butterfly_router.binder import Binder, ParamSpec
from butterfly_router.converters import constraints_of, unwrap_annotated

if TYPE_CHECKING:
    from kernel import Kernel

OPENAPI_VERSION = "3.0.3"
BODY_METHODS = ("post", "put", "patch", "delete")
ERROR_REF = {"$ref": "#/components/schemas/Error"}
COMPONENTS = {
    "schemas": {
        "Reply": {
            "type": "object",
            "required": ["stat"],
            "properties": {"stat": {"type": "string", "example": "OK"}},
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
        },
    }
}
_SIMPLE = {
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    str: {"type": "string"},
    dict: {"type": "object"},
    list: {"type": "array", "items": {}},
    datetime.datetime: {"type": "string", "format": "date-time"},
    datetime.date: {"type": "string", "format": "date"},
}


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
    """The JSON schema (OpenAPI 3.0 dialect) of a type hint; ``{}`` means any value.

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
    }.get(kind, ("minLength", "maxLength"))
    for constraint in constraints:
        if isinstance(constraint, annotated_types.MinLen):
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


def _jsonable_default(value: Any) -> tuple[bool, Any]:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False, None
    return True, value


def _param_schema(spec: ParamSpec) -> dict[str, Any]:
    schema = schema_for(spec.hint)
    if not spec.required:
        ok, default = _jsonable_default(spec.default)
        if ok and default is not None:
            schema["default"] = default
        elif default is None and ok:
            schema["nullable"] = True
    return schema


def _query_parameters(binder: Binder) -> list[dict[str, Any]]:
    parameters = []
    for spec in binder.specs:
        schema = _param_schema(spec)
        parameter = {"name": spec.name, "in": "query", "required": spec.required, "schema": schema}
        if schema.get("type") in ("array", "object"):
            parameter["style"], parameter["explode"] = ("form", True) if schema["type"] == "array" else ("form", False)
        parameters.append(parameter)
    return parameters


def _body_schema(binder: Binder) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {spec.name: _param_schema(spec) for spec in binder.specs},
        "additionalProperties": binder.accepts_any,
    }
    required = [spec.name for spec in binder.specs if spec.required]
    if required:
        schema["required"] = required
    return schema


def _responses(kind: str) -> dict[str, Any]:
    if kind == "file":
        ok = {
            "description": "the file",
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    elif kind in ("json", "upload"):
        ok = {
            "description": "reply; stat says how it went",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Reply"}}},
        }
    else:
        ok = {"description": "reply"}
    return {
        "200": ok,
        "400": {"description": "bad parameters", "content": {"application/json": {"schema": ERROR_REF}}},
        "500": {"description": "server exception", "content": {"application/json": {"schema": ERROR_REF}}},
    }


def _operation(route: Any, method: str, binder: Binder | None) -> dict[str, Any]:
    doc = inspect.cleandoc(route.meta.get("doc") or getattr(route.endpoint, "__doc__", None) or "")
    summary, _, description = doc.partition("\n")
    operation: dict[str, Any] = {
        "operationId": f"{method}_{route.path.strip('/').replace('/', '_').replace('.', '_') or 'root'}",
        "tags": [route.meta.get("app") or route.plugin or "default"],
        "responses": _responses(route.kind),
    }
    if summary.strip():
        operation["summary"] = summary.strip()
    if description.strip():
        operation["description"] = description.strip()
    if route.admin:
        operation["x-butterfly-admin"] = True
    if route.prefix:
        operation["parameters"] = [{"name": "path", "in": "path", "required": True, "schema": {"type": "string"}}]
    elif binder is not None:
        if route.kind == "upload":
            operation["parameters"] = _query_parameters(binder)
            operation["requestBody"] = {
                "required": True,
                "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            }
        elif method in BODY_METHODS:
            operation["requestBody"] = {
                "required": binder.has_required,
                "content": {"application/json": {"schema": _body_schema(binder)}},
            }
        else:
            operation["parameters"] = _query_parameters(binder)
    return operation


def _methods(route: Any) -> list[str]:
    if route.methods:
        return sorted(m.lower() for m in route.methods if m != "HEAD") or ["get"]
    return ["get", "post"] if route.kind in ("json", "http") else ["get"]


def build_document(kernel: Kernel, title: str = "Butterfly API", version: str = "1.0.0") -> dict[str, Any]:
    """The OpenAPI 3.0 document of every route in ``kernel.routes``.

    :param kernel: the kernel
    :param title: ``info.title``
    :param version: ``info.version``
    :return: the document as a JSON-ready dict
    """
    paths: dict[str, Any] = {}
    for route in kernel.routes:
        binder = route.meta.get("binder")
        binder = binder if isinstance(binder, Binder) else None
        path = route.path.rstrip("/") + "/{path}" if route.prefix else route.path
        paths[path] = {method: _operation(route, method, binder) for method in _methods(route)}
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": copy.deepcopy(COMPONENTS),
    }
