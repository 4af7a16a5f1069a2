"""Real ``python -m kernel run`` servers for the trace plugin's end-to-end tests."""

from __future__ import annotations

import importlib.metadata
import json
import os
import textwrap
import urllib.request
import uuid
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


#: Two servers over one MQ: ``/probe/front`` enqueues to ``/probe/back`` and answers the
#: message id and the ``tracestate`` in the message's metadata; ``/probe/back`` logs "back ran".
MQ_PROBE = """
import structlog
from butterfly_mq import enqueue, get_message
from kernel import Response, hookimpl

log = structlog.get_logger("probe")


def front(request):
    msg_id = enqueue("/probe/back", {"n": 1}, kernel=request.kernel)
    message = get_message(msg_id, topic="/probe/back", kernel=request.kernel)
    return Response.json({"stat": "OK", "msg_id": msg_id, "tracestate": message.get("tracestate")})


def back(request):
    log.info("back ran")
    return Response.json({"stat": "OK"})


def ready(request):
    return Response.json({"stat": "OK"})


@hookimpl
def butterfly_register_routes(register):
    register("/probe/front", front, kind="json")
    register("/probe/back", back, kind="json", meta={"mq_topic": True})
    register("/probe/ready", ready, kind="json")
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


def mq_pair(tmp_path: Path, redis_url: str) -> tuple[Server, Server]:
    """``(producer, consumer)``: two servers with trace and mq on one Redis (a fresh prefix) and
    :data:`MQ_PROBE`; the producer does not consume. Not started."""
    env = {"BUTTERFLY_MQ_REDIS_URL": redis_url, "BUTTERFLY_MQ_PREFIX": f"tp{uuid.uuid4().hex[:8]}"}
    plugins = ("trace", "mq")
    producer = Server(tmp_path / "a", {**env, "BUTTERFLY_MQ_CONSUME": "false"}, MQ_PROBE, plugins)
    return producer, Server(tmp_path / "b", env, MQ_PROBE, plugins)


def json_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
