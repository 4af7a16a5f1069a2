"""Crash tests: ``kill -9`` of consumer processes mid-job, and Redis killed and restarted."""

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
from butterfly_mq.connection import connect
from butterfly_mq.errors import MQUnavailable
from butterfly_mq.queue import Queue
from kernel.testing import RedisServer

PROCESS = Path(__file__).with_name("mq_consumer_proc.py")


def start_consumer(url: str, prefix: str, tmp: Path) -> subprocess.Popen:
    """Start a consumer process and wait until its kernel started."""
    process = subprocess.Popen(
        [sys.executable, str(PROCESS), url, prefix, f"{prefix}:runs", str(tmp)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    for line in process.stdout:  # structlog's default logger prints to stdout first
        if line.strip() == "ready":
            return process
    raise AssertionError(f"consumer process exited with {process.wait()}")


@pytest.mark.slow
def test_kill_9_consumer_twenty_times_loses_nothing(redis_url, prefix, tmp_path, mq):
    client = connect(redis_url)
    total = 80
    ids = [
        enqueue("/t/slow", {"seconds": 0.25, "tag": f"m{i}"}, redis_url=redis_url, prefix=prefix, msg_id=f"m{i}")
        for i in range(total)
    ]
    queue = Queue(client, "/t/slow", prefix)
    killed_mid_job = 0
    for _ in range(20):
        process = start_consumer(redis_url, prefix, tmp_path)
        try:
            mq.wait_for(lambda: queue.counts()["started"] > 0 or queue.counts()["finished"] == total, timeout=20)
            time.sleep(random.uniform(0.05, 0.3))
            if queue.counts()["started"] > 0:
                killed_mid_job += 1
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
    assert killed_mid_job >= 15, killed_mid_job
    process = start_consumer(redis_url, prefix, tmp_path)
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


@pytest.mark.slow
def test_redis_killed_and_restarted_mid_run(make_kernel, prefix, mq):
    server = RedisServer(durable=True).start()  # an acknowledged write survives kill -9
    try:
        handlers = mq.Handlers(server.url, f"{prefix}:runs")
        kernel = make_kernel(
            plugins=[butterfly_mq.plugin, handlers],
            settings={
                "mq.redis_url": server.url,
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
        server.kill()
        time.sleep(2.0)  # longer than the producer's own retries (1.3 s): it sees MQUnavailable
        server.start()
        producer.join(60)
        consumer = kernel.extensions["mq"].consumer
        assert consumer.counters["redis_errors"] > 0
        queue = Queue(kernel.extensions["mq"].client, "/t/slow", prefix)
        mq.wait_for(lambda: queue.counts()["finished"] == 150, timeout=60)
        finished = set(queue.client.zrange(queue.keys[3], 0, -1))
        assert set(acknowledged) <= finished and len(acknowledged) == 150
        assert consumer.connected
        assert unavailable, "the producer should have seen Redis down at least once"
    finally:
        server.kill()
