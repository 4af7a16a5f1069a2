"""The transitions of jobs and tasks — each one made once, under the job's row lock.

Every function that changes a job or its tasks opens a transaction that first locks
the job row (:func:`lock_job`), decides on the state it then reads, records each
transition (unique key: a second attempt fails the transaction) and commits. Only
after the commit are the chosen tasks sent to the MQ (:mod:`butterfly_xingqiao.dispatch`),
each under its own deterministic ``msg_id``; sending again is a no-op while the
message is kept, so a crash anywhere is repaired by sending again:

- the handler ran but its instance died before the job advanced → the MQ runs the
  message again (at-least-once) and :func:`report_run` advances the job then;
- the job advanced but the instance died before sending the next tasks → the next
  report of that message (its redelivery), or the sweep, finds them ``pending`` and
  sends them again (:func:`redispatch`).

Nothing waits in a loop for a job: the end of each task advances its job.
"""

from __future__ import annotations

import os
import queue
import random
import threading
import time
from typing import Any

import structlog
from pony.orm import commit, db_session, select

from butterfly_xingqiao.definition import REF_KEY
from butterfly_xingqiao.dispatch import Dispatch
from butterfly_xingqiao.models import ACTIVE_TASK_STATES, JOB_ROW, entities

log = structlog.get_logger("butterfly.xingqiao")

MSG_PREFIX = "xq."
#: stats of a failed run that another run cannot fix
NEVER_RETRIED = frozenset({"ERR_BAD_PARAMS", "ERR_NOT_FOUND"})


def now_ms() -> int:
    """Milliseconds since the epoch."""
    return int(time.time() * 1000)


def new_token() -> str:
    """A job's random token, part of each of its message ids (ids stay unique if the store is reset)."""
    return os.urandom(4).hex()


def task_msg_id(job_id: int, token: str, task_index: int, attempt: int) -> str:
    """The MQ message id of one attempt of one task."""
    return f"{MSG_PREFIX}{job_id}.{token}.{task_index}.{attempt}"


def parse_msg_id(msg_id: str) -> tuple[int, str, int, int] | None:
    """``(job_id, token, task_index, attempt)`` of a task's message id, else ``None``."""
    if not isinstance(msg_id, str) or not msg_id.startswith(MSG_PREFIX):
        return None
    parts = msg_id.split(".")
    if len(parts) != 5:
        return None
    try:
        return int(parts[1]), parts[2], int(parts[3]), int(parts[4])
    except ValueError:
        return None


def is_success(stat: str | None) -> bool:
    """A task succeeded when its handler answered ``OK`` (or a raw handler a 2xx status)."""
    return stat == "OK" or (isinstance(stat, str) and len(stat) == 3 and stat.startswith("2") and stat.isdigit())


def backoff_seconds(tries: int, base: float, cap: float) -> float:
    """Seconds before retry number ``tries``: exponential, half fixed and half random."""
    delay = min(cap, base * (2 ** max(0, tries - 1)))
    return delay / 2 + random.uniform(0, delay / 2)


