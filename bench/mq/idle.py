"""Idle CPU of the full default install with the MQ on and no traffic.

Starts a private redis-server and ``python -m kernel run`` from the repository root (every
plugin installed and on, access log on, the demo apps of ``handlers/``, ``[mq] redis_url``
set, so every handler route is a consumed topic), waits ``--warmup`` seconds, then reads
``/proc/<pid>/stat`` (utime + stime of every thread) before and after ``--seconds`` of no
traffic at all. Prints the share of one core, the consumed topics, and with ``--threads`` the
CPU of each thread (names from ``py-spy dump``).

Budget (issue 11): ≤ 1 % of one core.

Usage::

    .venv/bin/python bench/mq/idle.py [--seconds 60] [--warmup 10] [--threads] [--twemproxy] [--set MQ_BELL=false]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).parent))

from fullinstall import FullInstall, thread_cpu_seconds

from kernel.testing import RedisServer

BUDGET_PERCENT = 1.0


def thread_names(pid: int) -> dict[int, str]:
    """Thread id → Python thread name, from ``py-spy dump`` (empty when py-spy is missing)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    try:
        text = subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    names = {}
    for match in re.finditer(r'Thread (0x[0-9A-Fa-f]+|\d+) \([^)]*\): "([^"]*)"', text):
        ident = match.group(1)
        if not ident.startswith("0x"):
            names[int(ident)] = match.group(2)
    return names


def consumed_topics(redis_url: str) -> int:
    """How many topics the server consumes (its record in the MQ's instance registry)."""
    from butterfly_mq.connection import connect

    records = connect(redis_url).hgetall("bc:{registry}:instances").values()
    return max((len(json.loads(raw).get("queues", ())) for raw in records), default=0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the idle measurement")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds after start-up before measuring")
    parser.add_argument("--threads", action="store_true", help="also print the CPU of each thread")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION_KEY=VALUE", help="extra setting")
    parser.add_argument(
        "--twemproxy", action="store_true", help="through nutcracker (no bell there: idle consumers poll)"
    )
    args = parser.parse_args()

    redis_server = RedisServer().start()
    url = redis_server.url
    proxy = None
    if args.twemproxy:
        from butterfly_mq.testing import Twemproxy

        proxy = Twemproxy().start()
        url = proxy.url
    work = Path(tempfile.mkdtemp(prefix="butterfly-bench-idle-"))
    settings = dict(item.split("=", 1) for item in args.set)
    server = FullInstall(url, work, settings)
    try:
        server.start()
        topics = consumed_topics(url)
        time.sleep(args.warmup)
        before, threads_before, t0 = server.cpu_seconds(), thread_cpu_seconds(server.pid), time.monotonic()
        time.sleep(args.seconds)
        after, threads_after, t1 = server.cpu_seconds(), thread_cpu_seconds(server.pid), time.monotonic()
        names = thread_names(server.pid) if args.threads else {}
    finally:
        server.stop()
        if proxy is not None:
            proxy.stop()
        redis_server.stop()
    percent = 100 * (after - before) / (t1 - t0)
    with open("/proc/loadavg") as loadavg:
        load = loadavg.read().split()[0]
    print(
        f"idle CPU of `python -m kernel run` (all plugins, MQ on{' through Twemproxy' if proxy else ''}, "
        f"{topics} consumed topics, no traffic): "
        f"{percent:.2f} % of one core over {t1 - t0:.0f} s  (budget ≤ {BUDGET_PERCENT:g} %; load avg {load})"
    )
    if args.threads:
        rows = sorted(
            ((threads_after.get(tid, 0) - threads_before.get(tid, 0), tid) for tid in threads_after), reverse=True
        )
        for used, tid in rows:
            if used > 0:
                print(f"  {100 * used / (t1 - t0):6.2f} %  {tid:>8}  {names.get(tid, '?')}")
    return 0 if percent <= BUDGET_PERCENT else 2


if __name__ == "__main__":
    sys.exit(main())
