"""Start-up time and memory of the full default install (issue 11, point 4): measured, never asserted in tests.

* **start-up**: ``python -m kernel run`` from the repo root (every plugin on, access log
  on, the demo apps) until the first ``200`` of ``/demo_api/hello?str_info=x``, polled
  every 10 ms; budget ≤ 1.0 s. Median of ``--starts`` restarts on existing data (the
  usual start) and of ``--starts`` first starts on empty data and log directories (which
  also create the database and hash the initial admin's password with argon2).
* **memory**: the resident set (``VmRSS``) of that server when idle after start-up,
  then sampled every 5 s during ``--seconds`` of ``wrk`` load at ``--connections``
  connections, then once more after the load; budget ≤ 60 MB idle, and flat under load.

The repository's packages are byte-compiled first, as pip compiles what it installs: an
editable checkout on a machine with ``PYTHONDONTWRITEBYTECODE`` set would otherwise compile
every module on every start (about 0.1 s more here), which no installed user pays.

Usage: ``.venv/bin/python bench/http/budgets.py [--starts 5] [--seconds 60] [--connections 64]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import run

START_BUDGET_S = 1.0
RSS_BUDGET_MB = 60.0


def rss_mb(pid: int) -> float:
    """The resident set of ``pid`` in MB (``VmRSS``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def compile_sources() -> None:
    """Byte-compile the kernel, the plugins and the demo apps (package data left alone)."""
    sources = [
        "_butterfly_cli.py",
        "kernel",
        "handlers",
        *sorted(str(p) for p in run.REPO.glob("plugins/*/butterfly_*")),
    ]
    command = [sys.executable, "-m", "compileall", "-q", "-x", r"[\\/](templates|lua|static)[\\/]", *sources]
    subprocess.run(command, cwd=run.REPO, check=True)


def start_server(work: Path, name: str, threads: int) -> tuple[run.Server, float]:
    """Start the full install; return it and the seconds until its first 200."""
    port = run.free_port()
    base_env = {key: value for key, value in os.environ.items() if not key.startswith("BUTTERFLY_")}
    env = run.butterfly_env(base_env, work, name, port, threads, all_plugins=True)
    server = run.Server(name, [sys.executable, "-m", "kernel", "run"], env, port)
    log = open(work / f"{name}.out", "wb")
    started = time.perf_counter()
    server.process = subprocess.Popen(server.argv, cwd=run.REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    while time.perf_counter() - started < 30:
        if server.process.poll() is not None:
            raise SystemExit(f"the server exited with {server.process.returncode}; see {work / (name + '.out')}")
        try:
            with urllib.request.urlopen(server.url, timeout=1) as reply:
                if reply.status == 200:
                    return server, time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.01)
    raise SystemExit("no 200 within 30 s")


def main() -> int:
    """Measure both budgets and print a Markdown summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=5, help="fresh starts to time")
    parser.add_argument("--seconds", type=int, default=60, help="seconds of load for the memory check")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=16, help="waitress threads ([server] threads default)")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds idle before the first RSS sample")
    args = parser.parse_args()
    compile_sources()
    work = Path(tempfile.mkdtemp(prefix="butterfly-budgets-"))
    load_before = run.load_average()
    times: list[float] = []
    first_times: list[float] = []
    try:
        for index in range(args.starts):
            server, seconds = start_server(work, f"first{index}", args.threads)
            first_times.append(seconds)
            print(f"first start {index + 1}/{args.starts}: first 200 after {seconds:.3f} s", flush=True)
            run.stop(server)
        for index in range(args.starts):
            server, seconds = start_server(work, "first0", args.threads)
            times.append(seconds)
            print(f"restart {index + 1}/{args.starts}: first 200 after {seconds:.3f} s", flush=True)
            run.stop(server)
        server, _ = start_server(work, "memory", args.threads)
        assert server.process is not None
        pid = server.process.pid
        time.sleep(args.idle)
        idle = rss_mb(pid)
        print(f"idle RSS {idle:.1f} MB", flush=True)
        wrk = shutil.which("wrk") or "/usr/bin/wrk"
        loader = subprocess.Popen(
            [wrk, "-t1", f"-c{args.connections}", f"-d{args.seconds}s", server.url],
            stdout=subprocess.PIPE,
            text=True,
        )
        samples = []
        while loader.poll() is None:
            time.sleep(5)
            if loader.poll() is None:
                samples.append(rss_mb(pid))
                print(f"  under load: {samples[-1]:.1f} MB", flush=True)
        stdout, _ = loader.communicate()
        rps, _, bad, served = run.parse_wrk(stdout)
        time.sleep(2)
        after = rss_mb(pid)
        run.stop(server)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    median = statistics.median(times)
    first, last = (samples[0], samples[-1]) if samples else (idle, idle)
    lines = [
        f"Load average (1 min) before/after: {load_before} / {run.load_average()} on {os.cpu_count()} CPUs.",
        "",
        "| budget | measured | verdict |",
        "|---|---|---|",
        f"| `python -m kernel run` to the first 200 ≤ {START_BUDGET_S:.1f} s (restart, existing data) | "
        f"median {median:.2f} s (runs: {' '.join(f'{t:.2f}' for t in times)}) | "
        f"{'met' if median <= START_BUDGET_S else 'missed'} |",
        f"| the same, first start (empty data dir: database, initial admin) | median "
        f"{statistics.median(first_times):.2f} s (runs: {' '.join(f'{t:.2f}' for t in first_times)}) | "
        f"{'met' if statistics.median(first_times) <= START_BUDGET_S else 'missed'} |",
        f"| idle RSS ≤ {RSS_BUDGET_MB:.0f} MB | {idle:.1f} MB | {'met' if idle <= RSS_BUDGET_MB else 'missed'} |",
        f"| RSS flat over {args.seconds} s at {args.connections} connections | first sample {first:.1f} MB, "
        f"last {last:.1f} MB, max {max(samples, default=idle):.1f} MB, 2 s after {after:.1f} MB "
        f"({served:,} requests, {rps:,.0f} req/s, {bad} bad) | "
        f"{'flat' if last - first <= 2.0 else 'grew'} |",
    ]
    print("\n" + "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
