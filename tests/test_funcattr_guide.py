"""The original Butterfly's five-minute guide, verbatim, against a live server.

    cp -rf handlers/demo_api handlers/test_app
    # append to handlers/test_app/__init__.py:
    @funcattr.api
    def test_handler(req, info):
        return retstat.OK, {"data": info}
    # start, then
    curl 'http://127.0.0.1:8585/test_app/test_handler?info=helloworld'

It works because ``from butterfly_router import funcattr`` gives the decorators
under their original names and ``handlers/demo_api`` imports it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kernel.testing import free_port

REPO = Path(__file__).resolve().parents[1]
GUIDE_HANDLER = """
@funcattr.api
def test_handler(req, info):
    return retstat.OK, {"data": info}
"""


def curl(url: str) -> tuple[int, bytes]:
    """``curl -s`` the URL: ``(status, body)``; status 0 while nothing listens."""
    result = subprocess.run(
        ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "10", url],
        capture_output=True,
        timeout=30,
    )
    body, _, status = result.stdout.rpartition(b"\n")
    return int(status or 0), body


def test_funcattr_names_the_same_decorators():
    from butterfly_router import api, download, funcattr, http, upload

    assert (funcattr.api, funcattr.http, funcattr.download, funcattr.upload) == (api, http, download, upload)
    assert (funcattr.api_download, funcattr.api_upload) == (download, upload)  # the original's names


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("curl") is None, reason="the guide uses curl")
def test_the_original_five_minute_guide_works_verbatim(tmp_path):
    project = tmp_path / "project"
    shutil.copytree(REPO / "handlers", project / "handlers", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(["cp", "-rf", "handlers/demo_api", "handlers/test_app"], cwd=project, check=True)
    with open(project / "handlers" / "test_app" / "__init__.py", "a", encoding="utf-8") as init:
        init.write(GUIDE_HANDLER)

    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("BUTTERFLY_")}
    env["BUTTERFLY_SERVER_PORT"] = str(port)
    with open(tmp_path / "server.out", "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "kernel", "run"], cwd=project, env=env, stdout=output, stderr=subprocess.STDOUT
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while curl(base + "/_meta/health")[0] == 0:
                assert process.poll() is None, (tmp_path / "server.out").read_text()
                assert time.monotonic() < deadline, (tmp_path / "server.out").read_text()
                time.sleep(0.1)

            status, body = curl(f"{base}/test_app/test_handler?info=helloworld")
            assert status == 200
            assert body == b'{"stat":"OK","data":"helloworld"}'  # reqid and timing travel as headers
            # the copied demo's own routes serve as well, and demo_api itself still does
            assert json.loads(curl(f"{base}/test_app/hello?str_info=x")[1]) == {"stat": "OK", "str_info": "x"}
            assert json.loads(curl(f"{base}/demo_api/add?a=2&b=3")[1]) == {"stat": "OK", "sum": 5}
            status, body = curl(f"{base}/test_app/test_handler")
            assert status == 400 and json.loads(body)["errors"] == [
                {"param": "info", "reason": "required parameter is missing"}
            ]
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
