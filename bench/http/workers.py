"""Many cores: Butterfly with 1 worker vs 2 workers (``run --workers N``) on one port.

Both servers answer ``/demo_api/hello?str_info=x`` exactly as in :mod:`run` (router and
trace on, access log on, the other plugins off). Each is measured with ``wrk`` in
interleaved rounds; besides requests per second, the CPU time of the whole process tree
(supervisor and workers, from ``/proc/<pid>/stat``) is divided by the requests served,
which shows what the supervisor and a second process cost per request.

The servers may use ``--server-cpus`` (default ``0,1``) and ``wrk`` runs on
``--client-cpu`` (default 2 when there are 3 CPUs or more, else it shares CPU 1 with a server). Results go to ``bench/README.md``
between the ``http-workers-results`` markers.

Usage: ``.venv/bin/python bench/http/workers.py [--rounds 3] [--duration 10] [--threads 16]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import run

START_MARK, END_MARK = "<!-- http-workers-results:start -->", "<!-- http-workers-results:end -->"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its live children.

    :param pid: the server's process (a supervisor, or a single server)
    :return: seconds
    """
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        process, parent = int(stat.parent.name), int(fields[1])
        if process == pid or parent == pid:
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
    return total


def requests_served(output: str) -> int:
    """The request count from wrk's ``N requests in ...`` line."""
    found = re.search(r"(\d+) requests in", output)
    if found is None:
        raise SystemExit(f"cannot read wrk output:\n{output}")
    return int(found.group(1))


def make_server(name: str, workers: int, args: argparse.Namespace, work: Path) -> run.Server:
    """Butterfly with ``workers`` processes, not started yet."""
    port = run.free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("BUTTERFLY_")}
    env.update(
        BUTTERFLY_SERVER_PORT=str(port),
        BUTTERFLY_SERVER_THREADS=str(args.threads),
        BUTTERFLY_SERVER_WORKERS=str(workers),
        BUTTERFLY_SERVER_LOG_DIR=str(work / name / "logs"),
        BUTTERFLY_SERVER_DATA_DIR=str(work / name / "data"),
        BUTTERFLY_DISABLE_PLUGINS=run.butterfly_plugins_to_disable(False),
        BUTTERFLY_TRACE_ACCESS_LOG="true",
    )
    argv = ["taskset", "-c", args.server_cpus, sys.executable, "-m", "kernel", "run"]
    return run.Server(name, argv, env, port)


def measure(server: run.Server, args: argparse.Namespace, seconds: int) -> tuple[float, float, float, int]:
    """One wrk run: ``(requests/s, mean latency ms, CPU µs per request, bad responses)``."""
    before = tree_cpu_seconds(server.process.pid)
    argv = ["taskset", "-c", str(args.client_cpu), args.wrk, "-t1", f"-c{args.connections}", f"-d{seconds}s"]
    completed = subprocess.run([*argv, server.url], capture_output=True, text=True, check=True)
    used = tree_cpu_seconds(server.process.pid) - before
    rps, latency, bad, _ = run.parse_wrk(completed.stdout)
    served = max(1, requests_served(completed.stdout))
    return rps, latency, used / served * 1e6, bad


def results_markdown(results: dict[str, dict[str, list[float]]], args: argparse.Namespace, notes: list[str]) -> str:
    """The results block for ``bench/README.md``."""
    one = statistics.median(results["1 worker"]["rps"])
    lines = [
        f"Run {dt.datetime.now().strftime('%Y-%m-%d %H:%M')} on {run.machine()}.",
        "",
        f"Settings: waitress threads={args.threads} per worker; wrk 1 thread, {args.connections} connections "
        f"on CPU {args.client_cpu}; servers on CPUs {args.server_cpus}; {args.warmup} s warm-up each, then "
        f"{args.rounds} interleaved rounds × {args.duration} s.",
        "",
        "| server | median req/s | rounds (req/s) | mean latency | CPU per request | vs 1 worker |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for name, values in results.items():
        median = statistics.median(values["rps"])
        rounds = " ".join(f"{value:,.0f}" for value in values["rps"])
        lines.append(
            f"| {name} | {median:,.0f} | {rounds} | {statistics.median(values['latency']):.2f} ms | "
            f"{statistics.median(values['cpu_us']):,.0f} µs | {median / one:.2f}× |"
        )
    return "\n".join([*lines, "", *notes])


def write_readme(section: str) -> None:
    """Replace the text between the http-workers-results markers (or append a section)."""
    text = run.README.read_text(encoding="utf-8") if run.README.exists() else ""
    block = f"{START_MARK}\n{section}\n{END_MARK}"
    if START_MARK in text and END_MARK in text:
        head, rest = text.split(START_MARK, 1)
        text = head + block + rest.split(END_MARK, 1)[1]
    else:
        text = text.rstrip() + "\n\n## HTTP on many cores: 1 vs 2 workers\n\n" + block + "\n"
    run.README.write_text(text, encoding="utf-8")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    cpus = os.cpu_count() or 1
    parser = argparse.ArgumentParser(description="Butterfly with 1 vs 2 workers (wrk, CPU per request).")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up load per server")
    parser.add_argument("--threads", type=int, default=16, help="waitress threads per worker")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--server-cpus", default="0,1", help="taskset CPU list for the servers")
    parser.add_argument("--client-cpu", type=int, default=2 if cpus >= 3 else cpus - 1)
    parser.add_argument("--wrk", default=shutil.which("wrk") or "/usr/bin/wrk")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/README.md alone")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; returns 0."""
    args = parse_args(argv)
    if not Path(args.wrk).exists():
        raise SystemExit(f"wrk not found at {args.wrk}: apt-get install wrk")
    work = Path(tempfile.mkdtemp(prefix="butterfly-bench-workers-"))
    load_before = run.load_average()
    servers = [make_server("1 worker", 1, args, work), make_server("2 workers", 2, args, work)]
    results = {server.name: {"rps": [], "latency": [], "cpu_us": []} for server in servers}
    bad_total = dict.fromkeys(results, 0)
    try:
        for server in servers:
            run.start(server, work)
            print(f"started {server.name:10} {server.url}", flush=True)
            measure(server, args, args.warmup)
        for round_index in range(args.rounds):
            order = servers if round_index % 2 == 0 else servers[::-1]
            for server in order:
                rps, latency, cpu_us, bad = measure(server, args, args.duration)
                values = results[server.name]
                values["rps"].append(rps)
                values["latency"].append(latency)
                values["cpu_us"].append(cpu_us)
                bad_total[server.name] += bad
                print(
                    f"round {round_index + 1}/{args.rounds} {server.name:10} {rps:10,.0f} req/s "
                    f"{latency:7.2f} ms {cpu_us:8,.0f} µs CPU/request{'  BAD: ' + str(bad) if bad else ''}",
                    flush=True,
                )
    finally:
        for server in servers:
            run.stop(server)
    notes = [
        f"CPU per request: user + system time of the server's process tree (supervisor and workers) "
        f"during the run, divided by the requests wrk counted. Load average (1 min) before/after: "
        f"{load_before} / {run.load_average()} on {os.cpu_count()} CPUs."
    ]
    if (os.cpu_count() or 1) < 3:
        notes.append(
            "**Only 2 CPUs: wrk shared a CPU with the servers, and other work on the machine skews both rows; take numbers from 4+ idle CPUs.**"
        )
    notes += [f"**{name}: {count} non-2xx responses or socket errors.**" for name, count in bad_total.items() if count]
    section = results_markdown(results, args, notes)
    print("\n" + section)
    if not args.no_write:
        write_readme(section)
        print(f"\nwritten to {run.README}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
