"""xingqiao's operations, shared by the HTTP API, the page and the CLI.

Each function takes the :class:`~butterfly_xingqiao.service.XingqiaoState` and plain
values and raises :class:`kernel.HTTPError` subclasses for bad input: 400
``ERR_BAD_PARAMS`` with ``errors``, 404 ``ERR_JOB_NOT_EXIST``, 409 ``ERR_JOB_EXIST`` /
``ERR_JOB_STATUS``, 503 when the MQ is off.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import structlog
from pony.orm import commit, count, db_session, desc, rollback, select
from pony.orm.core import CommitException, TransactionIntegrityError

from butterfly_xingqiao.definition import encode_params
from butterfly_xingqiao.dispatch import job_trace, mq_service, withdraw
from butterfly_xingqiao.engine import new_token, now_ms
from butterfly_xingqiao.models import ACTIVE_TASK_STATES, JOB_ROW, JOB_STATES, entities
from butterfly_xingqiao.validation import build_graph
from kernel import BadRequest, HTTPError, NotFound, ServiceUnavailable

log = structlog.get_logger("butterfly.xingqiao")


class JobExists(HTTPError):
    """``create_job`` with a ``job_name`` that is taken (the name is an idempotency key)."""

    status = 409
    stat = "ERR_JOB_EXIST"


class JobStatusConflict(HTTPError):
    """The job is not in a status that allows the action."""

    status = 409
    stat = "ERR_JOB_STATUS"


def bad_param(param: str, reason: str) -> BadRequest:
    """A 400 naming one parameter."""
    return BadRequest(f"bad parameter {param}: {reason}", data={"errors": [{"param": param, "reason": reason}]})


def _job_not_found(job_id: Any) -> NotFound:
    return NotFound(f"no job {job_id}", stat="ERR_JOB_NOT_EXIST")


#: the largest id a 64-bit key holds; larger ones cannot exist (and would overflow the query)
MAX_ID = 2**63 - 1


def _existing_id(job_id: int) -> int:
    """``job_id`` if it can name a job at all, else 404."""
    if not 1 <= job_id <= MAX_ID:
        raise _job_not_found(job_id)
    return job_id


def _check_text(param: str, value: str | None) -> None:
    """Refuse a NUL character: PostgreSQL cannot store one, so it would be a 500 later."""
    if value is not None and "\x00" in value:
        raise bad_param(param, "must not contain a NUL character")


def _check_json(param: str, value: Any, depth: int = 0) -> None:
    """Refuse NUL characters anywhere in a JSON value (PostgreSQL's jsonb rejects them)."""
    if depth > 50:
        raise bad_param(param, "nested too deeply")
    if isinstance(value, str):
        _check_text(param, value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(param, key)
            _check_json(param, item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(param, item, depth + 1)


def create_job(
    state: Any,
    job_type: str,
    *,
    job_name: str | None = None,
    job_extra: dict[str, Any] | None = None,
    job_timeout: float | None = None,
    operator: str | None = None,
    reqid: str | None = None,
) -> dict[str, Any]:
    """Check the whole graph, store the job and its tasks, send the tasks that need nothing.

    :return: ``{"job_id", "job_name", "tasks"}``
    :raises kernel.BadRequest: unknown job type, bad params, a bad graph — nothing is stored
    :raises JobExists: ``job_name`` is taken
    :raises kernel.ServiceUnavailable: the MQ is off on this instance
    """
    workflow = state.workflows.get(job_type)
    if workflow is None:
        known = ", ".join(sorted(state.workflows)) or "none"
        raise bad_param("job_type", f"unknown job type {job_type!r}; known: {known}")
    if job_extra is None:
        job_extra = {}
    if not isinstance(job_extra, dict):
        raise bad_param("job_extra", "expected a JSON object of the workflow's params")
    _check_json("job_extra", job_extra)
    _check_text("job_name", job_name)
    timeout = state.settings.default_job_timeout if job_timeout is None else job_timeout
    if not 0 < timeout <= 366 * 86400:
        raise bad_param("job_timeout", f"expected seconds in (0, 31622400], got {job_timeout!r}")
    if job_name is not None and not 1 <= len(job_name) <= 128:
        raise bad_param("job_name", "expected 1-128 characters")
    flow = build_graph(state.kernel, workflow, job_extra, state.settings.max_tasks)
    if mq_service(state.kernel) is None:
        raise ServiceUnavailable("xingqiao runs tasks through the MQ: set [mq] redis_url")
    reqid = reqid or os.urandom(8).hex()
    token = new_token()
    name = job_name or f"{job_type}-{reqid}"
    machine = state.transitions
    Job, Task = machine.Job, machine.Task
    downstream: dict[int, list[int]] = {spec.index: [] for spec in flow.tasks}
    for spec in flow.tasks:
        for parent in spec.upstream:
            downstream[parent].append(spec.index)
    try:
        with db_session(optimistic=False):
            existing = Job.get(job_name=name)
            if existing is not None:
                raise JobExists(f"a job named {name!r} exists", data={"job_id": existing.job_id})
            now = now_ms()
            job = Job(
                job_token=token,
                job_type=job_type,
                job_name=name,
                job_reqid=reqid[:64],
                job_status="started",
                job_extra=job_extra,
                job_timeout=float(timeout),
                tasks_total=len(flow.tasks),
                operator=(operator or "")[:128],
                c_time=now,
                s_time=now,
                deadline_ms=now + int(timeout * 1000),
            )
            machine.state.db.flush()  # NOTE: assigns job.job_id
            tasks = [
                Task(
                    job_id=job.job_id,
                    task_index=spec.index,
                    task_label=spec.label,
                    task_cmd=spec.route,
                    task_params=encode_params(spec.params),
                    upstream=sorted(spec.upstream),
                    downstream=sorted(downstream[spec.index]),
                    waiting_on=len(spec.upstream),
                    task_status="waiting",
                    retries=spec.retries,
                    timeout=spec.timeout,
                    is_save=spec.save,
                )
                for spec in flow.tasks
            ]
            machine.record(job.job_id, JOB_ROW, 1, "new", "started", f"{len(tasks)} tasks")
            sends = [machine.promote(job, task) for task in tasks if task.waiting_on == 0]
            job_id = job.job_id
            commit()
    except (TransactionIntegrityError, CommitException):
        rollback()
        with db_session:
            taken = select(j.job_id for j in Job if j.job_name == name).first()
        if taken is None:
            raise
        # NOTE: another instance created a job of that name between our check and our insert
        raise JobExists(f"a job named {name!r} exists", data={"job_id": taken}) from None
    state.send([dispatch for dispatch in sends if dispatch is not None])
    # NOTE: links the creating request's trace (bound in the context) to the job's own
    log.info("xingqiao job created", job_id=job_id, job_trace_id=job_trace(job_id, token)[0])
    return {"job_id": job_id, "job_name": name, "tasks": len(flow.tasks)}


def job_dict(job) -> dict[str, Any]:
    """A job row for the API."""
    end = job.e_time or (now_ms() if job.job_status == "started" else job.s_time)
    return {
        "job_id": job.job_id,
        "job_type": job.job_type,
        "job_name": job.job_name,
        "job_reqid": job.job_reqid,
        "job_trace_id": job_trace(job.job_id, job.job_token)[0],
        "job_status": job.job_status,
        "job_extra": job.job_extra or {},
        "job_timeout": job.job_timeout,
        "job_cost": round((end - job.s_time) / 1000, 3),
        "run": job.run,
        "tasks_total": job.tasks_total,
        "tasks_finished": job.tasks_finished,
        "ret_stat": job.ret_stat or "",
        "ret_data": job.ret_data or {},
        "operator": job.operator or "",
        "c_time": _iso(job.c_time),
        "s_time": _iso(job.s_time),
        "e_time": _iso(job.e_time),
    }


def task_dict(task) -> dict[str, Any]:
    """A task row for the API."""
    return {
        "task_id": task.task_id,
        "task_index": task.task_index,
        "task_label": task.task_label,
        "task_cmd": task.task_cmd,
        "task_status": task.task_status,
        "task_params": task.task_params or {},
        "run_params": task.run_params,
        "upstream": list(task.upstream),
        "retries": task.retries,
        "timeout": task.timeout,
        "is_save": task.is_save,
        "attempts": task.attempt,
        "msg_id": task.msg_id or "",
        "ret_stat": task.ret_stat or "",
        "ret_data": task.ret_data or {},
        "error": task.error or "",
        "cost": task.cost,
        "s_time": _iso(task.started_ms),
        "e_time": _iso(task.ended_ms),
    }


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def get_job_detail(state: Any, job_id: int) -> dict[str, Any]:
    """One job with its status, results and task counts by status."""
    _existing_id(job_id)
    Job, Task, _ = entities(state.db)
    with db_session:
        job = Job.get(job_id=job_id)
        if job is None:
            raise _job_not_found(job_id)
        counts = dict(select((t.task_status, count()) for t in Task if t.job_id == job_id)[:])
        return {**job_dict(job), "task_counts": counts}


def get_tasklist(state: Any, job_id: int) -> list[dict[str, Any]]:
    """Every task of a job, in declaration order."""
    _existing_id(job_id)
    Job, Task, _ = entities(state.db)
    with db_session:
        if Job.get(job_id=job_id) is None:
            raise _job_not_found(job_id)
        return [task_dict(task) for task in select(t for t in Task if t.job_id == job_id).order_by(Task.task_index)]


def get_transitions(state: Any, job_id: int) -> list[dict[str, Any]]:
    """A job's transitions, oldest first (``task_index`` -1 is the job)."""
    _existing_id(job_id)
    _, _, Transition = entities(state.db)
    with db_session:
        rows = select(t for t in Transition if t.job_id == job_id).order_by(Transition.id)
        return [
            {
                "task_index": row.task_index,
                "attempt": row.attempt,
                "from": row.from_status,
                "to": row.to_status,
                "at": _iso(row.at_ms),
                "note": row.note or "",
            }
            for row in rows
        ]


def list_jobs(
    state: Any,
    *,
    job_id: int | None = None,
    job_type: str | None = None,
    job_status: str | None = None,
    job_name: str | None = None,
    operator: str | None = None,
    page_index: int = 1,
    page_size: int = 20,
) -> dict[str, Any]:
    """Jobs newest first, filtered; ``job_name`` matches a part of the name."""
    if job_status is not None and job_status not in JOB_STATES:
        raise bad_param("job_status", f"expected one of {', '.join(JOB_STATES)}")
    if not 1 <= page_index <= 1_000_000 or not 1 <= page_size <= state.settings.max_page_size:
        raise bad_param("page_size", f"page_index 1..1000000 and page_size 1..{state.settings.max_page_size}")
    for param, value in (("job_type", job_type), ("job_name", job_name), ("operator", operator)):
        _check_text(param, value)
    if job_id is not None and not 1 <= job_id <= MAX_ID:
        job_id = 0  # NOTE: matches nothing, without overflowing the database's integer
    Job, _, _ = entities(state.db)
    with db_session:
        query = select(j for j in Job)
        if job_id is not None:
            query = query.filter(lambda j: j.job_id == job_id)
        if job_type:
            query = query.filter(lambda j: j.job_type == job_type)
        if job_status:
            query = query.filter(lambda j: j.job_status == job_status)
        if job_name:
            query = query.filter(lambda j: job_name in j.job_name)
        if operator:
            query = query.filter(lambda j: j.operator == operator)
        total = query.count()
        rows = query.order_by(desc(Job.job_id)).page(page_index, page_size)
        return {
            "total": total,
            "page_index": page_index,
            "page_size": page_size,
            "list": [job_dict(job) for job in rows],
        }


def _locked_job(machine: Any, job_id: int):
    job = machine.Job.get_for_update(job_id=_existing_id(job_id))
    if job is None:
        raise _job_not_found(job_id)
    return job


def _tasks(machine: Any, job_id: int, statuses: Iterable[str]) -> list[Any]:
    Task = machine.Task
    wanted = tuple(statuses)
    return list(
        select(t for t in Task if t.job_id == job_id and t.task_status in wanted).for_update().order_by(Task.task_index)
    )


def retry_job(state: Any, job_id: int) -> dict[str, Any]:
    """A failed job runs again from where it failed: failed tasks → waiting, job → started.

    Finished tasks keep their results; tasks whose upstream tasks are all finished are
    sent at once.

    :raises JobStatusConflict: the job is not ``failed``
    """
    machine = state.transitions
    with db_session(optimistic=False):
        job = _locked_job(machine, job_id)
        if job.job_status != "failed":
            raise JobStatusConflict(f"job {job_id} is {job.job_status}; only a failed job can be retried")
        if mq_service(state.kernel) is None:
            raise ServiceUnavailable("xingqiao runs tasks through the MQ: set [mq] redis_url")
        failed = _tasks(machine, job_id, ("failed",))
        for task in failed:
            task.tries = 0
            task.error = ""
            machine.set_task(task, "waiting", "retry_job")
        old_run = job.run
        job.run += 1
        machine.record(job.job_id, JOB_ROW, job.run, "failed", "started", f"retry_job after run {old_run}")
        job.job_status, job.ret_stat, job.e_time = "started", "", None
        job.s_time = now_ms()
        job.deadline_ms = job.s_time + int(job.job_timeout * 1000)
        sends = []
        for task in _tasks(machine, job_id, ("waiting",)):
            if task.waiting_on == 0 and job.job_status == "started":
                dispatch = machine.promote(job, task)
                if dispatch is not None:
                    sends.append(dispatch)
        if job.job_status == "started" and job.tasks_finished == job.tasks_total:
            machine.finish_job(job)
        commit()
    state.send(sends)
    return {"job_id": job_id, "retried": len(failed), "sent": len(sends)}


def cancel_job(state: Any, job_id: int) -> dict[str, Any]:
    """Stop a running job: its waiting and pending tasks are canceled and their messages withdrawn.

    A task already running finishes, but its result is not used.

    :raises JobStatusConflict: the job is not ``started``
    """
    machine = state.transitions
    with db_session(optimistic=False):
        job = _locked_job(machine, job_id)
        if job.job_status != "started":
            raise JobStatusConflict(f"job {job_id} is {job.job_status}; only a started job can be canceled")
        tasks = _tasks(machine, job_id, ("waiting", *ACTIVE_TASK_STATES))
        queued = [(task.task_cmd, task.msg_id) for task in tasks if task.task_status == "pending" and task.msg_id]
        for task in tasks:
            task.ended_ms = now_ms()
            task.deadline_ms = task.check_ms = None
            machine.set_task(task, "canceled", "cancel_job")
        machine.set_job(job, "canceled", "ERR_JOB_CANCELED", "cancel_job")
        commit()
    withdrawn = sum(1 for route, msg_id in queued if withdraw(state.kernel, route, msg_id))
    return {"job_id": job_id, "canceled": len(tasks), "withdrawn": withdrawn}


def delete_job(state: Any, job_id: int) -> dict[str, Any]:
    """Delete a job that is not running, with its tasks and transitions.

    :raises JobStatusConflict: the job is ``started`` (cancel it first)
    """
    machine = state.transitions
    Task, Transition = machine.Task, machine.Transition
    with db_session(optimistic=False):
        job = _locked_job(machine, job_id)
        if job.job_status == "started":
            raise JobStatusConflict(f"job {job_id} is running; cancel it before deleting it")
        select(t for t in Task if t.job_id == job_id).delete(bulk=True)
        select(t for t in Transition if t.job_id == job_id).delete(bulk=True)
        job.delete()
        commit()
    return {"job_id": job_id}
