"""HTTP benchmark: Butterfly as users run it vs Falcon, Flask and a raw WSGI app, all on waitress.

Every server answers ``/demo_api/hello?str_info=x`` with ``{"stat":"OK","str_info":"x"}``:

* **butterfly-full** (the headline) — ``python -m kernel run`` from the repo root, as
  users run it: every plugin installed in the venv and on (auth, store, router, trace
  with the access log on, ruqi, wuxing, xingqiao, mq with its defaults), the demo
  apps of ``handlers/``; only the data and log directories are temp dirs;
* **butterfly-router-trace** — the same, with every plugin but router and trace
  switched off with ``BUTTERFLY_DISABLE_PLUGINS`` (the row this benchmark showed before);
* **falcon**, **flask** — the same endpoint in those frameworks (:mod:`apps`);
* **raw** — a hand-written WSGI callable (:mod:`apps`), the floor;
* **raw-waitress-defaults** — the same callable on waitress as it ships: Butterfly
  sets waitress's ``send_bytes`` (``[server] send_buffer``), the peers above get the
  same setting, this row shows what it is worth.

All get the same waitress thread count. Servers are pinned to one CPU and ``wrk``
to another (``taskset``); after a warm-up, rounds are interleaved (the server
order rotates each round) so drift hits everyone alike. Medians, per-round ratios
and the server's CPU time per request (``/proc/<pid>/stat``) are printed and
written to ``bench/README.md`` between the ``http-results`` markers.

Usage: ``.venv/bin/python bench/http/run.py [--rounds 5] [--duration 10] [--threads 4] [--connections 16]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from apps import PATH

REPO = Path(__file__).resolve().parents[2]
README = REPO / "bench" / "README.md"
QUERY = "?str_info=x"
EXPECTED = {"stat": "OK", "str_info": "x"}
START_MARK, END_MARK = "<!-- http-results:start -->", "<!-- http-results:end -->"
#: The plugins of the ``butterfly-router-trace`` row (DESIGN §9: router + trace).
ROUTER_TRACE = {"router", "trace"}
HEADLINE = "butterfly-full"
RAW_DEFAULTS = "raw-waitress-defaults"
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: Issue 11's targets for the headline row: ratio to these servers, per the medians.
TARGETS = {"raw": 0.90, "falcon": 1.00}


@dataclass
class Server:
    """One server under test and its results."""

    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    process: subprocess.Popen | None = None
    rps: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    bad_responses: int = 0

    @property
    def url(self) -> str:
        """The benchmarked URL."""
        return f"http://127.0.0.1:{self.port}{PATH}{QUERY}"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def butterfly_plugins_to_disable(all_plugins: bool) -> str:
    """Installed ``butterfly.plugins`` entry points other than router and trace ("" for all on)."""
    if all_plugins:
        return ""
    names = {ep.name for ep in metadata.entry_points(group="butterfly.plugins")}
    return ",".join(sorted(names - ROUTER_TRACE))


def butterfly_env(base_env: dict[str, str], work: Path, name: str, port: int, threads: int, all_plugins: bool):
    """The environment of one ``python -m kernel run`` server."""
    env = dict(
        base_env,
        BUTTERFLY_SERVER_PORT=str(port),
        BUTTERFLY_SERVER_THREADS=str(threads),
        BUTTERFLY_SERVER_LOG_DIR=str(work / name / "logs"),
        BUTTERFLY_SERVER_DATA_DIR=str(work / name / "data"),
        BUTTERFLY_TRACE_ACCESS_LOG="true",
    )
    disabled = butterfly_plugins_to_disable(all_plugins)
    if disabled:
        env["BUTTERFLY_DISABLE_PLUGINS"] = disabled
    return env


def make_servers(args: argparse.Namespace, work: Path) -> list[Server]:
    """The servers to compare, not started yet."""
    pin = ["taskset", "-c", str(args.server_cpu)]
    python = sys.executable
    base_env = {key: value for key, value in os.environ.items() if not key.startswith("BUTTERFLY_")}
    servers = []
    for name, all_plugins in ((HEADLINE, True), ("butterfly-router-trace", False)):
        if name not in args.only:
            continue
        port = free_port()
        env = butterfly_env(base_env, work, name, port, args.threads, all_plugins)
        servers.append(Server(name, [*pin, python, "-m", "kernel", "run"], env, port))
    for name in ("falcon", "flask", "raw", RAW_DEFAULTS):
        if name not in args.only:
            continue
        port = free_port()
        argv = [*pin, python, str(Path(__file__).with_name("serve.py")), name.removesuffix("-waitress-defaults")]
        argv += ["--port", str(port), "--threads", str(args.threads)]
        if name == RAW_DEFAULTS:
            argv.append("--waitress-defaults")
        servers.append(Server(name, argv, dict(base_env), port))
    return servers


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def start(server: Server, work: Path) -> None:
    """Start ``server`` and wait until it answers the benchmarked URL correctly."""
    log = open(work / f"{server.name}.out", "wb")
    server.process = subprocess.Popen(server.argv, cwd=REPO, env=server.env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SystemExit(
                f"{server.name} exited with {server.process.returncode}; see {work / (server.name + '.out')}"
            )
        try:
            with urllib.request.urlopen(server.url, timeout=2) as reply:
                body = json.loads(reply.read())
            if body != EXPECTED:
                raise SystemExit(f"{server.name} answered {body!r}, expected {EXPECTED!r}")
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{server.name} did not answer within 30 s")


def stop(server: Server) -> None:
    """SIGTERM (graceful drain for Butterfly), SIGKILL after 20 s."""
    process = server.process
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def parse_wrk(output: str) -> tuple[float, float, int, int]:
    """``(requests_per_second, mean_latency_ms, bad_responses, requests)`` from wrk's report."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    latency = re.search(r"Latency\s+([\d.]+)(us|ms|s)\b", output)
    served = re.search(r"(\d+) requests in", output)
    if rps is None or latency is None or served is None:
        raise SystemExit(f"cannot read wrk output:\n{output}")
    bad = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if non_2xx:
        bad += int(non_2xx.group(1))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if errors:
        bad += sum(int(n) for n in errors.groups())
    return float(rps.group(1)), float(latency.group(1)) * UNITS[latency.group(2)], bad, int(served.group(1))


