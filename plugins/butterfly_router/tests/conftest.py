"""Fixtures for the router tests: handler apps written into unique temp packages."""

from __future__ import annotations

import sys
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import butterfly_router.plugin
from kernel import Kernel
from kernel.testing import Client


@dataclass
class RouterApp:
    """A kernel serving handler apps from ``root`` (package ``package``)."""

    kernel: Kernel
    client: Client
    package: str
    root: Path


def write_tree(root: Path, files: dict[str, str]) -> None:
    """Write ``{relative_path: source}`` under ``root`` (sources are dedented)."""
    root.mkdir(parents=True, exist_ok=True)
    for relative, text in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text))


@pytest.fixture
def unique_name():
    """Factory of unique, importable package names; their modules are purged afterwards."""
    names: list[str] = []

    def factory(prefix: str = "h") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        names.append(name)
        return name

    yield factory
    for name in names:
        for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[module]


@pytest.fixture
def router_app(tmp_path, make_kernel, unique_name):
    """Factory: ``router_app({"demo/__init__.py": src}, settings={...}, plugins=[...])``."""
    added_paths: list[str] = []

    def factory(files: dict[str, str], settings: dict[str, Any] | None = None, plugins=(), **kwargs: Any) -> RouterApp:
        package = unique_name()
        root = tmp_path / "apps" / package
        write_tree(root, files)
        if str(root.parent) not in sys.path:
            added_paths.append(str(root.parent))
        kernel = make_kernel(
            plugins=[butterfly_router.plugin, *plugins],
            settings={"router.handlers_dir": str(root), "router.static_dir": "", **(settings or {})},
            **kwargs,
        )
        return RouterApp(kernel, Client(kernel), package, root)

    yield factory
    for path in added_paths:
        while path in sys.path:
            sys.path.remove(path)
