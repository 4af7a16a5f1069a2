"""The plugin-manager factory: built-ins, entry points, blocking.

Plugins are found in the ``butterfly.plugins`` entry-point group. A disabled plugin
is filtered out *before* its module is imported; its name is also blocked, so a
later ``register`` is a no-op. ``check_pending()`` is the kernel's job, after every
plugin (including those registered during ``butterfly_configure``) is in.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pluggy

from kernel import hookspecs
from kernel.errors import PluginLoadError
from kernel.markers import PROJECT

ENTRY_POINT_GROUP = "butterfly.plugins"
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
                plugin_name=ep.name)
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
    disabled: Iterable[str] = (),
    load_entrypoints: bool = True,
    extra_plugins: Iterable[Any] = (),
) -> tuple[pluggy.PluginManager, list[PluginInfo]]:
    """Build the plugin manager: specs, built-ins, entry points, extra plugins.

    :param disabled: plugin names to block before anything is imported
    :param load_entrypoints: ``False`` in tests, so installed plugins cannot leak in
    :param extra_plugins: modules/objects to register (tests, embedding); a
        ``(plugin, name)`` tuple gives an explicit name
    :return: the manager and one :class:`PluginInfo` per plugin seen
    :raises PluginLoadError: when a plugin cannot be imported or registered
    """
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    disabled = {name.strip() for name in disabled if name and name.strip()}
    infos: list[PluginInfo] = []

    for name, module_name in BUILTIN_PLUGINS:
        if name in disabled:
            raise PluginLoadError(f"plugin {name!r} is part of the kernel and cannot be disabled",
                                  plugin_name=name)
        pm.register(importlib.import_module(module_name), name=name)
        infos.append(PluginInfo(name, module_name, "butterfly-kernel", _kernel_version(), reason="built in"))

    for name in disabled:
        pm.set_blocked(name)

    if load_entrypoints:
        for ep in entry_points():
            info = PluginInfo(ep.name, ep.value, _dist_name(ep),
                              ep.dist.version if ep.dist is not None else "-", _dist_location(ep))
            infos.append(info)
            if ep.name in disabled:
                info.enabled, info.reason = False, "disabled by BUTTERFLY_DISABLE_PLUGINS or [server] disable_plugins"
                continue
            try:
                plugin = ep.load()
            except Exception as exc:
                raise PluginLoadError(f'error importing plugin "{ep.name}" from {info.dist} '
                                      f"{info.version}: {exc}", plugin_name=ep.name, dist=info.dist) from exc
            _register(pm, plugin, ep.name, info.dist)

    for item in extra_plugins:
        plugin, name = item if isinstance(item, tuple) else (item, None)
        name = name or getattr(plugin, "__name__", None) or repr(plugin)
        if pm.is_registered(plugin) or pm.is_blocked(name):
            continue
        _register(pm, plugin, name, "-")
        infos.append(PluginInfo(name, getattr(plugin, "__name__", repr(plugin)), reason="registered explicitly"))
    return pm, infos


def _register(pm: pluggy.PluginManager, plugin: Any, name: str, dist: str) -> None:
    try:
        pm.register(plugin, name=name)
    except (ValueError, pluggy.PluginValidationError) as exc:
        raise PluginLoadError(f'error registering plugin "{name}" from {dist}: {exc}',
                              plugin_name=name, dist=dist) from exc


def _kernel_version() -> str:
    try:
        return importlib.metadata.version("butterfly-kernel")
    except importlib.metadata.PackageNotFoundError:
        return "-"


def plugin_name_of(pm: pluggy.PluginManager, plugin: ModuleType | Any) -> str:
    """The name ``plugin`` was registered under (``?`` if unknown)."""
    return pm.get_name(plugin) or "?"
