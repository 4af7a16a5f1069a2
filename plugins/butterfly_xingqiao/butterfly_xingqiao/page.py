"""The xingqiao pages: ``/xingqiao/`` lists jobs, ``/xingqiao/job?job_id=N`` draws one.

Server-rendered in the shared layout of every Butterfly page (``butterfly_router.ui``:
navigation bar, stylesheet, strict Content-Security-Policy), no CDN. The job page
embeds the SVG of :mod:`butterfly_xingqiao.graph` (presentation attributes only, no
inline style), and while the job runs its live parts (status, task counts, graph,
tasks, transitions) refresh themselves through the shared script. Its buttons
cancel, retry or delete the job through the admin API (same-origin JSON POSTs).
"""

from __future__ import annotations

from typing import Any

from butterfly_router import ui
from butterfly_router.openapi import query_parameters
from butterfly_xingqiao import jobs
from butterfly_xingqiao.graph import render_svg
from butterfly_xingqiao.models import JOB_STATES, TASK_STATES
from butterfly_xingqiao.service import EXTENSION
from kernel import BadRequest, Response

SOURCE = "butterfly_xingqiao"
REFRESH_SECONDS = 3
PAGE_SIZE = 50
MAX_PAGE_INDEX = 1_000_000
RECENT_TRANSITIONS = 200
#: larger jobs are listed, not drawn, on the page (``get_graph`` still draws them)
MAX_DRAWN = 500
#: job and task states → the shared stylesheet's pill colours
PILL_KINDS = {
    "waiting": "idle",
    "pending": "scheduled",
    "started": "info",
    "finished": "ok",
    "failed": "bad",
    "canceled": "idle",
}
#: How the pages' query parameters are shown in the OpenAPI document (they read them themselves).
JOBS_PAGE_OPENAPI = query_parameters(
    status={"type": "string", "enum": list(JOB_STATES)},
    page={"type": "integer", "minimum": 1, "maximum": MAX_PAGE_INDEX, "default": 1},
)
JOB_PAGE_OPENAPI = query_parameters(
    required=["job_id"], job_id={"type": "integer", "minimum": 1, "maximum": jobs.MAX_ID}
)


def jobs_page(request) -> Response:
    """``GET /xingqiao/`` (``?status=failed&page=2``)."""
    state = request.kernel.extensions[EXTENSION]
    status = ui.query_text(request, "status", max_length=16)
    if status is not None and status not in JOB_STATES:
        raise BadRequest(
            "status: unknown job status",
            data={"errors": [{"param": "status", "reason": f"one of {', '.join(JOB_STATES)}"}]},
        )
    page_index = ui.query_int(request, "page", 1, 1, MAX_PAGE_INDEX)
    size = min(PAGE_SIZE, state.settings.max_page_size)
    found = jobs.list_jobs(state, job_status=status, page_index=page_index, page_size=size)
    counts = {name: jobs.list_jobs(state, job_status=name, page_size=1)["total"] for name in JOB_STATES}
    return ui.render(
        request,
        "jobs.html",
        source=SOURCE,
        title="星桥 xingqiao",
        refresh=REFRESH_SECONDS * 2,
        jobs=found,
        counts=counts,
        status=status,
        states=JOB_STATES,
        pages=max(1, -(-found["total"] // found["page_size"])),
        workflows=sorted(state.workflows.items()),
        pill_kinds=PILL_KINDS,
    )


def job_page(request) -> Response:
    """``GET /xingqiao/job?job_id=N``: fields, DAG, tasks, transitions (404 for an unknown job)."""
    state = request.kernel.extensions[EXTENSION]
    job_id = ui.query_int(request, "job_id", 0, 1, jobs.MAX_ID)
    if job_id == 0:
        raise BadRequest("job_id is required", data={"errors": [{"param": "job_id", "reason": "required"}]})
    detail = jobs.get_job_detail(state, job_id)
    tasks = jobs.get_tasklist(state, job_id)
    transitions = jobs.get_transitions(state, job_id)[-RECENT_TRANSITIONS:]
    drawn = len(tasks) <= MAX_DRAWN
    svg = render_svg(tasks, title=f"job {job_id} · {detail['job_type']}", fit=True) if drawn else ""
    context: dict[str, Any] = {
        "job": detail,
        "tasks": tasks[:MAX_DRAWN],
        "hidden_tasks": max(0, len(tasks) - MAX_DRAWN),
        "max_drawn": MAX_DRAWN,
        "transitions": list(reversed(transitions)),
        "labels": {task["task_index"]: task["task_label"] for task in tasks},
        "svg": svg,
        "task_states": TASK_STATES,
        "pill_kinds": PILL_KINDS,
    }
    running = detail["job_status"] == "started"
    title = f"星桥 job #{job_id} — {detail['job_status']}"
    return ui.render(
        request, "job.html", source=SOURCE, title=title, refresh=REFRESH_SECONDS if running else 0, **context
    )
