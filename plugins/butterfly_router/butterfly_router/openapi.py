"""Generate an OpenAPI 3.0 document that tells the truth about the route table.

- **Methods**: exactly those each route accepts (``route.methods``). A route
  registered without methods accepts any method; it is listed with the seven
  standard ones (all OpenAPI 3.0 can name) and marked ``x-butterfly-any-method``.
- **Parameters**: from handler signatures and type hints, with their
  ``annotated_types`` constraints; in the query string for GET/HEAD/OPTIONS, as a
  JSON object body for POST/PUT/PATCH/DELETE (the query string works there too).
- **Responses**: the success reply of the route's kind with its content type (the
  JSON reply envelope, HTML, text, files), and every framework error a route can
  answer (400, 401, 403, 404, 405, 413, 431, 500, 501) as the JSON error envelope
  with ``x-reason``. ``@http`` handlers choose status and body themselves: their
  operations say so with a ``default`` response.
- **Security**: admin routes carry ``x-butterfly-admin`` and, with butterfly-auth,
  a security requirement (bearer token or the session cookie).

A plugin describes a route the router cannot inspect through
``meta={"openapi": {...}}`` at ``register`` time (an operation fragment, or one per
method: ``{"post": {...}}``; ``responses`` are merged, a status given as ``"503"``
with a ``null`` value is the standard error response), or for many routes at once
with the ``butterfly_router_openapi_operation`` hook. :func:`query_parameters` and
:func:`json_body` build the common fragments; a bound that comes from a setting (the
largest ``page_size``) is shown with :func:`document_parameters`.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from butterfly_router.binder import Binder, ParamSpec
from butterfly_router.openapi_schemas import (
    COMPONENTS,
    EXTRA_ERRORS,
    FRAMEWORK_ERRORS,
    REPLY_REF,
    error_ref,
    query_schema,
    schema_for,
)
from kernel import hookimpl
from kernel.app import ANY_METHODS

if TYPE_CHECKING:
    from kernel import Kernel
    from kernel.routes import Route

OPENAPI_VERSION = "3.0.3"
#: OpenAPI's method keys in the order operations are listed.
METHOD_ORDER = ("get", "head", "post", "put", "patch", "delete", "options")
BODY_METHODS = ("post", "put", "patch", "delete")
BINARY = {"type": "string", "format": "binary"}
#: The success reply of each route kind.
SUCCESS_BY_KIND: dict[str, dict[str, Any]] = {
    "json": {"description": "the reply; stat says how it went", "content": {"application/json": {"schema": REPLY_REF}}},
    "upload": {
        "description": "the reply; stat says how it went",
        "content": {"application/json": {"schema": REPLY_REF}},
    },
    "meta": {"description": "the reply", "content": {"application/json": {"schema": REPLY_REF}}},
    "html": {"description": "an HTML page", "content": {"text/html": {"schema": {"type": "string"}}}},
    "text": {"description": "plain text", "content": {"text/plain": {"schema": {"type": "string"}}}},
    "file": {"description": "the file, as an attachment", "content": {"*/*": {"schema": BINARY}}},
    "static": {"description": "the file", "content": {"*/*": {"schema": BINARY}}},
}
HANDLER_CHOSEN = {"description": "the handler chooses status, headers and body"}


def _param_schema(spec: ParamSpec) -> dict[str, Any]:
    schema = schema_for(spec.hint)
    if not spec.required:
        default = spec.default
        if default is None:
            schema["nullable"] = True
        elif isinstance(default, bool | int | float | str):
            schema["default"] = default
    return schema


def _query_parameters(binder: Binder) -> list[dict[str, Any]]:
    parameters = []
    for spec in binder.specs:
        schema = query_schema(_param_schema(spec))
        parameter: dict[str, Any] = {"name": spec.name, "in": "query", "required": spec.required}
        if schema.get("type") == "object":
            # NOTE: a dict parameter in the query string is JSON text (`?d={"k":1}`).
            parameter["content"] = {"application/json": {"schema": schema}}
        else:
            parameter["schema"] = schema
            if schema.get("type") == "array":
                parameter["style"], parameter["explode"] = "form", True
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


def _responses(route: Route) -> dict[str, Any]:
    success = SUCCESS_BY_KIND.get(route.kind)
    if success is None:  # @http handlers and routes of unknown kinds pick their own replies
        return {"default": dict(HANDLER_CHOSEN)}
    responses: dict[str, Any] = {"200": copy.deepcopy(success)}
    if route.kind == "static":
        responses["304"] = {"description": "not modified (the client's copy is current)"}
    for status in FRAMEWORK_ERRORS:
        responses[status] = error_ref(status)
    return responses


def _parameters(route: Route, method: str, binder: Binder | None) -> dict[str, Any]:
    """``parameters``/``requestBody`` of one operation."""
    if route.prefix:
        return {"parameters": [{"name": "path", "in": "path", "required": True, "schema": {"type": "string"}}]}
    if binder is None:
        return {}
    if route.kind == "upload":
        return {
            "parameters": _query_parameters(binder),
            "requestBody": {"required": True, "content": {"application/octet-stream": {"schema": BINARY}}},
        }
    if method in BODY_METHODS:
        return {
            "requestBody": {
                "required": binder.has_required,
                "content": {"application/json": {"schema": _body_schema(binder)}},
            }
        }
    return {"parameters": _query_parameters(binder)} if binder.specs else {}


def _merge(operation: dict[str, Any], fragment: dict[str, Any]) -> None:
    """Apply a plugin's operation fragment; ``responses`` merge, ``None`` means the standard error."""
    for key, value in fragment.items():
        if key != "responses":
            operation[key] = copy.deepcopy(value)
            continue
        responses = operation["responses"]
        if set(responses) == {"default"}:  # the route now says what it answers
            responses.clear()
            responses.update({status: error_ref(status) for status in FRAMEWORK_ERRORS})
        for status, response in value.items():
            status = str(status)
            if response is None and (status in FRAMEWORK_ERRORS or status in EXTRA_ERRORS):
                responses[status] = error_ref(status)
            elif response is not None:
                responses[status] = copy.deepcopy(response)


