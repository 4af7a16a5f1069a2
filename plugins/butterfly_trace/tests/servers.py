"""Real ``python -m kernel run`` servers for the trace plugin's end-to-end tests."""

from __future__ import annotations

import importlib.metadata
import json
import os
import textwrap
import urllib.request
from pathlib import Path

from kernel.plugins import ENTRY_POINT_GROUP
from kernel.testing import ServerProcess

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


class Server(ServerProcess):
    """``python -m kernel run`` in ``cwd`` with only ``plugins`` (installed) and a probe plugin.

    stdout goes to ``cwd/out.log``, stderr to ``cwd/err.log``; ready once ``/probe/ready`` answers.
    """

    def __init__(
        self, cwd: Path, env: dict[str, str] | None = None, probe: str = PROBE, plugins: tuple[str, ...] = ("trace",)
    ) -> None:
        cwd.mkdir(parents=True, exist_ok=True)
        (cwd / "mods").mkdir(exist_ok=True)
        (cwd / "mods" / "probe_ops.py").write_text(textwrap.dedent(probe))
        others = sorted({ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)} - set(plugins))
        environ = {key: value for key, value in os.environ.items() if not key.startswith("BUTTERFLY_")}
        environ.update(
            BUTTERFLY_DISABLE_PLUGINS=",".join(others),
            BUTTERFLY_PLUGINS="probe_ops",
            PYTHONPATH=str(cwd / "mods"),
            PYTHONUNBUFFERED="1",
            **(env or {}),
        )
        super().__init__(cwd, environ, stdout="out.log", stderr="err.log")
        self.log_dir = cwd / "logs"

    def ready(self) -> bool:
        try:
            self.get("/probe/ready")
            return True
        except OSError:
            return False

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[dict, dict]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers=headers or {})
        with urllib.request.urlopen(request, timeout=30) as reply:
            return json.loads(reply.read()), {key.lower(): value for key, value in reply.headers.items()}


def json_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
