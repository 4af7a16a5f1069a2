"""Claiming occurrences: the transactions that make each occurrence fire once.

How one instance claims the due occurrences of one job (:func:`claim_due`), in a
single transaction:

1. Lock the job row (``SELECT … FOR UPDATE`` on MySQL/PostgreSQL; ``BEGIN
   IMMEDIATE`` on SQLite, which takes the database's write lock). Every instance
   claiming the same job now queues behind this lock.
2. Read the shared cursor ``handled_until_ms``: every occurrence at or before it
   was already claimed by *some* instance. Occurrences after it and at or before
   "now" are due. They are computed from the rule alone, so every instance names
   an occurrence with the same integer.
3. Due occurrences older than ``misfire_grace`` become one ``skipped_misfire`` row
   (with the count and range); with ``coalesce`` all but the latest on-time one
   become ``skipped_coalesced``; each remaining one is claimed as ``claimed`` —
   unless ``max_concurrent`` runs of the job are already ``claimed``/``running``
   (counted inside this locked transaction, hence atomically), in which case it is
   recorded ``skipped_concurrent``.
4. Advance the cursor and commit. The unique key ``(job_id, scheduled_ms, manual)``
   on ``ruqi_run`` backs the lock up: a second claim of an occurrence fails.

With ``[ruqi] claim_redis_url`` an occurrence about to be claimed is first claimed in
Redis (``SET … NX PX``, see :mod:`butterfly_ruqi.redis_claims`), *inside* this locked
transaction, before its row is inserted. Why there: the cursor and the Redis key must
agree. Done before the transaction, two instances could both pass ``SET NX`` for
different occurrences, then queue on the lock, and the second one would find the
cursor already past its occurrence; done after the commit, the cursor would already
say "handled" for an occurrence nobody may run. Inside, under the lock, the cursor is
moved only past occurrences this transaction settled (claimed, skipped, recorded):

- ``SET`` succeeds, or the key already holds *this* instance's id (an earlier attempt
  of ours whose reply timed out or whose transaction rolled back — we never ran it,
  since runs start only after the commit): the row is inserted ``claimed``.
- The key holds *another* instance's id while the cursor says the occurrence is not
  handled: that instance won Redis but its transaction never committed (it crashed
  between the two, or the store lost the commit in a failover, in which case it may
  have run). It is recorded ``skipped_claimed`` and never run here: at most once.
- Redis does not answer: the claim stops *before* that occurrence. What was settled
  so far commits, the cursor stays before it, and it is due again on the next pass
  (here or on another instance) — run late within ``misfire_grace``, or recorded
  ``skipped_misfire`` after it. Nothing ever runs without both claims.

Because the cursor lives in the shared store and not in any instance, a restarted
or surviving instance starts exactly where the cluster left off: killing an
instance loses no occurrence while another one runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from pony.orm import commit, db_session, select

from butterfly_ruqi.jobspec import JobSpec
from butterfly_ruqi.jobtypes import Fire, Outcome
from butterfly_ruqi.models import entities
from butterfly_ruqi.redis_claims import RedisUnavailable, claim_ttl_ms
from butterfly_ruqi.rules import build_trigger, format_ms, next_at_or_after
from kernel import NotFound, TooManyRequests

#: how many missed occurrences one claim counts before summarising ("N+")
MISFIRE_SCAN_LIMIT = 10_000
#: how many on-time occurrences one claim takes (the rest wait for the next pass)
ON_TIME_LIMIT = 1000


@dataclass
class ClaimedRun:
    """An occurrence this instance won: run ``spec`` for ``fire``."""

    fire: Fire
    spec: JobSpec


@dataclass
class ClaimResult:
    """What :func:`claim_due` did for one job."""

    runs: list[ClaimedRun]
    next_due_ms: int | None
    version: int | None
    #: why the Redis claim failed (the claim stopped before an occurrence), or ``None``
    redis_error: str | None = None


class TriggerCache:
    """APScheduler triggers by ``(job_id, version)``; rebuilt only when a job changes."""

    def __init__(self) -> None:
        self._triggers: dict[str, tuple[int, object]] = {}

    def get(self, job) -> object:
        """The trigger of a ``RuqiJob`` row (or anything with the same fields)."""
        cached = self._triggers.get(job.job_id)
        if cached is None or cached[0] != job.version:
            trigger = build_trigger(job.job_trigger, job.rule, job.timezone, job.schedule_from_ms)
            cached = self._triggers[job.job_id] = (job.version, trigger)
        return cached[1]

    def forget(self, job_id: str) -> None:
        """Drop a removed job's trigger."""
        self._triggers.pop(job_id, None)


