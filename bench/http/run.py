"""HTTP benchmark: Butterfly vs a raw WSGI app vs Flask, all on waitress.

Every server answers ``/demo_api/hello?str_info=x`` with ``{"stat":"OK","str_info":"x"}``:

* **butterfly** — ``python -m kernel run`` from the repo root: the real demo handler
  through the router and trace plugins, access log ON (written to a temp dir);
  every other installed plugin is switched off with ``BUTTERFLY_DISABLE_PLUGINS``
  (``--all-plugins`` adds a ``butterfly-all`` server with everything enabled);
* **raw** — a hand-written WSGI callable (:mod:`apps`), the floor;
* **flask** — the same endpoint in Flask.

All get the same waitress thread count. Servers are pinned to one CPU and ``wrk``
to another (``taskset``); after a warm-up, rounds are interleaved (the server
order rotates each round) so drift hits everyone alike. Medians and the ratio to
raw WSGI are printed and written to ``bench/README.md`` between the
``http-results`` markers.

Usage: ``.venv/bin/python bench/http/run.py [--rounds 5] [--duration 10] [--threads 16]``
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
#: Only these plugins run in the "butterfly" server (DESIGN §9: router + trace).
BENCH_PLUGINS = {"router", "trace"}
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


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
    """Installed ``butterfly.plugins`` entry points other than router and trace."""
    if all_plugins:
        return ""
    names = {ep.name for ep in metadata.entry_points(group="butterfly.plugins")}
    return ",".join(sorted(names - BENCH_PLUGINS))


def make_servers(args: argparse.Namespace, work: Path) -> list[Server]:
    """The servers to compare, not started yet."""
    pin = ["taskset", "-c", str(args.server_cpu)]
    python = sys.executable
    base_env = {key: value for key, value in os.environ.items() if not key.startswith("BUTTERFLY_")}
    servers = []
    variants = [("butterfly", False)] + ([("butterfly-all", True)] if args.all_plugins else [])
    for name, all_plugins in variants:
        port = free_port()
        env = dict(
            base_env,
            BUTTERFLY_SERVER_PORT=str(port),
            BUTTERFLY_SERVER_THREADS=str(args.threads),
            BUTTERFLY_SERVER_LOG_DIR=str(work / name / "logs"),
            BUTTERFLY_SERVER_DATA_DIR=str(work / name / "data"),
            BUTTERFLY_DISABLE_PLUGINS=butterfly_plugins_to_disable(all_plugins),
            BUTTERFLY_TRACE_ACCESS_LOG="true",
        )
        servers.append(Server(name, [*pin, python, "-m", "kernel", "run"], env, port))
    for name in ("raw", "flask"):
        port = free_port()
        argv = [
            *pin,
            python,
            str(Path(__file__).with_name("serve.py")),
            name,
            "--port",
            str(port),
            "--threads",
            str(args.threads),
        ]
        servers.append(Server(name, argv, dict(base_env), port))
    return servers


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


def parse_wrk(output: str) -> tuple[float, float, int]:
    """``(requests_per_second, mean_latency_ms, bad_responses)`` from wrk's report."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    latency = re.search(r"Latency\s+([\d.]+)(us|ms|s)\b", output)
    if rps is None or latency is None:
        raise SystemExit(f"cannot read wrk output:\n{output}")
    bad = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if non_2xx:
        bad += int(non_2xx.group(1))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if errors:
        bad += sum(int(n) for n in errors.groups())
    return float(rps.group(1)), float(latency.group(1)) * UNITS[latency.group(2)], bad


def load(server: Server, args: argparse.Namespace, seconds: int) -> tuple[float, float, int]:
    """Run wrk against ``server`` on the client CPU for ``seconds``."""
    argv = [
        "taskset",
        "-c",
        str(args.client_cpu),
        args.wrk,
        "-t1",
        f"-c{args.connections}",
        f"-d{seconds}s",
        server.url,
    ]
    completed = subprocess.run(argv, capture_output=True, text=True, check=True)
    return parse_wrk(completed.stdout)


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
    versions = ", ".join(f"{dist} {metadata.version(dist)}" for dist in ("waitress", "Flask"))
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


def results_markdown(servers: list[Server], args: argparse.Namespace, notes: list[str]) -> str:
    """The results section for ``bench/README.md``."""
    raw = next(s for s in servers if s.name == "raw")
    flask = next(s for s in servers if s.name == "flask")
    raw_median = statistics.median(raw.rps)
    flask_median = statistics.median(flask.rps)
    lines = [
        f"Run {dt.datetime.now().strftime('%Y-%m-%d %H:%M')} on {machine()}.",
        "",
        f"Settings: waitress threads={args.threads} for every server; wrk 1 thread, "
        f"{args.connections} connections; server on CPU {args.server_cpu}, wrk on CPU {args.client_cpu}; "
        f"{args.warmup} s warm-up each, then {args.rounds} interleaved rounds × {args.duration} s.",
        "",
        "| server | median req/s | rounds (req/s) | mean latency | vs raw WSGI | vs Flask |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for server in servers:
        median = statistics.median(server.rps)
        rounds = " ".join(f"{value:,.0f}" for value in server.rps)
        lines.append(
            f"| {server.name} | {median:,.0f} | {rounds} | "
            f"{statistics.median(server.latency_ms):.2f} ms | {median / raw_median:.2f}× | "
            f"{median / flask_median:.2f}× |"
        )
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
    parser = argparse.ArgumentParser(description="Butterfly vs raw WSGI vs Flask on waitress (wrk).")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=5, help="seconds of warm-up load per server")
    parser.add_argument("--threads", type=int, default=16, help="waitress threads of every server")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument("--wrk", default=shutil.which("wrk") or "/usr/bin/wrk")
    parser.add_argument(
        "--all-plugins", action="store_true", help="also measure Butterfly with every installed plugin enabled"
    )
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/README.md alone")
    return parser.parse_args(argv)


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
            print(f"started {server.name:14} {server.url}", flush=True)
        for server in servers:
            load(server, args, args.warmup)
        for round_index in range(args.rounds):
            shift = round_index % len(servers)
            for server in servers[shift:] + servers[:shift]:
                rps, latency, bad = load(server, args, args.duration)
                server.rps.append(rps)
                server.latency_ms.append(latency)
                server.bad_responses += bad
                print(
                    f"round {round_index + 1}/{args.rounds} {server.name:14} {rps:10,.0f} req/s "
                    f"{latency:7.2f} ms{'  BAD RESPONSES: ' + str(bad) if bad else ''}",
                    flush=True,
                )
    finally:
        for server in servers:
            stop(server)
    lines = access_log_lines(work, "butterfly")
    notes = [
        f"Butterfly wrote {lines:,} access-log lines during the run (access log on). "
        f"Load average (1 min) before/after the run: {load_before} / {load_average()} "
        f"on {os.cpu_count()} CPUs."
    ]
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
    met = by_name["butterfly"] >= 0.90 * by_name["raw"] and by_name["butterfly"] >= 2 * by_name["flask"]
    print("targets (≥ 0.90× raw WSGI, ≥ 2× Flask):", "met" if met else "MISSED")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
