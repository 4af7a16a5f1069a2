"""The ruqi web page at ``/ruqi/``: jobs with their next runs and actions, runs, instances.

Server-rendered in the shared layout of every Butterfly page, no CDN. Admins (the
page is an admin route) pause, resume, run now and remove jobs with buttons that
POST JSON to the API (``/ruqi/pause_job`` ...): same-origin requests the auth
plugin's CSRF rule accepts by their Origin, and that a cross-site form cannot send.
Times read "in 3 min" / "5 s ago" with the exact time on hover. Jobs and runs are
paginated (``?jobs_page=``, ``?page=``); ``?job_id=`` shows one job's runs and
``?status=`` one status. The jobs, runs and instances refresh themselves.
"""

from __future__ import annotations

from butterfly_router import ui
from butterfly_router.openapi import query_parameters
from butterfly_ruqi import service
from butterfly_ruqi.models import RUN_STATES
from kernel import BadRequest, Response

SOURCE = "butterfly_ruqi"
REFRESH_SECONDS = 10
JOBS_PER_PAGE = 25
RUNS_PER_PAGE = 20
_PAGE = {"type": "integer", "minimum": 1, "maximum": service.MAX_PAGE_INDEX, "default": 1}
#: The query parameters the page reads, for the OpenAPI document.
OPENAPI = query_parameters(
    job_id={"type": "string", "maxLength": 64},
    status={"type": "string", "enum": list(RUN_STATES)},
    page=_PAGE,
    jobs_page=_PAGE,
)


def pages_of(total: int, size: int) -> int:
    """How many pages ``total`` rows fill (at least one)."""
    return max(1, -(-total // size))


def ruqi_page(request) -> Response:
    """``GET /ruqi/`` (``?job_id=``, ``?status=``, ``?page=``, ``?jobs_page=``)."""
    state = request.kernel.extensions["ruqi"]
    job_id = ui.query_text(request, "job_id", max_length=64)
    status_filter = ui.query_text(request, "status", max_length=24)
    if status_filter is not None and status_filter not in RUN_STATES:
        raise BadRequest(
            "status: unknown run status",
            data={"errors": [{"param": "status", "reason": f"one of {', '.join(RUN_STATES)}"}]},
        )
    runs_page = ui.query_int(request, "page", 1, 1, service.MAX_PAGE_INDEX)
    jobs_page = ui.query_int(request, "jobs_page", 1, 1, service.MAX_PAGE_INDEX)
    jobs = service.get_jobs(state, page_index=jobs_page, page_size=min(JOBS_PER_PAGE, state.settings.max_page_size))
    runs = service.get_history(
        state,
        job_id=job_id,
        status=status_filter,
        page_index=runs_page,
        page_size=min(RUNS_PER_PAGE, state.settings.max_page_size),
    )
    status = service.status(state)
    return ui.render(
        request,
        "ruqi.html",
        source=SOURCE,
        title="如期 ruqi",
        refresh=REFRESH_SECONDS,
        jobs=jobs,
        jobs_pages=pages_of(jobs["total"], jobs["page_size"]),
        runs=runs,
        runs_pages=pages_of(runs["total"], runs["page_size"]),
        status=status,
        alive=sum(1 for instance in status["instances"] if instance["alive"]),
        job_id=job_id,
        status_filter=status_filter,
        run_states=RUN_STATES,
    )
