"""The plugin-manager factory: built-ins, entry points, blocking.

Plugins are found in the ``butterfly.plugins`` entry-point group. A disabled plugin
is filtered out *before* its module is imported; its name is also blocked, so a
later ``register`` is a no-op. ``check_pending()`` is the kernel's job, after every
plugin (including those registered during ``butterfly_configure``) is in.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pluggy

from kernel import hookspecs
from kernel.errors import PluginLoadError
from kernel.fasthooks import PluginManager
from kernel.markers import PROJECT
from kernel.settings import as_list

ENTRY_POINT_GROUP = "butterfly.plugins"
#: Comma-separated plugin names to switch off before they are imported.
DISABLE_ENV = "BUTTERFLY_DISABLE_PLUGINS"
#: Comma-separated import paths of extra plugin modules (not installed as distributions).
EXTRA_PLUGINS_ENV = "BUTTERFLY_PLUGINS"
#: Kernel-essential plugins, always registered, never disabled.
BUILTIN_PLUGINS = (("kernel", "kernel.defaults"),)


@dataclass
class PluginInfo:
    """What ``butterfly plugins`` shows about one plugin."""

    name: str
    module: str
    dist: str = "-"
    version: str = "-"
    location: str = "-"
    enabled: bool = True
    reason: str = ""


def disabled_plugins(environ: Mapping[str, str], configured: Any = ()) -> dict[str, str]:
    """Plugin names to switch off, each with the reason ``butterfly plugins`` shows.

    :param environ: the environment (``BUTTERFLY_DISABLE_PLUGINS``)
    :param configured: the raw ``[server] disable_plugins`` value (list or comma string)
    :return: ``{name: reason}``
    :raises ValueError: when ``configured`` is neither a list nor a string
    """
    reasons = dict.fromkeys(as_list(configured or []), "disabled by [server] disable_plugins")
    for name in as_list(environ.get(DISABLE_ENV, "")):
        reasons[name] = f"disabled by {DISABLE_ENV}"
    return reasons


def extra_plugin_modules(environ: Mapping[str, str]) -> list[str]:
    """Import paths listed in ``BUTTERFLY_PLUGINS`` (plugins that are not installed).

    :param environ: the environment
    :return: module names, in the given order
    """
    return as_list(environ.get(EXTRA_PLUGINS_ENV, ""))


def entry_points() -> list[importlib.metadata.EntryPoint]:
    """The ``butterfly.plugins`` entry points, one per name.

    The same ``(dist, name, value)`` seen twice (editable installs, duplicated
    ``sys.path`` entries) is kept once; one name from two different distributions
    is an error, because pluggy would silently keep only the first.

    :raises PluginLoadError: on a name clash between distributions
    """
    chosen: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        previous = chosen.get(ep.name)
        if previous is None:
            chosen[ep.name] = ep
            continue
        if (_dist_name(previous), previous.value) != (_dist_name(ep), ep.value):
            raise PluginLoadError(
                f"plugin name {ep.name!r} is provided by two distributions: "
                f"{_dist_name(previous)} ({previous.value}) and {_dist_name(ep)} ({ep.value})",
                plugin_name=ep.name,
            )
    return sorted(chosen.values(), key=lambda ep: ep.name)


def _dist_name(ep: importlib.metadata.EntryPoint) -> str:
    return ep.dist.metadata["Name"] if ep.dist is not None else "?"


def _dist_location(ep: importlib.metadata.EntryPoint) -> str:
    try:
        return str(ep.dist.locate_file("")) if ep.dist is not None else "-"
    except Exception:  # noqa: BLE001 - purely informational
        return "-"


def make_plugin_manager(
    *,
    disabled: Iterable[str] | Mapping[str, str] = (),
    load_entrypoints: bool = True,
    extra_plugins: Iterable[Any] = (),
    plugin_modules: Iterable[str] = (),
) -> tuple[pluggy.PluginManager, list[PluginInfo]]:
    """Build the plugin manager: specs, built-ins, entry points, modules, extra plugins.

    :param disabled: plugin names to block before anything is imported, or a
        ``{name: reason}`` mapping (see :func:`disabled_plugins`)
    :param load_entrypoints: ``False`` in tests, so installed plugins cannot leak in
    :param plugin_modules: import paths of plugin modules to load by name
        (``BUTTERFLY_PLUGINS``); the import path is the plugin's name
    :param extra_plugins: modules/objects to register (tests, embedding); a
        ``(plugin, name)`` tuple gives an explicit name
    :return: the manager and one :class:`PluginInfo` per plugin seen
    :raises PluginLoadError: when a plugin cannot be imported or registered
    """
    pm = PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    reasons = dict(disabled) if isinstance(disabled, Mapping) else dict.fromkeys(disabled, "disabled")
    reasons = {name.strip(): why for name, why in reasons.items() if name and name.strip()}
    disabled = set(reasons)
    infos: list[PluginInfo] = []

    for name, module_name in BUILTIN_PLUGINS:
        if name in disabled:
            raise PluginLoadError(f"plugin {name!r} is part of the kernel and cannot be disabled", plugin_name=name)
        pm.register(importlib.import_module(module_name), name=name)
        infos.append(PluginInfo(name, module_name, "butterfly-kernel", _kernel_version(), reason="built in"))

    for name in disabled:
        pm.set_blocked(name)

    if load_entrypoints:
        for ep in entry_points():
            info = PluginInfo(
                ep.name, ep.value, _dist_name(ep), ep.dist.version if ep.dist is not None else "-", _dist_location(ep)
            )
            infos.append(info)
            if ep.name in disabled:
                info.enabled, info.reason = False, reasons[ep.name]
                continue
            try:
                plugin = ep.load()
            except Exception as exc:
                raise PluginLoadError(
                    f'error importing plugin "{ep.name}" from {info.dist} {info.version}: {exc}',
                    plugin_name=ep.name,
                    dist=info.dist,
                ) from exc
            _register(pm, plugin, ep.name, info.dist)

    for module_name in plugin_modules:
        info = PluginInfo(module_name, module_name, reason=f"loaded from {EXTRA_PLUGINS_ENV}")
        infos.append(info)
        if module_name in disabled:
            info.enabled, info.reason = False, reasons[module_name]
            continue
        try:
            plugin = importlib.import_module(module_name)
        except Exception as exc:
            raise PluginLoadError(
                f'error importing plugin module "{module_name}" (from {EXTRA_PLUGINS_ENV}): {exc}',
                plugin_name=module_name,
            ) from exc
        info.location = str(getattr(plugin, "__file__", None) or "-")
        if not pm.is_registered(plugin):
            _register(pm, plugin, module_name, "-")

    for item in extra_plugins:
        plugin, name = item if isinstance(item, tuple) else (item, None)
        name = name or getattr(plugin, "__name__", None) or repr(plugin)
        if pm.is_registered(plugin):
            continue
        if pm.is_blocked(name):
            infos.append(
                PluginInfo(
                    name, getattr(plugin, "__name__", repr(plugin)), enabled=False, reason=reasons.get(name, "disabled")
                )
            )
            continue
        _register(pm, plugin, name, "-")
        infos.append(PluginInfo(name, getattr(plugin, "__name__", repr(plugin)), reason="registered explicitly"))
    return pm, infos


def _register(pm: pluggy.PluginManager, plugin: Any, name: str, dist: str) -> None:
    try:
        pm.register(plugin, name=name)
    except (ValueError, pluggy.PluginValidationError) as exc:
        raise PluginLoadError(
            f'error registering plugin "{name}" from {dist}: {exc}', plugin_name=name, dist=dist
        ) from exc


def _kernel_version() -> str:
    try:
        return importlib.metadata.version("butterfly-kernel")
    except importlib.metadata.PackageNotFoundError:
        return "-"


def plugin_name_of(pm: pluggy.PluginManager, plugin: ModuleType | Any) -> str:
    """The name ``plugin`` was registered under (``?`` if unknown)."""
    return pm.get_name(plugin) or "?"
