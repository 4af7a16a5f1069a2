"""Redis claims through the shared connection (butterfly-mq's): through a real Twemproxy,
which closes the connection on ``HELLO`` or ``CLIENT SETINFO``, and on a real 3-master
Redis Cluster (``[ruqi] claim_redis_cluster = true``)."""

from __future__ import annotations

import pytest
from pony.orm import db_session, select

from butterfly_ruqi import service
from butterfly_ruqi.models import entities
from butterfly_ruqi.redis_claims import claim_key


@pytest.mark.parametrize("topology", ["twemproxy", "redis_cluster"])
def test_a_scheduled_job_runs_with_claims_in_redis(request, ruqi_kernel, tmp_path, poll, new_job_id, topology):
    endpoint = request.getfixturevalue(topology)
    cluster = topology == "redis_cluster"
    kernel = ruqi_kernel(f"sqlite:///{tmp_path}/ruqi.sqlite", claim_redis_url=endpoint.url, claim_redis_cluster=cluster)
    kernel.startup()
    state = kernel.extensions["ruqi"]
    job_id = new_job_id("redis-topology")
    service.add_job(
        state,
        {"job_id": job_id, "job_trigger": "interval", "rule": "1s", "job_type": "handler", "target": "/ruqi_test/tick"},
    )
    _, Run, _ = entities(state.db)

    def succeeded():
        with db_session:
            return select(r for r in Run if r.job_id == job_id and r.status == "succeeded")[:]

    run = poll(succeeded, timeout=15)[0]
    # the claim key is in Redis, held by this instance, on whichever server owns its hashtag
    assert state.redis_claims.holder(job_id, run.scheduled_ms) == state.scheduler.instance_id
    assert state.redis_claims.client.pttl(claim_key(job_id, run.scheduled_ms)) > 0
    assert not state.redis_claims.backoff.total_failures