class Transitions:
    """The job/task state machine of one kernel; methods run inside a job-locked ``db_session``.

    :param state: the plugin's :class:`~butterfly_xingqiao.service.XingqiaoState`
    """

    def __init__(self, state: Any) -> None:
        self.state = state
        self.Job, self.Task, self.Transition = entities(state.db)

    # -- recording ----------------------------------------------------------------------------

    def record(self, job_id: int, index: int, attempt: int, old: str, new: str, note: str = "") -> None:
        """One row in ``xingqiao_transition`` (its unique key refuses a repeat)."""
        self.Transition(
            job_id=job_id,
            task_index=index,
            attempt=attempt,
            from_status=old,
            to_status=new,
            at_ms=now_ms(),
            note=note[:255],
        )

    def set_task(self, task, status: str, note: str = "") -> None:
        """Move ``task`` to ``status`` and record it."""
        self.record(task.job_id, task.task_index, task.attempt, task.task_status, status, note)
        task.task_status = status

    def set_job(self, job, status: str, ret_stat: str, note: str = "") -> None:
        """Move ``job`` to ``status`` and record it (a terminal status also stamps ``e_time``)."""
        self.record(job.job_id, JOB_ROW, job.run, job.job_status, status, note)
        job.job_status = status
        job.ret_stat = ret_stat
        if status != "started":
            job.e_time = now_ms()
            job.deadline_ms = None

    # -- dispatching ----------------------------------------------------------------------------

    def promote(self, job, task, delay: float = 0.0) -> Dispatch | None:
        """``waiting`` (or a failed attempt) → ``pending`` with a new attempt: resolve params, plan the send.

        A task whose params cannot be resolved (a missing key in an upstream result) or do
        not fit the handler fails at once, without a run.

        :return: the message to send after the commit, or ``None`` when the task failed
        """
        settings = self.state.settings
        old = task.task_status
        task.attempt += 1
        task.tries += 1
        task.msg_id = task_msg_id(job.job_id, job.job_token, task.task_index, task.attempt)
        now = now_ms()
        task.enqueued_ms = now + int(delay * 1000)
        task.check_ms = task.enqueued_ms + int(settings.repair_after * 1000)
        task.started_ms = task.ended_ms = task.deadline_ms = None
        self.record(job.job_id, task.task_index, task.attempt, old, "pending", "retry" if old != "waiting" else "")
        task.task_status = "pending"
        try:
            params = self.resolve(task)
            self.state.check_params(task.task_cmd, params)
        except ValueError as exc:
            task.run_params = None
            self.fail_task(job, task, "ERR_BAD_PARAMS", str(exc))
            return None
        task.run_params = params
        return self.dispatch_of(job, task, delay)

    def dispatch_of(self, job, task, delay: float = 0.0) -> Dispatch:
        """The message that runs ``task``'s current attempt."""
        return Dispatch(task.task_cmd, task.run_params or {}, task.msg_id, job.job_reqid, delay)

    def resolve(self, task) -> dict[str, Any]:
        """The task's params with upstream results filled in.

        :raises ValueError: naming the upstream task and the missing key
        """
        params = task.task_params or {}
        wanted: set[int] = set()
        _collect_refs(params, wanted)
        if not wanted:
            return dict(params)
        Task = self.Task
        upstream = {
            row.task_index: row for row in select(t for t in Task if t.job_id == task.job_id and t.task_index in wanted)
        }
        return _fill(params, upstream)

    def redispatch(self, job, tasks) -> list[Dispatch]:
        """Send again the ``pending`` ones of ``tasks`` (crash repair; a no-op for messages still kept)."""
        if job.job_status != "started":
            return []
        return [self.dispatch_of(job, task) for task in tasks if task.task_status == "pending" and task.run_params]

    # -- ends of runs ------------------------------------------------------------------------------

    def finish_task(self, job, task, result: dict[str, Any], stat: str, cost: float | None) -> list[Dispatch]:
        """A run succeeded: record it, release the dependents, maybe finish the job."""
        task.ret_stat = stat
        task.ret_data = result
        task.cost = cost
        task.error = ""
        task.ended_ms = now_ms()
        task.deadline_ms = task.check_ms = None
        self.set_task(task, "finished")
        job.tasks_finished += 1
        sends: list[Dispatch] = []
        ready = []
        for index in task.downstream:
            child = self.Task.get_for_update(job_id=job.job_id, task_index=index)
            child.waiting_on -= 1
            if child.waiting_on == 0 and child.task_status == "waiting":
                ready.append(child)
        if job.job_status == "started":
            for child in ready:
                dispatch = self.promote(job, child)
                if dispatch is not None:
                    sends.append(dispatch)
            if job.job_status == "started" and job.tasks_finished == job.tasks_total:
                self.finish_job(job)
        return sends

    def fail_attempt(self, job, task, stat: str, error: str, result: Any, cost: float | None) -> list[Dispatch]:
        """A run failed: retry it after a backoff while retries remain (and the job runs), else fail it."""
        task.ret_stat = stat
        task.ret_data = result if isinstance(result, dict) else None
        task.cost = cost
        text = f"attempt {task.attempt}: {stat}: {error}".strip(": ")
        if job.job_status == "started" and stat not in NEVER_RETRIED and task.tries <= task.retries:
            task.error = text[:4000]
            settings = self.state.settings
            delay = backoff_seconds(task.tries, settings.backoff_base, settings.backoff_max)
            dispatch = self.promote(job, task, delay)
            return [dispatch] if dispatch is not None else []
        self.fail_task(job, task, stat, text)
        return []

    def fail_task(self, job, task, stat: str, error: str) -> None:
        """The task failed for good; a running job fails with it (its running tasks still report)."""
        task.ret_stat = stat
        task.error = error[:4000]
        task.ended_ms = now_ms()
        task.deadline_ms = task.check_ms = None
        self.set_task(task, "failed", error[:200])
        if job.job_status == "started":
            self.set_job(job, "failed", "ERR_JOB_EXE_FAILED", f"task {task.task_label} failed")

    def finish_job(self, job) -> None:
        """Every task finished: the job's ``ret_data`` is the results of its ``save=True`` tasks."""
        Task = self.Task
        saved = select(t for t in Task if t.job_id == job.job_id and t.is_save).order_by(Task.task_index)
        job.ret_data = {task.task_label: task.ret_data or {} for task in saved}
        self.set_job(job, "finished", "OK")


