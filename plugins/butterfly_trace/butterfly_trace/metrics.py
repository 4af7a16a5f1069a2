"""In-process request metrics, rendered in the Prometheus text format.

Counters by route, method and status, and a duration histogram by route. Labels
use the matched *route* path, never the raw URL, so a scanner probing random
paths cannot grow memory (they all count as ``<unmatched>``).
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kernel import Request, Response

#: Histogram upper bounds in seconds (Prometheus' defaults); +Inf is implied.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "QUEUE", "RUQI", "CLI"})
UNMATCHED = "<unmatched>"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Histogram:
    """Per-bucket counts (not cumulative), plus sum and count."""

    __slots__ = ("count", "counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0
        self.count = 0


class Metrics:
    """Thread-safe request counters and duration histograms."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = {}
        self.durations: dict[str, Histogram] = {}

    def observe(self, request: Request, response: Response, cost: float) -> None:
        """Count one finished request.

        :param cost: its duration in seconds
        """
        route = request.route
        path = route.path if route is not None else UNMATCHED
        method = request.method if request.method in KNOWN_METHODS else "OTHER"
        key = (path, method, response.status)
        slot = bisect_left(BUCKETS, cost)
        with self._lock:
            self.requests[key] = self.requests.get(key, 0) + 1
            histogram = self.durations.get(path)
            if histogram is None:
                histogram = self.durations[path] = Histogram()
            histogram.counts[slot] += 1
            histogram.total += cost
            histogram.count += 1

    def render(self) -> str:
        """The Prometheus text exposition (format 0.0.4)."""
        with self._lock:
            requests = sorted(self.requests.items())
            durations = sorted((path, list(h.counts), h.total, h.count) for path, h in self.durations.items())
        lines = [
            "# HELP butterfly_requests_total Requests and in-process calls by route, method and status.",
            "# TYPE butterfly_requests_total counter",
        ]
        for (path, method, status), count in requests:
            lines.append(
                f'butterfly_requests_total{{path="{escape(path)}",method="{method}",status="{status}"}} {count}'
            )
        lines += [
            "# HELP butterfly_request_duration_seconds Time from request start to the final response.",
            "# TYPE butterfly_request_duration_seconds histogram",
        ]
        for path, counts, total, count in durations:
            label = escape(path)
            cumulative = 0
            for bound, bucket_count in zip((*BUCKETS, None), counts, strict=True):
                cumulative += bucket_count
                le = "+Inf" if bound is None else repr(bound)
                lines.append(f'butterfly_request_duration_seconds_bucket{{path="{label}",le="{le}"}} {cumulative}')
            lines.append(f'butterfly_request_duration_seconds_sum{{path="{label}"}} {total:.6f}')
            lines.append(f'butterfly_request_duration_seconds_count{{path="{label}"}} {count}')
        return "\n".join(lines) + "\n"


def escape(value: str) -> str:
    """Escape a Prometheus label value (backslash, double quote, newline)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
