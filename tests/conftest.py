"""Fixtures for the kernel's own tests: run ``butterfly`` as a real subprocess.

``butterfly_cli`` gives each test a working directory, a plugin directory on
``PYTHONPATH`` and an environment in which every *installed* plugin is switched off
(``BUTTERFLY_DISABLE_PLUGINS``) — the kernel's tests exercise the kernel, with
small plugin modules loaded through ``BUTTERFLY_PLUGINS``.

NOTE: CLI commands run in subprocesses, not in-process: ``butterfly`` configures
structlog and the root logger for the whole process, which would leak into every
later test's log capture.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kernel.plugins import ENTRY_POINT_GROUP

PYTHON = sys.executable


def installed_plugin_names() -> list[str]:
    """Names of every ``butterfly.plugins`` entry point installed in this environment."""
    return sorted({ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)})


class ButterflyCLI:
    """Runs ``python -m kernel`` in ``cwd`` with an isolated environment.

    :param cwd: the working directory (``data/`` and ``logs/`` land here)
    """

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.plugin_dir = cwd / "plugin_modules"
        self.plugin_dir.mkdir(parents=True, exist_ok=True)
        self.env = {
            key: value for key, value in os.environ.items() if not key.startswith("BUTTERFLY_") and key != "PYTHONPATH"
        }
        self.env["BUTTERFLY_DISABLE_PLUGINS"] = ",".join(installed_plugin_names())
        self.env["PYTHONPATH"] = str(self.plugin_dir)
        self.env["PYTHONUNBUFFERED"] = "1"

    def write_plugin(self, name: str, source: str) -> str:
        """Write plugin module ``name`` and add it to ``BUTTERFLY_PLUGINS``; returns ``name``."""
        (self.plugin_dir / f"{name}.py").write_text(textwrap.dedent(source))
        loaded = [item for item in self.env.get("BUTTERFLY_PLUGINS", "").split(",") if item]
        if name not in loaded:
            self.env["BUTTERFLY_PLUGINS"] = ",".join([*loaded, name])
        return name

    def argv(self, *args: str) -> list[str]:
        """The full command line for ``butterfly args...``."""
        return [PYTHON, "-m", "kernel", *args]

    def run(self, *args: str, timeout: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run ``butterfly args...`` to completion; text output captured."""
        return subprocess.run(
            self.argv(*args),
            cwd=self.cwd,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start ``butterfly args...`` without waiting; output goes to ``cwd/proc.log``."""
        log = (self.cwd / "proc.log").open("ab")
        try:
            return subprocess.Popen(
                self.argv(*args), cwd=self.cwd, env={**self.env, **(env or {})}, stdout=log, stderr=subprocess.STDOUT
            )
        finally:
            log.close()


@pytest.fixture
def butterfly_cli(tmp_path: Path) -> ButterflyCLI:
    """A :class:`ButterflyCLI` working in ``tmp_path``."""
    return ButterflyCLI(tmp_path)
