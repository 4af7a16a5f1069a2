"""Fixtures for ruqi's tests: a kernel with store + router + ruqi and a test handler app."""

from __future__ import annotations

import textwrap
import time
import uuid
from pathlib import Path

import pytest

#: the handler app the tests schedule: ``/ruqi_test/<name>``
HANDLER_APP = textwrap.dedent("""
    import os, time

    def tick(req, note: str = "", ruqi_fire_id: int = 0, ruqi_scheduled_time: str = ""):
        path = os.environ.get("RUQI_TEST_TICKS")
        if path:
            with open(path, "a") as handle:
                handle.write(f"{ruqi_fire_id} {ruqi_scheduled_time} {os.getpid()} {note}\\n")
        return "OK", {"fire": ruqi_fire_id, "at": ruqi_scheduled_time, "note": note}

    def strict(req, count: int):
        return "OK", {"count": count}

    def slow(req, seconds: float = 1.0):
        time.sleep(seconds)
        return "OK"

    def business_error(req):
        return "ERR_SOMETHING", {"why": "told to"}
""")


def write_handlers(base: Path) -> Path:
    """A handlers dir with the ``ruqi_test`` app; returns the dir."""
    handlers = base / "handlers"
    (handlers / "ruqi_test").mkdir(parents=True, exist_ok=True)
    (handlers / "__init__.py").write_text("")
    (handlers / "ruqi_test" / "__init__.py").write_text(HANDLER_APP)
    return handlers


def unique_id(prefix: str = "job") -> str:
    """A job id no other test (or earlier session on a shared DB) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def ruqi_kernel(make_kernel, tmp_path):
    """Factory: a kernel with store, router and ruqi on ``database_url`` (not started)."""
    import butterfly_router.plugin
    import butterfly_ruqi.plugin
    import butterfly_store.plugin

    handlers = write_handlers(tmp_path)

    def factory(database_url: str, **settings):
        values = {
            "store.url": database_url,
            "router.handlers_dir": str(handlers),
            "ruqi.sync_interval": 0.3,
            **{f"ruqi.{k}": v for k, v in settings.items()},
        }
        return make_kernel(
            plugins=[butterfly_store.plugin, butterfly_router.plugin, butterfly_ruqi.plugin], settings=values
        )

    return factory


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


@pytest.fixture
def new_job_id():
    """``new_job_id(prefix)`` → a fresh job id."""
    return unique_id


@pytest.fixture
def poll():
    """``poll(predicate, timeout)`` → the first truthy value (fails after the timeout)."""
    return wait_for


@pytest.fixture
def handlers_dir(tmp_path):
    """A handlers directory holding the ``ruqi_test`` app."""
    return write_handlers(tmp_path)
