"""High availability: three real server processes share one store; one is killed with
SIGKILL midway; every 1-second occurrence in the window is claimed exactly once and
none is missed — on SQLite, MariaDB and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter

import pytest

from kernel.testing import free_port

pytestmark = pytest.mark.slow

BEFORE_KILL = 5.0
AFTER_KILL = 7.0
INSTANCE_TIMEOUT = 2.0


def http(port: int, name: str, params: dict | None = None, *, post: bool = False) -> dict:
    url = f"http://127.0.0.1:{port}/ruqi/{name}"
    if post:
        request = urllib.request.Request(
            url, data=json.dumps(params or {}).encode(), method="POST", headers={"Content-Type": "application/json"}
        )
    else:
        request = urllib.request.Request(url + "?" + urllib.parse.urlencode(params or {}))
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read())


class Instance:
    """One ``python -m kernel run`` process."""

    def __init__(self, tmp_path, index: int, config, env) -> None:
        self.port = free_port()
        self.log = open(tmp_path / f"instance-{index}.log", "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kernel", "--config", str(config), "run", "--port", str(self.port)],
            cwd=tmp_path,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"instance on port {self.port} exited with {self.process.returncode}; see {self.log.name}"
                )
            try:
                reply = http(self.port, "status")
                if reply["data"]["running"]:
                    return reply["data"]["instance_id"]
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"instance on port {self.port} did not start; see {self.log.name}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def test_three_instances_one_killed_every_occurrence_claimed_once(database_url, tmp_path, handlers_dir, new_job_id):
    ticks = tmp_path / "ticks.txt"
    config = tmp_path / "butterfly.toml"
    config.write_text(
        f'[server]\ndata_dir = "{tmp_path / "data"}"\nlog_dir = "{tmp_path / "logs"}"\nshutdown_timeout = 5\n'
        f'[store]\nurl = "{database_url}"\n'
        f'[router]\nhandlers_dir = "{handlers_dir}"\n'
        f"[ruqi]\nsync_interval = 0.5\ninstance_timeout = {INSTANCE_TIMEOUT}\n"
    )
    # NOTE: only the plugins under test; the MQ stays off (no redis_url) anyway.
    env = {**os.environ, "RUQI_TEST_TICKS": str(ticks), "BUTTERFLY_DISABLE_PLUGINS": "mq,auth,wuxing"}
    env.pop("BUTTERFLY_CONFIG", None)
    cluster = [Instance(tmp_path, index, config, env) for index in range(3)]
    try:
        ids = [instance.wait_ready() for instance in cluster]
        job_id = new_job_id("ha")
        added_ms = int(time.time() * 1000)
        reply = http(
            cluster[1].port,
            "add_job",
            {
                "job_id": job_id,
                "job_trigger": "interval",
                "rule": "1s",
                "job_type": "handler",
                "target": "/ruqi_test/tick",
                "payload": {"note": "ha"},
                "max_concurrent": 5,
            },
            post=True,
        )
        assert reply["stat"] == "OK", reply
        time.sleep(BEFORE_KILL)
        victim = cluster[0]
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait(10)
        killed_ms = int(time.time() * 1000)
        time.sleep(AFTER_KILL)
        window_end = int(time.time() * 1000) - 1500  # occurrences before this must be claimed by now
        history = http(cluster[2].port, "get_history", {"job_id": job_id, "page_size": 200})["data"]["list"]
    finally:
        for instance in cluster:
            instance.stop()

    scheduled = [row for row in history if not row["manual"]]
    counts = Counter(row["scheduled_ms"] for row in scheduled)
    assert all(count == 1 for count in counts.values()), "an occurrence was claimed twice"
    first = min(counts)
    assert added_ms < first <= added_ms + 2100  # one interval after the next whole second
    expected = list(range(first, window_end + 1, 1000))
    assert len(expected) >= BEFORE_KILL + AFTER_KILL - 4  # the window really spans the kill
    claimed = sorted(ms for ms in counts if ms <= window_end)
    assert claimed == expected, f"missed occurrences: {sorted(set(expected) - set(claimed))}"
    assert all(row["status"] != "skipped_misfire" for row in scheduled)

    # survivors kept firing after the kill; the victim's unfinished claims became "lost"
    after_kill = [row for row in scheduled if row["scheduled_ms"] > killed_ms + 1000]
    assert after_kill and all(row["instance_id"] in ids[1:] for row in after_kill)
    for row in scheduled:
        if row["instance_id"] == ids[0]:
            assert row["status"] in ("succeeded", "lost"), row
        elif row["scheduled_ms"] <= window_end:
            assert row["status"] == "succeeded", row

    # each succeeded run executed the handler exactly once, with its own fire id
    fired = Counter(int(line.split()[0]) for line in ticks.read_text().splitlines() if line.endswith(" ha"))
    assert all(count == 1 for count in fired.values())
    succeeded = {row["fire_id"] for row in scheduled if row["status"] == "succeeded"}
    assert succeeded <= set(fired)
