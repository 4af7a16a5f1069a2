"""The optional Redis claim (``[ruqi] claim_redis_url``) in front of the database claim:
racing instances, keys held by others, Redis down at claim time (cursor kept), and a
started scheduler that warns, runs nothing while Redis is down and resumes after."""

from __future__ import annotations

import threading
import time

import pytest
from pony.orm import db_session, select

from butterfly_ruqi import claims, service
from butterfly_ruqi.models import entities
from butterfly_ruqi.redis_claims import MIN_TTL_MS, RedisClaims, claim_key
from kernel import ConfigError
from kernel.testing import RedisServer


@pytest.fixture
def spare_redis():
    """A private redis-server this test may stop and start again."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server):
    """A :class:`RedisClaims` on the session's redis-server (closed after the test)."""
    client = RedisClaims.connect(redis_server.url)
    yield client
    client.close()


def make_job(kernel, job_id, **fields):
    state = kernel.extensions["ruqi"]
    service.add_job(
        state,
        {
            "job_id": job_id,
            "job_trigger": "interval",
            "rule": "1s",
            "job_type": "handler",
            "target": "/ruqi_test/tick",
            **fields,
        },
    )
    Job, _, _ = entities(state.db)
    with db_session:
        job = Job[job_id]
        return state, claims.next_due(job, claims.TriggerCache().get(job))


def rows(state, job_id):
    _, Run, _ = entities(state.db)
    with db_session:
        return [
            (r.scheduled_ms, r.status, r.instance_id)
            for r in select(r for r in Run if r.job_id == job_id).order_by(lambda r: r.scheduled_ms)
        ]


def cursor(state, job_id):
    Job, _, _ = entities(state.db)
    with db_session:
        return Job[job_id].handled_until_ms


