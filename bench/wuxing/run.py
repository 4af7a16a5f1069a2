"""Benchmark: wuxing ``instance_get`` / ``instance_update_item`` over HTTP on SQLite.

Butterfly (kernel + store + router + trace + wuxing on waitress) against a minimal
hand-written pony WSGI app running the same queries on waitress, in the same run:
each round loads every (endpoint, server) pair once, in interleaved order; the
report gives medians over the rounds and the Butterfly/baseline ratio. Each server
has its own copy of the same seeded SQLite file (WAL). Servers are pinned to CPU 0,
``wrk`` to CPU 1 when there are two CPUs.

    .venv/bin/python bench/wuxing/run.py --duration 5 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SERVE = HERE / "serve.py"
UPDATE_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"namespace": "bench", "instance_name": "web-1", "item_name": "i|cpu", "item_value": 8}'
"""
GET_PATH = "/wuxing/instance_get?namespace=bench&instance_name=web-1"
UPDATE_PATH = "/wuxing/instance_update_item"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pin(cpu: int | None) -> list[str]:
    """``taskset -c N`` when pinning is possible."""
    return ["taskset", "-c", str(cpu)] if cpu is not None and shutil.which("taskset") else []


def start(name: str, db: Path, work: Path, threads: int, cpu: int | None) -> tuple[subprocess.Popen, str]:
    """Start one server and wait until it answers."""
    port = free_port()
    process = subprocess.Popen(
        [
            *pin(cpu),
            sys.executable,
            str(SERVE),
            name,
            "--db",
            str(db),
            "--work",
            str(work),
            "--port",
            str(port),
            "--threads",
            str(threads),
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(work / f"{name}.err", "wb"),
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"{name} did not start; see {work / (name + '.err')}")


def wrk(args: argparse.Namespace, url: str, script: Path | None) -> tuple[float, int]:
    """``(requests_per_second, non_2xx)`` of one wrk run."""
    argv = [*pin(args.client_cpu), args.wrk, "-t1", f"-c{args.connections}", f"-d{args.duration}s"]
    if script is not None:
        argv += ["-s", str(script)]
    output = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if rate is None:
        raise SystemExit(f"cannot read wrk output:\n{output}")
    return float(rate.group(1)), int(bad.group(1)) if bad else 0


def check_replies(url: str) -> None:
    """One real request per endpoint: the server answers ``OK`` (not an error at speed)."""
    import urllib.request

    with urllib.request.urlopen(url + GET_PATH) as reply:
        assert json.loads(reply.read())["stat"] == "OK"
    body = json.dumps({"namespace": "bench", "instance_name": "web-1", "item_name": "i|cpu", "item_value": 8})
    request = urllib.request.Request(
        url + UPDATE_PATH, data=body.encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request) as reply:
        assert json.loads(reply.read())["stat"] == "OK"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a markdown results section."""
    parser = argparse.ArgumentParser(description="wuxing over HTTP: Butterfly vs a minimal pony WSGI app")
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=8, help="waitress threads of every server")
    parser.add_argument("--wrk", default=shutil.which("wrk") or "/usr/bin/wrk")
    args = parser.parse_args(argv)
    if not Path(args.wrk).exists():
        raise SystemExit(f"wrk not found at {args.wrk}: apt-get install wrk")
    two_cpus = (os.cpu_count() or 1) >= 2
    server_cpu, args.client_cpu = (0, 1) if two_cpus else (None, None)
    work = Path(tempfile.mkdtemp(prefix="bench-wuxing-"))
    (work / "no_handlers").mkdir()
    seed_db = work / "seed.db"
    subprocess.run(
        [sys.executable, str(SERVE), "seed", "--db", str(seed_db), "--work", str(work)], check=True, capture_output=True
    )
    script = work / "update.lua"
    script.write_text(UPDATE_LUA)
    servers = {}
    try:
        for name in ("butterfly", "pony"):
            db = work / f"{name}.db"
            shutil.copy(seed_db, db)
            servers[name] = start(name, db, work, args.threads, server_cpu)
            check_replies(servers[name][1])
        results: dict[tuple[str, str], list[float]] = {}
        bad_total = 0
        for round_index in range(args.rounds):
            order = ["butterfly", "pony"] if round_index % 2 == 0 else ["pony", "butterfly"]
            for endpoint, path, lua in (
                ("instance_get", GET_PATH, None),
                ("instance_update_item", UPDATE_PATH, script),
            ):
                for name in order:
                    rate, bad = wrk(args, servers[name][1] + path, lua)
                    bad_total += bad
                    results.setdefault((endpoint, name), []).append(rate)
                    print(
                        f"round {round_index + 1} {endpoint:22} {name:9} {rate:10,.0f} req/s  non-2xx {bad}",
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(10)
    lines = [
        f"Settings: SQLite (WAL), waitress threads={args.threads}, wrk 1 thread {args.connections} connections, "
        f"{args.duration}s x {args.rounds} interleaved rounds"
        + (", servers on CPU 0, wrk on CPU 1" if two_cpus else "")
        + f"; non-2xx replies: {bad_total}.",
        "",
        "| endpoint | Butterfly req/s (median) | pony WSGI req/s (median) | Butterfly / pony |",
        "|---|---|---|---|",
    ]
    for endpoint in ("instance_get", "instance_update_item"):
        ours = statistics.median(results[(endpoint, "butterfly")])
        theirs = statistics.median(results[(endpoint, "pony")])
        lines.append(f"| {endpoint} | {ours:,.0f} | {theirs:,.0f} | {ours / theirs:.2f} |")
    print("\n".join(lines))
    if bad_total == 0:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
