"""The README's first command: ``python -m kernel run --dev`` in the repo root serves the demos.

Every installed plugin loads through its entry point on the embedded defaults
(SQLite, no Redis); only the data/log directories and the port are moved out of
the way through the environment, as a user could.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from importlib import metadata
from pathlib import Path

import pytest

from kernel.testing import free_port

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT = 30


def get(url: str):
    """``(status, headers, body)``; headers look up case-insensitively."""
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status, reply.headers, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def auth_installed() -> bool:
    """Is butterfly-auth installed (and so deciding who is an admin)?"""
    return any(ep.name == "auth" for ep in metadata.entry_points(group="butterfly.plugins"))


@pytest.fixture
def quickstart_server(tmp_path):
    """``python -m kernel run --dev`` started from the repo root on a free port."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("BUTTERFLY_")}
    # NOTE: the repo root may hold the developer's own butterfly.toml (MQ on, say);
    # the test runs on the embedded defaults, so it names an empty config instead.
    (tmp_path / "butterfly.toml").write_text("")
    env.update(
        BUTTERFLY_CONFIG=str(tmp_path / "butterfly.toml"),
        BUTTERFLY_SERVER_PORT=str(port),
        BUTTERFLY_SERVER_DATA_DIR=str(tmp_path / "data"),
        BUTTERFLY_SERVER_LOG_DIR=str(tmp_path / "logs"),
        # NOTE: the store's default URL is relative to the working directory; keep
        # the test's database out of the checkout (ignored when no store is installed).
        BUTTERFLY_STORE_URL=f"sqlite:///{tmp_path}/data/butterfly.db",
    )
    output = open(tmp_path / "server.out", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "kernel", "run", "--dev"], cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"server exited with {process.returncode}:\n{(tmp_path / 'server.out').read_text()}")
            try:
                get(base + "/ping")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"no answer in {START_TIMEOUT}s:\n{(tmp_path / 'server.out').read_text()}")
                time.sleep(0.1)
        yield base, process, tmp_path
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        output.close()


@pytest.mark.slow
def test_quickstart_serves_the_demo_api(quickstart_server):
    base, process, tmp_path = quickstart_server
    status, headers, body = get(base + "/demo_api/ping")
    assert status == 200
    ping = json.loads(body)
    assert ping["stat"] == "OK" and len(ping["randstr"]) >= 86
    assert headers["demo"] == "1.0.1"

    status, headers, body = get(base + "/demo_api/hello?str_info=x")
    assert status == 200
    assert body == b'{"stat":"OK","str_info":"x"}'
    assert headers["x-reqid"] and float(headers["x-cost"]) >= 0
    assert headers.get("Server") is None  # no version leaked

    status, _, body = get(base + "/demo_api/hello")
    assert status == 400 and json.loads(body)["stat"] == "ERR_BAD_PARAMS"

    # an admin route: loopback is enough without butterfly-auth; with it, a login is needed
    status, headers, _ = get(base + "/demo_template/log")
    if auth_installed():
        assert status == 401
    else:
        assert status == 200 and headers["Content-Type"].startswith("text/html")

    # SIGTERM drains and exits cleanly; the access log (console format with --dev) has our calls
    process.send_signal(signal.SIGTERM)
    assert process.wait(20) == 0
    access_log = (tmp_path / "logs" / "acc.log").read_text(encoding="utf-8")
    assert "/demo_api/hello" in access_log and "ERR_BAD_PARAMS" in access_log
    assert (tmp_path / "data").is_dir()  # data went where the environment said
