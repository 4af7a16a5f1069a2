"""MQ pick-up latency: how long a message to an idle topic waits before a worker starts it.

One consumer instance (one kernel) consumes ``--idle`` idle topics plus one busy topic that
a producer thread keeps fed (``--busy-rate`` messages per second). A probe sends
``--messages`` messages, one at a time at random intervals, each to a random idle topic, and
reports enqueue→start (both times are the Redis server's, taken by the queue's Lua scripts, so
no clock skew) as p50 / p90 / p99 / max.

The producer is *remote* by default (``enqueue(..., redis_url=...)``: no in-process wake-up),
which is what another service sees; ``--local`` enqueues through the consumer's own kernel
(woken at once). ``--mode cluster`` runs on a 3-master Redis Cluster and ``--mode twemproxy``
through nutcracker in front of two Redis servers (both started here, from
``butterfly_mq.testing``).

``--idle-gap S`` measures pick-up *after idleness* instead: no busy topic, and before each
probe the instance sits idle for a random S/2..S seconds (so an instance that backs off when
idle is measured at its slowest).

Target (issue 10, issue 11): p99 ≤ 100 ms with 100 consumed idle topics and one active, and
for a message arriving after idleness.

Usage::

    .venv/bin/python bench/mq/pickup.py [--idle 100] [--messages 200] [--mode single|cluster|twemproxy]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from kernel import Response, hookimpl  # noqa: E402
from kernel.testing import RedisServer, build_kernel  # noqa: E402

TARGET_P99_MS = 100.0


class Topics:
    """A plugin serving ``/idle/tNNN`` (no-op) and ``/busy/work`` (a short job)."""

    def __init__(self, idle: int) -> None:
        self.idle = [f"/idle/t{i:03d}" for i in range(idle)]

    @hookimpl
    def butterfly_register_routes(self, register):
        for topic in self.idle:
            register(topic, lambda request: Response.json({"stat": "OK"}), kind="json")
        register("/busy/work", self.busy, kind="json")

    def busy(self, request):
        time.sleep(0.002)
        return Response.json({"stat": "OK"})


def start_endpoint(mode: str):
    """``(url, cluster_flag, stop)`` of the Redis endpoint for ``mode``."""
    if mode == "single":
        server = RedisServer().start()
        return server.url, False, server.stop
    from butterfly_mq import testing

    if mode == "cluster":
        cluster = testing.RedisClusterServers().start()
        return cluster.url, True, cluster.stop
    proxy = testing.Twemproxy().start()
    return proxy.url, False, proxy.stop


def percentile(values: list[float], share: float) -> float:
    """The ``share`` quantile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idle", type=int, default=100, help="idle topics the instance consumes")
    parser.add_argument("--messages", type=int, default=200, help="probe messages (one at a time)")
    parser.add_argument("--busy-rate", type=float, default=200.0, help="messages per second to the busy topic")
    parser.add_argument("--mode", choices=("single", "cluster", "twemproxy"), default="single")
    parser.add_argument("--local", action="store_true", help="enqueue through the consumer's kernel (woken at once)")
    parser.add_argument(
        "--idle-gap",
        type=float,
        default=0.0,
        help="no busy topic; wait a random S/2..S seconds of idleness before each probe",
    )
    args = parser.parse_args()

    import logging

    logging.basicConfig(level=logging.WARNING)
    import butterfly_mq.plugin
    from butterfly_mq import enqueue, get_message

    url, cluster, stop_endpoint = start_endpoint(args.mode)
    if cluster:
        os.environ["BUTTERFLY_MQ_REDIS_CLUSTER"] = "true"
    prefix = f"pickup{uuid.uuid4().hex[:6]}"
    topics = Topics(args.idle)
    settings = {
        "mq.redis_url": url,
        "mq.prefix": prefix,
        "mq.queues": [*topics.idle, "/busy/work"],
    }
    if cluster:
        settings["mq.redis_cluster"] = True
    kernel = build_kernel(
        Path(tempfile.mkdtemp(prefix="butterfly-bench-pickup-")), [butterfly_mq.plugin, topics], settings
    )
    kernel.startup()
    stop = threading.Event()
    remote = {} if args.local else {"redis_url": url, "prefix": prefix}
    via = {"kernel": kernel} if args.local else remote

    def feed_busy_topic():
        while not stop.is_set():
            enqueue("/busy/work", {}, **via)
            stop.wait(1 / args.busy_rate)

    feeder = threading.Thread(target=feed_busy_topic, daemon=True)
    try:
        time.sleep(1.0)  # the consumer's first polls and its registration
        if not args.idle_gap:
            feeder.start()
        time.sleep(1.0)
        probes = []
        for _ in range(args.messages):
            if args.idle_gap:
                time.sleep(random.uniform(args.idle_gap / 2, args.idle_gap))
            topic = random.choice(topics.idle)
            probes.append((topic, enqueue(topic, {}, **via)))
            if not args.idle_gap:
                time.sleep(random.uniform(0.02, 0.1))
        waits = []
        deadline = time.monotonic() + 120
        for topic, msg_id in probes:
            while True:
                message = get_message(msg_id, topic=topic, **via)
                if message and message.get("started_at"):
                    waits.append(message["started_at"] - message["enqueued_at"])
                    break
                if time.monotonic() > deadline:
                    print(f"message {msg_id} of {topic} never started", file=sys.stderr)
                    return 1
                time.sleep(0.05)
    finally:
        stop.set()
        kernel.shutdown()
        stop_endpoint()
    p50, p90, p99 = (percentile(waits, q) for q in (0.5, 0.9, 0.99))
    print(
        f"mode={args.mode} producer={'local' if args.local else 'remote'} idle topics={args.idle} "
        + (f"idle gap={args.idle_gap / 2:g}..{args.idle_gap:g}s" if args.idle_gap else f"busy={args.busy_rate:g}/s")
        + f" probes={len(waits)}"
    )
    print(
        f"enqueue→start ms: p50 {p50:.0f}  p90 {p90:.0f}  p99 {p99:.0f}  max {max(waits):.0f}  "
        f"mean {statistics.mean(waits):.0f}   (target p99 ≤ {TARGET_P99_MS:.0f})"
    )
    return 0 if p99 <= TARGET_P99_MS else 2


if __name__ == "__main__":
    sys.exit(main())
