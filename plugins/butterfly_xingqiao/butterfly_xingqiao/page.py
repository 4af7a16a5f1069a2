"""The xingqiao pages: ``/xingqiao/`` lists jobs, ``/xingqiao/job?job_id=N`` draws one.

Server-rendered with Jinja2 (autoescaped), no CDN and no JavaScript: the job page
embeds the SVG of :mod:`butterfly_xingqiao.graph` and reloads itself every
``REFRESH_SECONDS`` while the job runs, so task states are live.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from butterfly_xingqiao import jobs
from butterfly_xingqiao.graph import COLOURS, render_svg
from butterfly_xingqiao.models import JOB_STATES
from butterfly_xingqiao.service import EXTENSION
from kernel import BadRequest, Response

REFRESH_SECONDS = 3
PAGE_SIZE = 50
RECENT_TRANSITIONS = 200
#: larger jobs are listed, not drawn, on the page (``get_graph`` still draws them)
MAX_DRAWN = 500


@lru_cache(maxsize=1)
def _environment():
    from jinja2 import Environment, PackageLoader, select_autoescape

    return Environment(loader=PackageLoader("butterfly_xingqiao", "templates"), autoescape=select_autoescape(["html"]))


def _html(text: str) -> Response:
    return Response(
        200, [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")], text.encode("utf-8")
    )


def _query_value(request, name: str) -> str | None:
    value = request.query.get(name)
    if isinstance(value, list):
        value = value[0] if value else None
    return value or None


def _query_int(request, name: str, default: int | None = None) -> int | None:
    value = _query_value(request, name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise BadRequest(
            f"bad parameter {name}: expected an integer",
            data={"errors": [{"param": name, "reason": "expected an integer"}]},
        ) from None


def render_jobs(state: Any, *, status: str | None = None, page_index: int = 1) -> str:
    """The job list's HTML."""
    found = jobs.list_jobs(state, job_status=status, page_index=max(page_index, 1), page_size=PAGE_SIZE)
    counts = {name: jobs.list_jobs(state, job_status=name, page_size=1)["total"] for name in JOB_STATES}
    pages = max(1, -(-found["total"] // PAGE_SIZE))
    return (
        _environment()
        .get_template("jobs.html")
        .render(
            jobs=found,
            counts=counts,
            status=status,
            states=JOB_STATES,
            pages=pages,
            workflows=sorted(state.workflows.items()),
        )
    )


def render_job(state: Any, job_id: int) -> str:
    """One job's HTML: fields, DAG, tasks, transitions."""
    detail = jobs.get_job_detail(state, job_id)
    tasks = jobs.get_tasklist(state, job_id)
    transitions = jobs.get_transitions(state, job_id)[-RECENT_TRANSITIONS:]
    labels = {task["task_index"]: task["task_label"] for task in tasks}
    drawn = len(tasks) <= MAX_DRAWN
    svg = render_svg(tasks, title=f"job {job_id} · {detail['job_type']}") if drawn else ""
    return (
        _environment()
        .get_template("job.html")
        .render(
            job=detail,
            tasks=tasks[:MAX_DRAWN],
            hidden_tasks=max(0, len(tasks) - MAX_DRAWN),
            max_drawn=MAX_DRAWN,
            transitions=list(reversed(transitions)),
            labels=labels,
            svg=svg,  # NOTE: rendered with |safe: render_svg escapes every text it draws
            colours=COLOURS,
            refresh=REFRESH_SECONDS if detail["job_status"] == "started" else None,
        )
    )


def jobs_page(request) -> Response:
    """``GET /xingqiao/`` (``?status=failed&page=2``)."""
    state = request.kernel.extensions[EXTENSION]
    status = _query_value(request, "status")
    if status is not None and status not in JOB_STATES:
        status = None
    return _html(render_jobs(state, status=status, page_index=_query_int(request, "page", 1) or 1))


def job_page(request) -> Response:
    """``GET /xingqiao/job?job_id=N``."""
    state = request.kernel.extensions[EXTENSION]
    job_id = _query_int(request, "job_id")
    if job_id is None:
        raise BadRequest("job_id is required", data={"errors": [{"param": "job_id", "reason": "required"}]})
    return _html(render_job(state, job_id))
