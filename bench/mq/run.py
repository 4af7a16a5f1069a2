"""MQ benchmark: Butterfly (百川) as users run it vs Dramatiq, RQ and huey — same private redis-server.

Drain (fill a queue with no-op messages, then time one consumer instance until every message ran
and its outcome was recorded):

* **butterfly-full** — ``python -m kernel run`` from the repository root with the full default
  install: every plugin installed and on, access log on, the demo apps of ``handlers/``, the MQ
  on with its default settings (8 workers; every handler route is a consumed topic). Messages go
  to ``/demo_api/hello {"str_info": "x"}`` (the router binds the params, trace logs each run).
  The queue is filled while paused, then resumed; also reported: the server's CPU per message.
* **butterfly-kernel** — the kernel and the mq plugin only, in this process, one raw JSON route
  (what this benchmark measured before issue 11).
* **dramatiq** — ``Worker(broker, worker_threads=8)`` in this process (one process, 8 threads).
* **rq** — ``SimpleWorker`` (burst); it drains ~0.2k/s, so it gets ``--rq-messages``.
* **huey** — ``create_consumer(workers=8, worker_type="thread")`` in this process.

Enqueue (one producer thread): per call for every system (Butterfly's ``enqueue`` from outside a
kernel, with ``redis_url``), Butterfly's ``enqueue_many`` in batches of ``--batch`` (one round trip
each), and a bare ``LPUSH`` per message (the floor of "one command per job").

Each round runs every system once, in an order rotated per round (so drift and background load
hit all alike); the tables show medians over ``--rounds`` and the per-round ratios. Round trips
are counted in redis-py (every library here uses it; a pipeline counts once), commands with
``INFO commandstats`` (including those run inside Lua).

Targets (issue 11): butterfly-full drain ≥ 3× Dramatiq; per-call enqueue ≥ 1.0× huey; batched
enqueue ≥ 5× huey's per-call rate.

Usage::

    .venv/bin/python bench/mq/run.py [--messages 10000] [--rounds 3] [--rq-messages 1000] [--batch 100]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

import redis  # noqa: E402
from fullinstall import FullInstall  # noqa: E402

from kernel import Response, hookimpl  # noqa: E402
from kernel.testing import RedisServer, build_kernel  # noqa: E402

ROUND_TRIPS = {"n": 0}
_send_packed = redis.connection.AbstractConnection.send_packed_command
FULL_TOPIC = "/demo_api/hello"
FULL_PARAMS = {"str_info": "x"}


def _counting_send(self, command, check_health=True):
    # NOTE: every library here talks through redis-py; one send = one round trip
    # (a pipeline sends all its commands at once).
    ROUND_TRIPS["n"] += 1
    return _send_packed(self, command, check_health)


redis.connection.AbstractConnection.send_packed_command = _counting_send


def redis_work(client: redis.Redis) -> tuple[int, int]:
    """(client round trips so far, Redis commands so far incl. those run inside Lua)."""
    every = sum(stats["calls"] for name, stats in client.info("commandstats").items() if name != "cmdstat_info")
    return ROUND_TRIPS["n"], every


class Meter:
    """Rate and Redis work of one timed phase (``cpu_pid``: also that process's CPU per message)."""

    def __init__(self, client: redis.Redis, count: int, cpu_pid: int | None = None) -> None:
        self.client, self.count, self.cpu_pid = client, count, cpu_pid
        self.cpu_us = None

    def __enter__(self) -> Meter:
        self.work0 = redis_work(self.client)
        self.cpu0 = process_cpu(self.cpu_pid) if self.cpu_pid else 0.0
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.t0
        if self.cpu_pid:
            self.cpu_us = (process_cpu(self.cpu_pid) - self.cpu0) / self.count * 1e6
        work1 = redis_work(self.client)
        self.rate = self.count / self.seconds
        # NOTE: the meter's own INFO calls (one before, one after) are not the queue's work
        self.top_per_msg = (work1[0] - self.work0[0] - 1) / self.count
        self.all_per_msg = (work1[1] - self.work0[1]) / self.count


def process_cpu(pid: int) -> float:
    """utime + stime of ``pid`` in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until(predicate: Callable[[], bool], timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("a drain did not finish within 10 minutes")
        time.sleep(0.01)


# -- Butterfly -----------------------------------------------------------------------------------


class NoopApp:
    """A plugin serving ``/bench/noop`` (a JSON handler that does nothing)."""

    @hookimpl
    def butterfly_register_routes(self, register):
        register("/bench/noop", lambda request: Response.json({"stat": "OK"}), kind="json")


def bench_butterfly_full(server: FullInstall, url: str, client: redis.Redis, count: int, batch: int) -> dict:
    """Fill /demo_api/hello while paused (enqueue_many), resume, time the full install's drain."""
    from butterfly_mq import enqueue_many
    from butterfly_mq.queue import Queue
    from butterfly_mq.ready import RESUME_MARK, ReadyIndex

    queue = Queue(client, FULL_TOPIC, "bc")
    queue.set_paused(True)
    before = queue.counts()["finished"]
    with Meter(client, count) as fill:
        for start in range(0, count, batch):
            enqueue_many(FULL_TOPIC, [FULL_PARAMS] * min(batch, count - start), redis_url=url)
    with Meter(client, count, cpu_pid=server.pid) as drain:
        queue.set_paused(False)
        script, keys, args = ReadyIndex("bc").mark_call(RESUME_MARK + FULL_TOPIC)
        script(client, keys, args)
        wait_until(lambda: queue.counts()["finished"] - before >= count)
    failed = queue.counts()["failed"]
    if failed:
        raise SystemExit(f"{failed} messages failed in the full install; see {server.work / 'server.out'}")
    return {"enqueue_many": fill, "drain": drain}


def bench_butterfly_kernel(url: str, client: redis.Redis, count: int, tmp: Path) -> dict:
    """Per-call enqueue (outside a kernel), then drain by an in-process kernel with the mq plugin only."""
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
            "mq.heartbeat_interval": 60,
            "mq.cleanup_interval": 3600,
        },
    )
    queue = Queue(client, "/bench/noop", prefix)
    with Meter(client, count) as drain:
        kernel.startup()
        wait_until(lambda: queue.counts()["finished"] >= count)
    kernel.shutdown()
    return {"enqueue": enq, "drain": drain}


