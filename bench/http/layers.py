"""Where Butterfly's per-request time goes: the CPU cost of each layer, in-process.

No sockets and no waitress: the same ``/demo_api/hello?str_info=x`` WSGI call is
made against kernels with more and more switched on, up to the full default install
(every installed plugin, as ``python -m kernel run`` builds it from the repo root),
and the CPU time per call is printed (best of several repeats, so background load
inflates it least). The difference between two rows is the price of what the lower
row adds.

Usage: ``taskset -c 0 .venv/bin/python bench/http/layers.py [--plugins] [--profile]``
(``--plugins`` adds the full install, access log off, without each plugin in turn — what
each plugin costs a request; ``--profile`` adds a cProfile table of the full default
install, by function).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import apps

import butterfly_router.plugin as router
import butterfly_trace.plugin as trace
from kernel import Kernel, Response, hookimpl, logs
from kernel.testing import build_kernel

REPO = Path(__file__).resolve().parents[2]
HANDLERS = str(REPO / "handlers")


def environ() -> dict:
    """A WSGI environ like the one waitress builds for wrk's request."""
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/demo_api/hello",
        "QUERY_STRING": "str_info=x",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8585",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_HOST": "127.0.0.1",
        "REMOTE_PORT": "5555",
        "HTTP_HOST": "127.0.0.1:8585",
        "HTTP_USER_AGENT": "wrk",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.url_scheme": "http",
        "wsgi.multithread": True,
        "wsgi.input_terminated": True,
        "wsgi.version": (1, 0),
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def start_response(status, headers, exc_info=None):
    """A WSGI ``start_response`` that does nothing."""


def cpu_microseconds(apps: list, calls: int = 3000, repeats: int = 9) -> list[float]:
    """Best-of-``repeats`` CPU microseconds per call of each app, measured interleaved.

    Every repeat measures every app once, so a burst of background load hits all rows
    alike; the best repeat of each row is the one it suffered least in.
    """
    for app in apps:
        for _ in range(500):
            b"".join(app(environ(), start_response))
    best = [float("inf")] * len(apps)
    for _ in range(repeats):
        for index, app in enumerate(apps):
            started = time.process_time()
            for _ in range(calls):
                b"".join(app(environ(), start_response))
            best[index] = min(best[index], (time.process_time() - started) / calls * 1e6)
    return best


class BareRoute:
    """A plugin registering one hand-written route: the kernel's own cost, no router."""

    @hookimpl
    def butterfly_register_routes(self, register):
        """``/demo_api/hello`` as a plain ``request -> Response`` endpoint."""
        register(
            "/demo_api/hello", lambda request: Response.json({"stat": "OK", "str_info": request.query["str_info"]})
        )


def kernel(plugins, **settings):
    """A hermetic kernel (temp data/log dirs) with ``plugins`` and ``section.key`` settings."""
    if router in plugins:
        settings["router.handlers_dir"] = HANDLERS
    return build_kernel(Path(tempfile.mkdtemp(prefix="butterfly-layers-")), plugins, settings)


def full_install(**settings):
    """The full default install: every installed plugin, built as ``python -m kernel run`` does, started.

    Only the data and log directories are temp dirs; ``settings`` are ``section.key`` overrides.
    """
    work = Path(tempfile.mkdtemp(prefix="butterfly-layers-full-"))
    overrides = {"server.data_dir": str(work / "data"), "server.log_dir": str(work / "logs")}
    overrides.update(settings)
    kernel = Kernel.create(overrides=overrides)
    kernel.startup()
    return kernel


def main() -> int:
    """Print the per-layer table (and the profile with ``--profile``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plugins", action="store_true", help="also the full install without each plugin")
    parser.add_argument("--profile", action="store_true", help="cProfile the full configuration")
    args = parser.parse_args()
    os.chdir(REPO)  # the demo apps of handlers/, as `python -m kernel run` from the repo root
    logs.configure("WARNING")
    full = full_install(**{"trace.access_log": True})
    rows = [
        ("raw WSGI callable", apps.raw_app),
        ("kernel, no plugins, one Response.json route", kernel([BareRoute()])),
        ("kernel + router (demo_api.hello)", kernel([router])),
        (
            "+ trace, access log and metrics off",
            kernel([router, trace], **{"trace.access_log": False, "trace.metrics": False}),
        ),
        ("+ trace metrics", kernel([router, trace], **{"trace.access_log": False})),
        ("+ trace access log (the butterfly-router-trace row of run.py)", kernel([router, trace])),
        ("full default install, access log off", full_install(**{"trace.access_log": False})),
        ("full default install (the butterfly-full row of run.py)", full),
    ]
    if args.plugins:
        # NOTE: auth, wuxing, ruqi and xingqiao need the store: the store goes last, with them.
        for off in (
            ["auth"],
            ["ruqi"],
            ["wuxing"],
            ["xingqiao"],
            ["mq"],
            ["xingqiao", "wuxing", "ruqi", "auth", "store"],
        ):
            settings = {"trace.access_log": False, "server.disable_plugins": off}
            rows.append((f"full install, access log off, without {' '.join(off)}", full_install(**settings)))
    print(f"{'CPU µs/call':>12}  layer")
    for (name, _), micros in zip(rows, cpu_microseconds([app for _, app in rows]), strict=True):
        print(f"{micros:12.1f}  {name}", flush=True)
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(20000):
            b"".join(full(environ(), start_response))
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
