"""ruqi's operations, shared by the HTTP API, the web page and the CLI.

Every function takes the :class:`RuqiState` (``kernel.extensions["ruqi"]``) and plain
values, and raises :class:`kernel.HTTPError` subclasses for bad input: 400
``ERR_BAD_PARAMS`` with ``errors``, 404 ``ERR_NOT_FOUND``, 409 ``ERR_JOB_EXISTS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pony.orm import commit, db_session, desc, select

from butterfly_ruqi import claims, instances
from butterfly_ruqi.jobspec import EDITABLE, SCHEDULE_FIELDS, JobSpec, normalize_job
from butterfly_ruqi.jobtypes import bad_param
from butterfly_ruqi.models import RUN_STATES, entities
from butterfly_ruqi.rules import build_trigger, format_ms, upcoming
from butterfly_ruqi.scheduler import now_ms
from kernel import ConfigError, HTTPError, NotFound, ServiceUnavailable
from kernel.redaction import mask_secrets

#: The highest page a listing serves (a larger offset overflows some databases).
MAX_PAGE_INDEX = 1_000_000


class JobExists(HTTPError):
    """``add_job`` with an id that is taken."""

    status = 409
    stat = "ERR_JOB_EXISTS"


@dataclass
class RuqiState:
    """ruqi's runtime state on a kernel (``kernel.extensions["ruqi"]``)."""

    kernel: Any
    registry: Any
    settings: Any
    scheduler: Any = None
    #: :class:`~butterfly_ruqi.redis_claims.RedisClaims` when ``[ruqi] claim_redis_url`` is set (after startup)
    redis_claims: Any = None
    _db: Any = None

    @property
    def db(self):
        """The store's mapped pony database (looked up on first use: the store maps last).

        :raises kernel.ConfigError: when butterfly-store is missing
        """
        if self._db is None:
            try:
                from butterfly_store import get_db
            except ImportError:
                raise ConfigError("butterfly-ruqi needs butterfly-store (pip install butterfly-store)") from None
            self._db = get_db(self.kernel)
        return self._db

    def defaults(self) -> dict[str, Any]:
        """Defaults for optional job fields, from ``[ruqi]``."""
        return {
            "timezone": self.settings.default_timezone,
            "timeout": self.settings.default_timeout,
            "misfire_grace": self.settings.misfire_grace,
        }

    def changed(self) -> None:
        """Tell this instance's scheduler to re-read jobs now."""
        if self.scheduler is not None:
            self.scheduler.wake()


def redact(value: Any) -> Any:
    """Mask values whose key looks secret (headers, env, payload fields), at any depth.

    The word list is the kernel's (:mod:`kernel.redaction`), shared with the access
    log and wuxing.
    """
    return mask_secrets(value)


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat(timespec="seconds") if moment else None


def job_dict(job, *, next_count: int = 1) -> dict[str, Any]:
    """A job row as JSON (secrets masked), with its next run time(s)."""
    data = JobSpec.from_row(job).as_dict()
    data["payload"], data["options"] = redact(data["payload"]), redact(data["options"])
    data.update(
        paused=job.paused, version=job.version, created_at=_iso(job.created_at), updated_at=_iso(job.updated_at)
    )
    nexts: list[int] = []
    if not job.paused:
        try:
            trigger = build_trigger(job.job_trigger, job.rule, job.timezone, job.schedule_from_ms)
            start = job.handled_until_ms if job.handled_until_ms is not None else job.schedule_from_ms - 1
            nexts = upcoming(trigger, max(start, now_ms() - 1), next_count)
        except ValueError:
            nexts = []
    data["next_run_time"] = format_ms(nexts[0], job.timezone) if nexts else None
    if next_count > 1:
        data["next_run_times"] = [format_ms(ms, job.timezone) for ms in nexts]
    return data


