"""Every state transition, against a real redis-server directly and through Twemproxy."""

from __future__ import annotations

import pytest
import structlog

from butterfly_mq import enqueue, get_message
from butterfly_mq.errors import MQNotConfigured
from kernel import BadRequest


def test_queued_started_finished_with_lineage(mq_kernel, mq):
    kernel = mq_kernel()
    structlog.contextvars.bind_contextvars(reqid="producer-req-1")
    try:
        msg_id = enqueue("/t/ok", {"n": 21}, kernel=kernel)
    finally:
        structlog.contextvars.clear_contextvars()
    assert mq.counts(kernel, "/t/ok")["queued"] == 1
    assert get_message(msg_id, kernel=kernel)["state"] == "queued"
    kernel.startup()
    mq.wait_for(lambda: mq.counts(kernel, "/t/ok")["finished"] == 1)
    message = get_message(msg_id, kernel=kernel)
    assert message["state"] == "finished"
    assert message["result"] == {"stat": "OK", "double": 42}
    assert message["params"] == {"n": 21}
    assert message["reqid"] == "producer-req-1"
    assert message["attempts"] == 1
    assert message["worker"] == kernel.extensions["mq"].name
    assert message["started_at"] >= message["enqueued_at"] and message["ended_at"] >= message["started_at"]
    assert kernel.test_handlers.seen == [{"n": 21}]


def test_business_error_counts_as_finished(mq_kernel, mq):
    kernel = mq_kernel(start=True)
    msg_id = enqueue("/t/biz", {}, kernel=kernel)
    mq.wait_for(lambda: get_message(msg_id, kernel=kernel)["state"] == "finished")
    message = get_message(msg_id, kernel=kernel)
    assert message["stat"] == "ERR_NOT_ALLOWED" and message["result"]["why"] == "business rule"


def test_exception_is_retried_then_failed(mq_kernel, mq):
    kernel = mq_kernel(start=True)
    msg_id = enqueue("/t/boom", {}, kernel=kernel, retries=2)
    mq.wait_for(lambda: get_message(msg_id, kernel=kernel)["state"] == "failed")
    message = get_message(msg_id, kernel=kernel)
    assert message["attempts"] == 3 and message["failures"] == 3
    assert message["stat"] == "ERR_SERVER_EXCEPTION"
    assert "kaboom" in message["error"]
    assert mq.counts(kernel, "/t/boom")["failed"] == 1


def test_retry_waits_in_scheduled_then_finishes(mq_kernel, mq, prefix):
    kernel = mq_kernel(start=True, backoff_base=0.6)
    msg_id = enqueue("/t/flaky", {"fail_times": 1, "tag": "f1"}, kernel=kernel)
    mq.wait_for(lambda: get_message(msg_id, kernel=kernel)["state"] == "scheduled")
    assert "flaky failure 1" in get_message(msg_id, kernel=kernel)["error"]
    mq.wait_for(lambda: get_message(msg_id, kernel=kernel)["state"] == "finished")
    message = get_message(msg_id, kernel=kernel)
    assert message["attempts"] == 2 and message["result"]["runs"] == 2 and "error" not in message


def test_bad_params_fail_without_retry(mq_kernel, mq):
    kernel = mq_kernel(start=True)
    msg_id = enqueue("/t/ok", {"n": 1, "unknown": 2}, kernel=kernel, retries=5)
    mq.wait_for(lambda: get_message(msg_id, kernel=kernel)["state"] == "failed")
    message = get_message(msg_id, kernel=kernel)
    assert message["stat"] == "ERR_BAD_PARAMS" and message["attempts"] == 1
    assert "unknown" in message["error"]


@pytest.mark.parametrize(
    "raw, reason", [("{not json", "not JSON"), ("[1, 2]", "must be a JSON object"), ('"text"', "must be a JSON object")]
)
def test_malformed_message_fails_and_consumer_keeps_running(mq_kernel, mq, raw, reason):
    kernel = mq_kernel()
    bad = enqueue("/t/ok", {"n": 1}, kernel=kernel)
    queue = mq.queue(kernel, "/t/ok")
    queue.client.hset(queue.keys[7], bad, raw)  # overwrite the stored params, as a foreign producer might
    kernel.startup()
    mq.wait_for(lambda: get_message(bad, kernel=kernel)["state"] == "failed")
    message = get_message(bad, kernel=kernel)
    assert message["stat"] == "ERR_BAD_PARAMS" and reason in message["error"] and message["attempts"] == 1
    good = enqueue("/t/ok", {"n": 2}, kernel=kernel)
    mq.wait_for(lambda: get_message(good, kernel=kernel)["state"] == "finished")


