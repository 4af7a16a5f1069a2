"""Fixtures for butterfly-trace tests: a test app plugin and log readers."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
import structlog

import butterfly_trace.plugin as trace_plugin
from kernel import Response, hookimpl

app_log = structlog.get_logger("tests.trace_app")
stdlib_log = logging.getLogger("tests.trace_app.stdlib")


class TraceTestApp:
    """Routes registered straight through ``butterfly_register_routes`` (no router plugin)."""

    @hookimpl
    def butterfly_register_routes(self, register, kernel):
        """``/ok``, ``/raw``, ``/boom``, ``/nested``, ``/slow``, ``/whoami``."""
        register("/ok", self.ok)
        register("/raw", self.raw)
        register("/boom", self.boom)
        register("/nested", self.nested)
        register("/slow", self.slow)

    @staticmethod
    def ok(request):
        """Parses its params, logs twice, records two timing points."""
        params = request.params
        app_log.info("handling ok", n=len(params))
        with request.timer("db"):
            stdlib_log.warning("a stdlib warning from the handler")
        request.timing("render")
        request.res.append("rows=3")
        return Response.json({"stat": "OK", "echo": sorted(params)})

    @staticmethod
    def raw(request):
        """Never touches the body or the params."""
        return Response(200, [("Content-Type", "text/plain")], b"raw")

    @staticmethod
    def boom(request):
        """Raises with a secret in a local variable."""
        password = "hunter2-local-secret"  # noqa: F841 - must never reach a log
        app_log.info("about to fail")
        raise ZeroDivisionError("division by zero in boom")

    @staticmethod
    def nested(request):
        """Calls /ok in-process from inside the handler, logging around it."""
        app_log.info("before inner call")
        inner = request.kernel.call("/ok", {"x": "1"}, source="cli")
        app_log.info("after inner call")
        return Response.json({"stat": "OK", "inner_stat": inner.stat})

    @staticmethod
    def slow(request):
        """Sleeps well past the tests' tiny slow_threshold."""
        with request.timer("sleep"):
            time.sleep(0.02)
        return Response.json({"stat": "OK"})


def _read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def _read_json_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in _read_lines(path)]


@pytest.fixture
def read_lines():
    """``read_lines(path)``: the lines of a file ([] when missing)."""
    return _read_lines


@pytest.fixture
def read_json_lines():
    """``read_json_lines(path)``: every line of a JSON-lines log, decoded (fails on a broken line)."""
    return _read_json_lines


@pytest.fixture
def trace_kernel(make_kernel):
    """Factory: a kernel with the trace plugin and :class:`TraceTestApp`."""

    def factory(settings=None, **kwargs):
        return make_kernel(plugins=[trace_plugin, TraceTestApp()], settings=settings, **kwargs)

    return factory


@pytest.fixture(autouse=True)
def _restore_root_level():
    """Runtime log-level tests change the root level; put it back."""
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)


RUQI_TEST_HANDLERS = """
from butterfly_ruqi.jobspec import JobSpec
from butterfly_ruqi.jobtypes import Fire
from butterfly_ruqi.types_http import HttpJob


def tick(req):
    return "OK"


def call_out(req, url: str):
    spec = JobSpec("call-out", "call-out", "cron", "0 0 3 * * *", "http", url, options={"method": "GET"}, timeout=30)
    outcome = HttpJob().run(req.kernel, spec, Fire(1, "call-out", 0, True, "test"))
    return "OK" if outcome.ok else outcome.output
"""


@pytest.fixture
def ruqi_with_trace(make_kernel, tmp_path):
    """store + router + ruqi + trace on SQLite, started, with a ``/ruqi_test/tick`` handler
    and ``/ruqi_test/call_out?url=`` (runs an ``http`` job's request from inside the request)."""
    # NOTE: siblings, not dependencies of this distribution: an unpacked sdist skips this
    router = pytest.importorskip("butterfly_router.plugin")
    ruqi = pytest.importorskip("butterfly_ruqi.plugin")
    store = pytest.importorskip("butterfly_store.plugin")

    handlers = tmp_path / "handlers"
    (handlers / "ruqi_test").mkdir(parents=True)
    (handlers / "__init__.py").write_text("")
    (handlers / "ruqi_test" / "__init__.py").write_text(RUQI_TEST_HANDLERS)
    settings = {
        "store.url": f"sqlite:///{tmp_path}/ruqi.sqlite",
        "router.handlers_dir": str(handlers),
        "ruqi.sync_interval": 0.3,
    }
    plugins = [store, router, ruqi, trace_plugin]
    kernel = make_kernel(plugins=plugins, settings=settings)
    kernel.startup()
    yield kernel
    kernel.shutdown()
