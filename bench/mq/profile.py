"""Where the full install's consumer spends its time: py-spy over a drain, grouped by layer.

Starts a private redis-server and ``python -m kernel run`` (the full default install, as in
``run.py``), fills ``/demo_api/hello`` with ``--messages`` while it is paused, resumes it and
records the server with ``py-spy record --gil`` (only samples that hold the GIL: the Python
work, which is what bounds one process) until the queue is drained. Prints the share of
samples per layer — attributed to the innermost frame of a known layer on each stack — and
the top functions by own time. The raw stacks stay in ``--out`` (collapsed format; load them
into speedscope or ``flamegraph.pl``).

Usage::

    .venv/bin/python bench/mq/profile.py [--messages 30000] [--out /tmp/mq-drain.txt]
    .venv/bin/python bench/mq/profile.py --messages 30000 --stacks /tmp/mq-drain.txt   # summarise again
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).parent))

import redis
from fullinstall import FullInstall

from kernel.testing import RedisServer

TOPIC, PARAMS = "/demo_api/hello", {"str_info": "x"}
#: py-spy samples per second
RATE = 250
#: (layer, substring of a frame's file path), innermost match wins; checked in this order.
LAYERS = [
    ("redis-py (client, sockets)", "/redis/"),
    ("mq: runner (message → kernel.call → outcome)", "butterfly_mq/runner.py"),
    ("mq: consumer (poller, workers, acks)", "butterfly_mq/consumer.py"),
    ("mq: consumer (poller, workers, acks)", "butterfly_mq/pickup.py"),
    ("mq: queue/scripts (Lua calls, parsing)", "butterfly_mq/queue.py"),
    ("mq: queue/scripts (Lua calls, parsing)", "butterfly_mq/script_calls.py"),
    ("mq: other", "butterfly_mq/"),
    ("trace plugin (access log, metrics)", "butterfly_trace/"),
    ("auth plugin", "butterfly_auth/"),
    ("store plugin (db_session)", "butterfly_store/"),
    ("router plugin (binding, protocol)", "butterfly_router/"),
    ("xingqiao plugin", "butterfly_xingqiao/"),
    ("ruqi plugin", "butterfly_ruqi/"),
    ("wuxing plugin", "butterfly_wuxing/"),
    ("handler (handlers/demo_api)", "handlers/"),
    ("kernel: request path (app, request, response, hooks)", "kernel/"),
    ("pluggy (hook calls)", "/pluggy/"),
    ("structlog", "/structlog/"),
    ("pony (ORM)", "/pony/"),
    ("json", "/json/"),
    ("threading / queue (stdlib)", "/threading.py"),
    ("threading / queue (stdlib)", "/queue.py"),
]


def layer_of(frames: list[str]) -> str:
    """The layer of the innermost frame that belongs to a known layer."""
    for frame in reversed(frames):
        for name, marker in LAYERS:
            if marker in frame:
                return name
    return "other (stdlib, interpreter)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=30_000)
    parser.add_argument("--out", default=None, help="collapsed stacks file (default: a temp file)")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--stacks", help="only summarise this earlier --out file (of a --messages drain)")
    args = parser.parse_args()
    if args.stacks:
        summarise(Path(args.stacks), args.messages, args.top)
        return 0

    from butterfly_mq import enqueue_many
    from butterfly_mq.queue import Queue
    from butterfly_mq.ready import RESUME_MARK, ReadyIndex

    server = RedisServer().start()
    work = Path(tempfile.mkdtemp(prefix="butterfly-bench-profile-"))
    out = Path(args.out or work / "drain.txt")
    full = FullInstall(server.url, work / "full").start()
    client = redis.Redis.from_url(server.url, decode_responses=True)
    try:
        queue = Queue(client, TOPIC, "bc")
        queue.set_paused(True)
        for start in range(0, args.messages, 1000):
            enqueue_many(TOPIC, [PARAMS] * min(1000, args.messages - start), redis_url=server.url)
        spy = str(Path(sys.executable).with_name("py-spy"))
        recorder = subprocess.Popen(
            [spy, "record", "--gil", "--rate", str(RATE), "--format", "raw", "-o", str(out), "--pid", str(full.pid)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)  # py-spy attaches
        t0 = time.perf_counter()
        queue.set_paused(False)
        script, keys, argv = ReadyIndex("bc").mark_call(RESUME_MARK + TOPIC)
        script(client, keys, argv)
        while queue.counts()["finished"] < args.messages:
            time.sleep(0.02)
        seconds = time.perf_counter() - t0
        recorder.send_signal(2)  # SIGINT: py-spy writes the file and exits
        recorder.wait(30)
    finally:
        full.stop()
        server.stop()
    print(f"drained {args.messages:,} messages in {seconds:.2f} s ({args.messages / seconds:,.0f}/s)")
    summarise(out, args.messages, args.top)
    return 0


def summarise(out: Path, messages: int, top: int) -> None:
    """Print the layers and the top functions of a collapsed-stacks file of a drain of ``messages``."""
    by_layer: collections.Counter[str] = collections.Counter()
    by_function: collections.Counter[str] = collections.Counter()
    total = poller = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames = stack.split(";")
        samples = int(count)
        total += samples
        by_layer[layer_of(frames)] += samples
        by_function[frames[-1]] += samples
        if any("Consumer._poll_loop" in frame for frame in frames):
            poller += samples

    def per_message(samples: int) -> float:
        return samples / RATE / messages * 1e6

    print(f"{total} GIL samples at {RATE} Hz: {per_message(total):.1f} µs of GIL per message, of which the poller")
    print(f"thread (the one every message passes through) {per_message(poller):.1f} µs; stacks: {out}\n")
    print("| layer | GIL µs per message | share |\n|---|---:|---:|")
    for name, samples in by_layer.most_common():
        print(f"| {name} | {per_message(samples):.1f} | {100 * samples / total:.1f} % |")
    print(f"\ntop {top} functions by own samples:")
    for name, samples in by_function.most_common(top):
        print(f"  {100 * samples / total:5.1f} %  {name}")


if __name__ == "__main__":
    sys.exit(main())
