"""Micro-benchmark: what the access log costs a request, on the request thread and in all.

Run: ``.venv/bin/python plugins/butterfly_trace/bench/bench_access_log.py [N]``.

A *started* kernel (as ``butterfly run`` serves it) handles ``N`` requests of a route
that parses its parameters (``?str_info=x``, so a ``params`` object is logged), with the
access log on and off. Prints, per request:

* ``request thread``: CPU µs of the thread that handles the request (``thread_time``);
* ``whole process``: CPU µs of the process (``process_time``), the access log's writer
  thread included, measured until every queued line is written.

The access log's cost is the difference between the "on" and "off" rows. Not a test:
timing never goes into assertions. Load average and rounds are printed too.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from io import BytesIO
from pathlib import Path

import butterfly_trace.plugin as trace_plugin
from kernel import Request, Response, hookimpl
from kernel.testing import build_kernel


class EchoApp:
    """``/echo``: reads its parameters (so the access log has params to redact and encode)."""

    @hookimpl
    def butterfly_register_routes(self, register, kernel):
        register("/echo", self.echo)

    @staticmethod
    def echo(request):
        return Response(200, [("Content-Type", "text/plain")], str(len(request.params)).encode())


def environ() -> dict:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/echo",
        "QUERY_STRING": "str_info=x",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": BytesIO(b""),
        "SERVER_PROTOCOL": "HTTP/1.1",
    }


def drain(kernel) -> None:
    access_log = kernel.extensions["trace"].access_log
    flush = getattr(access_log, "flush", None) if access_log is not None else None
    if flush is not None:
        flush()


def measure(kernel, number: int) -> tuple[float, float]:
    """(request-thread µs, whole-process µs) per request over ``number`` requests."""
    thread0, process0 = time.thread_time(), time.process_time()
    for _ in range(number):
        kernel.handle(Request(environ(), kernel))
    thread1 = time.thread_time()
    drain(kernel)
    process1 = time.process_time()
    return (thread1 - thread0) / number * 1e6, (process1 - process0) / number * 1e6


def main(number: int = 20000, rounds: int = 9) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        kernels = {
            "acc.log on": build_kernel(root / "on", [trace_plugin, EchoApp()], {"trace.metrics": False}),
            "acc.log off": build_kernel(
                root / "off", [trace_plugin, EchoApp()], {"trace.metrics": False, "trace.access_log": False}
            ),
        }
        for kernel in kernels.values():
            kernel.startup()
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in kernels}
        for _ in range(rounds):
            for name, kernel in kernels.items():  # interleaved: both rows share the noise
                results[name].append(measure(kernel, number))
        for kernel in kernels.values():
            kernel.shutdown()
        lines = sum(1 for _ in (root / "on" / "logs" / "acc.log").open())
    medians = {
        name: (statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows))
        for name, rows in results.items()
    }
    print(f"{number} requests x {rounds} rounds, medians; load average {os.getloadavg()[0]:.2f}")
    for name, (thread_us, process_us) in medians.items():
        print(f"{name:12} request thread {thread_us:6.2f} µs   whole process {process_us:6.2f} µs")
    on, off = medians["acc.log on"], medians["acc.log off"]
    print(f"access log:  request thread +{on[0] - off[0]:.2f} µs   whole process +{on[1] - off[1]:.2f} µs")
    print(f"({lines} lines written)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20000)
