"""Register every handler the router serves: the user's apps, plugin apps, meta routes, static.

Called from ``butterfly_register_routes``. Import failures of one app are logged
with their traceback and the others still serve (``[router] strict = true`` makes
them a start-up error); duplicate paths always are one (the kernel's register).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

import structlog

from butterfly_router import meta
from butterfly_router.binder import Binder
from butterfly_router.config import RouterState
from butterfly_router.decorators import options_of
from butterfly_router.discovery import (
    app_names,
    check_handlers_dir,
    handler_functions,
    import_app,
    import_handlers_package,
)
from butterfly_router.protocols import file_protocol, json_protocol, raw_protocol, upload_protocol
from butterfly_router.static import PREFIX, StaticFiles
from kernel import ConfigError

if TYPE_CHECKING:
    from kernel import Kernel

log = structlog.get_logger("butterfly.router")
#: The package-level functions of ``handlers/__init__.py`` are served at ``/<func>``.
ROOT_APP = ""
#: What an ``@api``/``@http`` handler without ``methods=`` answers to: the query
#: string (GET, HEAD) or a body (POST). Other methods get a 405 with ``Allow``;
#: OPTIONS in particular never runs a handler. ``methods=`` widens or narrows it.
DEFAULT_METHODS = ("GET", "HEAD", "POST")


def build_route(func: Callable[..., Any], state: RouterState) -> dict[str, Any]:
    """The ``register`` keyword arguments for one handler (binder parsed once, here).

    :param func: a ``req``-first handler function
    :param state: the router state (for ``download_dir``)
    :return: ``protocol``, ``kind``, ``methods``, ``admin`` and ``meta``
    :raises ConfigError: the signature cannot be served
    """
    options = options_of(func)
    if options.kind == "upload":
        binder = Binder(func, reserved=("stream",))
        protocol = upload_protocol(binder)
    else:
        binder = Binder(func)
        protocol = {"json": json_protocol, "http": raw_protocol}.get(options.kind)
        protocol = protocol(binder) if protocol is not None else file_protocol(binder, str(state.download_dir))
    return {
        "protocol": protocol,
        "kind": options.kind,
        "methods": options.methods if options.methods is not None else DEFAULT_METHODS,
        "admin": options.admin,
        "meta": {"binder": binder, "doc": func.__doc__ or ""},
    }


def _collect(module: ModuleType, app: str, state: RouterState, source: str) -> list[tuple[str, Callable, dict]]:
    prefix = f"/{app}/" if app else "/"
    routes = []
    for name, func in handler_functions(module):
        spec = build_route(func, state)
        spec["meta"].update(app=app, source=source)
        routes.append((prefix + name, func, spec))
    return routes


def _app_failed(state: RouterState, app: str, module: str, exc: BaseException) -> None:
    state.broken_apps[app or "/"] = f"{type(exc).__name__}: {exc}"
    log.error(
        "handler app failed to load", app=app or "/", module=module, error=f"{type(exc).__name__}: {exc}", exc_info=exc
    )
    if state.strict:
        raise ConfigError(f"handler app {app or '/'} ({module}) failed to load: {type(exc).__name__}: {exc}") from exc


def _load(
    state: RouterState, app: str, module_name: str, importer: Callable[[], ModuleType], source: str
) -> list[tuple[str, Callable, dict]]:
    """Import one app and collect its routes; a failure is reported, not raised (unless strict)."""
    try:
        module = importer()
        routes = _collect(module, app, state, source)
    except Exception as exc:  # noqa: BLE001 - any error in user code is reported as a broken app
        _app_failed(state, app, module_name, exc)
        return []
    state.loaded_apps.append((app or "/", module_name))
    return routes


def user_routes(state: RouterState) -> list[tuple[str, Callable, dict]]:
    """Routes of ``[router] handlers_dir`` (none when the directory does not exist)."""
    directory = state.handlers_dir
    if not directory.is_dir():
        log.info("no handlers directory; no user handlers served", handlers_dir=str(directory))
        return []
    package_name = check_handlers_dir(directory)
    holder: dict[str, ModuleType] = {}

    def import_root() -> ModuleType:
        holder["package"] = import_handlers_package(directory)
        return holder["package"]

    routes = _load(state, ROOT_APP, package_name, import_root, "handlers")
    if "package" not in holder:
        return routes
    for app in app_names(directory):
        routes += _load(state, app, f"{package_name}.{app}", lambda app=app: import_app(package_name, app), "handlers")
    return routes


def plugin_routes(kernel: Kernel, state: RouterState) -> list[tuple[str, Callable, dict]]:
    """Routes of the handler packages plugins contribute (``butterfly_router_handler_packages``)."""
    routes = []
    for impl in reversed(kernel.hook.butterfly_router_handler_packages.get_hookimpls()):
        for item in impl.function() or []:
            try:
                app, module_name = item
                if not isinstance(app, str) or not app or "/" in app or not isinstance(module_name, str):
                    raise ValueError(item)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"plugin {impl.plugin_name}: butterfly_router_handler_packages must return "
                    f"(app_name, 'dotted.module') pairs, got {item!r}"
                ) from None
            routes += _load(
                state, app, module_name, lambda m=module_name: importlib.import_module(m), f"plugin:{impl.plugin_name}"
            )
    return routes


def register_all(register: Callable[..., Any], kernel: Kernel, state: RouterState) -> None:
    """Register user apps, plugin apps, ``/_meta/*`` and ``/static/``.

    :param register: the kernel's register callback
    :param kernel: the kernel
    :param state: the router state
    :raises ConfigError: duplicate paths, strict-mode import failures, bad plugin packages
    """
    routes = user_routes(state) + plugin_routes(kernel, state)
    for path, func, spec in routes:
        source = spec["meta"].get("source", "")
        # a plugin's handler package is listed under that plugin, user apps under the router
        owner = {"plugin": source.removeprefix("plugin:")} if source.startswith("plugin:") else {}
        register(path, func, **spec, **owner)
        log.debug("route registered", path=path, kind=spec["kind"], params=spec["meta"]["binder"].usage())
    meta.register_meta_routes(register, state)
    if state.static_dir is not None:
        register(
            PREFIX,
            StaticFiles(state.static_dir, state.static_max_age),
            kind="static",
            methods=("GET", "HEAD"),
            prefix=True,
            meta={"doc": f"static files from {state.static_dir}"},
        )
    log.info(
        "handlers loaded",
        routes=len(routes),
        apps=[app for app, _ in state.loaded_apps],
        broken_apps=sorted(state.broken_apps),
    )