def next_due(job, trigger) -> int | None:
    """The first occurrence after the job's cursor (or from its anchor), or ``None``."""
    start = job.handled_until_ms + 1 if job.handled_until_ms is not None else job.schedule_from_ms
    return next_at_or_after(trigger, start)


def _occurrences(trigger, start_ms: int, until_ms: int, limit: int) -> tuple[list[int], int | None]:
    """Occurrences in ``[start_ms, until_ms)`` (at most ``limit``) and the first one after them."""
    found: list[int] = []
    upcoming = next_at_or_after(trigger, start_ms)
    while upcoming is not None and upcoming < until_ms and len(found) < limit:
        found.append(upcoming)
        upcoming = next_at_or_after(trigger, upcoming + 1)
    return found, upcoming


def claim_due(db, job_id: str, now_ms: int, instance_id: str, triggers: TriggerCache, redis_claims=None) -> ClaimResult:
    """Claim this job's due occurrences (see the module docstring).

    :param now_ms: this instance's clock, in ms
    :param redis_claims: a :class:`~butterfly_ruqi.redis_claims.RedisClaims` to claim in
        Redis first, or ``None`` (database claims only)
    :return: the runs this instance must start, the job's next due time, and
        ``redis_error`` when Redis did not answer
    """
    Job, Run, _ = entities(db)
    with db_session(optimistic=False):
        job = Job.get_for_update(job_id=job_id)
        if job is None or job.paused:
            return ClaimResult([], None, None)
        trigger = triggers.get(job)
        grace_ms = int(job.misfire_grace * 1000)
        start = job.handled_until_ms + 1 if job.handled_until_ms is not None else job.schedule_from_ms
        missed, first_on_time = _occurrences(trigger, start, now_ms - grace_ms, MISFIRE_SCAN_LIMIT)
        cursor = job.handled_until_ms
        base = {"job_id": job_id, "instance_id": instance_id, "claimed_at_ms": now_ms}
        if missed:
            more = first_on_time is not None and first_on_time < now_ms - grace_ms
            if more:  # NOTE: a very long outage: jump instead of counting every occurrence
                first_on_time = next_at_or_after(trigger, now_ms - grace_ms)
            Run(
                **base,
                scheduled_ms=missed[0],
                status="skipped_misfire",
                ended_at_ms=now_ms,
                output=f"{len(missed)}{'+' if more else ''} occurrence(s) from {format_ms(missed[0])} to "
                f"{format_ms(missed[-1])} were older than misfire_grace ({job.misfire_grace:g}s) "
                "when an instance could claim them",
            )
            cursor = max(missed[-1], now_ms - grace_ms - 1)
        on_time, upcoming = [], None
        if first_on_time is not None:
            on_time, upcoming = _occurrences(trigger, first_on_time, now_ms + 1, ON_TIME_LIMIT)
        if on_time and job.coalesce:
            for scheduled_ms in on_time[:-1]:
                Run(
                    **base,
                    scheduled_ms=scheduled_ms,
                    status="skipped_coalesced",
                    ended_at_ms=now_ms,
                    output=f"coalesced into the run of {format_ms(on_time[-1])}",
                )
                cursor = scheduled_ms
            on_time = on_time[-1:]
        claimed, redis_error = [], None
        if on_time:
            active = select(
                r for r in Run if r.job_id == job_id and (r.status == "claimed" or r.status == "running")
            ).count()
            for scheduled_ms in on_time:
                if active >= job.max_concurrent:
                    Run(
                        **base,
                        scheduled_ms=scheduled_ms,
                        status="skipped_concurrent",
                        ended_at_ms=now_ms,
                        output=f"max_concurrent ({job.max_concurrent}) runs were still active",
                    )
                else:
                    try:
                        holder = _redis_holder(redis_claims, job, scheduled_ms, instance_id)
                    except RedisUnavailable as exc:
                        redis_error = str(exc)
                        break  # NOTE: the cursor stays before this occurrence (module docstring)
                    if holder == instance_id:
                        claimed.append(Run(**base, scheduled_ms=scheduled_ms, status="claimed"))
                        active += 1
                    else:
                        Run(
                            **base,
                            scheduled_ms=scheduled_ms,
                            status="skipped_claimed",
                            ended_at_ms=now_ms,
                            output=f"claimed in Redis by instance {holder}, whose store transaction never "
                            "committed; not run again (at most once)",
                        )
                cursor = scheduled_ms
        if cursor != job.handled_until_ms:
            job.handled_until_ms = cursor
        db.flush()
        spec = JobSpec.from_row(job)
        runs = [ClaimedRun(Fire(row.id, job_id, row.scheduled_ms, False, instance_id), spec) for row in claimed]
        next_ms = upcoming if on_time else first_on_time
        return ClaimResult(runs, next_ms, job.version, redis_error)


