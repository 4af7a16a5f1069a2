"""The ``http`` job type: call a URL with a JSON body.

``target`` is an ``http(s)://`` URL, ``payload`` the JSON body (not sent for GET
and HEAD), ``options``: ``method`` (default ``POST``, as the original),
``headers`` (``{name: value}``), ``expected_status`` (a code or a list; default any
2xx). Every call carries ``X-Ruqi-Fire-Id``, ``X-Ruqi-Scheduled-Time`` and
``X-Ruqi-Job-Id`` so the target can drop a duplicate, and the run's W3C
``traceparent`` (each run starts a trace), with the ``tracestate`` bound beside it in
the log context when there is one (a scheduled run starts a trace, so it has none).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import structlog

from butterfly_ruqi.jobtypes import Fire, JobType, Outcome, bad_param

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
BODYLESS = ("GET", "HEAD")
#: response bytes kept for the history; the rest is not even read
READ_LIMIT = 64 * 1024


class HttpJob(JobType):
    """Call a URL; succeed when the status is the expected one."""

    description = "HTTP request (method, URL, headers, JSON body, expected status)"

    def validate(self, kernel, spec) -> None:
        """Check the URL, method, headers and expected status."""
        parts = urlsplit(spec.target)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise bad_param("target", f"must be an http:// or https:// URL, got {spec.target!r}")
        options = spec.options
        unknown = set(options) - {"method", "headers", "expected_status"}
        if unknown:
            raise bad_param(
                "options",
                f"unknown http option(s) {', '.join(sorted(unknown))}; valid: method, headers, expected_status",
            )
        method = str(options.get("method", "POST")).upper()
        if method not in METHODS:
            raise bad_param("options", f"method must be one of {', '.join(METHODS)}, got {method!r}")
        headers = options.get("headers", {})
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and "\n" not in k + v and "\r" not in k + v
            for k, v in headers.items()
        ):
            raise bad_param("options", "headers must be an object of single-line strings")
        expected_codes(options)  # raises on a bad value

    def run(self, kernel, spec, fire: Fire) -> Outcome:
        """Send the request and compare the status."""
        options = spec.options
        method = str(options.get("method", "POST")).upper()
        headers = {
            "User-Agent": "butterfly-ruqi",
            **options.get("headers", {}),
            "X-Ruqi-Fire-Id": str(fire.fire_id),
            "X-Ruqi-Scheduled-Time": fire.scheduled_time,
            "X-Ruqi-Job-Id": spec.job_id,
        }
        context = structlog.contextvars.get_contextvars()
        trace_id, span_id = context.get("trace_id"), context.get("span_id")
        if isinstance(trace_id, str) and isinstance(span_id, str):
            headers["traceparent"] = f"00-{trace_id}-{span_id}-01"  # the run's trace (scheduler)
            tracestate = context.get("tracestate")  # checked by the trace plugin that bound it
            if isinstance(tracestate, str) and tracestate.isascii() and tracestate.isprintable():
                headers["tracestate"] = tracestate
        body = None
        if method not in BODYLESS:
            body = json.dumps(spec.payload).encode()
            headers.setdefault("Content-Type", "application/json")
        request = urllib.request.Request(spec.target, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=spec.timeout) as reply:
                status, text = reply.status, reply.read(READ_LIMIT)
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read(READ_LIMIT) if exc.fp else b""
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            return Outcome(False, f"request failed: {reason}")
        allowed = expected_codes(options)
        ok = status in allowed if allowed else 200 <= status < 300
        return Outcome(ok, f"HTTP {status}\n{text.decode('utf-8', 'replace')}")


def expected_codes(options: dict) -> list[int]:
    """The accepted statuses (``[]`` = any 2xx).

    :raises kernel.BadRequest: when ``expected_status`` is not a code or a list of codes
    """
    value = options.get("expected_status")
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    codes = []
    for item in values:
        try:
            code = int(item)
        except (TypeError, ValueError):
            code = 0
        if isinstance(item, bool) or not 100 <= code <= 599:
            raise bad_param("options", f"expected_status must be an HTTP status or a list of them, got {value!r}")
        codes.append(code)
    return codes
