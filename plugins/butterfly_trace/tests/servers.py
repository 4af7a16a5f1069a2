"""Real ``python -m kernel run`` servers for the trace plugin's end-to-end tests."""

from __future__ import annotations

import importlib.metadata
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

from kernel.daemon import child_pids
from kernel.plugins import ENTRY_POINT_GROUP
from kernel.testing import free_port

PROBE = """
import os
from kernel import Response, hookimpl


def pid(request):
    return Response.json({"stat": "OK", "pid": os.getpid(), "n": request.query.get("n")})


@hookimpl
def butterfly_register_routes(register):
    register("/probe/pid", pid, kind="json")
    register("/probe/ready", pid, kind="json")
"""


class Server:
    """``python -m kernel run`` in ``cwd`` with only ``plugins`` (installed) and a probe plugin."""

    def __init__(
        self, cwd: Path, env: dict[str, str] | None = None, probe: str = PROBE, plugins: tuple[str, ...] = ("trace",)
    ) -> None:
        self.cwd = cwd
        cwd.mkdir(parents=True, exist_ok=True)
        (cwd / "mods").mkdir(exist_ok=True)
        (cwd / "mods" / "probe_ops.py").write_text(textwrap.dedent(probe))
        others = sorted({ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)} - set(plugins))
        self.env = {key: value for key, value in os.environ.items() if not key.startswith("BUTTERFLY_")}
        self.env.update(
            BUTTERFLY_DISABLE_PLUGINS=",".join(others),
            BUTTERFLY_PLUGINS="probe_ops",
            PYTHONPATH=str(cwd / "mods"),
            PYTHONUNBUFFERED="1",
            **(env or {}),
        )
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.log_dir = cwd / "logs"

    def start(self, *args: str) -> Server:
        with (self.cwd / "out.log").open("ab") as out, (self.cwd / "err.log").open("ab") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "kernel", "run", "--port", str(self.port), *args],
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=err,
            )
        wait_for(self.ready, what="the server to answer")
        return self

    def ready(self) -> bool:
        assert self.process.poll() is None, self.output()
        try:
            self.get("/probe/ready")
            return True
        except OSError:
            return False

    def output(self) -> str:
        return (self.cwd / "out.log").read_text() + (self.cwd / "err.log").read_text()

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[dict, dict]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers=headers or {})
        with urllib.request.urlopen(request, timeout=30) as reply:
            return json.loads(reply.read()), {key.lower(): value for key, value in reply.headers.items()}

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            for pid in child_pids(self.process.pid):
                os.kill(pid, signal.SIGKILL)
            self.process.kill()
            self.process.wait()


def wait_for(condition, timeout: float = 30, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def json_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
