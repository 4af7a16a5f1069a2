"""The ruqi HTTP API, served by butterfly-router at ``/ruqi/<name>``.

Names are the original ruqi's. Writes are admin-only and POST-only; reads are
open (secret-looking values in payloads, headers and env are masked). Replies are
``{"stat": "OK", "data": ...}`` like the original.

``payload`` and ``options`` take a JSON object (in a JSON body) or its JSON text
(in a query string or form).

Key parameters are checked by the router before the store sees them: an empty or
blank ``job_id`` is a 400 naming it, and no text is longer than its column. Bounds
and choices are in the signatures (the OpenAPI document shows them); the plugin's
``butterfly_register_routes`` adds to the document what settings and plugins decide
(``[ruqi] max_page_size``, the registered job types). ``rule``, ``target``,
``timezone``, ``payload`` and ``options`` are parsed and checked against the trigger
and job type by :func:`butterfly_ruqi.jobspec.normalize_job` (a 400 naming each).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from annotated_types import Interval, MaxLen, MinLen

from butterfly_router import NOT_BLANK, api, retstat
from butterfly_ruqi import service
from butterfly_ruqi.jobspec import MAX_CONCURRENT, MAX_TIMEOUT

#: A job id as ``ruqi_job.job_id`` holds it.
JobId = Annotated[str, MinLen(1), MaxLen(64), NOT_BLANK]
#: An optional filter on a column of ``size`` characters.
Filter = Annotated[str | None, MaxLen(128)]
Page = Annotated[int | None, Interval(ge=1, le=service.MAX_PAGE_INDEX)]
PageSize = Annotated[int | None, Interval(ge=1, le=1000)]
#: :data:`butterfly_ruqi.rules.TRIGGERS`
Trigger = Literal["cron", "interval", "date"]
#: :data:`butterfly_ruqi.models.RUN_STATES`
RunStatus = Literal[
    "claimed",
    "running",
    "succeeded",
    "failed",
    "lost",
    "skipped_misfire",
    "skipped_coalesced",
    "skipped_concurrent",
    "skipped_claimed",
]
Timeout = Annotated[float | None, Interval(ge=0.1, le=MAX_TIMEOUT)]
MisfireGrace = Annotated[float | None, Interval(ge=1, le=MAX_TIMEOUT)]
MaxConcurrent = Annotated[int | None, Interval(ge=1, le=MAX_CONCURRENT)]
#: The list routes, whose ``page_size`` ``[ruqi] max_page_size`` narrows.
LIST_PATHS = ("/ruqi/get_jobs", "/ruqi/get_history")
#: The writes whose fields are checked against the trigger and job type beyond their schema.
CHECKED_PATHS = ("/ruqi/add_job", "/ruqi/modify_job")


def _state(req) -> service.RuqiState:
    return req.kernel.extensions["ruqi"]


@api(admin=True, methods=("POST",))
def add_job(
    req,
    job_id: JobId,
    job_trigger: Trigger,
    rule: Annotated[str, MinLen(1), MaxLen(128), NOT_BLANK],
    job_type: Annotated[str, MinLen(1), MaxLen(32), NOT_BLANK],
    target: Annotated[str, MinLen(1), MaxLen(1024), NOT_BLANK],
    job_name: Annotated[str | None, MaxLen(128)] = None,
    payload: Any = None,
    options: Any = None,
    timezone: Annotated[str | None, MaxLen(64)] = None,
    timeout: Timeout = None,
    misfire_grace: MisfireGrace = None,
    coalesce: bool | None = None,
    max_concurrent: MaxConcurrent = None,
):
    """Create a job. ``job_trigger``: cron|interval|date; ``job_type``: http|mq|handler|script|..."""
    values = {
        "job_id": job_id,
        "job_trigger": job_trigger,
        "rule": rule,
        "job_type": job_type,
        "target": target,
        "job_name": job_name,
        "payload": payload,
        "options": options,
        "timezone": timezone,
        "timeout": timeout,
        "misfire_grace": misfire_grace,
        "coalesce": coalesce,
        "max_concurrent": max_concurrent,
    }
    return retstat.OK, {"data": service.add_job(_state(req), values)}


@api(admin=True, methods=("POST",))
def modify_job(
    req,
    job_id: JobId,
    job_trigger: Trigger | None = None,
    rule: Annotated[str | None, MaxLen(128)] = None,
    job_type: Annotated[str | None, MaxLen(32)] = None,
    target: Annotated[str | None, MaxLen(1024)] = None,
    job_name: Annotated[str | None, MaxLen(128)] = None,
    payload: Any = None,
    options: Any = None,
    timezone: Annotated[str | None, MaxLen(64)] = None,
    timeout: Timeout = None,
    misfire_grace: MisfireGrace = None,
    coalesce: bool | None = None,
    max_concurrent: MaxConcurrent = None,
):
    """Change a job; fields left out keep their value. A new trigger/rule/timezone restarts its schedule."""
    values = {
        "job_id": job_id,
        "job_trigger": job_trigger,
        "rule": rule,
        "job_type": job_type,
        "target": target,
        "job_name": job_name,
        "payload": payload,
        "options": options,
        "timezone": timezone,
        "timeout": timeout,
        "misfire_grace": misfire_grace,
        "coalesce": coalesce,
        "max_concurrent": max_concurrent,
    }
    return retstat.OK, {"data": service.modify_job(_state(req), values)}


@api(admin=True, methods=("POST",))
def remove_job(req, job_id: JobId):
    """Delete a job (its history stays)."""
    service.remove_job(_state(req), job_id)
    return retstat.OK


@api(admin=True, methods=("POST",))
def pause_job(req, job_id: JobId):
    """Stop firing a job until resumed."""
    return retstat.OK, {"data": service.pause_job(_state(req), job_id)}


@api(admin=True, methods=("POST",))
def resume_job(req, job_id: JobId):
    """Fire a paused job again, from now on."""
    return retstat.OK, {"data": service.resume_job(_state(req), job_id)}


@api(admin=True, methods=("POST",))
def run_job(req, job_id: JobId):
    """Run a job now on this instance; returns its ``fire_id`` (see ``get_history``)."""
    return retstat.OK, {"data": service.run_job(_state(req), job_id)}


@api
def get_job(req, job_id: JobId):
    """One job, its next five run times and its last run."""
    return retstat.OK, {"data": service.get_job(_state(req), job_id)}


@api
def get_jobs(
    req,
    job_id: Filter = None,
    job_name: Filter = None,
    page_index: Page = None,
    page_size: PageSize = None,
):
    """Jobs, newest first: ``{"total", "list", "page_index", "page_size"}``."""
    return retstat.OK, {"data": service.get_jobs(_state(req), job_id, job_name, page_index, page_size)}


@api
def get_history(
    req,
    job_id: Filter = None,
    status: RunStatus | None = None,
    page_index: Page = None,
    page_size: PageSize = None,
):
    """Runs (claims) newest first: scheduled time, status, instance, duration, output."""
    return retstat.OK, {"data": service.get_history(_state(req), job_id, status, page_index, page_size)}


@api
def status(req):
    """This instance's scheduler and every known instance."""
    return retstat.OK, {"data": service.status(_state(req))}