def _fragment_for(route: Route, method: str) -> dict[str, Any]:
    fragment = route.meta.get("openapi") or {}
    if not isinstance(fragment, dict):
        return {}
    if any(key in METHOD_ORDER for key in fragment):
        return fragment.get(method) or {}
    return fragment


def _operation(route: Route, method: str, context: DocumentContext) -> dict[str, Any]:
    binder = route.meta.get("binder")
    binder = binder if isinstance(binder, Binder) else None
    doc = inspect.cleandoc(route.meta.get("doc") or getattr(route.endpoint, "__doc__", None) or "")
    summary, _, description = doc.partition("\n")
    operation: dict[str, Any] = {
        "operationId": context.operation_id(method, route.path),
        "tags": [route.meta.get("app") or route.plugin or "default"],
    }
    if summary.strip():
        operation["summary"] = summary.strip()
    if description.strip():
        operation["description"] = description.strip()
    operation.update(_parameters(route, method, binder))
    operation["responses"] = _responses(route)
    if route.methods is None:
        operation["x-butterfly-any-method"] = True
    if route.admin:
        operation["x-butterfly-admin"] = True
        if context.security:
            operation["security"] = copy.deepcopy(context.security)
    _merge(operation, _fragment_for(route, method))
    context.amend(route, method, operation)
    return operation


def methods_of(route: Route) -> list[str]:
    """The OpenAPI method keys of the methods ``route`` accepts, in a stable order."""
    accepted = {method.lower() for method in (route.methods or ANY_METHODS)}
    return [method for method in METHOD_ORDER if method in accepted]


class DocumentContext:
    """What building one document needs besides the routes: ids, security, the hook.

    :param kernel: the kernel
    """

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self._ids: set[str] = set()
        self.schemes = _security_schemes(kernel)
        self.security: list[dict[str, list[str]]] = [{name: []} for name in self.schemes]
        hook = getattr(kernel.hook, "butterfly_router_openapi_operation", None)
        self._hook = hook if hook is not None and hook.get_hookimpls() else None

    def operation_id(self, method: str, path: str) -> str:
        """A unique ``operationId`` like ``get_demo_api_ping``."""
        base = f"{method}_{path.strip('/').replace('/', '_').replace('.', '_').replace('-', '_') or 'root'}"
        candidate, number = base, 2
        while candidate in self._ids:
            candidate, number = f"{base}_{number}", number + 1
        self._ids.add(candidate)
        return candidate

    def amend(self, route: Route, method: str, operation: dict[str, Any]) -> None:
        """Let plugins amend the operation (``butterfly_router_openapi_operation``)."""
        if self._hook is not None:
            self._hook(route=route, method=method, operation=operation)


def _security_schemes(kernel: Kernel) -> dict[str, Any]:
    """Bearer token and session cookie, when butterfly-auth (its ``[auth]`` settings) is loaded."""
    if ("auth", "cookie_name") not in kernel.settings.declared:
        return {}  # without auth, admin routes answer loopback clients only: no credentials
    cookie = kernel.settings.get("auth", "cookie_name")
    return {
        "bearerAuth": {"type": "http", "scheme": "bearer"},
        "sessionCookie": {"type": "apiKey", "in": "cookie", "name": cookie},
    }