def load(server: Server, args: argparse.Namespace, seconds: int) -> tuple[float, float, int, float]:
    """Run wrk against ``server`` on the client CPU for ``seconds``.

    :return: ``(requests/s, mean latency ms, bad responses, server CPU µs per request)``
    """
    argv = ["taskset", "-c", str(args.client_cpu), args.wrk, "-t1", f"-c{args.connections}", f"-d{seconds}s"]
    assert server.process is not None
    before = cpu_seconds(server.process.pid)
    completed = subprocess.run([*argv, server.url], capture_output=True, text=True, check=True)
    used = cpu_seconds(server.process.pid) - before
    rps, latency, bad, served = parse_wrk(completed.stdout)
    return rps, latency, bad, used / max(1, served) * 1e6


def access_log_lines(work: Path, name: str) -> int:
    """Lines in the server's ``acc.log`` and its rotated files (proves the log was on)."""
    total = 0
    for path in (work / name / "logs").glob("acc.log*"):
        with open(path, "rb") as handle:
            total += sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    return total


def machine() -> str:
    """A one-line description of the machine and software versions."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = ", ".join(f"{dist} {metadata.version(dist)}" for dist in ("waitress", "falcon", "Flask"))
    return (
        f"{model}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, {versions}"
    )


def load_average() -> str:
    """The 1-minute load average (other work on the machine skews every server)."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "?"


def ratio_rows(servers: list[Server]) -> list[tuple[str, list[float], float]]:
    """``(label, per-round ratios, ratio of the medians)`` of the Butterfly rows to the peers."""
    by_name = {server.name: server for server in servers}
    rows = []
    for mine in (HEADLINE, "butterfly-router-trace"):
        for peer in ("raw", "falcon", "flask", RAW_DEFAULTS):
            if mine not in by_name or peer not in by_name:
                continue
            ours, theirs = by_name[mine].rps, by_name[peer].rps
            per_round = [a / b for a, b in zip(ours, theirs, strict=True)]
            target = TARGETS.get(peer) if mine == HEADLINE else None
            label = f"{mine} / {peer}"
            if target is not None:
                met = statistics.median(ours) >= target * statistics.median(theirs)
                label += f" (target ≥ {target:.2f}×: **{'met' if met else 'missed'}**)"
            rows.append((label, per_round, statistics.median(ours) / statistics.median(theirs)))
    return rows