def _collect_refs(value: Any, wanted: set[int]) -> None:
    if isinstance(value, dict):
        if REF_KEY in value and len(value) == 1:
            wanted.add(int(value[REF_KEY][0]))
            return
        for item in value.values():
            _collect_refs(item, wanted)
    elif isinstance(value, list):
        for item in value:
            _collect_refs(item, wanted)


def _fill(value: Any, upstream: dict[int, Any]) -> Any:
    if isinstance(value, dict):
        if REF_KEY in value and len(value) == 1:
            index, path = value[REF_KEY]
            return _lookup(upstream[int(index)], path)
        return {key: _fill(item, upstream) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, upstream) for item in value]
    return value


def _lookup(task, path: list[Any]) -> Any:
    value: Any = task.ret_data or {}
    for depth, step in enumerate(path):
        try:
            value = value[step]
        except (KeyError, IndexError, TypeError):
            where = task.task_label + "".join(f"[{item!r}]" for item in path[: depth + 1])
            raise ValueError(f"{where}: no such value in the result of task {task.task_label}") from None
    return value


def report_run(state: Any, msg_id: str, outcome: str, stat: str, result: Any, error: str, cost_ms: int | None) -> bool:
    """Apply the end of one run of a task's message (MQ hook or sweep); safe to call twice.

    :param state: the plugin state
    :param msg_id: the message id (``xq.…``)
    :param outcome: the MQ's ``finished`` | ``failed`` | ``retry`` | ``dead``
    :param stat: the handler's stat
    :param result: the reply (a dict for JSON handlers)
    :param error: the MQ's error text
    :param cost_ms: how long the run took
    :return: ``True`` when this call changed the task (``False``: stale, duplicate or foreign)
    """
    parsed = parse_msg_id(msg_id)
    if parsed is None or outcome == "retry":
        return False
    job_id, token, index, _attempt = parsed
    machine = state.transitions
    sends: list[Dispatch] = []
    changed = False
    stat, error = storable(stat or ""), storable(error or "")
    result = storable(result) if isinstance(result, dict) else result
    with db_session(optimistic=False):
        job = machine.Job.get_for_update(job_id=job_id)
        if job is None or job.job_token != token:
            return False
        task = machine.Task.get_for_update(job_id=job_id, task_index=index)
        if task is None:
            return False
        if task.msg_id != msg_id or task.task_status not in ACTIVE_TASK_STATES:
            # a repeat (redelivery after a crash, or two instances ran it): the transition was
            # made; make sure what it released was sent
            children = [machine.Task.get(job_id=job_id, task_index=i) for i in task.downstream]
            sends = machine.redispatch(job, [task, *[child for child in children if child is not None]])
        else:
            changed = True
            cost = None if cost_ms is None else round(cost_ms / 1000, 3)
            data = result if isinstance(result, dict) else {}
            if outcome == "finished" and is_success(stat) and not _too_slow(task, cost):
                clean = {key: value for key, value in data.items() if key != "stat"}
                sends = machine.finish_task(job, task, clean, stat, cost)
            else:
                if outcome == "finished" and is_success(stat):
                    stat, error = "ERR_TIMEOUT", f"ran {cost:.3f} s, longer than the task's {task.timeout:g} s timeout"
                sends = machine.fail_attempt(job, task, stat or "ERR", error or "", data or None, cost)
        commit()  # NOTE: explicit, so a nested session (tests, in-process calls) commits too
    state.send(sends)
    return changed


