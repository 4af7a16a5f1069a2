"""Root conftest: what every test of this repository shares.

The test kits are pytest plugins registered by their distributions' ``pytest11``
entry points (``kernel.testing`` from butterfly-kernel, ``butterfly_store.testing``
from butterfly-store, ``butterfly_mq.testing`` from butterfly-mq), so nothing is listed
in ``pytest_plugins`` here: listing them too would register them twice.

The suite is hermetic (issue 12): it never reads the developer's ``./butterfly.toml``,
``BUTTERFLY_*`` environment or ``data/``. Before any test runs, every ``BUTTERFLY_*``
variable except the test kit's ``BUTTERFLY_TEST_*`` leaves ``os.environ`` (so
subprocesses do not inherit it either) and the working directory becomes an empty
scratch directory, so a ``Kernel.create()`` or ``butterfly`` run that looks for
``./butterfly.toml`` or ``./data`` finds nothing of the developer's. Tests that
need the repository use paths relative to their own file.

The repository's own packages are byte-compiled first (see :func:`compile_sources`).
"""

from __future__ import annotations

import compileall
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel.testing import hermetic_environ

_SCRATCH_CWD = pytest.StashKey[tempfile.TemporaryDirectory]()
REPO = Path(__file__).resolve().parent
#: What the suite's subprocesses import from this checkout: the kernel, each plugin's
#: package, the demo apps.
SOURCES = [REPO / "_butterfly_cli.py", REPO / "kernel", REPO / "handlers", *sorted(REPO.glob("plugins/*/butterfly_*"))]
#: Package data (what ``butterfly init`` copies, what the wheels ship as it is): never compiled.
NOT_COMPILED = re.compile(r"[\\/](templates|lua|static)[\\/]")


def compile_sources() -> None:
    """Byte-compile the repository's packages into their ``__pycache__``; up-to-date files are skipped.

    PERF: pip byte-compiles what it installs, but not an editable install's sources; with
    ``PYTHONDONTWRITEBYTECODE`` set (as on the machines the suite runs on) no import writes them either, so
    each of the hundreds of ``python -m kernel`` processes the suite starts compiled the
    kernel and every plugin again: about 0.1 s each, a third of a one-shot command.
    Nothing else changes: imports still check each cached file against its source.
    """
    for source in SOURCES:
        if source.is_dir():
            compileall.compile_dir(source, quiet=2, rx=NOT_COMPILED)
        elif source.is_file():
            compileall.compile_file(source, quiet=2)


def pytest_configure(config: pytest.Config) -> None:
    """Compile the sources, scrub Butterfly's environment and move into an empty working directory."""
    compile_sources()
    clean = hermetic_environ()
    for key in [key for key in os.environ if key not in clean]:
        del os.environ[key]
    # NOTE: collection arguments are resolved against pytest's invocation directory,
    # not the working directory, so changing it here does not change what is collected.
    scratch = tempfile.TemporaryDirectory(prefix="butterfly-test-cwd-")
    config.stash[_SCRATCH_CWD] = scratch
    os.chdir(scratch.name)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Go back to where pytest started and remove the scratch directory."""
    scratch = config.stash.get(_SCRATCH_CWD, None)
    if scratch is not None:
        os.chdir(config.invocation_params.dir)
        scratch.cleanup()


@pytest.fixture(autouse=True)
def _repo_isolated_logging(isolated_logging: None) -> Iterator[None]:
    """Every test of this repo starts and ends with the same logging setup (in-process CLI runs)."""
    yield
