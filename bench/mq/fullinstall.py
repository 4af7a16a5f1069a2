"""Start ``python -m kernel run`` from the repository root as users run it, with the MQ on.

Every installed plugin is on (nothing in ``BUTTERFLY_DISABLE_PLUGINS``), the access log is on,
the demo apps of ``handlers/`` are loaded, and ``[mq] redis_url`` names the benchmark's own
redis-server. Logs and data go to a temp directory. Used by ``run.py`` (the headline drain
row) and ``idle.py`` (idle CPU).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FullInstall:
    """One ``python -m kernel run`` process.

    :param redis_url: the MQ's Redis
    :param work: a directory for its logs, data and stdout
    :param settings: extra ``BUTTERFLY_<SECTION>_<KEY>`` values, e.g. ``{"MQ_PREFIX": "b1"}``
    :param cpu: pin the server to this CPU with ``taskset`` (``None``: not pinned)
    """

    def __init__(self, redis_url: str, work: Path, settings: dict[str, str] | None = None, cpu: int | None = None):
        self.port = free_port()
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        env = {key: value for key, value in os.environ.items() if not key.startswith("BUTTERFLY_")}
        env.update(
            BUTTERFLY_SERVER_PORT=str(self.port),
            BUTTERFLY_SERVER_LOG_DIR=str(work / "logs"),
            BUTTERFLY_SERVER_DATA_DIR=str(work / "data"),
            BUTTERFLY_TRACE_ACCESS_LOG="true",
            BUTTERFLY_MQ_REDIS_URL=redis_url,
        )
        env.update({f"BUTTERFLY_{key}": value for key, value in (settings or {}).items()})
        self.env = env
        pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
        self.argv = [*pin, sys.executable, "-m", "kernel", "run"]
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> FullInstall:
        """Start it and wait until ``/_meta/health`` answers with the MQ connected."""
        out = open(self.work / "server.out", "wb")
        self.process = subprocess.Popen(self.argv, cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited with {self.process.returncode}; see {self.work / 'server.out'}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/_meta/health", timeout=2) as reply:
                    body = json.loads(reply.read())
                if "mq" in json.dumps(body):
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"the server did not answer /_meta/health within {timeout:g} s")

    @property
    def pid(self) -> int:
        """The server's process id (the Python process, also when pinned with taskset)."""
        assert self.process is not None
        return self.process.pid

    def cpu_seconds(self) -> float:
        """utime + stime of the server process so far (every thread), from ``/proc/<pid>/stat``."""
        return process_cpu_seconds(self.pid)

    def stop(self) -> None:
        """SIGTERM, wait for the graceful stop."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    # NOTE: after the ")" of comm: state is field 0, utime field 11, stime field 12
    return (int(fields[11]) + int(fields[12])) / ticks


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """utime + stime per thread id of ``pid``."""
    ticks = os.sysconf("SC_CLK_TCK")
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / ticks
    return out
