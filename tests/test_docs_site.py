"""The manual as a site: ``mkdocs build --strict`` passes, nothing is loaded from another origin,
and the generated or listed facts (settings, hooks, pages) match the code."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kernel import hookspecs

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
_spec = importlib.util.spec_from_file_location("docs_settings", Path(__file__).with_name("docs_settings.py"))
assert _spec and _spec.loader
docs_settings = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(docs_settings)

#: Hookspec modules of the plugins of this repository, besides the kernel's.
PLUGIN_HOOKSPECS = [
    "butterfly_router.hookspecs",
    "butterfly_store.hookspecs",
    "butterfly_mq.hookspecs",
    "butterfly_ruqi.hookspecs",
    "butterfly_xingqiao.hookspecs",
]


def hook_names(module) -> set[str]:
    """The ``butterfly_*`` hookspecs defined in ``module``."""
    return {
        name
        for name, func in inspect.getmembers(module, inspect.isfunction)
        if name.startswith("butterfly_") and func.__module__ == module.__name__
    }


@pytest.mark.slow
def test_the_site_builds_strictly_and_loads_nothing_from_elsewhere(tmp_path):
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(site)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    pages = list(site.glob("*.html"))
    assert len(pages) >= 20
    external = re.compile(
        r"""<(?:script|img|iframe)[^>]*\ssrc=["']?(?:https?:)?//|<link[^>]*\shref=["']?(?:https?:)?//"""
    )
    for page in pages:
        assert not external.search(page.read_text(encoding="utf-8")), f"{page.name} loads something from another origin"


def test_every_page_is_in_the_nav():
    def walk(items) -> list[str]:
        found: list[str] = []
        for item in items:
            value = next(iter(item.values())) if isinstance(item, dict) else item
            found += walk(value) if isinstance(value, list) else [value]
        return found

    nav = walk(yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))["nav"])
    assert sorted(page.name for page in DOCS.glob("*.md")) == sorted(nav)


def test_the_settings_tables_are_the_declared_settings():
    page = docs_settings.PAGE.read_text(encoding="utf-8")
    assert page == docs_settings.page_with_tables(page), (
        "docs/configuration.md differs from the declared settings: run `.venv/bin/python tests/docs_settings.py`"
    )


def test_the_hook_tables_name_every_hook_there_is():
    page = (DOCS / "plugins.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `(butterfly_\w+)\(", page, re.MULTILINE))
    kernel_hooks = hook_names(hookspecs)
    plugin_hooks = set().union(*(hook_names(importlib.import_module(name)) for name in PLUGIN_HOOKSPECS))
    assert kernel_hooks and plugin_hooks
    assert listed == kernel_hooks | plugin_hooks


def test_the_readme_stays_short():
    assert len((REPO / "README.md").read_text(encoding="utf-8").splitlines()) <= 250


@pytest.mark.parametrize("readme", sorted(REPO.glob("plugins/*/README.md")), ids=lambda path: path.parent.name)
def test_each_plugin_readme_says_where_its_documentation_is(readme):
    text = readme.read_text(encoding="utf-8")
    links = re.findall(r"\]\((\.\./\.\./docs/[\w.-]+\.md)(?:#[\w-]+)?\)", text)
    assert links, f"{readme} links no page of docs/"
    for link in links:
        assert (readme.parent / link).resolve().is_file(), f"{readme}: {link} does not exist"
    assert "docs/" in text.replace("../../docs/", "")  # said in words too: PyPI cannot follow a relative link
