"""The ``/_meta/`` routes: health for load balancers, the route listing, OpenAPI."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

from butterfly_router.binder import Binder
from butterfly_router.config import RouterState, state_of
from butterfly_router.openapi import build_document
from kernel import Request, Response, ServiceUnavailable

if TYPE_CHECKING:
    from kernel import Kernel

log = structlog.get_logger("butterfly.router")


def _normalize_check(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"ok": value, "detail": ""}
    if isinstance(value, dict):
        return {"ok": bool(value.get("ok")), "detail": str(value.get("detail", ""))}
    if isinstance(value, tuple | list) and len(value) == 2:
        return {"ok": bool(value[0]), "detail": str(value[1])}
    return {"ok": False, "detail": f"malformed health result: {value!r}"[:200]}


def collect_health(kernel: Kernel) -> dict[str, dict[str, Any]]:
    """Ask every ``butterfly_health`` implementation; one failing plugin cannot hide the others.

    :param kernel: the kernel
    :return: ``{check: {"ok": bool, "detail": str}}``
    """
    checks: dict[str, dict[str, Any]] = {}
    for impl in kernel.hook.butterfly_health.get_hookimpls():
        try:
            result = impl.function(*[{"kernel": kernel}[name] for name in impl.argnames])
        except Exception as exc:
            log.error("health check raised", plugin=impl.plugin_name, exc_info=exc)
            checks[impl.plugin_name] = {"ok": False, "detail": f"health check raised {type(exc).__name__}"}
            continue
        if result is None:
            continue
        if not isinstance(result, dict):
            checks[impl.plugin_name] = _normalize_check(result)
            continue
        for name, value in result.items():
            checks[str(name)] = _normalize_check(value)
    return checks


def route_summary(route: Any) -> dict[str, Any]:
    """One route for listings: path, kind, methods, admin, plugin, handler, params, summary."""
    binder = route.meta.get("binder")
    doc = (route.meta.get("doc") or getattr(route.endpoint, "__doc__", None) or "").strip()
    return {
        "path": route.path + ("*" if route.prefix else ""),
        "kind": route.kind,
        "methods": sorted(route.methods) if route.methods else None,
        "admin": route.admin,
        "plugin": route.plugin,
        "handler": route.name,
        "params": binder.describe() if isinstance(binder, Binder) else None,
        "usage": binder.usage() if isinstance(binder, Binder) else "",
        "summary": doc.splitlines()[0] if doc else "",
    }


def health(request: Request) -> Response:
    """Health of every plugin; 503 when a check fails (for load balancers)."""
    checks = collect_health(request.kernel)
    failing = sorted(name for name, check in checks.items() if not check["ok"])
    if failing:
        raise ServiceUnavailable(f"unhealthy: {', '.join(failing)}"[:200], data={"checks": checks})
    return Response.json({"stat": "OK", "checks": checks})


def routes(request: Request) -> Response:
    """Every route with its protocol, methods, plugin and parameters (admin)."""
    return Response.json({"stat": "OK", "routes": [route_summary(route) for route in request.kernel.routes]})


def openapi(request: Request) -> Response:
    """The OpenAPI 3.0 document of every route."""
    state = state_of(request.kernel)
    # NOTE: routes are fixed after start-up, so the document is built once.
    if state.openapi_document is None:
        state.openapi_document = build_document(request.kernel)
    return Response.json(dict(state.openapi_document))


#: What the health check answers, for the OpenAPI document.
HEALTH_OPENAPI = {
    "responses": {
        "200": {
            "description": "every check passed",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Reply"}}},
        },
        "503": None,  # the standard error response: a check failed, `checks` says which
    }
}
OPENAPI_OPENAPI = {
    "responses": {
        "200": {
            "description": "this document",
            "content": {"application/json": {"schema": {"type": "object", "required": ["openapi", "paths"]}}},
        }
    }
}


def register_meta_routes(register: Callable[..., Any], state: RouterState) -> None:
    """Register ``/_meta/health``, ``/_meta/routes`` (admin) and ``/_meta/openapi.json``."""
    read_only = ("GET", "HEAD")
    register("/_meta/health", health, kind="meta", methods=read_only, meta={"openapi": HEALTH_OPENAPI})
    register("/_meta/routes", routes, kind="meta", methods=read_only, admin=True)
    if state.openapi:
        register("/_meta/openapi.json", openapi, kind="meta", methods=read_only, meta={"openapi": OPENAPI_OPENAPI})
