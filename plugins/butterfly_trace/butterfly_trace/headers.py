"""The trace headers every reply carries: ``x-reqid``, ``traceparent``, ``x-cost``, ``Server-Timing``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from time import perf_counter
from typing import TYPE_CHECKING

from butterfly_trace.traceparent import TRACE_CONTEXT

if TYPE_CHECKING:
    from kernel import Request, Response

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")
_names: dict[str, str] = {}


def metric_name(name: str) -> str:
    """``name`` as a Server-Timing metric token (unsafe characters become ``_``)."""
    safe = _names.get(name)
    if safe is None:
        safe = _UNSAFE_NAME.sub("_", name)[:64] or "_"
        if len(_names) < 1024:
            _names[name] = safe
    return safe


def server_timing(timings: Mapping[str, float], total_ms: float) -> str:
    """``db;dur=1.234, render;dur=0.500, total;dur=2.100`` from timing points (ms).

    :param timings: ``request.timings`` (name → milliseconds)
    :param total_ms: the request's duration so far, in milliseconds
    """
    if not timings:  # PERF: the common case, one format call
        return f"total;dur={total_ms:.3f}"
    parts = [f"{metric_name(name)};dur={ms:.3f}" for name, ms in timings.items()]
    parts.append(f"total;dur={total_ms:.3f}")
    return ", ".join(parts)


def add_trace_headers(request: Request, response: Response) -> None:
    """Append ``x-reqid``, ``traceparent`` (this request's span), ``x-cost`` (seconds, 6
    decimals) and ``Server-Timing``.

    Nothing here names the host or a version. ``tracestate`` is not echoed: the
    specification asks for it on requests sent on, not on replies; Butterfly adds no member,
    so the caller would only get its own value back, and every reply would carry up to 512
    client-chosen bytes.
    """
    elapsed = perf_counter() - request.start_time  # PERF: request.elapsed() without the call
    timings = request.timings
    # PERF: one extend; Response.set_header would rebuild the list for every header.
    # Without timing points (the common case) Server-Timing is one f-string, no call.
    trace = request.ctx.get(TRACE_CONTEXT)
    response.headers.extend(
        (
            ("x-reqid", request.reqid or "-"),
            ("x-cost", f"{elapsed:.6f}"),
            (
                "Server-Timing",
                server_timing(timings, elapsed * 1000.0) if timings else f"total;dur={elapsed * 1000.0:.3f}",
            ),
        )
    )
    if trace is not None:
        response.headers.append(("traceparent", f"00-{trace.trace_id}-{trace.span_id}-{trace.flags}"))
