"""The xingqiao HTTP API, served by butterfly-router at ``/xingqiao/<name>``.

Names are the original xingqiao's. Every route is admin (job params and results
are operator data); writes accept POST only, reads GET only. ``job_extra`` takes a
JSON object (in a JSON body) or its JSON text (in a form or query string).

Bounds and choices are in the signatures, so the router answers a 400 naming the
parameter before a query runs, and the OpenAPI document shows them. What no schema
can say (``job_extra`` against the workflow's own signature) is checked by
:func:`butterfly_xingqiao.jobs.create_job`: a 400 naming task and param.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from annotated_types import Interval, MaxLen, MinLen

from butterfly_router import NOT_BLANK, api, http, retstat
from butterfly_xingqiao import jobs
from butterfly_xingqiao.graph import render_svg
from butterfly_xingqiao.service import EXTENSION

#: No NUL character: PostgreSQL cannot store one.
NO_NUL = re.compile(r"^[^\x00]*$")
#: A job type: a registered workflow's name (``xingqiao_job.job_type`` holds 64 characters).
JobType = Annotated[str, MinLen(1), MaxLen(64), NOT_BLANK, NO_NUL]
#: The longest job timeout, seconds (a year).
MAX_JOB_TIMEOUT = 366 * 86400
#: The largest ``page_size`` a signature allows; ``[xingqiao] max_page_size`` may narrow it.
MAX_PAGE_SIZE = 1000
#: A job status filter: one of :data:`butterfly_xingqiao.models.JOB_STATES`.
JobStatus = Literal["started", "finished", "failed", "canceled"]


def _state(req):
    return req.kernel.extensions[EXTENSION]


@api(admin=True, methods=("POST",))
def create_job(
    req,
    job_type: JobType,
    job_name: Annotated[str | None, MaxLen(128), NOT_BLANK, NO_NUL] = None,
    job_extra: dict | None = None,
    job_timeout: Annotated[float | None, Interval(gt=0, le=MAX_JOB_TIMEOUT)] = None,
):
    """Create and start a job: ``{"stat": "OK", "job_id": ...}``; a bad graph or params → 400 naming task and param."""
    created = jobs.create_job(
        _state(req),
        job_type,
        job_name=job_name,
        job_extra=job_extra,
        job_timeout=job_timeout,
        operator=req.user,
        reqid=req.reqid,
    )
    return retstat.OK, created


@api(admin=True, methods=("GET",))
def get_job_detail(req, job_id: int):
    """A job: ``job_status`` (started|finished|failed|canceled), ``ret_stat``, ``ret_data``, task counts."""
    return retstat.OK, {"data": jobs.get_job_detail(_state(req), job_id)}


@api(admin=True, methods=("GET",))
def get_tasklist_by_jobid(req, job_id: int):
    """A job's tasks: ``task_label``, ``task_cmd``, ``task_status``, ``ret_stat``, ``ret_data``, attempts, cost,
    ``msg_id``."""
    return retstat.OK, {"data": {"list": jobs.get_tasklist(_state(req), job_id)}}


@api(admin=True, methods=("GET",))
def get_transitions(req, job_id: int):
    """Every state change of a job and its tasks, oldest first (``task_index`` -1 is the job)."""
    return retstat.OK, {"data": {"list": jobs.get_transitions(_state(req), job_id)}}


@api(admin=True, methods=("POST",))
def retry_job(req, job_id: int):
    """Run a failed job again from where it failed (failed tasks → waiting, job → started)."""
    return retstat.OK, jobs.retry_job(_state(req), job_id)


@api(admin=True, methods=("POST",))
def cancel_job(req, job_id: int):
    """Cancel a running job: waiting and queued tasks never run."""
    return retstat.OK, jobs.cancel_job(_state(req), job_id)


@api(admin=True, methods=("POST",))
def delete_job(req, job_id: int):
    """Delete a job that is not running, with its tasks and history."""
    return retstat.OK, jobs.delete_job(_state(req), job_id)


@api(admin=True, methods=("GET",))
def list_jobs(
    req,
    job_id: int | None = None,
    job_type: Annotated[str | None, MaxLen(64), NO_NUL] = None,
    job_status: JobStatus | None = None,
    job_name: Annotated[str | None, MaxLen(128), NO_NUL] = None,
    operator: Annotated[str | None, MaxLen(128), NO_NUL] = None,
    page_index: Annotated[int, Interval(ge=1, le=1_000_000)] = 1,
    page_size: Annotated[int, Interval(ge=1, le=MAX_PAGE_SIZE)] = 20,
):
    """Jobs, newest first: ``{"total", "list", "page_index", "page_size"}``."""
    found = jobs.list_jobs(
        _state(req),
        job_id=job_id,
        job_type=job_type,
        job_status=job_status,
        job_name=job_name,
        operator=operator,
        page_index=page_index,
        page_size=page_size,
    )
    return retstat.OK, {"data": found}


@api(admin=True, methods=("GET",))
def list_job_types(req):
    """The registered workflows: ``job_type``, its params and where it is defined."""
    state = _state(req)
    types = [
        {"job_type": name, "params": found.binder().describe(), "doc": found.doc, "defined_in": found.origin}
        for name, found in sorted(state.workflows.items())
    ]
    return retstat.OK, {"data": {"list": types}}


@http(admin=True, methods=("GET",))
def get_graph(req, job_id: int, direction: Literal["auto", "LR", "TB"] = "auto"):
    """The job's DAG as SVG, drawn here (no external tool), coloured by live task state."""
    state = _state(req)
    detail = jobs.get_job_detail(state, job_id)
    svg = render_svg(
        jobs.get_tasklist(state, job_id), title=f"job {job_id} · {detail['job_type']}", direction=direction
    )
    return (
        200,
        svg,
        [
            ("Content-Type", "image/svg+xml; charset=utf-8"),
            ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"),
            ("X-Content-Type-Options", "nosniff"),
            ("Cache-Control", "no-store"),
        ],
    )
