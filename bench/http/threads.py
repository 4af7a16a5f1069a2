"""Where each server's CPU goes on the wire, thread by thread: µs of CPU per request under wrk.

Starts the servers of :mod:`run` (default: ``butterfly-full`` and ``raw``, pinned to one
CPU, wrk on the other), names their threads once with ``py-spy dump`` (waitress's worker
threads, its I/O thread — ``MainThread`` — and Butterfly's background threads), then for
each round runs wrk and reads every thread's user + system time from
``/proc/<pid>/task/<tid>/stat``. Prints, per server, the median µs of CPU per request of
each group of threads: the difference between Butterfly and raw WSGI per group says
whether the extra cost is in the request threads, in waitress's I/O thread or in a
background thread (the access-log writer).

Usage: ``.venv/bin/python bench/http/threads.py [--rounds 3] [--duration 8] [--only butterfly-full raw ...]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import run


def thread_names(pid: int) -> dict[int, str]:
    """``{os thread id: Python thread name}`` of process ``pid`` (``py-spy dump``)."""
    py_spy = Path(sys.executable).with_name("py-spy")
    dump = subprocess.run(
        [str(py_spy), "dump", "--pid", str(pid), "--json"], capture_output=True, text=True, check=True
    )
    return {thread["os_thread_id"]: thread["thread_name"] or "?" for thread in json.loads(dump.stdout)}


def group_of(name: str) -> str:
    """The row a thread is counted in: waitress workers together, the others by name."""
    if name.startswith("waitress-"):
        return "waitress workers (the request path)"
    if name == "MainThread":
        return "MainThread (waitress I/O: poll, parse, send)"
    return name


def thread_cpu(pid: int) -> dict[int, float]:
    """``{tid: user + system CPU seconds}`` of every thread of ``pid``."""
    cpu = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rpartition(")")[2].split()
        cpu[int(task.name)] = (int(fields[11]) + int(fields[12])) / run.CLOCK_TICKS
    return cpu


def main() -> int:
    """Measure and print the per-thread table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--only", nargs="+", default=[run.HEADLINE, "raw"])
    parser.add_argument("--threads", type=int, default=4, help="waitress threads of every server")
    options = parser.parse_args()
    args = run.parse_args(["--threads", str(options.threads), "--only", *options.only, "--no-write"])
    work = Path(tempfile.mkdtemp(prefix="butterfly-threads-"))
    servers = run.make_servers(args, work)
    per_request: dict[str, dict[str, list[float]]] = {server.name: defaultdict(list) for server in servers}
    try:
        for server in servers:
            run.start(server, work)
            run.load(server, args, 3)  # warm-up
        for round_index in range(options.rounds):
            shift = round_index % len(servers)
            for server in servers[shift:] + servers[:shift]:
                assert server.process is not None
                pid = server.process.pid
                names = thread_names(pid)
                before = thread_cpu(pid)
                rps, _, _, _ = run.load(server, args, options.duration)
                after = thread_cpu(pid)
                requests = rps * options.duration
                groups: dict[str, float] = defaultdict(float)
                for tid, seconds in after.items():
                    groups[group_of(names.get(tid, "?"))] += seconds - before.get(tid, 0.0)
                for group, seconds in groups.items():
                    per_request[server.name][group].append(seconds / requests * 1e6)
                per_request[server.name]["total"].append(sum(groups.values()) / requests * 1e6)
                print(f"round {round_index + 1} {server.name:24} {rps:10,.0f} req/s", flush=True)
    finally:
        for server in servers:
            run.stop(server)
    print(f"\nCPU µs per request, median of {options.rounds} rounds (load {run.load_average()}):")
    for name, groups in per_request.items():
        print(f"\n{name}")
        for group, values in sorted(groups.items(), key=lambda item: -statistics.median(item[1])):
            print(f"  {statistics.median(values):7.1f}  {group}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