def results_markdown(servers: list[Server], args: argparse.Namespace, notes: list[str]) -> str:
    """The results section for ``bench/README.md``."""
    raw_median = statistics.median(next(s for s in servers if s.name == "raw").rps)
    lines = [
        f"Run {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M')} UTC on {machine()}.",
        "",
        f"Command: `{' '.join(['.venv/bin/python', 'bench/http/run.py', *args.argv])}`",
        "",
        f"Settings: waitress threads={args.threads} for every server; wrk 1 thread, "
        f"{args.connections} connections; server on CPU {args.server_cpu}, wrk on CPU {args.client_cpu}; "
        f"{args.warmup} s warm-up each, then {args.rounds} interleaved rounds × {args.duration} s.",
        "",
        "| server | median req/s | rounds (req/s) | mean latency | server CPU per request | vs raw WSGI |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for server in servers:
        median = statistics.median(server.rps)
        rounds = " ".join(f"{value:,.0f}" for value in server.rps)
        name = f"**{server.name}**" if server.name == HEADLINE else server.name
        lines.append(
            f"| {name} | {median:,.0f} | {rounds} | {statistics.median(server.latency_ms):.2f} ms | "
            f"{statistics.median(server.cpu_us):,.0f} µs | {median / raw_median:.2f}× |"
        )
    lines += ["", "| ratio | per round | of the medians |", "|---|---|---:|"]
    for label, per_round, of_medians in ratio_rows(servers):
        lines.append(f"| {label} | {' '.join(f'{r:.2f}×' for r in per_round)} | {of_medians:.2f}× |")
    lines += ["", *notes]
    return "\n".join(lines)


def write_readme(section: str) -> None:
    """Replace the text between the http-results markers in ``bench/README.md``."""
    text = README.read_text(encoding="utf-8") if README.exists() else ""
    block = f"{START_MARK}\n{section}\n{END_MARK}"
    if START_MARK in text and END_MARK in text:
        head, rest = text.split(START_MARK, 1)
        _, tail = rest.split(END_MARK, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n## HTTP results\n\n" + block + "\n"
    README.write_text(text, encoding="utf-8")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    names = [HEADLINE, "butterfly-router-trace", "falcon", "flask", "raw", RAW_DEFAULTS]
    parser = argparse.ArgumentParser(description="Butterfly (full install) vs Falcon, Flask and raw WSGI on waitress.")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=5, help="seconds of warm-up load per server")
    parser.add_argument("--threads", type=int, default=4, help="waitress threads of every server")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument("--wrk", default=shutil.which("wrk") or "/usr/bin/wrk")
    parser.add_argument(
        "--only", nargs="+", choices=names, default=names, help="measure only these servers (raw is always kept)"
    )
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/README.md alone")
    args = parser.parse_args(argv)
    if "raw" not in args.only:
        args.only.append("raw")
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns 0, or 1 when a target was missed."""
    args = parse_args(argv)
    if not Path(args.wrk).exists():
        raise SystemExit(f"wrk not found at {args.wrk}: apt-get install wrk")
    if os.cpu_count() and max(args.server_cpu, args.client_cpu) >= os.cpu_count():
        raise SystemExit(f"only {os.cpu_count()} CPUs: choose --server-cpu/--client-cpu below that")
    work = Path(tempfile.mkdtemp(prefix="butterfly-bench-"))
    load_before = load_average()
    servers = make_servers(args, work)
    try:
        for server in servers:
            start(server, work)
            print(f"started {server.name:24} {server.url}", flush=True)
        for server in servers:
            load(server, args, args.warmup)
        for round_index in range(args.rounds):
            shift = round_index % len(servers)
            for server in servers[shift:] + servers[:shift]:
                rps, latency, bad, cpu_us = load(server, args, args.duration)
                server.rps.append(rps)
                server.latency_ms.append(latency)
                server.cpu_us.append(cpu_us)
                server.bad_responses += bad
                print(
                    f"round {round_index + 1}/{args.rounds} {server.name:24} {rps:10,.0f} req/s "
                    f"{latency:7.2f} ms {cpu_us:6,.0f} µs CPU/req{'  BAD RESPONSES: ' + str(bad) if bad else ''}",
                    flush=True,
                )
    finally:
        for server in servers:
            stop(server)
    notes = [
        "Server CPU per request: user + system time of the server process during the round, divided by "
        "the requests wrk counted (median of the rounds).",
        f"Load average (1 min) before/after the run: {load_before} / {load_average()} on {os.cpu_count()} CPUs.",
    ]
    for server in servers:
        if server.name.startswith("butterfly"):
            lines = access_log_lines(work, server.name)
            notes.append(f"{server.name} wrote {lines:,} access-log lines during the run (access log on).")
    for server in servers:
        if server.bad_responses:
            notes.append(f"**{server.name}: {server.bad_responses} non-2xx responses or socket errors.**")
    section = results_markdown(servers, args, notes)
    print("\n" + section)
    if not args.no_write:
        write_readme(section)
        print(f"\nwritten to {README}")
    shutil.rmtree(work, ignore_errors=True)
    by_name = {server.name: statistics.median(server.rps) for server in servers}
    if HEADLINE not in by_name:
        return 0
    missed = [
        peer for peer, target in TARGETS.items() if peer in by_name and by_name[HEADLINE] < target * by_name[peer]
    ]
    print("targets (≥ 0.90× raw WSGI, ≥ 1.00× Falcon):", f"MISSED ({', '.join(missed)})" if missed else "met")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
