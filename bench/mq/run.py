"""MQ benchmark: Butterfly (百川) vs RQ (SimpleWorker) vs Dramatiq (threads), same private redis-server.

Measures, for no-op messages and one consumer instance (one process):

* enqueue rate — one producer thread, one call per message;
* drain rate — from starting the consumer until every message ran and was acknowledged;
* Redis work per message — client round trips (counted in redis-py, which every library here
  uses; a pipeline is one) and commands Redis executed, including those inside Lua
  (``INFO commandstats``).

Medians of ``--runs`` runs (default 3). RQ drains ~0.2k/s, so it gets ``--rq-messages`` (default
2,000) unless ``--full``; its rate is still messages per second. "LPUSH" is the floor every
queue's enqueue is measured against: one command per job, as huey does (huey itself is
measured too when installed: ``pip install huey``; only its enqueue).

Usage::

    .venv/bin/python bench/mq/run.py [--messages 20000] [--runs 3] [--only butterfly huey]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from kernel import Response, hookimpl  # noqa: E402
from kernel.testing import RedisServer, build_kernel  # noqa: E402

ROUND_TRIPS = {"n": 0}
_send_packed = redis.connection.AbstractConnection.send_packed_command


def _counting_send(self, command, check_health=True):
    # NOTE: every library here talks through redis-py; one send = one round trip
    # (a pipeline sends all its commands at once).
    ROUND_TRIPS["n"] += 1
    return _send_packed(self, command, check_health)


redis.connection.AbstractConnection.send_packed_command = _counting_send


def redis_work(client: redis.Redis) -> tuple[int, int]:
    """(client round trips so far, Redis commands so far incl. those run inside Lua)."""
    every = sum(stats["calls"] for name, stats in client.info("commandstats").items() if name not in ("cmdstat_info",))
    return ROUND_TRIPS["n"], every


class Meter:
    """Rate and Redis work of one timed phase."""

    def __init__(self, client: redis.Redis, count: int) -> None:
        self.client, self.count = client, count

    def __enter__(self) -> Meter:
        self.work0 = redis_work(self.client)
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.t0
        work1 = redis_work(self.client)
        self.rate = self.count / self.seconds
        # NOTE: the meter's own INFO calls (one before, one after) are not the queue's work
        self.top_per_msg = (work1[0] - self.work0[0] - 1) / self.count
        self.all_per_msg = (work1[1] - self.work0[1]) / self.count


# -- Butterfly ---------------------------------------------------------------------------------


class NoopApp:
    """A plugin serving ``/bench/noop`` (a JSON handler that does nothing)."""

    @hookimpl
    def butterfly_register_routes(self, register):
        register("/bench/noop", lambda request: Response.json({"stat": "OK"}), kind="json")


def bench_butterfly(url: str, client: redis.Redis, count: int, tmp: Path) -> dict:
    import butterfly_mq.plugin
    from butterfly_mq import enqueue
    from butterfly_mq.queue import Queue

    prefix = f"bench{uuid.uuid4().hex[:6]}"
    with Meter(client, count) as enq:
        for _ in range(count):
            enqueue("/bench/noop", {}, redis_url=url, prefix=prefix)
    kernel = build_kernel(
        tmp,
        [butterfly_mq.plugin, NoopApp()],
        {
            "mq.redis_url": url,
            "mq.prefix": prefix,
            "mq.queues": ["/bench/noop"],  # NOTE: a plugin's own route is not a topic by default
            "mq.workers": 8,
            "mq.batch_size": 64,
            "mq.heartbeat_interval": 60,
            "mq.cleanup_interval": 3600,
        },
    )
    queue = Queue(client, "/bench/noop", prefix)
    with Meter(client, count) as drain:
        kernel.startup()
        while queue.counts()["finished"] < count:
            time.sleep(0.01)
    kernel.shutdown()
    return {"enqueue": enq, "drain": drain}


# -- RQ ------------------------------------------------------------------------------------------


def bench_rq(url: str, client: redis.Redis, count: int) -> dict:
    from rq import Queue as RQQueue
    from rq import SimpleWorker

    sys.path.insert(0, str(Path(__file__).parent))
    from rq_jobs import noop as rq_noop

    connection = redis.Redis.from_url(url)
    queue = RQQueue(f"bench-{uuid.uuid4().hex[:6]}", connection=connection)
    with Meter(client, count) as enq:
        for _ in range(count):
            queue.enqueue(rq_noop, result_ttl=60)
    with Meter(client, count) as drain:
        SimpleWorker([queue], connection=connection).work(burst=True, logging_level="WARNING")
    return {"enqueue": enq, "drain": drain}


# -- Dramatiq ------------------------------------------------------------------------------------


def bench_dramatiq(url: str, client: redis.Redis, count: int) -> dict:
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=url, namespace=f"dramatiq-{uuid.uuid4().hex[:6]}")
    dramatiq.set_broker(broker)
    done = {"n": 0}
    lock = threading.Lock()

    @dramatiq.actor(broker=broker, max_retries=0, queue_name="bench")
    def noop():
        with lock:
            done["n"] += 1

    with Meter(client, count) as enq:
        for _ in range(count):
            noop.send()
    worker = dramatiq.Worker(broker, worker_threads=8)
    with Meter(client, count) as drain:
        worker.start()
        while done["n"] < count:
            time.sleep(0.01)
    worker.stop()
    broker.close()
    return {"enqueue": enq, "drain": drain}


def bench_huey(url: str, client: redis.Redis, count: int) -> dict:
    """huey's enqueue (one LPUSH of a pickled message per call); its consumer is not run."""
    from huey import RedisHuey

    huey = RedisHuey(f"bench-{uuid.uuid4().hex[:6]}", url=url)

    @huey.task()
    def noop():
        return None

    with Meter(client, count) as enq:
        for _ in range(count):
            noop()
    huey.flush()
    return {"enqueue": enq}


