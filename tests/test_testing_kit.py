"""``kernel.testing`` as a third-party plugin author gets it: a pytest plugin registered by
butterfly-kernel's ``pytest11`` entry point, importable without side effects, no autouse
fixture, and the example of docs/testing.md passing in a folder of its own."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

import butterfly_store.testing
import kernel.testing
from kernel.plugins import ENTRY_POINT_GROUP
from kernel.testing import ServerProcess, hermetic_environ, port_accepts, wait_for

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "testing.md"
KIT_FIXTURES = {"make_kernel", "live_server", "captured_logs", "isolated_logging", "redis_server", "chromium"}


def code_blocks(markdown: str) -> list[tuple[str, str]]:
    """``(language, body)`` of every fenced block."""
    return re.findall(r"^```(\w*)\n(.*?)^```$", markdown, re.M | re.S)


def test_the_kits_are_registered_once_through_their_entry_points(pytestconfig):
    manager = pytestconfig.pluginmanager
    assert manager.get_plugin("butterfly") is kernel.testing
    assert manager.get_plugin("butterfly_store") is butterfly_store.testing
    assert manager.get_name(kernel.testing) == "butterfly"  # not also as "kernel.testing"
    assert manager.get_plugin("kernel.testing") is None


def test_importing_the_kit_changes_nothing():
    probe = textwrap.dedent(
        """
        import logging, sys
        import structlog
        from kernel import logs

        def state():
            root = logging.getLogger()
            return (logs.CACHE_LOGGERS, list(root.handlers), root.level, structlog.is_configured())

        before = state()
        import kernel.testing
        assert "pytest" in sys.modules  # the kit is a pytest plugin; nothing else happens
        assert state() == before, (state(), before)
        print("unchanged")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=hermetic_environ(), capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and done.stdout.strip() == "unchanged", done.stderr


def test_the_docs_example_passes_with_the_entry_point_alone(tmp_path):
    """docs/testing.md's plugin and tests, in an empty folder, no conftest.py: the fixtures come
    from the ``pytest11`` entry point. One more test proves the kit adds no autouse fixture."""
    blocks = code_blocks(DOC.read_text())
    pyproject = next(body for language, body in blocks if language == "toml")
    project = tomllib.loads(pyproject)["project"]
    assert project["entry-points"]["butterfly.plugins"] == {"hello": "butterfly_hello.plugin"}
    files = {}
    for language, body in blocks:
        first, _, rest = body.partition("\n")
        if language == "python" and first.startswith("# ") and first.endswith(".py"):
            files[first[2:]] = rest
    assert set(files) == {"butterfly_hello/plugin.py", "tests/test_hello.py"}
    for relative, source in files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(source)
    (tmp_path / "butterfly_hello" / "__init__.py").write_text("")
    (tmp_path / "tests" / "test_no_autouse.py").write_text(
        f"def test_no_kit_fixture_unless_asked(request):\n"
        f"    assert not set(request.fixturenames) & set({sorted(KIT_FIXTURES)!r})\n"
    )
    assert not list(tmp_path.rglob("conftest.py"))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=tmp_path,
        env={**hermetic_environ(), "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^6 passed", done.stdout, re.M), done.stdout


def test_wait_for_returns_the_value_or_fails_naming_what_it_waited_for():
    answers = iter([0, None, "ready"])
    assert wait_for(lambda: next(answers), timeout=5, what="the third answer") == "ready"
    with pytest.raises(AssertionError, match=r"^timed out waiting for the flag$"):
        wait_for(lambda: False, timeout=0.2, what="the flag")


def test_server_process_starts_stops_and_reports_an_early_exit(tmp_path):
    installed = {ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    env = {**hermetic_environ(), "BUTTERFLY_DISABLE_PLUGINS": ",".join(sorted(installed))}
    server = ServerProcess(tmp_path / "good", env)
    try:
        assert server.start() is server and port_accepts(server.port)
        assert server.stop() == 0
        assert not port_accepts(server.port)
        assert '"event": "serving"' in server.output()
    finally:
        server.kill()

    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "butterfly.toml").write_text("[server]\nthreads_typo = 4\n")
    broken = ServerProcess(tmp_path / "bad", env, stdout="out.log", stderr="err.log")
    try:
        with pytest.raises(AssertionError, match=r"the server exited with status 1:\n(.|\n)*unknown setting"):
            broken.start()
        assert "unknown setting [server] threads_typo" in (tmp_path / "bad" / "err.log").read_text()
    finally:
        broken.kill()