def bench_butterfly_batch(url: str, client: redis.Redis, count: int, batch: int) -> dict:
    """``enqueue_many`` in batches of ``batch`` (outside a kernel), nobody consuming."""
    from butterfly_mq import enqueue_many

    prefix = f"bench{uuid.uuid4().hex[:6]}"
    with Meter(client, count) as enq:
        for start in range(0, count, batch):
            enqueue_many("/bench/noop", [{}] * min(batch, count - start), redis_url=url, prefix=prefix)
    return {"enqueue": enq}


# -- peers ---------------------------------------------------------------------------------------


def bench_rq(url: str, client: redis.Redis, count: int) -> dict:
    from rq import Queue as RQQueue
    from rq import SimpleWorker
    from rq_jobs import noop as rq_noop

    connection = redis.Redis.from_url(url)
    queue = RQQueue(f"bench-{uuid.uuid4().hex[:6]}", connection=connection)
    with Meter(client, count) as enq:
        for _ in range(count):
            queue.enqueue(rq_noop, result_ttl=60)
    with Meter(client, count) as drain:
        SimpleWorker([queue], connection=connection).work(burst=True, logging_level="WARNING")
    return {"enqueue": enq, "drain": drain}


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
        wait_until(lambda: done["n"] >= count)
    worker.stop()
    broker.close()
    return {"enqueue": enq, "drain": drain}


def bench_huey(url: str, client: redis.Redis, count: int) -> dict:
    """huey's enqueue (one LPUSH of a pickled message per call) and its thread consumer's drain."""
    from huey import RedisHuey

    huey = RedisHuey(f"bench-{uuid.uuid4().hex[:6]}", url=url, results=False)
    done = {"n": 0}
    lock = threading.Lock()

    @huey.task()
    def noop():
        with lock:
            done["n"] += 1

    with Meter(client, count) as enq:
        for _ in range(count):
            noop()
    consumer = huey.create_consumer(workers=8, worker_type="thread", periodic=False)
    with Meter(client, count) as drain:
        consumer.start()
        wait_until(lambda: done["n"] >= count)
    consumer.stop(graceful=True)
    huey.flush()
    return {"enqueue": enq, "drain": drain}


def bench_lpush(client: redis.Redis, count: int) -> dict:
    """The floor: one LPUSH per job."""
    key = f"lpush-{uuid.uuid4().hex[:6]}"
    payload = json.dumps({"id": "x" * 32, "params": {}})
    with Meter(client, count) as enq:
        for _ in range(count):
            client.lpush(key, payload)
    client.delete(key)
    return {"enqueue": enq}


# -- report --------------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values)