def run_dict(run) -> dict[str, Any]:
    """A history row as JSON."""
    return {
        "fire_id": run.id,
        "job_id": run.job_id,
        "scheduled_time": format_ms(run.scheduled_ms),
        "scheduled_ms": run.scheduled_ms,
        "manual": run.manual,
        "status": run.status,
        "instance_id": run.instance_id,
        "claimed_at": format_ms(run.claimed_at_ms),
        "started_at": format_ms(run.started_at_ms),
        "ended_at": format_ms(run.ended_at_ms),
        "duration": run.duration,
        "output": run.output or "",
    }


def _page(page_index: Any, page_size: Any, max_size: int) -> tuple[int, int]:
    try:
        index = int(page_index if page_index not in (None, "") else 1)
        size = int(page_size if page_size not in (None, "") else 15)
    except (TypeError, ValueError):
        raise bad_param("page_index", "page_index and page_size must be integers") from None
    if not 1 <= index <= MAX_PAGE_INDEX:
        raise bad_param("page_index", f"must be between 1 and {MAX_PAGE_INDEX}")
    if not 1 <= size <= max_size:
        raise bad_param("page_size", f"must be between 1 and {max_size}")
    return index, size


def add_job(state: RuqiState, values: dict[str, Any]) -> dict[str, Any]:
    """Create a job; its schedule starts now."""
    Job, _, _ = entities(state.db)
    current = now_ms()
    spec = normalize_job(values, state.defaults(), state.registry, state.kernel, current)
    with db_session:
        if Job.get(job_id=spec.job_id) is not None:
            raise JobExists(
                f"job {spec.job_id!r} already exists; use modify_job",
                data={"errors": [{"param": "job_id", "reason": "already exists"}]},
            )
        stamp = datetime.now(UTC).replace(tzinfo=None)
        job = Job(**spec.as_dict(), schedule_from_ms=current, created_at=stamp, updated_at=stamp)
        data = job_dict(job)
        commit()  # NOTE: now, not at the end of the request: the scheduler is woken next
    state.changed()
    return data


def modify_job(state: RuqiState, values: dict[str, Any]) -> dict[str, Any]:
    """Change a job; fields not given keep their value. A new trigger, rule or
    timezone restarts the schedule from now (no catch-up of the old one)."""
    Job, _, _ = entities(state.db)
    job_id = values.get("job_id")
    current = now_ms()
    with db_session(optimistic=False):
        job = Job.get_for_update(job_id=job_id) if isinstance(job_id, str) else None
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        merged = JobSpec.from_row(job).as_dict()
        merged.update({k: v for k, v in values.items() if k in EDITABLE and v is not None})
        spec = normalize_job(merged, state.defaults(), state.registry, state.kernel, current)
        restart = any(getattr(job, name) != getattr(spec, name) for name in SCHEDULE_FIELDS)
        for name in EDITABLE:
            if getattr(job, name) != getattr(spec, name):
                setattr(job, name, getattr(spec, name))
        if restart:
            job.schedule_from_ms, job.handled_until_ms = current, None
        job.version += 1
        job.updated_at = datetime.now(UTC).replace(tzinfo=None)
        data = job_dict(job)
        commit()
    state.changed()
    return data


def _edit(state: RuqiState, job_id: str, change) -> dict[str, Any]:
    Job, _, _ = entities(state.db)
    with db_session(optimistic=False):
        job = Job.get_for_update(job_id=job_id) if isinstance(job_id, str) else None
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        change(job)
        job.version += 1
        job.updated_at = datetime.now(UTC).replace(tzinfo=None)
        data = job_dict(job)
        commit()
    state.changed()
    return data


def pause_job(state: RuqiState, job_id: str) -> dict[str, Any]:
    """Stop firing a job (nothing is recorded while paused)."""

    def change(job):
        job.paused = True

    return _edit(state, job_id, change)


def resume_job(state: RuqiState, job_id: str) -> dict[str, Any]:
    """Fire again from now; occurrences during the pause are not run or recorded."""

    def change(job):
        if job.paused:
            job.paused, job.handled_until_ms = False, now_ms()

    return _edit(state, job_id, change)


