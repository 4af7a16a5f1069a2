"""The claim transaction on every store backend: once per occurrence, misfire, coalesce,
max_concurrent, lost runs, pause/resume — driven with explicit clock values."""

from __future__ import annotations

import threading

import pytest
from pony.orm import db_session, select

from butterfly_ruqi import claims, instances, service
from butterfly_ruqi.jobtypes import Outcome
from butterfly_ruqi.models import entities


def make_job(kernel, job_id, **fields):
    state = kernel.extensions["ruqi"]
    values = {
        "job_id": job_id,
        "job_trigger": "interval",
        "rule": "1s",
        "job_type": "handler",
        "target": "/ruqi_test/tick",
        **fields,
    }
    service.add_job(state, values)
    Job, _, _ = entities(state.db)
    with db_session:
        job = Job[job_id]
        anchor = claims.next_due(job, claims.TriggerCache().get(job))
    return state, anchor


def rows(state, job_id):
    _, Run, _ = entities(state.db)
    with db_session:
        return [
            (r.scheduled_ms, r.status, r.instance_id, r.manual)
            for r in select(r for r in Run if r.job_id == job_id).order_by(lambda r: r.scheduled_ms)
        ]


def test_racing_instances_claim_each_occurrence_once(ruqi_kernel, database_url, new_job_id):
    kernel = ruqi_kernel(database_url)
    job_id = new_job_id("race")
    state, first = make_job(kernel, job_id, max_concurrent=100)
    racers = 4
    caches = [claims.TriggerCache() for _ in range(racers)]
    wins = [[] for _ in range(racers)]
    errors = []

    def racer(index, now, barrier):
        barrier.wait()
        try:
            result = claims.claim_due(state.db, job_id, now, f"racer-{index}", caches[index])
            wins[index].extend(run.fire.scheduled_ms for run in result.runs)
        except Exception as exc:  # lock timeouts would show up here
            errors.append(exc)

    steps = 8
    for step in range(steps):
        barrier = threading.Barrier(racers)
        threads = [threading.Thread(target=racer, args=(i, first + step * 1000 + 10, barrier)) for i in range(racers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert not errors
    claimed = sorted(ms for won in wins for ms in won)
    assert claimed == [first + step * 1000 for step in range(steps)]
    recorded = rows(state, job_id)
    assert [r[0] for r in recorded] == claimed and {r[1] for r in recorded} == {"claimed"}


def test_old_occurrences_become_one_misfire_record_and_the_cursor_moves_on(ruqi_kernel, database_url, new_job_id):
    kernel = ruqi_kernel(database_url)
    job_id = new_job_id("misfire")
    state, first = make_job(kernel, job_id, misfire_grace=5, max_concurrent=100)
    cache = claims.TriggerCache()
    now = first + 100_000  # the cluster was down for 100 s
    result = claims.claim_due(state.db, job_id, now, "a", cache)
    recorded = rows(state, job_id)
    misfires = [r for r in recorded if r[1] == "skipped_misfire"]
    assert len(misfires) == 1 and misfires[0][0] == first
    on_time = [r[0] for r in recorded if r[1] == "claimed"]
    assert on_time == [now - 5000 + 1000 * i for i in range(6)][: len(on_time)] and 5 <= len(on_time) <= 6
    assert on_time[-1] == now
    assert result.next_due_ms == now + 1000
    again = claims.claim_due(state.db, job_id, now + 1000, "b", cache)
    assert [run.fire.scheduled_ms for run in again.runs] == [now + 1000]
    _, Run, _ = entities(state.db)
    with db_session:
        output = Run.get(job_id=job_id, status="skipped_misfire").output
    assert "occurrence(s)" in output and "misfire_grace" in output


def test_coalesce_runs_only_the_latest_due_occurrence(ruqi_kernel, database_url, new_job_id):
    kernel = ruqi_kernel(database_url)
    job_id = new_job_id("coalesce")
    state, first = make_job(kernel, job_id, coalesce=True, misfire_grace=60, max_concurrent=5)
    result = claims.claim_due(state.db, job_id, first + 3000, "a", claims.TriggerCache())
    assert [run.fire.scheduled_ms for run in result.runs] == [first + 3000]
    statuses = [r[1] for r in rows(state, job_id)]
    assert statuses == ["skipped_coalesced"] * 3 + ["claimed"]


def test_max_concurrent_is_counted_inside_the_claim(ruqi_kernel, database_url, new_job_id):
    kernel = ruqi_kernel(database_url)
    job_id = new_job_id("concurrent")
    state, first = make_job(kernel, job_id, max_concurrent=1)
    cache = claims.TriggerCache()
    run = claims.claim_due(state.db, job_id, first, "a", cache).runs[0]
    assert claims.claim_due(state.db, job_id, first + 1000, "a", cache).runs == []
    claims.finish_run(state.db, run.fire.fire_id, Outcome(True, "x" * 50), first, first + 1500, limit=10)
    assert len(claims.claim_due(state.db, job_id, first + 2000, "a", cache).runs) == 1
    assert [r[1] for r in rows(state, job_id)] == ["succeeded", "skipped_concurrent", "claimed"]
    history = service.get_history(state, job_id=job_id, page_size=10)["list"]
    finished = next(h for h in history if h["status"] == "succeeded")
    assert finished["output"].startswith("x" * 10) and "[truncated: 40 more characters]" in finished["output"]
    assert finished["duration"] == 1.5


def test_runs_of_a_silent_instance_are_marked_lost_not_rerun(ruqi_kernel, database_url, new_job_id):
    kernel = ruqi_kernel(database_url)
    job_id = new_job_id("lost")
    state, first = make_job(kernel, job_id, max_concurrent=5)
    dead, alive = new_job_id("dead-instance"), new_job_id("live-instance")
    instances.heartbeat(state.db, dead, first - 60_000, first - 60_000)
    instances.heartbeat(state.db, alive, first + 40_000, first)
    cache = claims.TriggerCache()
    claims.claim_due(state.db, job_id, first, dead, cache)
    claims.claim_due(state.db, job_id, first + 1000, alive, cache)
    marked = instances.mark_lost(state.db, first + 40_000, timeout_ms=30_000)
    assert marked >= 1
    by_instance = {r[2]: r[1] for r in rows(state, job_id)}
    assert by_instance == {dead: "lost", alive: "claimed"}
    # the lost occurrence is not claimed again: the cursor is past it
    later = claims.claim_due(state.db, job_id, first + 2000, alive, cache)
    assert [run.fire.scheduled_ms for run in later.runs] == [first + 2000]


def test_paused_jobs_claim_nothing_and_resume_skips_the_pause(ruqi_kernel, database_url, new_job_id):
    kernel = ruqi_kernel(database_url)
    job_id = new_job_id("pause")
    state, first = make_job(kernel, job_id)
    service.pause_job(state, job_id)
    cache = claims.TriggerCache()
    assert claims.claim_due(state.db, job_id, first + 5000, "a", cache).runs == []
    assert rows(state, job_id) == []  # nothing recorded while paused
    resumed_at = claims_now()
    service.resume_job(state, job_id)
    result = claims.claim_due(state.db, job_id, resumed_at + 3000, "a", cache)
    assert result.runs and all(run.fire.scheduled_ms > resumed_at for run in result.runs)
    assert all(r[0] > resumed_at for r in rows(state, job_id))  # occurrences before resume: not recorded


def test_manual_runs_do_not_move_the_schedule_and_respect_max_concurrent(ruqi_kernel, database_url, new_job_id):
    kernel = ruqi_kernel(database_url)
    job_id = new_job_id("manual")
    state, first = make_job(kernel, job_id, max_concurrent=2)
    one = claims.claim_manual(state.db, job_id, first, "a")
    two = claims.claim_manual(state.db, job_id, first, "a")  # same millisecond: still two rows
    assert one.fire.manual and two.fire.scheduled_ms == first + 1
    from kernel import TooManyRequests

    with pytest.raises(TooManyRequests):
        claims.claim_manual(state.db, job_id, first, "a")
    claims.finish_run(state.db, one.fire.fire_id, Outcome(True), first, first + 1, 100)
    scheduled = claims.claim_due(state.db, job_id, first, "a", claims.TriggerCache())
    assert [run.fire.scheduled_ms for run in scheduled.runs] == [first]  # same ms as a manual run: no clash


def claims_now() -> int:
    from butterfly_ruqi.scheduler import now_ms

    return now_ms()
