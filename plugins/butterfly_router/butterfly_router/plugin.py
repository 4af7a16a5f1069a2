"""Hook implementations of butterfly-router (entry point ``router``).

Only hookimpls live here; the logic is in the sibling modules.
"""

from __future__ import annotations

from butterfly_router import config, console, hookspecs, routing
from butterfly_router.config import EXTENSION, RouterState, state_of
from butterfly_router.stat_adaptor import StatAdaptor
from kernel import hookimpl


@hookimpl
def butterfly_add_hookspecs(pluginmanager):
    """Add ``butterfly_router_handler_packages``."""
    pluginmanager.add_hookspecs(hookspecs)


@hookimpl
def butterfly_add_settings(settings):
    """Declare ``[router]``."""
    config.add_settings(settings)


@hookimpl
def butterfly_configure(kernel):
    """Resolve directories; switch on the stat adaptor when configured; add the console."""
    state = RouterState.from_kernel(kernel)
    kernel.extensions[EXTENSION] = state
    # NOTE: its own plugin, so its routes can be registered last (``/`` only when nobody took it).
    kernel.pm.register(console, name=console.PLUGIN_NAME)
    adaptor = kernel.settings.get(config.SECTION, "stat_adaptor")
    if adaptor:
        state.stat_adaptor = StatAdaptor(**adaptor)
        # PERF: its own plugin object, so replies pay nothing when the setting is off.
        kernel.pm.register(state.stat_adaptor, name="router.stat_adaptor")


@hookimpl
def butterfly_register_routes(register, kernel):
    """Serve the handler apps, plugin handler packages, ``/_meta/*`` and ``/static/``."""
    routing.register_all(register, kernel, state_of(kernel))


@hookimpl
def butterfly_health(kernel):
    """Report served routes and handler apps that failed to import.

    A broken app is listed by name with its error; the check fails (503) only with
    ``[router] strict = true``, where a broken app is not acceptable.
    """
    state = state_of(kernel)
    detail = f"{len(kernel.routes)} routes"
    checks = {"router": (True, detail)}
    for app, error in sorted(state.broken_apps.items()):
        checks[f"router.app:{app}"] = (not state.strict, f"failed to import: {error}"[:300])
    return checks