def build_document(kernel: Kernel, title: str = "Butterfly API", version: str = "1.0.0") -> dict[str, Any]:
    """The OpenAPI 3.0 document of every route in ``kernel.routes``.

    :param kernel: the kernel
    :param title: ``info.title``
    :param version: ``info.version``
    :return: the document as a JSON-ready dict
    """
    context = DocumentContext(kernel)
    paths: dict[str, Any] = {}
    for route in kernel.routes:
        path = route.path.rstrip("/") + "/{path}" if route.prefix else route.path
        paths[path] = {method: _operation(route, method, context) for method in methods_of(route)}
    components = copy.deepcopy(COMPONENTS)
    if context.schemes:
        components["securitySchemes"] = context.schemes
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": components,
    }


def amend_parameter(operation: dict[str, Any], name: str, **schema: Any) -> bool:
    """Change the schema of parameter ``name`` of ``operation`` in place.

    The parameter may be in the query string or a property of the JSON body;
    ``amend_parameter(operation, "page_size", maximum=200)``.

    :param operation: an operation of the document (as the hook receives it)
    :param name: the parameter's name
    :param schema: JSON schema keywords to set
    :return: ``True`` when the operation has that parameter
    """
    found = False
    for parameter in operation.get("parameters") or []:
        if parameter.get("name") == name and "schema" in parameter:
            parameter["schema"].update(schema)
            found = True
    content = (operation.get("requestBody") or {}).get("content") or {}
    body = (content.get("application/json") or {}).get("schema") or {}
    if name in (body.get("properties") or {}):
        body["properties"][name].update(schema)
        found = True
    return found


class _ParameterDocs:
    """A per-kernel hook implementation that :func:`document_parameters` registers."""

    def __init__(self, paths: frozenset[str], parameters: dict[str, dict[str, Any]]) -> None:
        self.paths, self.parameters = paths, parameters

    @hookimpl(optionalhook=True)
    def butterfly_router_openapi_operation(self, route: Route, method: str, operation: dict[str, Any]) -> None:
        """Amend the operations of :attr:`paths`."""
        if route.path in self.paths:
            for name, schema in self.parameters.items():
                amend_parameter(operation, name, **schema)


def document_parameters(kernel: Kernel, paths: Iterable[str], **parameters: dict[str, Any]) -> None:
    """Show in the OpenAPI document of ``kernel`` what settings or plugins decide about parameters.

    A signature holds the bounds known when the code is written
    (``Annotated[int, Interval(ge=1, le=10_000)]``); one a setting narrows (``[ruqi]
    max_page_size``) or a list other plugins extend (job types) is checked by the
    handler and shown here, so the document never calls valid what the server refuses::

        document_parameters(kernel, ["/ruqi/get_jobs"], page_size={"maximum": 200})

    A parameter the handler checks in ways no schema can say (a cron rule, a
    workflow's own params) is marked ``x-butterfly-checked-by-handler`` (a
    description of the check): valid JSON may still be answered with a 400 naming it.

    :param kernel: the kernel (call it from ``butterfly_configure`` or ``butterfly_register_routes``)
    :param paths: the routes whose parameters they are
    :param parameters: parameter name → JSON schema keywords to set (``{"maximum": 200}``)
    """
    kernel.pm.register(_ParameterDocs(frozenset(paths), parameters))


def query_parameters(*, required: Iterable[str] = (), **schemas: dict[str, Any]) -> dict[str, Any]:
    """An operation fragment (``meta={"openapi": ...}``) for the query parameters a route reads itself.

    ``query_parameters(required=["job_id"], job_id={"type": "integer", "minimum": 1})``

    :param required: the names that must be given
    :param schemas: name → JSON schema, in the order they are listed
    :return: ``{"parameters": [...]}``
    """
    needed = set(required)
    return {
        "parameters": [
            {"name": name, "in": "query", "required": name in needed, "schema": schema}
            for name, schema in schemas.items()
        ]
    }


def json_body(*, required: Iterable[str] = (), extra: bool = False, **schemas: dict[str, Any]) -> dict[str, Any]:
    """An operation fragment for a JSON object body a route reads itself.

    :param required: the names that must be given (the body is then required too)
    :param extra: whether other names are accepted
    :param schemas: name → JSON schema
    :return: ``{"requestBody": {...}}``
    """
    schema: dict[str, Any] = {"type": "object", "properties": dict(schemas), "additionalProperties": extra}
    needed = [name for name in schemas if name in set(required)]
    if needed:
        schema["required"] = needed
    return {"requestBody": {"required": bool(needed), "content": {"application/json": {"schema": schema}}}}