def report(rows: dict[str, list[dict]], args: argparse.Namespace, load: tuple[str, str], started: str) -> str:
    """The results as Markdown (what bench/README.md shows)."""
    out = [
        f"Run {started} on {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"load average (1 min) before/after: {load[0]} / {load[1]}.",
        "",
        f"`{' '.join(['.venv/bin/python', 'bench/mq/run.py', *sys.argv[1:]])}` — {args.rounds} interleaved rounds, "
        f"{args.messages:,} messages (RQ {args.rq_messages:,}), batches of {args.batch}.",
        "",
        "| drain | median msg/s | rounds (msg/s) | round trips / commands per msg | server CPU per msg |",
        "|---|---:|---|---|---:|",
    ]

    def rates(name: str, phase: str) -> list[float]:
        return [r[phase].rate for r in rows.get(name, []) if phase in r]

    for name in ("butterfly-full", "butterfly-kernel", "dramatiq", "huey", "rq"):
        if not rates(name, "drain"):
            continue
        drains = [r["drain"] for r in rows[name]]
        cpu = [m.cpu_us for m in drains if m.cpu_us is not None]
        # NOTE: the full install is another process: its round trips are not counted here
        trips = "-" if name == "butterfly-full" else f"{median([m.top_per_msg for m in drains]):.2f}"
        out.append(
            f"| {name} | {median(rates(name, 'drain')):,.0f} | {' '.join(f'{v:,.0f}' for v in rates(name, 'drain'))} "
            f"| {trips} / {median([m.all_per_msg for m in drains]):.2f} "
            f"| {f'{median(cpu):,.0f} µs' if cpu else '-'} |"
        )
    out += ["", "| enqueue | median msg/s | rounds (msg/s) | round trips / commands per msg |", "|---|---:|---|---|"]
    enqueue_rows = [
        ("butterfly enqueue (per call)", "butterfly-kernel", "enqueue"),
        (f"butterfly enqueue_many (batches of {args.batch})", "butterfly-batch", "enqueue"),
        (f"butterfly enqueue_many (batches of {args.batch}, fill of butterfly-full)", "butterfly-full", "enqueue_many"),
        ("huey (per call)", "huey", "enqueue"),
        ("dramatiq (per call)", "dramatiq", "enqueue"),
        ("rq (per call)", "rq", "enqueue"),
        ("bare LPUSH (per call)", "lpush", "enqueue"),
    ]
    for label, name, phase in enqueue_rows:
        if not rates(name, phase):
            continue
        meters = [r[phase] for r in rows[name]]
        out.append(
            f"| {label} | {median(rates(name, phase)):,.0f} | {' '.join(f'{v:,.0f}' for v in rates(name, phase))} "
            f"| {median([m.top_per_msg for m in meters]):.2f} / {median([m.all_per_msg for m in meters]):.2f} |"
        )
    ratios = [
        ("drain: butterfly-full / dramatiq", "butterfly-full", "drain", "dramatiq", "drain", 3.0),
        ("drain: butterfly-kernel / dramatiq", "butterfly-kernel", "drain", "dramatiq", "drain", None),
        ("drain: butterfly-full / huey", "butterfly-full", "drain", "huey", "drain", None),
        ("drain: butterfly-full / rq", "butterfly-full", "drain", "rq", "drain", None),
        ("enqueue per call: butterfly / huey", "butterfly-kernel", "enqueue", "huey", "enqueue", 1.0),
        ("enqueue_many / huey per call", "butterfly-batch", "enqueue", "huey", "enqueue", 5.0),
    ]
    out += ["", "| ratio | per round | median of rounds | target |", "|---|---|---:|---:|"]
    for label, ours, our_phase, peer, peer_phase, target in ratios:
        a, b = rates(ours, our_phase), rates(peer, peer_phase)
        if not a or not b:
            continue
        per_round = [x / y for x, y in zip(a, b, strict=False)]
        met = "" if target is None else (f"≥ {target:g}× {'met' if median(per_round) >= target else 'MISSED'}")
        out.append(
            f"| {label} | {' '.join(f'{v:.2f}×' for v in per_round)} | {median(per_round):.2f}× | {met or '-'} |"
        )
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rq-messages", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=100, help="messages per enqueue_many call")
    parser.add_argument(
        "--only",
        nargs="*",
        default=["butterfly-full", "butterfly-kernel", "butterfly-batch", "dramatiq", "huey", "rq", "lpush"],
    )
    args = parser.parse_args()

    import logging

    logging.basicConfig(level=logging.WARNING)
    started = time.strftime("%Y-%m-%d %H:%M")
    load_before = open("/proc/loadavg").read().split()[0]
    server = RedisServer().start()
    client = redis.Redis.from_url(server.url)
    tmp = Path(tempfile.mkdtemp(prefix="butterfly-bench-mq-"))
    full = FullInstall(server.url, tmp / "full").start() if "butterfly-full" in args.only else None
    rows: dict[str, list[dict]] = {}
    try:
        for round_number in range(args.rounds):
            shift = round_number % len(args.only)
            for name in args.only[shift:] + args.only[:shift]:
                if name == "butterfly-full":
                    result = bench_butterfly_full(full, server.url, client, args.messages, args.batch)
                elif name == "butterfly-kernel":
                    result = bench_butterfly_kernel(server.url, client, args.messages, tmp)
                elif name == "butterfly-batch":
                    result = bench_butterfly_batch(server.url, client, args.messages, args.batch)
                elif name == "dramatiq":
                    result = bench_dramatiq(server.url, client, args.messages)
                elif name == "huey":
                    result = bench_huey(server.url, client, args.messages)
                elif name == "rq":
                    result = bench_rq(server.url, client, args.rq_messages)
                else:
                    result = bench_lpush(client, args.messages)
                rows.setdefault(name, []).append(result)
                summary = ", ".join(f"{phase} {meter.rate:,.0f}/s" for phase, meter in result.items())
                print(f"round {round_number + 1} {name:16} {summary}", flush=True)
    finally:
        if full is not None:
            full.stop()
        server.stop()
    load_after = open("/proc/loadavg").read().split()[0]
    print()
    print(report(rows, args, (load_before, load_after), started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