def test_corrupt_metadata_is_quarantined(mq_kernel, mq):
    kernel = mq_kernel()
    msg_id = enqueue("/t/ok", {"n": 1}, kernel=kernel)
    queue = mq.queue(kernel, "/t/ok")
    queue.client.hset(queue.keys[6], msg_id, "garbage{")
    kernel.startup()
    mq.wait_for(lambda: mq.counts(kernel, "/t/ok")["dead"] == 1)
    message = get_message(msg_id, kernel=kernel)
    assert message["state"] == "dead" and "corrupt metadata" in message["error"]
    good = enqueue("/t/ok", {"n": 3}, kernel=kernel)
    mq.wait_for(lambda: get_message(good, kernel=kernel)["state"] == "finished")


def test_delay_schedules_then_runs(mq_kernel, mq):
    kernel = mq_kernel(start=True)
    msg_id = enqueue("/t/ok", {"n": 5}, kernel=kernel, delay=0.5)
    message = get_message(msg_id, kernel=kernel)
    assert message["state"] == "scheduled" and message["due_at"] >= message["enqueued_at"] + 500
    mq.wait_for(lambda: get_message(msg_id, kernel=kernel)["state"] == "finished")


def test_ttl_expired_message_fails(mq_kernel, mq):
    kernel = mq_kernel()
    msg_id = enqueue("/t/ok", {"n": 1}, kernel=kernel, ttl=0.05)
    mq.wait_for(lambda: mq.counts(kernel, "/t/ok")["oldest_age"] > 0.1)
    kernel.startup()
    mq.wait_for(lambda: get_message(msg_id, kernel=kernel)["state"] == "failed")
    assert get_message(msg_id, kernel=kernel)["stat"] == "ERR_EXPIRED"
    assert kernel.test_handlers.seen == []


def test_expired_lease_is_recovered_then_quarantined(mq_kernel, mq):
    kernel = mq_kernel(max_recoveries=1)
    msg_id = enqueue("/t/ok", {"n": 1}, kernel=kernel)
    queue = mq.queue(kernel, "/t/ok")
    # a worker that takes the message and dies: its lease (50 ms) is never renewed
    assert [m.msg_id for m in queue.pop(1, 50, "ghost:1", 1)] == [msg_id]
    mq.wait_for(lambda: queue.recover(max_recoveries=1) == 1)
    message = get_message(msg_id, kernel=kernel)
    assert message["state"] == "queued" and message["recoveries"] == 1 and message["last_worker"] == "ghost:1"
    assert [m.msg_id for m in queue.pop(1, 50, "ghost:2", 1)] == [msg_id]
    mq.wait_for(lambda: queue.recover(max_recoveries=1) == 1)
    message = get_message(msg_id, kernel=kernel)
    assert message["state"] == "dead" and message["attempts"] == 2
    assert "ghost:2" in message["error"] and msg_id in message["error"]
    # requeue from dead: it runs again and finishes
    assert queue.requeue(msg_id) == 1
    kernel.startup()
    mq.wait_for(lambda: get_message(msg_id, kernel=kernel)["state"] == "finished")
    assert get_message(msg_id, kernel=kernel)["last_error"].startswith("quarantined")


def test_late_ack_after_lost_lease_is_rejected(mq_kernel, mq):
    from butterfly_mq.queue import Outcome

    kernel = mq_kernel()
    msg_id = enqueue("/t/ok", {"n": 1}, kernel=kernel)
    queue = mq.queue(kernel, "/t/ok")
    queue.pop(1, 50, "slow:1", 5)
    mq.wait_for(lambda: queue.recover(max_recoveries=5) == 1)
    queue.pop(1, 10_000, "fast:1", 5)
    assert queue.finish([Outcome(msg_id, "slow:1", 1, "finished")]) == [-1]
    assert queue.finish([Outcome(msg_id, "fast:1", 2, "finished")]) == [1]
    assert get_message(msg_id, kernel=kernel)["worker"] == "fast:1"


def test_requeue_delete_empty(mq_kernel, mq):
    kernel = mq_kernel()
    queue = mq.queue(kernel, "/t/ok")
    ids = [enqueue("/t/ok", {"n": i}, kernel=kernel) for i in range(5)]
    assert queue.requeue(ids[0]) == -1  # queued: nothing to requeue
    assert queue.delete(ids[0]) is True and get_message(ids[0], kernel=kernel) is None
    assert queue.delete("nope") is False
    assert queue.empty("queued") == 4
    assert mq.counts(kernel, "/t/ok")["queued"] == 0
    with pytest.raises(ValueError, match="cannot empty state 'started'"):
        queue.empty("started")


