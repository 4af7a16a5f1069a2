"""Several instance processes sharing one Redis and one database: no leader, kill -9, Twemproxy.

The instances are real processes (``xq_instance.py``): MQ consumers plus the xingqiao
sweep. The test process creates jobs through a kernel of its own that neither
consumes nor sweeps, and reads the store to count what happened.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from butterfly_mq import get_message
from butterfly_xingqiao import jobs

from .conftest import plugin_modules, settings_for

pytestmark = pytest.mark.slow
PROCESS = Path(__file__).with_name("xq_instance.py")


class Instance:
    """One instance process; ``start()`` again after ``kill()``."""

    def __init__(self, name: str, settings: dict, work_dir: Path, env: dict) -> None:
        self.name, self.settings, self.env = name, settings, env
        self.work_dir = work_dir / name
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen | None = None

    def start(self) -> Instance:
        self.process = subprocess.Popen(
            [sys.executable, str(PROCESS), json.dumps(self.settings), str(self.work_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=self.env,
        )
        for line in self.process.stdout:
            if line.strip() == "ready":
                return self
        raise AssertionError(f"instance {self.name} exited with {self.process.wait()}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def logged(self) -> str:
        logs = [self.work_dir / "instance.log", *(self.work_dir / "logs").glob("*.log*")]
        return "".join(path.read_text(errors="replace") for path in logs if path.exists())


@pytest.fixture
def cluster(make_kernel, tmp_path, prefix, counter, redis_server, monkeypatch):
    """Factory: ``cluster(store_url, mq_url, n)`` → (controller kernel, [instances])."""
    started: list[Instance] = []

    def factory(store_url: str, mq_url: str, count: int = 2):
        import os

        env = {**os.environ, "XQ_TEST_REDIS_URL": redis_server.url}
        settings = settings_for(store_url, mq_url, prefix, **{"mq.lease": 1.0, "mq.max_recoveries": 1000})
        controller = make_kernel(
            plugins=plugin_modules(), settings={**settings, "mq.consume": False, "xingqiao.sweep": False}
        )
        instances = [Instance(f"i{n}", settings, tmp_path, env).start() for n in range(count)]
        started.extend(instances)
        return controller, instances

    yield factory
    for instance in started:
        instance.kill()


def check_exactly_once(state, job_id: int, expected_tasks: int, instances: list[Instance]) -> dict:
    """The job finished once, every task finished once, the counters add up; returns the detail."""
    detail = jobs.get_job_detail(state, job_id)
    assert detail["job_status"] == "finished", detail
    assert detail["tasks_total"] == detail["tasks_finished"] == expected_tasks
    tasks = jobs.get_tasklist(state, job_id)
    assert [t["task_status"] for t in tasks] == ["finished"] * expected_tasks
    rows = jobs.get_transitions(state, job_id)
    finished = [(row["task_index"], row["attempt"]) for row in rows if row["to"] == "finished"]
    assert len(finished) == len(set(finished)) == expected_tasks + 1  # each task once, the job once
    assert sum(1 for row in rows if row["task_index"] == -1 and row["to"] == "finished") == 1
    assert {index for index, _ in finished} == {*range(expected_tasks), -1}
    machine = state.transitions
    from pony.orm import db_session, select

    with db_session:
        counters = set(select(t.waiting_on for t in machine.Task if t.job_id == job_id))
    assert counters == {0}  # each upstream end was counted exactly once by each dependent
    for instance in instances:
        text = instance.logged()
        assert "mq_started" in text  # the instance's log is read
        # no second transition was even attempted (the unique key would have refused it), and
        # no report failed and had to wait for a redelivery or the sweep
        for sign in (
            "IntegrityError",
            "UNIQUE constraint",
            "duplicate key",
            "mq_finished_hook_error",
            "xingqiao_sweep_failed",
            "xingqiao_send",
        ):
            assert sign not in text, (instance.name, sign)
    return detail


@pytest.mark.parametrize(
    ("store_url", "through"), [("sqlite", "redis"), ("postgresql", "twemproxy")], indirect=["store_url"]
)
def test_two_instances_run_a_100_task_fan_out_fan_in_once(
    cluster, store_url, through, counter, counter_key, xq, request
):
    mq_url = (
        request.getfixturevalue("twemproxy").url
        if through == "twemproxy"
        else request.getfixturevalue("redis_server").url
    )
    controller, instances = cluster(store_url, mq_url)
    state = controller.extensions["xingqiao"]
    job_id = jobs.create_job(state, "fan", job_extra={"key": counter_key, "width": 98})["job_id"]
    xq.wait_job(controller, job_id, timeout=90)
    check_exactly_once(state, job_id, 100, instances)
    runs = {tag: int(n) for tag, n in counter.hgetall(counter_key).items()}
    assert set(runs) == {"start", "collect", *(f"part{i}" for i in range(98))}
    assert jobs.get_job_detail(state, job_id)["ret_data"] == {"collect": {"total": sum(range(98)), "count": 98}}
    workers = {
        get_message(task["msg_id"], topic=task["task_cmd"], kernel=controller)["worker"]
        for task in jobs.get_tasklist(state, job_id)
    }
    assert len(workers) == 2  # both instances ran tasks; neither leads


@pytest.mark.parametrize("store_url", ["sqlite", "postgresql"], indirect=True)
def test_kill_9_instances_mid_job_repeatedly(cluster, store_url, redis_server, counter, counter_key, xq):
    controller, instances = cluster(store_url, redis_server.url)
    state = controller.extensions["xingqiao"]
    width, tail = 40, 20
    job_id = jobs.create_job(
        state, "mesh", job_extra={"key": counter_key, "width": width, "tail": tail, "seconds": 0.25}
    )["job_id"]

    def running_on() -> set[str]:
        """The MQ workers (instance names, which embed the pid) running this job's tasks now."""
        tasks = [t for t in jobs.get_tasklist(state, job_id) if t["task_status"] == "started"]
        messages = [get_message(t["msg_id"], topic=t["task_cmd"], kernel=controller) for t in tasks]
        return {m["worker"] for m in messages if m and m.get("state") == "started" and m.get("worker")}

    def still_running() -> bool:
        return jobs.get_job_detail(state, job_id)["job_status"] == "started"

    kills_mid_task = 0
    while kills_mid_task < 4 and still_running():
        xq.wait_for(lambda: running_on() or not still_running(), timeout=30)
        time.sleep(random.uniform(0.05, 0.3))
        workers = running_on()
        busy = [i for i in instances if any(f":{i.process.pid}:" in worker for worker in workers)]
        if busy:
            busy[0].kill()  # kill -9 while it runs a task of the job
            kills_mid_task += 1
            busy[0].start()
    detail = xq.wait_job(controller, job_id, timeout=120)
    total_tasks = 1 + width + 1 + tail
    check_exactly_once(state, job_id, total_tasks, instances)
    assert detail["ret_data"] == {f"work_{width + 1 + tail}": {"value": sum(range(width)), "tag": f"tail{tail - 1}"}}
    runs = {tag: int(n) for tag, n in counter.hgetall(counter_key).items()}
    assert len(runs) == total_tasks and min(runs.values()) >= 1  # nothing lost
    assert kills_mid_task >= 3, kills_mid_task
    begun = sum(int(n) for n in counter.hgetall(f"{counter_key}:begun").values())
    work_tasks = total_tasks - 1  # every task but the fan-in runs /xq_test/work
    assert begun > work_tasks  # runs cut by a kill began again (at-least-once), yet each task finished once
    print(f"kills mid-task={kills_mid_task} runs begun={begun} for {total_tasks} tasks")
