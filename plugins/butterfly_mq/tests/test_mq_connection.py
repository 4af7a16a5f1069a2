"""The shared connection and the shared backoff: Twemproxy-safe handshakes, one log line per
outage (not a traceback per poll), lazy cluster clients, recovery."""

from __future__ import annotations

import pytest
import redis

import butterfly_mq.plugin
from butterfly_mq.backoff import Backoff, backoff_delay
from butterfly_mq.connection import connect, handshake_options, is_cluster
from kernel.testing import free_port


def test_handshake_is_resp2_without_client_info():
    options = handshake_options()
    assert options["protocol"] == 2
    assert options.get("driver_info", "absent") is None or (
        options.get("lib_name", "x") is None and options.get("lib_version", "x") is None
    )


def test_nutcracker_keeps_our_connections_but_closes_a_default_redis_py_one(twemproxy):
    ours = connect(twemproxy.url)
    assert ours.set("handshake-probe", "1", px=5000) and ours.get("handshake-probe") == "1"
    default = redis.Redis.from_url(twemproxy.url)  # redis-py's own defaults send CLIENT SETINFO
    with pytest.raises(redis.ConnectionError):
        default.get("handshake-probe")


def test_backoff_delays_double_with_jitter_up_to_the_cap():
    for attempt in range(12):
        full = min(5.0, 0.1 * 2**attempt)
        assert all(full / 2 <= backoff_delay(attempt, 0.1, 5.0) <= full for _ in range(20))


def test_one_warning_per_outage_with_the_count(captured_logs):
    backoff = Backoff("test-loop")
    for _ in range(5):
        backoff.failed(redis.ConnectionError("refused"))
    assert backoff.down
    backoff.succeeded()
    backoff.succeeded()
    backoff.failed(RuntimeError("a bug"))
    events = [(e["event"], e.get("failed_attempts")) for e in captured_logs if e.get("loop") == "test-loop"]
    assert events == [("redis_unavailable", None), ("redis_available_again", 5), ("loop_error", None)]
    assert backoff.total_failures == 6


@pytest.mark.parametrize("cluster", [False, True], ids=["single", "cluster"])
def test_redis_down_from_the_start_is_logged_once_per_loop(make_kernel, captured_logs, mq, cluster):
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    kernel = make_kernel(
        plugins=[butterfly_mq.plugin, mq.Handlers()],
        settings={"mq.redis_url": url, "mq.redis_cluster": cluster, "mq.heartbeat_interval": 0.2},
    )
    service = kernel.extensions["mq"]  # built without I/O, even for a cluster nobody answers
    assert is_cluster(service.client) is cluster
    kernel.startup()
    mq.wait_for(lambda: service.consumer.backoff.failures >= 4)
    assert butterfly_mq.plugin.butterfly_health(kernel) == {"mq": (False, "redis unreachable; retrying")}
    warnings = [e for e in captured_logs if e["event"] == "redis_unavailable"]
    assert sorted(e["loop"] for e in warnings) == ["mq-bell", "mq-maintenance", "mq-poller"]
    assert "Connection" in warnings[0]["error"] and not [e for e in captured_logs if e.get("exc_info")]
    assert service.consumer.counters["redis_errors"] >= 4 and not service.consumer.connected


def test_the_consumer_recovers_when_redis_comes_back(make_kernel, captured_logs, mq, prefix):
    from butterfly_mq import enqueue, get_message
    from kernel.testing import RedisServer

    server = RedisServer()
    kernel = make_kernel(
        plugins=[butterfly_mq.plugin, mq.Handlers()],
        settings={"mq.redis_url": server.url, "mq.prefix": prefix, "mq.heartbeat_interval": 0.2},
    )
    kernel.startup()
    consumer = kernel.extensions["mq"].consumer
    try:
        mq.wait_for(lambda: consumer.backoff.failures >= 2)
        server.start()
        mq.wait_for(lambda: consumer.connected)
        mq.wait_for(lambda: consumer.pickup == "bell")  # the bell is armed again too
        msg_id = enqueue("/t/ok", {"n": 2}, redis_url=server.url, prefix=prefix)
        mq.wait_for(lambda: (get_message(msg_id, kernel=kernel) or {}).get("state") == "finished")
        back = [e for e in captured_logs if e["event"] == "redis_available_again" and e["loop"] == "mq-poller"]
        assert len(back) == 1 and back[0]["failed_attempts"] >= 2
    finally:
        server.stop()
