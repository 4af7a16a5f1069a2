"""docs/observability.md runs, block by block, against a live ``butterfly start`` server.

The harness is ``tests/test_docs_examples.py``'s (one project with the repository's demo
handlers, every installed plugin, a private redis-server); this page has a test of its
own because it restarts, stops and signals the server and exports a metrics token, which
must not leak into the other pages' run.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from kernel.testing import RedisServer

REPO = Path(__file__).resolve().parents[1]
PAGE = "docs/observability.md"


def _load(name: str, file: str):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(file))
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


examples = _load("docs_examples_harness", "test_docs_examples.py")

pytestmark = pytest.mark.slow


def test_every_example_of_observability_md_runs(tmp_path):
    redis = RedisServer().start()
    project = examples.Project(tmp_path, redis)
    try:
        run = examples.PageRun(project, PAGE, examples.DeclaredSettings())
        blocks = examples.docs_blocks.blocks_of(REPO / PAGE, PAGE)
        for block in blocks:
            run.run(block)
        assert not run.mismatches, "\n\n".join(run.mismatches)
        assert run.ran >= 7
    finally:
        try:
            project.stop()
            # the page stops and starts the server itself: stop whatever it left running
            project.butterfly("stop", "--timeout", "30")
        finally:
            redis.stop()
