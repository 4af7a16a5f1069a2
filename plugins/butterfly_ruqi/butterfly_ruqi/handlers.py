"""The ruqi HTTP API, served by butterfly-router at ``/ruqi/<name>``.

Names are the original ruqi's. Writes are admin-only and POST-only; reads are
open (secret-looking values in payloads, headers and env are masked). Replies are
``{"stat": "OK", "data": ...}`` like the original.

``payload`` and ``options`` take a JSON object (in a JSON body) or its JSON text
(in a query string or form).
"""

from __future__ import annotations

from typing import Any

from butterfly_router import api, retstat
from butterfly_ruqi import service


def _state(req) -> service.RuqiState:
    return req.kernel.extensions["ruqi"]


@api(admin=True, methods=("POST",))
def add_job(
    req,
    job_id: str,
    job_trigger: str,
    rule: str,
    job_type: str,
    target: str,
    job_name: str | None = None,
    payload: Any = None,
    options: Any = None,
    timezone: str | None = None,
    timeout: float | None = None,
    misfire_grace: float | None = None,
    coalesce: bool | None = None,
    max_concurrent: int | None = None,
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
    job_id: str,
    job_trigger: str | None = None,
    rule: str | None = None,
    job_type: str | None = None,
    target: str | None = None,
    job_name: str | None = None,
    payload: Any = None,
    options: Any = None,
    timezone: str | None = None,
    timeout: float | None = None,
    misfire_grace: float | None = None,
    coalesce: bool | None = None,
    max_concurrent: int | None = None,
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
def remove_job(req, job_id: str):
    """Delete a job (its history stays)."""
    service.remove_job(_state(req), job_id)
    return retstat.OK


@api(admin=True, methods=("POST",))
def pause_job(req, job_id: str):
    """Stop firing a job until resumed."""
    return retstat.OK, {"data": service.pause_job(_state(req), job_id)}


@api(admin=True, methods=("POST",))
def resume_job(req, job_id: str):
    """Fire a paused job again, from now on."""
    return retstat.OK, {"data": service.resume_job(_state(req), job_id)}


@api(admin=True, methods=("POST",))
def run_job(req, job_id: str):
    """Run a job now on this instance; returns its ``fire_id`` (see ``get_history``)."""
    return retstat.OK, {"data": service.run_job(_state(req), job_id)}


@api
def get_job(req, job_id: str):
    """One job, its next five run times and its last run."""
    return retstat.OK, {"data": service.get_job(_state(req), job_id)}


@api
def get_jobs(
    req,
    job_id: str | None = None,
    job_name: str | None = None,
    page_index: int | None = None,
    page_size: int | None = None,
):
    """Jobs, newest first: ``{"total", "list", "page_index", "page_size"}``."""
    return retstat.OK, {"data": service.get_jobs(_state(req), job_id, job_name, page_index, page_size)}


@api
def get_history(
    req,
    job_id: str | None = None,
    status: str | None = None,
    page_index: int | None = None,
    page_size: int | None = None,
):
    """Runs (claims) newest first: scheduled time, status, instance, duration, output."""
    return retstat.OK, {"data": service.get_history(_state(req), job_id, status, page_index, page_size)}


@api
def status(req):
    """This instance's scheduler and every known instance."""
    return retstat.OK, {"data": service.status(_state(req))}
