"""The scheduler loop every instance runs (no leader) and the worker pool.

One thread (``ruqi-scheduler``) per instance, started in ``butterfly_startup``:

- every ``[ruqi] sync_interval`` seconds it beats its heartbeat, marks ``lost`` runs
  of silent instances, and re-reads every job (so a job added or changed on any
  instance is picked up within one interval);
- whenever a job's next occurrence is due it runs :func:`~butterfly_ruqi.claims.claim_due`
  and hands the occurrences it won to a thread pool (``[ruqi] workers``).

Local state is only a cache of "when is each job next due"; the truth (the cursor,
the claims) is in the shared store, so a cache that is stale costs at most one
useless claim transaction.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import structlog
from pony.orm import db_session, select

from butterfly_ruqi import claims, instances
from butterfly_ruqi.jobtypes import Outcome
from butterfly_ruqi.models import entities

log = structlog.get_logger("butterfly.ruqi")
#: shortest and longest sleep of the loop, in seconds
MIN_SLEEP = 0.01
RETRY_AFTER_ERROR_MS = 500


def now_ms() -> int:
    """This instance's clock in ms since the epoch."""
    return int(time.time() * 1000)


class Scheduler:
    """The per-instance scheduler: claims due occurrences and runs them.

    :param kernel: the kernel (job types call ``kernel.call`` etc.)
    :param db: the store's mapped pony database
    :param registry: the :class:`~butterfly_ruqi.jobtypes.JobTypeRegistry`
    :param sync_interval: seconds between job re-reads and heartbeats
    :param instance_timeout: seconds without heartbeat before runs are ``lost``
    :param workers: size of the run thread pool
    :param output_limit: characters of output kept per run
    :param redis_claims: a :class:`~butterfly_ruqi.redis_claims.RedisClaims` (``[ruqi]
        claim_redis_url``) or ``None`` for database claims only
    """

    def __init__(
        self,
        kernel,
        db,
        registry,
        *,
        sync_interval: float,
        instance_timeout: float,
        workers: int,
        output_limit: int,
        redis_claims=None,
    ) -> None:
        self.kernel = kernel
        self.db = db
        self.registry = registry
        self.sync_interval = sync_interval
        self.instance_timeout_ms = int(instance_timeout * 1000)
        self.output_limit = output_limit
        self.workers = workers
        self.redis_claims = redis_claims
        self.instance_id = instances.new_instance_id()
        self.started_ms = now_ms()
        self.triggers = claims.TriggerCache()
        self.next_due: dict[str, int | None] = {}
        self.last_sync_ms: int | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._active = 0
        self._active_lock = threading.Lock()

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Beat once, then start the loop thread and the pool."""
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="ruqi-run")
        self._thread = threading.Thread(target=self._loop, name="ruqi-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30) -> None:
        """Stop claiming, wait for running jobs up to ``timeout``, retire the instance."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._pool is not None:
            deadline = time.monotonic() + timeout
            self._pool.shutdown(wait=False, cancel_futures=True)
            while self.active_runs and time.monotonic() < deadline:
                time.sleep(0.05)
        try:
            instances.retire(self.db, self.instance_id, now_ms())
        except Exception:
            log.exception("ruqi could not retire its instance row", instance=self.instance_id)

    def wake(self) -> None:
        """Re-read jobs now (called after a change made on this instance)."""
        self.last_sync_ms = None
        self._wake.set()

    @property
    def running(self) -> bool:
        """True while the loop thread runs."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def active_runs(self) -> int:
        """Runs executing on this instance now."""
        with self._active_lock:
            return self._active

    # -- the loop ---------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            current = now_ms()
            if self.last_sync_ms is None or current - self.last_sync_ms >= self.sync_interval * 1000:
                try:
                    self.sync(current)
                except Exception:
                    log.exception("ruqi sync failed; retrying")
                    self.last_sync_ms = current - int(self.sync_interval * 1000) + RETRY_AFTER_ERROR_MS
            for job_id, due_ms in sorted(self.next_due.items(), key=lambda item: item[1] or 0):
                if self._stop.is_set():
                    break
                if due_ms is not None and due_ms <= now_ms():
                    self._claim(job_id)
            self._wake.clear()
            self._wake.wait(self._sleep_seconds())

    def _sleep_seconds(self) -> float:
        current = now_ms()
        wake_at = (self.last_sync_ms or current) + int(self.sync_interval * 1000)
        due = [ms for ms in self.next_due.values() if ms is not None]
        if due:
            wake_at = min(wake_at, min(due))
        return max((wake_at - current) / 1000, MIN_SLEEP)

    def sync(self, current: int) -> None:
        """Heartbeat, mark lost runs, re-read every job's next due time."""
        instances.heartbeat(self.db, self.instance_id, current, self.started_ms)
        lost = instances.mark_lost(self.db, current, self.instance_timeout_ms)
        if lost:
            log.warning("ruqi runs of silent instances marked lost", count=lost)
        Job, _, _ = entities(self.db)
        fresh: dict[str, int | None] = {}
        # PERF: one query for all jobs per interval; fine for thousands of jobs.
        with db_session:
            for job in select(j for j in Job)[:]:
                if job.paused:
                    fresh[job.job_id] = None
                    continue
                try:
                    fresh[job.job_id] = claims.next_due(job, self.triggers.get(job))
                except Exception:
                    log.exception("ruqi job has an unusable rule", job_id=job.job_id)
                    fresh[job.job_id] = None
        for gone in set(self.next_due) - set(fresh):
            self.triggers.forget(gone)
        self.next_due = fresh
        self.last_sync_ms = current

    def _claim(self, job_id: str) -> None:
        try:
            result = claims.claim_due(self.db, job_id, now_ms(), self.instance_id, self.triggers, self.redis_claims)
        except Exception:
            log.warning("ruqi claim failed; retrying", job_id=job_id, exc_info=True)
            self.next_due[job_id] = now_ms() + RETRY_AFTER_ERROR_MS
            return
        self.next_due[job_id] = result.next_due_ms
        if result.redis_error is not None:
            self._redis_failed(job_id)
        for run in result.runs:
            self.submit(run)

    def _redis_failed(self, job_id: str) -> None:
        """Redis did not answer a claim: retry the job shortly.

        NOTE: no log line here: the claims' shared backoff (``loop=ruqi-claims``) logs the
        outage once when it starts and once when it ends, however many claims fail meanwhile.
        """
        self.next_due[job_id] = now_ms() + RETRY_AFTER_ERROR_MS

    # -- running ------------------------------------------------------------------------

    def submit(self, run: claims.ClaimedRun) -> None:
        """Run a claimed occurrence on the pool."""
        with self._active_lock:
            self._active += 1
        try:
            self._pool.submit(self._execute, run)
        except RuntimeError:  # pool shut down: the run stays claimed and is retired as lost
            with self._active_lock:
                self._active -= 1

    def _execute(self, run: claims.ClaimedRun) -> None:
        fire, spec = run.fire, run.spec
        # NOTE: each run starts a W3C trace: its lines, the route it calls and the URL an http
        # job requests (traceparent) carry it; trace_id/span_id as the trace plugin binds them.
        # A new trace has no tracestate: Ellipsis is structlog's "unset".
        ids = os.urandom(24).hex()
        structlog.contextvars.bind_contextvars(
            ruqi_job=fire.job_id, ruqi_fire_id=fire.fire_id, trace_id=ids[:32], span_id=ids[32:], tracestate=...
        )
        started = now_ms()
        try:
            claims.start_run(self.db, fire.fire_id, started)
            try:
                outcome = self.registry.get(spec.job_type).run(self.kernel, spec, fire)
            except Exception as exc:
                log.exception("ruqi job raised", job_id=fire.job_id)
                outcome = Outcome(False, f"{type(exc).__name__}: {exc}")
            ended = now_ms()
            if outcome.ok and (ended - started) / 1000 > spec.timeout:
                outcome = Outcome(
                    False,
                    f"ran {(ended - started) / 1000:.3f}s, longer than timeout {spec.timeout:g}s\n{outcome.output}",
                )
            claims.finish_run(self.db, fire.fire_id, outcome, started, ended, self.output_limit)
            log.info(
                "ruqi run finished",
                job_id=fire.job_id,
                fire_id=fire.fire_id,
                ok=outcome.ok,
                cost=round((ended - started) / 1000, 3),
            )
        except Exception:
            log.exception("ruqi could not record a run", job_id=fire.job_id, fire_id=fire.fire_id)
        finally:
            structlog.contextvars.unbind_contextvars("ruqi_job", "ruqi_fire_id", "trace_id", "span_id", "tracestate")
            with self._active_lock:
                self._active -= 1
