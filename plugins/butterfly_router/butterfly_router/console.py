"""The console at ``/`` and the navigation bar every page shares (a plugin of its own).

butterfly-router registers this module as the plugin ``router.console`` while it
configures, so the kernel alone still answers every path with a JSON 404. Its
``butterfly_register_routes`` is ``trylast``: it serves ``/`` only when no other
plugin claimed it, plus the shared stylesheet, script and icon under ``/_console/``.
Right after, it collects the navigation links of every plugin
(``butterfly_console_links``) and of every handler app that defines a module-level
``butterfly_console_links(register)`` function; a path registered twice stops start-up.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from butterfly_router import ui
from kernel import ConfigError, hookimpl

if TYPE_CHECKING:
    from kernel import Kernel

#: ``kernel.extensions`` key of the :class:`ConsoleState`.
EXTENSION = "router.console"
#: The plugin name this module is registered under.
PLUGIN_NAME = "router.console"
#: The name of the function handler apps may define to add links.
APP_HOOK = "butterfly_console_links"


@dataclass
class ConsoleState:
    """The console's per-kernel state: the navigation links, in the bar's order.

    :param serves_root: whether the console answers ``/`` (no other plugin claimed it)
    """

    links: list[ui.NavLink] = field(default_factory=list)
    serves_root: bool = False


def link_register(found: dict[str, ui.NavLink], owner: str) -> Callable[..., None]:
    """The ``register`` callback handed to one plugin (or app).

    :param found: links so far, by path (filled in place)
    :param owner: the plugin or app registering
    """

    def register(title: str, path: str, *, admin: bool = False, description: str = "") -> None:
        if not isinstance(title, str) or not title.strip():
            raise ConfigError(f"{owner}: butterfly_console_links: the title of {path!r} must be non-empty text")
        if not isinstance(path, str) or not path.startswith("/") or path.startswith("//"):
            raise ConfigError(f"{owner}: butterfly_console_links: path {path!r} must be a path starting with '/'")
        previous = found.get(path)
        if previous is not None:
            raise ConfigError(
                f"duplicate console link {path}: {previous.title!r} ({previous.owner}) and {title!r} ({owner})"
            )
        found[path] = ui.NavLink(title.strip(), path, bool(admin), str(description or ""), owner)

    return register


def app_modules(kernel: Kernel) -> list[tuple[str, Any]]:
    """``(app, module)`` of every handler app the router loaded."""
    from butterfly_router.config import state_of

    state = state_of(kernel)
    return [(app, sys.modules[name]) for app, name in state.loaded_apps if name in sys.modules]


def collect_links(kernel: Kernel) -> list[ui.NavLink]:
    """Ask every plugin and handler app for its links; sorted by path.

    :raises ConfigError: a bad or duplicate link (naming the plugins)
    """
    found: dict[str, ui.NavLink] = {}
    for impl in reversed(kernel.hook.butterfly_console_links.get_hookimpls()):
        args = {"register": link_register(found, impl.plugin_name), "kernel": kernel}
        impl.function(*[args[name] for name in impl.argnames])
    for app, module in app_modules(kernel):
        function = getattr(module, APP_HOOK, None)
        if callable(function):
            function(link_register(found, f"app {app}"))
    return sorted(found.values(), key=lambda link: (link.path != "/", link.path))


@hookimpl(trylast=True)
def butterfly_register_routes(register, kernel):
    """``/`` (unless taken), ``/_console/*`` assets; then collect the navigation links."""
    from butterfly_router import console_views

    state = ConsoleState()
    kernel.extensions[EXTENSION] = state
    if kernel.routes.lookup("/") is None:
        register("/", console_views.console_page, kind="html", methods=("GET", "HEAD"))
        state.serves_root = True
    for name in ui.ASSETS:
        register(ui.ASSET_PREFIX + name, console_views.asset_endpoint(name), kind="static", methods=("GET", "HEAD"))
    state.links = collect_links(kernel)


@hookimpl
def butterfly_console_links(register, kernel):
    """The console itself, when it serves ``/``."""
    state = kernel.extensions.get(EXTENSION)
    if state is not None and state.serves_root:
        register("Console", "/", description="installed plugins, their pages, routes and health")
