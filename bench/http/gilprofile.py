"""Where the full install's HTTP time goes: py-spy ``--gil`` under wrk, grouped by layer.

Starts ``python -m kernel run`` as :mod:`run` does for ``butterfly-full`` (every plugin
on, access log on) pinned to one CPU, loads it with ``wrk`` from the other and records
it with ``py-spy record --gil`` (only samples that hold the GIL: the Python work, which
is what bounds one process). Prints, per layer, the GIL-holding microseconds per
request — each sample is attributed to the innermost frame of a known layer — and the
top functions by own samples. The raw stacks stay in ``--out`` (collapsed format).

Usage::

    .venv/bin/python bench/http/gilprofile.py [--seconds 10] [--out /tmp/http-full.txt]
    .venv/bin/python bench/http/gilprofile.py --stacks /tmp/http-full.txt --requests 20000   # summarise again
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import run

#: py-spy samples per second
RATE = 500
#: (layer, substring of a frame's file path); the innermost frame that matches one wins.
LAYERS = [
    ("trace: access log (H12's access.py, files.py, redact.py)", "butterfly_trace/access.py"),
    ("trace: access log (H12's access.py, files.py, redact.py)", "butterfly_trace/files.py"),
    ("trace: access log (H12's access.py, files.py, redact.py)", "butterfly_trace/redact.py"),
    ("trace: metrics", "butterfly_trace/metrics.py"),
    ("trace: reqid, log context", "butterfly_trace/reqid.py"),
    ("trace: hooks, headers", "butterfly_trace/"),
    ("auth plugin", "butterfly_auth/"),
    ("store plugin + pony (db_session)", "butterfly_store/"),
    ("store plugin + pony (db_session)", "(pony/"),
    ("router plugin (binding, protocol)", "butterfly_router/"),
    ("xingqiao / ruqi / wuxing / mq plugins", "butterfly_xingqiao/"),
    ("xingqiao / ruqi / wuxing / mq plugins", "butterfly_ruqi/"),
    ("xingqiao / ruqi / wuxing / mq plugins", "butterfly_wuxing/"),
    ("xingqiao / ruqi / wuxing / mq plugins", "butterfly_mq/"),
    ("handler (handlers/demo_api)", "(handlers/"),
    ("kernel: request path (app, request, response, hooks)", "(kernel/"),
    ("pluggy", "(pluggy/"),
    ("structlog", "(structlog/"),
    ("waitress (I/O loop, parser, task queue, writer)", "(waitress/"),
]
OTHER = "other (stdlib outside a layer: threading, socket, ...)"


def layer_of(frames: list[str]) -> str:
    """The layer of one stack: the innermost frame that names a known file."""
    for frame in reversed(frames):
        for name, needle in LAYERS:
            if needle in frame:
                return name
    return OTHER


def summarise(stacks: Path, requests: int) -> str:
    """The per-layer table and the top own-time functions of a collapsed stack file."""
    by_layer: collections.Counter[str] = collections.Counter()
    by_function: collections.Counter[str] = collections.Counter()
    total = 0
    for line in stacks.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        by_layer[layer_of(frames)] += count
        by_function[frames[-1]] += count
    per_request = 1e6 / RATE / max(1, requests)
    out = [
        f"{total} GIL-holding samples at {RATE}/s over {requests:,} requests: "
        f"{total * per_request:.1f} µs of Python work per request",
        "",
        "| layer | GIL µs per request | share |",
        "|---|---:|---:|",
    ]
    for name, count in by_layer.most_common():
        out.append(f"| {name} | {count * per_request:.1f} | {count / max(1, total):.0%} |")
    out += ["", "top functions by own samples:"]
    for frame, count in by_function.most_common(25):
        out.append(f"  {count / max(1, total):6.1%}  {count * per_request:5.1f} µs  {frame}")
    return "\n".join(out)


def record(seconds: int, out: Path, connections: int, threads: int) -> int:
    """Run the server under wrk and py-spy; return the requests served while recording."""
    work = Path(tempfile.mkdtemp(prefix="butterfly-http-profile-"))
    port = run.free_port()
    base_env = {key: value for key, value in os.environ.items() if not key.startswith("BUTTERFLY_")}
    env = run.butterfly_env(base_env, work, "full", port, threads, all_plugins=True)
    server = run.Server("full", ["taskset", "-c", "0", sys.executable, "-m", "kernel", "run"], env, port)
    wrk = shutil.which("wrk") or "/usr/bin/wrk"
    try:
        run.start(server, work)
        assert server.process is not None
        load = ["taskset", "-c", "1", wrk, "-t1", f"-c{connections}"]
        subprocess.run([*load, "-d3s", server.url], check=True, capture_output=True)
        loader = subprocess.Popen([*load, f"-d{seconds + 4}s", server.url], stdout=subprocess.PIPE, text=True)
        time.sleep(1)
        spy = ["py-spy", "record", "--gil", "--rate", str(RATE), "-d", str(seconds), "-f", "raw"]
        spy_bin = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        subprocess.run(
            [spy_bin, *spy[1:], "-p", str(server.process.pid), "-o", str(out)], check=True, capture_output=True
        )
        stdout, _ = loader.communicate()
        rps = run.parse_wrk(stdout)[0]
        return int(rps * seconds)
    finally:
        run.stop(server)
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    """Record (or re-read) and print the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "butterfly-http-full.txt")
    parser.add_argument("--stacks", type=Path, help="summarise this collapsed file instead of recording")
    parser.add_argument("--requests", type=int, help="with --stacks: the requests served while it was recorded")
    args = parser.parse_args()
    if args.stacks:
        print(summarise(args.stacks, args.requests or 1))
        return 0
    requests = record(args.seconds, args.out, args.connections, args.threads)
    print(f"stacks in {args.out}; load average {run.load_average()}\n")
    print(summarise(args.out, requests))
    return 0


if __name__ == "__main__":
    sys.exit(main())