def test_racing_instances_claim_each_occurrence_once_in_redis_and_store(
    ruqi_kernel, database_url, redis_server, redis_client, new_job_id
):
    kernel = ruqi_kernel(database_url, claim_redis_url=redis_server.url)
    job_id = new_job_id("redis-race")
    state, first = make_job(kernel, job_id, max_concurrent=100, misfire_grace=30)
    racers = 4
    clients = [RedisClaims.connect(redis_server.url) for _ in range(racers)]  # one connection per "instance"
    caches = [claims.TriggerCache() for _ in range(racers)]
    wins = [[] for _ in range(racers)]
    errors = []

    def racer(index, now, barrier):
        barrier.wait()
        try:
            result = claims.claim_due(state.db, job_id, now, f"racer-{index}", caches[index], clients[index])
            wins[index].extend(run.fire.scheduled_ms for run in result.runs)
            if result.redis_error:
                errors.append(result.redis_error)
        except Exception as exc:  # lock timeouts would show up here
            errors.append(exc)

    steps = 6
    for step in range(steps):
        barrier = threading.Barrier(racers)
        threads = [threading.Thread(target=racer, args=(i, first + step * 1000 + 10, barrier)) for i in range(racers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    for client in clients:
        client.close()
    assert not errors
    claimed = sorted(ms for won in wins for ms in won)
    assert claimed == [first + step * 1000 for step in range(steps)]
    recorded = rows(state, job_id)
    assert [r[0] for r in recorded] == claimed and {r[1] for r in recorded} == {"claimed"}
    for scheduled_ms, _, instance_id in recorded:  # the Redis key names the instance that owns the row
        assert redis_client.holder(job_id, scheduled_ms) == instance_id
        winner = int(instance_id.rsplit("-", 1)[1])
        assert scheduled_ms in wins[winner]
    ttl = redis_client.client.pttl(claim_key(job_id, first))
    assert MIN_TTL_MS - 60_000 < ttl <= MIN_TTL_MS


def test_a_key_held_by_another_instance_is_not_run_and_our_own_key_is_reclaimed(
    ruqi_kernel, database_url, redis_server, redis_client, new_job_id
):
    kernel = ruqi_kernel(database_url, claim_redis_url=redis_server.url)
    job_id = new_job_id("redis-held")
    state, first = make_job(kernel, job_id, max_concurrent=100)
    # another instance won Redis for `first` but its transaction never committed;
    # our own earlier attempt set the key of `first + 1000` (its reply was lost)
    redis_client.client.set(claim_key(job_id, first), "other-instance")
    redis_client.client.set(claim_key(job_id, first + 1000), "me")
    result = claims.claim_due(state.db, job_id, first + 2000, "me", claims.TriggerCache(), redis_client)
    assert [run.fire.scheduled_ms for run in result.runs] == [first + 1000, first + 2000]
    assert rows(state, job_id) == [
        (first, "skipped_claimed", "me"),
        (first + 1000, "claimed", "me"),
        (first + 2000, "claimed", "me"),
    ]
    assert cursor(state, job_id) == first + 2000 and result.redis_error is None
    assert redis_client.holder(job_id, first) == "other-instance"  # the loser never overwrites
    history = service.get_history(state, job_id=job_id, status="skipped_claimed")["list"]
    assert len(history) == 1 and "other-instance" in history[0]["output"]


def test_redis_down_at_claim_time_claims_nothing_and_keeps_the_cursor(
    ruqi_kernel, database_url, spare_redis, new_job_id
):
    kernel = ruqi_kernel(database_url, claim_redis_url=spare_redis.url)
    plain, coalesced = new_job_id("redis-down"), new_job_id("redis-down-co")
    state, first = make_job(kernel, plain, max_concurrent=100)
    _, co_first = make_job(kernel, coalesced, max_concurrent=100, coalesce=True)
    client = RedisClaims.connect(spare_redis.url)
    try:
        spare_redis.stop()
        down = claims.claim_due(state.db, plain, first + 1000, "a", claims.TriggerCache(), client)
        assert down.runs == [] and down.redis_error and "Connection" in down.redis_error
        assert rows(state, plain) == [] and cursor(state, plain) is None  # nothing claimed, cursor unmoved
        # coalesce: the skipped rows are settled, the cursor stops right before the unclaimed run
        co_down = claims.claim_due(state.db, coalesced, co_first + 2000, "a", claims.TriggerCache(), client)
        assert co_down.runs == [] and co_down.redis_error
        assert [r[1] for r in rows(state, coalesced)] == ["skipped_coalesced"] * 2
        assert cursor(state, coalesced) == co_first + 1000

        spare_redis.start()  # same port; its data is gone, the store still knows what was handled
        up = None
        for _ in range(100):  # claims fail fast until the client's backoff (≤ 5 s) has passed
            up = claims.claim_due(state.db, plain, first + 1000, "b", claims.TriggerCache(), client)
            if up.redis_error is None:
                break
            time.sleep(0.1)
        assert [run.fire.scheduled_ms for run in up.runs] == [first, first + 1000]
        assert [client.holder(plain, first), client.holder(plain, first + 1000)] == ["b", "b"]
        co_up = claims.claim_due(state.db, coalesced, co_first + 2000, "b", claims.TriggerCache(), client)
        assert [run.fire.scheduled_ms for run in co_up.runs] == [co_first + 2000]
        assert [r[1] for r in rows(state, coalesced)] == ["skipped_coalesced"] * 2 + ["claimed"]
    finally:
        client.close()


def test_scheduler_with_redis_down_warns_once_runs_nothing_and_resumes(
    ruqi_kernel, tmp_path, spare_redis, captured_logs, poll, new_job_id
):
    kernel = ruqi_kernel(f"sqlite:///{tmp_path}/ruqi.sqlite", claim_redis_url=spare_redis.url)
    kernel.startup()
    state = kernel.extensions["ruqi"]
    assert state.redis_claims is not None and service.status(state)["claims"] == "redis+database"
    spare_redis.stop()
    job_id = new_job_id("redis-sched")
    _, first = make_job(kernel, job_id)

    def outage_lines(event):
        return [e for e in captured_logs if e["event"] == event and e.get("loop") == "ruqi-claims"]

    warning = poll(lambda: outage_lines("redis_unavailable"), timeout=10)[0]
    assert (
        warning["log_level"] == "warning" and "Connection" in warning["error"] and spare_redis.url not in str(warning)
    )
    poll(lambda: state.redis_claims.backoff.failures >= 3, timeout=10)  # claims kept failing meanwhile
    assert rows(state, job_id) == []  # due, but nothing claimed or run without Redis
    spare_redis.start()
    done = poll(lambda: [r for r in rows(state, job_id) if r[1] == "succeeded"], timeout=10)
    # the occurrence missed while Redis was down runs late (within misfire_grace), once
    assert done[0][0] == first
    recorded = rows(state, job_id)
    assert len({r[0] for r in recorded}) == len(recorded)
    assert state.redis_claims.holder(job_id, first) == state.scheduler.instance_id
    # one line when the outage began, one when it ended: not one per failed claim or per 30 s
    assert len(outage_lines("redis_unavailable")) == 1 and len(outage_lines("redis_available_again")) == 1
    assert not [e for e in captured_logs if e.get("job_id") == job_id and e.get("log_level") == "warning"]


def test_a_bad_claim_redis_url_is_a_config_error(ruqi_kernel, tmp_path):
    with pytest.raises(ConfigError, match="claim_redis_url") as raised:
        ruqi_kernel(f"sqlite:///{tmp_path}/ruqi.sqlite", claim_redis_url="http://user:pw@example.org/")
    assert "pw" not in str(raised.value)


def test_without_the_setting_claims_use_the_database_only(ruqi_kernel, tmp_path):
    kernel = ruqi_kernel(f"sqlite:///{tmp_path}/ruqi.sqlite")
    kernel.startup()
    state = kernel.extensions["ruqi"]
    assert state.redis_claims is None and state.scheduler.redis_claims is None
    assert service.status(state)["claims"] == "database"
