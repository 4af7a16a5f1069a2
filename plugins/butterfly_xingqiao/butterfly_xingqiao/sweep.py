"""The sweep: job timeouts, task timeouts, and repair of tasks whose message went astray.

Jobs advance without it — the end of each task advances its job. Every instance runs
a sweep every ``[xingqiao] sweep_interval`` seconds for what no task end can report:

1. a ``started`` job past its ``job_timeout`` fails (``ERR_JOB_EXE_TIMEOUT``);
2. a ``started`` task past its ``timeout`` has its attempt failed (``ERR_TIMEOUT``) and
   is retried or fails — its run may still be going; its late report is then ignored;
3. a ``pending``/``started`` task not seen for ``repair_after`` seconds has its MQ
   message looked up: a message that is gone (never sent because its instance died
   right after the commit, or deleted from the dashboard) is sent again under the same
   id; one that ended without its report being applied (the store was down, or the
   MQ quarantined it) is reported now.

Each change goes through the same job-locked transitions as a task's end, so two
instances sweeping at once, or a sweep racing a report, change each thing once.
"""

from __future__ import annotations

import random
import threading
from typing import Any

import structlog
from pony.orm import commit, db_session, select

from butterfly_xingqiao.dispatch import LIVE_STATES, Dispatch, message_of
from butterfly_xingqiao.engine import now_ms, report_run
from butterfly_xingqiao.models import ACTIVE_TASK_STATES

log = structlog.get_logger("butterfly.xingqiao")
#: rows one pass looks at per kind (the rest wait for the next pass)
BATCH = 200


def sweep_once(state: Any, now: int | None = None) -> dict[str, int]:
    """One pass; returns what it did: ``jobs_timed_out``, ``tasks_timed_out``, ``resent``, ``reported``."""
    now = now_ms() if now is None else now
    machine = state.transitions
    Job, Task = machine.Job, machine.Task
    done = {"jobs_timed_out": 0, "tasks_timed_out": 0, "resent": 0, "reported": 0}
    with db_session:
        late_jobs = select(j.job_id for j in Job if j.job_status == "started" and j.deadline_ms < now)[:BATCH]
        late_tasks = select((t.msg_id, t.timeout) for t in Task if t.task_status == "started" and t.deadline_ms < now)[
            :BATCH
        ]
        unseen = [
            (task.task_id, task.task_cmd, task.msg_id)
            for task in select(t for t in Task if t.task_status in ACTIVE_TASK_STATES and t.check_ms < now)
            .order_by(Task.check_ms)
            .limit(BATCH)
        ]
    for job_id in late_jobs:
        done["jobs_timed_out"] += time_out_job(state, job_id, now)
    for msg_id, timeout in late_tasks:
        reason = f"still running after the task's {timeout:g} s timeout"
        done["tasks_timed_out"] += report_run(state, msg_id, "failed", "ERR_TIMEOUT", None, reason, None)
    for task_id, route, msg_id in unseen:
        outcome = repair(state, task_id, route, msg_id)
        if outcome:
            done[outcome] += 1
    if any(done.values()):
        log.info("xingqiao_sweep", **done)
    return done


def time_out_job(state: Any, job_id: int, now: int) -> int:
    """Fail a ``started`` job whose deadline passed (rechecked under its lock)."""
    machine = state.transitions
    with db_session(optimistic=False):
        job = machine.Job.get_for_update(job_id=job_id)
        if job is None or job.job_status != "started" or job.deadline_ms is None or job.deadline_ms >= now:
            return 0
        machine.set_job(job, "failed", "ERR_JOB_EXE_TIMEOUT", f"ran longer than job_timeout={job.job_timeout:g}s")
        commit()
    return 1


def repair(state: Any, task_id: int, route: str, msg_id: str) -> str | None:
    """Look up one unseen task's message; send it again or report its end.

    :return: ``"resent"``, ``"reported"`` or ``None``
    """
    message = message_of(state.kernel, route, msg_id)
    machine = state.transitions
    outcome = None
    if message is None:
        with db_session:
            task = machine.Task.get(task_id=task_id)
            job = machine.Job.get(job_id=task.job_id) if task is not None else None
            resend = (
                task is not None
                and job is not None
                and job.job_status == "started"
                and task.msg_id == msg_id
                and task.task_status in ACTIVE_TASK_STATES
                and task.run_params is not None
            )
            dispatch = Dispatch(route, task.run_params, msg_id, job.job_reqid) if resend and job is not None else None
        if dispatch is not None:
            state.send([dispatch])
            outcome = "resent"
            log.warning("xingqiao_task_resent", msg_id=msg_id, route=route, note="its message was not in the MQ")
    elif message.get("state") not in LIVE_STATES:
        kind = "finished" if message.get("state") == "finished" else "failed"
        error = message.get("error") or f"message ended {message.get('state')}"
        changed = report_run(
            state, msg_id, kind, message.get("stat") or "", message.get("result"), error, message.get("cost_ms")
        )
        outcome = "reported" if changed else None
    with db_session(optimistic=False):
        task = machine.Task.get_for_update(task_id=task_id)
        if task is not None and task.msg_id == msg_id and task.task_status in ACTIVE_TASK_STATES:
            task.check_ms = now_ms() + int(state.settings.repair_after * 1000)
        commit()
    return outcome


class Sweeper:
    """The sweep thread of one instance.

    :param state: the plugin state
    :param interval: seconds between passes (each wait is jittered by ±20 %)
    """

    def __init__(self, state: Any, interval: float) -> None:
        self.state = state
        self.interval = interval
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="xingqiao-sweep", daemon=True)

    @property
    def running(self) -> bool:
        """Whether the thread is alive."""
        return self.thread.is_alive()

    def start(self) -> None:
        """Start sweeping (the first pass comes at once: repairs after a restart)."""
        self.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the current pass."""
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(timeout)

    def _loop(self) -> None:
        wait = 0.0
        while not self.stopping.wait(wait):
            try:
                sweep_once(self.state)
            except Exception:
                log.exception("xingqiao_sweep_failed")
            wait = self.interval * random.uniform(0.8, 1.2)