def remove_job(state: RuqiState, job_id: str) -> None:
    """Delete a job; its history stays."""
    Job, _, _ = entities(state.db)
    with db_session(optimistic=False):
        job = Job.get_for_update(job_id=job_id) if isinstance(job_id, str) else None
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        job.delete()
        commit()
    state.changed()


def run_job(state: RuqiState, job_id: str) -> dict[str, Any]:
    """Run a job now on this instance (also when paused); returns the fire id."""
    scheduler = state.scheduler
    if scheduler is None or not scheduler.running:
        raise ServiceUnavailable("the ruqi scheduler is not running on this instance")
    run = claims.claim_manual(state.db, job_id, now_ms(), scheduler.instance_id)
    scheduler.submit(run)
    return {"fire_id": run.fire.fire_id, "job_id": job_id, "scheduled_time": run.fire.scheduled_time}


def get_job(state: RuqiState, job_id: str) -> dict[str, Any]:
    """One job with its next five run times and its last run."""
    Job, Run, _ = entities(state.db)
    with db_session:
        job = Job.get(job_id=job_id) if isinstance(job_id, str) else None
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        data = job_dict(job, next_count=5)
        last = select(r for r in Run if r.job_id == job_id).order_by(lambda r: desc(r.id)).first()
        data["last_run"] = run_dict(last) if last else None
        return data


def get_jobs(state: RuqiState, job_id=None, job_name=None, page_index=None, page_size=None) -> dict[str, Any]:
    """Jobs, newest first, filtered by exact id or name substring, paginated."""
    Job, _, _ = entities(state.db)
    index, size = _page(page_index, page_size, state.settings.max_page_size)
    with db_session:
        query = select(j for j in Job)
        if job_id:
            query = query.filter(lambda j: j.job_id == job_id)
        if job_name:
            query = query.filter(lambda j: job_name in j.job_name)
        total = query.count()
        rows = query.order_by(lambda j: (desc(j.created_at), j.job_id)).page(index, size)
        return {"total": total, "page_index": index, "page_size": size, "list": [job_dict(j) for j in rows]}


def get_history(state: RuqiState, job_id=None, status=None, page_index=None, page_size=None) -> dict[str, Any]:
    """History rows (claims), newest first, paginated."""
    _, Run, _ = entities(state.db)
    index, size = _page(page_index, page_size, state.settings.max_page_size)
    if status and status not in RUN_STATES:
        raise bad_param("status", f"must be one of {', '.join(RUN_STATES)}")
    with db_session:
        query = select(r for r in Run)
        if job_id:
            query = query.filter(lambda r: r.job_id == job_id)
        if status:
            query = query.filter(lambda r: r.status == status)
        total = query.count()
        rows = query.order_by(lambda r: desc(r.id)).page(index, size)
        return {"total": total, "page_index": index, "page_size": size, "list": [run_dict(r) for r in rows]}


def status(state: RuqiState) -> dict[str, Any]:
    """This instance's scheduler, the known instances, job counts and job types."""
    Job, _, _ = entities(state.db)
    scheduler = state.scheduler
    current = now_ms()
    timeout_ms = int(state.settings.instance_timeout * 1000)
    with db_session:
        jobs = select(j for j in Job).count()
        paused = select(j for j in Job if j.paused).count()
    due = [ms for ms in (scheduler.next_due.values() if scheduler else []) if ms is not None]
    return {
        "instance_id": scheduler.instance_id if scheduler else None,
        "running": bool(scheduler and scheduler.running),
        "active_runs": scheduler.active_runs if scheduler else 0,
        "sync_interval": state.settings.sync_interval,
        "claims": "redis+database" if state.settings.claim_redis_url else "database",
        "check_time": format_ms(current),
        "next_wakeup_time": format_ms(min(due)) if due else None,
        "jobs": jobs,
        "paused_jobs": paused,
        "job_types": state.registry.names(),
        "instances": [
            {**i, "last_seen": format_ms(i["last_seen_ms"]), "started_at": format_ms(i["started_at_ms"])}
            for i in instances.list_instances(state.db, current, timeout_ms)
        ],
    }