def storable(value: Any) -> Any:
    """``value`` with NUL characters replaced: PostgreSQL stores none, in text or in jsonb."""
    import json

    # PERF: one dumps as a filter; the walk below runs only when a NUL may be inside
    if "\\u0000" not in json.dumps(value, ensure_ascii=True, default=str):
        return value
    return _without_nul(value)


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    return value


def _too_slow(task, cost: float | None) -> bool:
    return bool(task.timeout and cost is not None and cost > task.timeout)


def mark_started(state: Any, starts: list[tuple[str, int]]) -> int:
    """``pending`` → ``started`` for runs that began: ``[(msg_id, started_ms), ...]``, one transaction.

    Needs no job lock: it only touches task rows (locked) and changes no decision; a run
    whose task moved on meanwhile (it already finished, or the message is stale) changes
    nothing. Called by :class:`StartMarks`, off the run's own thread.

    :return: how many tasks were marked
    """
    machine = state.transitions
    marked = 0
    with db_session(optimistic=False):
        for msg_id, started_ms in starts:
            parsed = parse_msg_id(msg_id)
            if parsed is None:
                continue
            job_id, _token, index, _attempt = parsed
            task = machine.Task.get_for_update(job_id=job_id, task_index=index)
            if task is None or task.msg_id != msg_id or task.task_status != "pending":
                continue
            task.started_ms = started_ms
            if task.timeout:
                task.deadline_ms = started_ms + int(task.timeout * 1000)
            machine.set_task(task, "started")
            marked += 1
        commit()
    return marked


class StartMarks:
    """Marks tasks ``started`` from a thread of its own, many per transaction.

    # NOTE: not on the run's thread: that thread is inside the run's request
    # ``db_session``, and a commit there would make pony open every later query of the
    # handler with ``BEGIN IMMEDIATE`` on SQLite — holding the write lock for the whole
    # run. Marks are live state only: one that is lost (a crash) or lands after the run
    # ended changes nothing.

    :param state: the plugin state
    """

    BATCH = 200

    def __init__(self, state: Any) -> None:
        self.state = state
        self.waiting: queue.SimpleQueue[tuple[str, int] | None] = queue.SimpleQueue()
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def note(self, msg_id: str) -> None:
        """A task's message began to run now (cheap: the mark is written later)."""
        if self.thread is None:
            with self.lock:
                if self.thread is None:
                    self.thread = threading.Thread(target=self._loop, name="xingqiao-starts", daemon=True)
                    self.thread.start()
        self.waiting.put((msg_id, now_ms()))

    def stop(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop."""
        with self.lock:
            thread, self.thread = self.thread, None
        if thread is not None:
            self.waiting.put(None)
            thread.join(timeout)

    def _loop(self) -> None:
        while True:
            first = self.waiting.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.BATCH:
                try:
                    item = self.waiting.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._write(batch)
                    return
                batch.append(item)
            self._write(batch)

    def _write(self, batch: list[tuple[str, int]]) -> None:
        try:
            mark_started(self.state, batch)
        except Exception as exc:  # noqa: BLE001 - live state only; the runs' ends still count
            log.warning("xingqiao_mark_started_failed", count=len(batch), error=f"{type(exc).__name__}: {exc}"[:300])
