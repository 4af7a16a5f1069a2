"""Find handler apps and their handler functions.

The user's ``[router] handlers_dir`` is imported as a package named after the
directory's basename (its parent goes on ``sys.path`` so apps can import their
siblings as ``handlers.x``); each sub-package ``<dir>/<app>/__init__.py`` is an
app. Plugins contribute more apps through ``butterfly_router_handler_packages``.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from kernel import ConfigError

#: Set on the handlers package we create, so a later kernel may replace it safely.
OWNED_MARK = "__butterfly_handlers_dir__"


def handler_functions(module: ModuleType) -> Iterator[tuple[str, Callable[..., Any]]]:
    """The module's handlers: public functions defined there whose first parameter is ``req``.

    Functions merely imported into the module (``func.__module__`` differs) and
    names starting with ``_`` are skipped.

    :param module: an imported app module
    :return: ``(name, function)`` pairs in definition order
    """
    for name, obj in list(vars(module).items()):
        if name.startswith("_") or not callable(obj):
            continue
        if not (inspect.isfunction(obj) or inspect.isfunction(inspect.unwrap(obj))):
            continue
        if getattr(obj, "__module__", None) != module.__name__:
            continue
        try:
            parameters = list(inspect.signature(obj).parameters.values())
        except (TypeError, ValueError):
            continue
        if (
            parameters
            and parameters[0].name == "req"
            and parameters[0].kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        ):
            yield name, obj


def _purge(package: str) -> None:
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        del sys.modules[name]


def check_handlers_dir(directory: Path) -> str:
    """Validate the package name of ``directory`` and make room for it in ``sys.modules``.

    A package of that name we imported earlier from another directory (another
    kernel, another test) is dropped; any other module of that name is a clash.

    :param directory: the absolute handlers directory
    :return: the package name (the directory's basename)
    :raises ConfigError: the basename is not an identifier or clashes with a module
    """
    name = directory.name
    if not name.isidentifier():
        raise ConfigError(
            f"[router] handlers_dir {str(directory)!r}: its name {name!r} must be a valid Python package name"
        )
    existing = sys.modules.get(name)
    owner = getattr(existing, OWNED_MARK, None) if existing is not None else None
    if existing is not None and owner is None:
        where = getattr(existing, "__file__", None) or list(getattr(existing, "__path__", []))
        raise ConfigError(
            f"[router] handlers_dir {str(directory)!r}: package name {name!r} clashes "
            f"with the already imported module {name!r} ({where}); rename the directory"
        )
    if name in sys.stdlib_module_names:
        raise ConfigError(
            f"[router] handlers_dir {str(directory)!r}: {name!r} is a standard library "
            "module name; rename the directory"
        )
    if owner is not None and owner != str(directory):
        _purge(name)
    return name


def import_handlers_package(directory: Path) -> ModuleType:
    """Import ``directory`` as the package named after its basename (see :func:`check_handlers_dir`).

    :param directory: the absolute handlers directory (must exist, already checked)
    :return: the package module
    :raises Exception: whatever the package's ``__init__.py`` raises
    """
    name = directory.name
    existing = sys.modules.get(name)
    if existing is not None and getattr(existing, OWNED_MARK, None) == str(directory):
        return existing
    parent = str(directory.parent)
    if parent not in sys.path:
        sys.path.insert(0, parent)
    importlib.invalidate_caches()
    init = directory / "__init__.py"
    if init.is_file():
        spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(directory)])
    else:
        spec = importlib.util.spec_from_loader(name, None, is_package=True)
        spec.submodule_search_locations = [str(directory)]
    module = importlib.util.module_from_spec(spec)
    setattr(module, OWNED_MARK, str(directory))
    sys.modules[name] = module
    try:
        if spec.loader is not None:
            spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def app_names(directory: Path) -> list[str]:
    """The app sub-packages of ``directory``: identifiers with an ``__init__.py``, sorted."""
    return sorted(
        entry.name
        for entry in directory.iterdir()
        if entry.is_dir()
        and entry.name.isidentifier()
        and not entry.name.startswith("_")
        and (entry / "__init__.py").is_file()
    )


def import_app(package: str, app: str) -> ModuleType:
    """Import ``package.app`` (a fresh import when a failed attempt left nothing behind)."""
    return importlib.import_module(f"{package}.{app}")
