"""Sending a transition's tasks: one ``enqueue_many`` round trip per route (a fan-out is one batch)."""

from __future__ import annotations

from butterfly_mq import get_message
from butterfly_xingqiao.dispatch import Dispatch, batches
from kernel.testing import RedisServer

from .conftest import plugin_modules, settings_for


def test_a_fan_out_is_one_batch_per_route_and_idempotent(make_kernel, tmp_path, prefix, monkeypatch):
    server = RedisServer().start()
    try:
        monkeypatch.setenv("XQ_TEST_REDIS_URL", server.url)
        settings = settings_for(f"sqlite:///{tmp_path}/send.sqlite", server.url, prefix, **{"mq.consume": False})
        kernel = make_kernel(plugins=plugin_modules(), settings=settings)
        state = kernel.extensions["xingqiao"]
        client = kernel.extensions["mq"].client
        state.send([Dispatch("/xq_test/work", {"key": "k", "tag": "warm"}, "xq.9.t.0.1", "job-req")])  # loads scripts
        parts = [Dispatch("/xq_test/work", {"key": "k", "tag": f"p{i}"}, f"xq.1.t.{i}.1", "job-req") for i in range(12)]
        refused = Dispatch("/xq_test/work", {"key": "k"}, "xq.1.t.12.1", "job-req")  # no tag: ERR_BAD_PARAMS
        fan_in = Dispatch("/xq_test/collect", {"key": "k", "values": [1]}, "xq.1.t.13.1", "job-req")
        assert [len(batch) for batch in batches([*parts, refused, fan_in])] == [13, 1]
        client.config_resetstat()
        state.send([*parts, refused, fan_in])
        stats = client.info("commandstats")
        # two routes: two round trips, each one ENQUEUE_MANY and one ready mark
        assert stats["cmdstat_evalsha"]["calls"] == 4 and stats["cmdstat_hsetnx"]["calls"] == 13
        message = get_message("xq.1.t.5.1", topic="/xq_test/work", kernel=kernel)
        assert message["params"] == {"key": "k", "tag": "p5"} and message["reqid"] == "job-req"
        assert message["retries"] == 0
        assert get_message("xq.1.t.12.1", topic="/xq_test/work", kernel=kernel) is None
        state.send(parts)  # sending again (crash repair) stores nothing twice
        assert kernel.extensions["mq"].consumer is None
        counts = client.hget(f"{prefix}:{{/xq_test/work}}:stats", "enqueued")
        assert int(counts) == 13  # the warm-up message and the 12 parts, once each
    finally:
        server.stop()