def test_pause_and_resume(mq_kernel, mq):
    kernel = mq_kernel(start=True)
    queue = mq.queue(kernel, "/t/ok")
    queue.set_paused(True)
    msg_id = enqueue("/t/ok", {"n": 1}, kernel=kernel)
    assert queue.pop(1, 1000, "probe", 3) == []
    assert mq.counts(kernel, "/t/ok")["paused"] is True
    queue.set_paused(False)
    kernel.extensions["mq"].wake("/t/ok")
    mq.wait_for(lambda: get_message(msg_id, kernel=kernel)["state"] == "finished")


def test_concurrency_limit_per_topic(mq_kernel, mq):
    kernel = mq_kernel(start=True, topics={"/t/slow": {"concurrency": 1}})
    for _ in range(4):
        enqueue("/t/slow", {"seconds": 0.2}, kernel=kernel)
    peak = 0
    for _ in range(30):
        peak = max(peak, mq.counts(kernel, "/t/slow")["started"])
        if mq.counts(kernel, "/t/slow")["finished"] == 4:
            break
        import time

        time.sleep(0.05)
    mq.wait_for(lambda: mq.counts(kernel, "/t/slow")["finished"] == 4)
    assert peak == 1


def test_graceful_shutdown_returns_unstarted(mq_kernel, mq):
    kernel = mq_kernel(start=True, workers=1, batch_size=8)
    ids = [enqueue("/t/slow", {"seconds": 0.5}, kernel=kernel) for _ in range(4)]
    consumer = kernel.extensions["mq"].consumer
    # NOTE: "started" in Redis means popped; wait until the one worker really runs one
    mq.wait_for(lambda: any(lease.running for lease in list(consumer.leases.values())))
    kernel.shutdown()
    row = mq.counts(kernel, "/t/slow")
    assert row["finished"] == 1 and row["queued"] == 3 and row["started"] == 0
    states = [get_message(i, kernel=kernel) for i in ids]
    assert sorted(m["attempts"] for m in states) == [0, 0, 0, 1]


def test_msg_id_is_idempotent(mq_kernel, mq):
    kernel = mq_kernel()
    assert enqueue("/t/ok", {"n": 1}, kernel=kernel, msg_id="order-42") == "order-42"
    assert enqueue("/t/ok", {"n": 1}, kernel=kernel, msg_id="order-42") == "order-42"
    assert mq.counts(kernel, "/t/ok")["queued"] == 1


@pytest.mark.parametrize(
    "topic, params, options, match",
    [
        ("no-slash", {}, {}, "bad topic"),
        ("/t/{x}", {}, {}, "bad topic"),
        ("/t/ok", [1], {}, "JSON object"),
        ("/t/ok", {"n": object()}, {}, "not JSON serialisable"),
        ("/t/ok", {}, {"delay": -1}, "delay must be"),
        ("/t/ok", {}, {"delay": 1.7976931348623157e308}, "delay must be a number from 0 to"),
        ("/t/ok", {}, {"ttl": float("nan")}, "ttl must be"),
        ("/t/ok", {}, {"retries": 10**9}, "retries must be"),
        ("/t/ok", {}, {"msg_id": "has space"}, "bad msg_id"),
    ],
)
def test_enqueue_rejects_bad_input(mq_kernel, topic, params, options, match):
    kernel = mq_kernel()
    with pytest.raises(BadRequest, match=match):
        enqueue(topic, params, kernel=kernel, **options)


def test_an_absurd_topic_is_refused_without_being_echoed_whole(mq_kernel):
    kernel = mq_kernel()
    with pytest.raises(BadRequest, match="bad topic") as refused:
        enqueue("/t/" + "a" * 20_000, {}, kernel=kernel)
    assert len(str(refused.value)) < 400 and "at most 201" in str(refused.value)


def test_enqueue_outside_a_kernel(redis_url, redis_client, prefix, monkeypatch):
    from butterfly_mq.queue import Queue

    msg_id = enqueue("/other/service", {"a": 1}, redis_url=redis_url, prefix=prefix)
    assert get_message(msg_id, redis_url=redis_url, prefix=prefix)["state"] == "queued"
    assert Queue(redis_client, "/other/service", prefix).counts()["queued"] == 1
    monkeypatch.delenv("BUTTERFLY_MQ_REDIS_URL", raising=False)
    with pytest.raises(MQNotConfigured, match="no Redis URL"):
        enqueue("/other/service", {}, prefix=prefix)
