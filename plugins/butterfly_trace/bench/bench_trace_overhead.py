"""Micro-benchmark: per-request cost of butterfly-trace over a bare kernel.

Run: ``.venv/bin/python plugins/butterfly_trace/bench/bench_trace_overhead.py``.
Prints µs per request for a raw route with and without the trace plugin (access
log on and off). Not a test: timing never goes into assertions.
"""

from __future__ import annotations

import sys
import tempfile
import time
import timeit
from io import BytesIO
from pathlib import Path

import butterfly_trace.plugin as trace_plugin
from kernel import Request, Response, hookimpl
from kernel.testing import build_kernel


class RawApp:
    """One raw route, ``/ping``, answering ``pong``."""

    @hookimpl
    def butterfly_register_routes(self, register, kernel):
        register("/ping", lambda request: Response(200, [("Content-Type", "text/plain")], b"pong"))


def environ() -> dict:
    """A minimal GET environ (what waitress would hand the kernel)."""
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/ping",
        "QUERY_STRING": "a=1&b=two",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": BytesIO(b""),
        "SERVER_PROTOCOL": "HTTP/1.1",
    }


def per_request_us(kernel, number: int) -> float:
    """CPU µs per ``kernel.handle`` call over ``number`` calls.

    # NOTE: thread CPU time, not wall time, so other processes on a busy machine
    # (CI, parallel test runs) do not count against us.
    """

    def once():
        kernel.handle(Request(environ(), kernel))

    return timeit.Timer(once, timer=time.thread_time).timeit(number=number) / number * 1e6


def main(number: int = 10000, rounds: int = 7) -> None:
    """Print the best-of-``rounds`` numbers; rounds interleave the kernels to share noise."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        kernels = {
            "bare kernel": build_kernel(root / "bare", [RawApp()]),
            "trace, no acc.log/metrics": build_kernel(
                root / "nolog", [trace_plugin, RawApp()], {"trace.access_log": False, "trace.metrics": False}
            ),
            "trace, acc.log only": build_kernel(root / "acc", [trace_plugin, RawApp()], {"trace.metrics": False}),
            "trace, acc.log + metrics": build_kernel(root / "full", [trace_plugin, RawApp()]),
        }
        best = {name: float("inf") for name in kernels}
        for _ in range(rounds):
            for name, kernel in kernels.items():
                best[name] = min(best[name], per_request_us(kernel, number))
        base = best["bare kernel"]
        for name, cost in best.items():
            print(f"{name:26} {cost:7.2f} µs/request  (+{cost - base:.2f} µs)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10000)