def bench_lpush(client: redis.Redis, count: int) -> dict:
    """The floor: one LPUSH per job (huey's enqueue)."""
    key = f"lpush-{uuid.uuid4().hex[:6]}"
    payload = json.dumps({"id": "x" * 32, "params": {}})
    with Meter(client, count) as enq:
        for _ in range(count):
            client.lpush(key, payload)
    client.delete(key)
    return {"enqueue": enq}


def median(results: list[dict], phase: str, field: str) -> float:
    return statistics.median(getattr(r[phase], field) for r in results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rq-messages", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--full", action="store_true", help="RQ gets --messages too (slow)")
    parser.add_argument("--only", nargs="*", default=["butterfly", "dramatiq", "rq", "huey", "lpush"])
    args = parser.parse_args()

    import logging
    import tempfile

    logging.basicConfig(level=logging.WARNING)
    server = RedisServer().start()
    client = redis.Redis.from_url(server.url)
    tmp = Path(tempfile.mkdtemp(prefix="butterfly-bench-mq-"))
    rows = {}
    try:
        for run in range(args.runs):
            for name in args.only:
                client.config_resetstat()
                if name == "butterfly":
                    result = bench_butterfly(server.url, client, args.messages, tmp)
                elif name == "dramatiq":
                    result = bench_dramatiq(server.url, client, args.messages)
                elif name == "huey":
                    result = bench_huey(server.url, client, args.messages)
                elif name == "rq":
                    result = bench_rq(server.url, client, args.messages if args.full else args.rq_messages)
                else:
                    result = bench_lpush(client, args.messages)
                rows.setdefault(name, []).append(result)
                summary = ", ".join(f"{phase} {result[phase].rate:,.0f}/s" for phase in result)
                print(f"run {run + 1} {name:9} {summary}", flush=True)
    finally:
        server.stop()

    print(f"\nMedians of {args.runs} runs, {args.messages:,} no-op messages, one instance, same redis-server\n")
    print(
        "| system | enqueue msg/s | drain msg/s | enqueue round trips / commands per msg "
        "| drain round trips / commands per msg |"
    )
    print("|---|---:|---:|---|---|")
    for name, results in rows.items():
        enq = f"{median(results, 'enqueue', 'rate'):,.0f}"
        drain = f"{median(results, 'drain', 'rate'):,.0f}" if "drain" in results[0] else "-"
        enq_work = f"{median(results, 'enqueue', 'top_per_msg'):.2f} / {median(results, 'enqueue', 'all_per_msg'):.2f}"
        drain_work = (
            f"{median(results, 'drain', 'top_per_msg'):.2f} / {median(results, 'drain', 'all_per_msg'):.2f}"
            if "drain" in results[0]
            else "-"
        )
        print(f"| {name} | {enq} | {drain} | {enq_work} | {drain_work} |")
    if "butterfly" in rows:
        ours = rows["butterfly"]
        print("\nRatios (Butterfly / peer):")
        for name in rows:
            if name == "butterfly":
                continue
            line = (
                f"  vs {name}: enqueue {median(ours, 'enqueue', 'rate') / median(rows[name], 'enqueue', 'rate'):.2f}x"
            )
            if "drain" in rows[name][0]:
                line += f", drain {median(ours, 'drain', 'rate') / median(rows[name], 'drain', 'rate'):.2f}x"
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