def _redis_holder(redis_claims, job, scheduled_ms: int, instance_id: str) -> str:
    """The instance holding the Redis claim of an occurrence (``instance_id`` without Redis)."""
    if redis_claims is None:
        return instance_id
    return redis_claims.claim(job.job_id, scheduled_ms, instance_id, claim_ttl_ms(job.misfire_grace))


def claim_manual(db, job_id: str, now_ms: int, instance_id: str) -> ClaimedRun:
    """Claim a ``run_job`` (run now) run; it does not move the schedule's cursor.

    :raises kernel.NotFound: no such job
    :raises kernel.TooManyRequests: ``max_concurrent`` runs are active
    """
    Job, Run, _ = entities(db)
    with db_session(optimistic=False):
        job = Job.get_for_update(job_id=job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        active = select(
            r for r in Run if r.job_id == job_id and (r.status == "claimed" or r.status == "running")
        ).count()
        if active >= job.max_concurrent:
            raise TooManyRequests(
                f"job {job_id!r} already has {active} active run(s) (max_concurrent = {job.max_concurrent})"
            )
        scheduled_ms = now_ms
        while Run.get(job_id=job_id, scheduled_ms=scheduled_ms, manual=True) is not None:
            scheduled_ms += 1  # two manual runs in the same millisecond
        row = Run(
            job_id=job_id,
            scheduled_ms=scheduled_ms,
            manual=True,
            status="claimed",
            instance_id=instance_id,
            claimed_at_ms=now_ms,
        )
        db.flush()
        claimed = ClaimedRun(Fire(row.id, job_id, scheduled_ms, True, instance_id), JobSpec.from_row(job))
        commit()  # NOTE: inside a request too: a worker thread reads the row next
        return claimed


def start_run(db, run_id: int, now_ms: int) -> None:
    """Mark a claimed run ``running``."""
    _, Run, _ = entities(db)
    with db_session(optimistic=False):
        row = Run.get(id=run_id)
        if row is not None:
            row.status, row.started_at_ms = "running", now_ms


def finish_run(db, run_id: int, outcome: Outcome, started_ms: int, ended_ms: int, limit: int) -> None:
    """Record a run's end: ``succeeded`` / ``failed``, duration, truncated output.

    A run already marked ``lost`` (its instance looked dead) gets its real result.
    """
    _, Run, _ = entities(db)
    with db_session(optimistic=False):
        row = Run.get(id=run_id)
        if row is None:
            return
        row.status = "succeeded" if outcome.ok else "failed"
        row.started_at_ms = row.started_at_ms or started_ms
        row.ended_at_ms = ended_ms
        row.duration = round((ended_ms - row.started_at_ms) / 1000, 3)
        row.output = truncate(outcome.output, limit)


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with a marker when cut."""
    text = text or ""
    return text if len(text) <= limit else text[:limit] + f"\n[truncated: {len(text) - limit} more characters]"
