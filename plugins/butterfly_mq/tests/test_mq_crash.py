"""Crash tests on every topology: ``kill -9`` of consumer processes mid-job, and Redis (a
single server, or one master of a Redis Cluster) killed and restarted mid-run."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import butterfly_mq.plugin
from butterfly_mq import enqueue
from butterfly_mq.errors import MQUnavailable
from butterfly_mq.queue import Queue
from butterfly_mq.testing import RedisClusterServers
from kernel.testing import RedisServer

PROCESS = Path(__file__).with_name("mq_consumer_proc.py")


def start_consumer(url: str, prefix: str, tmp: Path, cluster: bool) -> subprocess.Popen:
    """Start a consumer process and wait until its kernel started."""
    process = subprocess.Popen(
        [sys.executable, str(PROCESS), url, prefix, f"{prefix}:runs", str(tmp), *(["cluster"] if cluster else [])],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    for line in process.stdout:  # structlog's default logger prints to stdout first
        if line.strip() == "ready":
            return process
    raise AssertionError(f"consumer process exited with {process.wait()}")


@pytest.mark.slow
def test_kill_9_consumer_twenty_times_loses_nothing(redis_url, redis_cluster_mode, redis_client, prefix, tmp_path, mq):
    client = redis_client
    total = 80
    ids = [
        enqueue("/t/slow", {"seconds": 0.25, "tag": f"m{i}"}, redis_url=redis_url, prefix=prefix, msg_id=f"m{i}")
        for i in range(total)
    ]
    queue = Queue(client, "/t/slow", prefix)
    killed_mid_job = 0
    for _ in range(20):
        process = start_consumer(redis_url, prefix, tmp_path, redis_cluster_mode)
        try:
            mq.wait_for(lambda: queue.counts()["started"] > 0 or queue.counts()["finished"] == total, timeout=20)
            time.sleep(random.uniform(0.05, 0.3))
            if queue.counts()["started"] > 0:
                killed_mid_job += 1
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
    assert killed_mid_job >= 15, killed_mid_job
    process = start_consumer(redis_url, prefix, tmp_path, redis_cluster_mode)
    try:
        mq.wait_for(lambda: queue.counts()["finished"] == total, timeout=60)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    row = queue.counts()
    assert (row["queued"], row["started"], row["scheduled"], row["failed"], row["dead"]) == (0, 0, 0, 0, 0)
    finished = set(client.zrange(queue.keys[3], 0, -1))
    assert finished == set(ids)  # every message finished, each exactly once in the finished set
    runs = {tag: int(n) for tag, n in client.hgetall(f"{prefix}:runs").items()}
    assert set(runs) == {f"m{i}" for i in range(total)}
    recovered = int(client.hget(queue.keys[9], "recovered") or 0)
    assert recovered >= killed_mid_job  # every kill left at least one lease to recover
    # at-least-once: re-runs happen only for messages whose worker died; report them
    print(f"kills mid-job={killed_mid_job} recovered leases={recovered} re-runs={sum(runs.values()) - total}")


class DurableSingle:
    """One durable redis-server: the crash kills it."""

    cluster = False

    def __init__(self) -> None:
        self.server = RedisServer(durable=True).start()  # an acknowledged write survives kill -9
        self.url = self.server.url

    def crash(self, key: str) -> None:
        self.server.kill()

    def recover(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.kill()


class DurableCluster:
    """A durable 3-master cluster without replicas: the crash kills the master holding ``key``."""

    cluster = True

    def __init__(self) -> None:
        self.servers = RedisClusterServers(durable=True).start()
        self.url = self.servers.url
        self.killed = None

    def crash(self, key: str) -> None:
        self.killed = self.servers.node_of(key)
        self.servers.kill_node(self.killed)

    def recover(self) -> None:
        self.servers.start_node(self.killed)

    def stop(self) -> None:
        self.servers.stop()


@pytest.mark.slow
@pytest.mark.parametrize("topology", [DurableSingle, DurableCluster], ids=["direct", "cluster"])
def test_redis_killed_and_restarted_mid_run(make_kernel, prefix, mq, captured_logs, topology):
    endpoint = topology()
    try:
        handlers = mq.Handlers(endpoint.url, f"{prefix}:runs", cluster=endpoint.cluster)
        kernel = make_kernel(
            plugins=[butterfly_mq.plugin, handlers],
            settings={
                "mq.redis_url": endpoint.url,
                "mq.redis_cluster": endpoint.cluster,
                "mq.prefix": prefix,
                "mq.lease": 2.0,
                "mq.heartbeat_interval": 0.5,
                "mq.cleanup_interval": 1.0,
                "mq.poll_max_interval": 0.1,
                "mq.workers": 4,
            },
        )
        kernel.startup()
        acknowledged: list[str] = []
        unavailable = []

        def produce():
            for i in range(150):
                msg_id = f"r{i}"
                while True:
                    try:
                        acknowledged.append(
                            enqueue("/t/slow", {"seconds": 0.01, "tag": msg_id}, kernel=kernel, msg_id=msg_id)
                        )
                        break
                    except MQUnavailable:
                        unavailable.append(msg_id)  # not acknowledged: the producer sends it again
                        time.sleep(0.1)
                time.sleep(0.01)

        producer = threading.Thread(target=produce)
        producer.start()
        mq.wait_for(lambda: len(acknowledged) >= 50)
        queue = Queue(kernel.extensions["mq"].client, "/t/slow", prefix)
        endpoint.crash(queue.keys[0])
        time.sleep(2.0)  # longer than the producer's own retries (1.3 s): it sees MQUnavailable
        endpoint.recover()
        producer.join(90)
        consumer = kernel.extensions["mq"].consumer
        assert consumer.counters["redis_errors"] > 0
        mq.wait_for(lambda: queue.counts()["finished"] == 150, timeout=60)
        finished = set(queue.client.zrange(queue.keys[3], 0, -1))
        assert set(acknowledged) <= finished and len(acknowledged) == 150
        mq.wait_for(lambda: consumer.connected)
        assert unavailable, "the producer should have seen Redis down at least once"
        # backoff: each outage of the poller is logged once when it starts and once when it ends
        down = [e for e in captured_logs if e["event"] == "redis_unavailable" and e.get("loop") == "mq-poller"]
        up = [e for e in captured_logs if e["event"] == "redis_available_again" and e.get("loop") == "mq-poller"]
        assert 1 <= len(down) == len(up) < consumer.counters["redis_errors"]
        assert sum(e["failed_attempts"] for e in up) == consumer.counters["redis_errors"]
    finally:
        endpoint.stop()
