"""Per-call enqueue, taken apart: Butterfly's ``enqueue()`` vs huey's per-call enqueue vs a bare
``LPUSH``, interleaved rounds on one private ``redis-server``, plus where the time goes.

For every variant and round: wall µs per call, the producer's CPU µs per call (``thread_time``),
the redis-server process's CPU µs per call (``/proc/<pid>/stat``), and ``INFO commandstats``
(``usec`` of every command divided by the calls: a script's own time *and* the commands it ran,
so scripts are counted about twice there; commands include those run inside Lua). The variants that take ``enqueue()`` apart:

* ``butterfly`` — ``enqueue(topic, params, redis_url=...)`` as users call it (outside a kernel);
* ``scripts-only`` — the same Redis work sent directly (``run_pipelined`` of the prepared calls):
  what is left when the Python around it costs nothing;
* ``huey`` — ``RedisHuey`` task call (pickle + one ``LPUSH``);
* ``lpush`` — ``client.lpush`` of a small JSON payload (the floor of one command per job).

Usage::

    .venv/bin/python bench/mq/enqueue.py [--calls 5000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from kernel.testing import RedisServer  # noqa: E402


def server_usec(client: redis.Redis) -> tuple[int, int]:
    """(Redis µs spent in commands so far, commands so far), ``INFO`` itself left out."""
    stats = client.info("commandstats")
    rows = [row for name, row in stats.items() if name != "cmdstat_info"]
    return sum(int(row["usec"]) for row in rows), sum(int(row["calls"]) for row in rows)


def process_cpu(pid: int) -> float:
    """utime + stime of ``pid`` in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(client: redis.Redis, pid: int, calls: int, body: Callable[[], None]) -> dict[str, float]:
    usec0, commands0 = server_usec(client)
    server0 = process_cpu(pid)
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    for _ in range(calls):
        body()
    wall, cpu = time.perf_counter() - wall0, time.thread_time() - cpu0
    server1 = process_cpu(pid)
    usec1, commands1 = server_usec(client)
    return {
        "wall": wall / calls * 1e6,
        "cpu": cpu / calls * 1e6,
        "server": (server1 - server0) / calls * 1e6,
        "redis": (usec1 - usec0) / calls,
        "commands": (commands1 - commands0) / calls,
    }


def variants(url: str) -> dict[str, Callable[[], Callable[[], None]]]:
    from butterfly_mq import enqueue
    from butterfly_mq.connection import shared_client
    from butterfly_mq.producer import _queue, _ready_index, shared_info_fields
    from butterfly_mq.script_calls import run_pipelined

    def butterfly() -> Callable[[], None]:
        prefix = f"b{uuid.uuid4().hex[:6]}"
        return lambda: enqueue("/bench/noop", {}, redis_url=url, prefix=prefix)

    def scripts_only() -> Callable[[], None]:
        prefix = f"s{uuid.uuid4().hex[:6]}"
        client = shared_client(url)
        queue = _queue(client, prefix, "/bench/noop")
        mark = _ready_index(prefix).mark_call("/bench/noop")
        fields = shared_info_fields("/bench/noop", None, None)

        def body() -> None:
            msg_id = os.urandom(16).hex()
            run_pipelined(client, [queue.enqueue_call(msg_id, "{}", f'{{"id":"{msg_id}",{fields}}}', 0), mark])

        return body

    def huey() -> Callable[[], None]:
        from huey import RedisHuey

        app = RedisHuey(f"bench-{uuid.uuid4().hex[:6]}", url=url, results=False)

        @app.task()
        def noop() -> None:
            pass

        return noop

    def lpush() -> Callable[[], None]:
        client = redis.Redis.from_url(url)
        key = f"lpush-{uuid.uuid4().hex[:6]}"
        payload = '{"id":"' + "x" * 32 + '","params":{}}'
        return lambda: client.lpush(key, payload)

    return {"butterfly": butterfly, "scripts-only": scripts_only, "huey": huey, "lpush": lpush}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", nargs="*")
    args = parser.parse_args()
    load_before = open("/proc/loadavg").read().split()[0]
    server = RedisServer().start()
    try:
        client = redis.Redis.from_url(server.url)
        pid = server.process.pid
        makers = variants(server.url)
        names = args.only or list(makers)
        rows: dict[str, list[dict[str, float]]] = {name: [] for name in names}
        for name in names:  # NOTE: warm-up (connections, script cache, imports)
            measure(client, pid, 200, makers[name]())
        for number in range(args.rounds):
            shift = number % len(names)
            for name in names[shift:] + names[:shift]:
                rows[name].append(measure(client, pid, args.calls, makers[name]()))
    finally:
        server.stop()
    load_after = open("/proc/loadavg").read().split()[0]
    print(f"load average (1 min) before/after: {load_before} / {load_after}; {args.rounds} rounds of {args.calls}")
    print(
        "| variant | wall µs/call | client CPU µs/call | redis-server CPU µs/call "
        "| commandstats µs/call | commands/call | wall per round |"
    )
    print("|---|---:|---:|---:|---:|---:|---|")
    for name in names:
        got = rows[name]
        med = {key: statistics.median(row[key] for row in got) for key in got[0]}
        walls = " ".join(f"{row['wall']:.0f}" for row in got)
        print(
            f"| {name} | {med['wall']:.1f} | {med['cpu']:.1f} | {med['server']:.1f} | {med['redis']:.1f} "
            f"| {med['commands']:.2f} | {walls} |"
        )
    if "butterfly" in rows and "huey" in rows:
        ratios = [h["wall"] / b["wall"] for b, h in zip(rows["butterfly"], rows["huey"], strict=True)]
        print(
            f"\nper-call rate butterfly / huey per round: {' '.join(f'{r:.2f}×' for r in ratios)}; "
            f"median {statistics.median(ratios):.2f}×"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
