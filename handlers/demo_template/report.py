"""Access-log statistics for the demo_template page.

Reads the JSON-lines access log the trace plugin writes (``<log_dir>/acc.log``:
``time``, ``ip``, ``reqid``, ``method``, ``path``, ``cost``, ``stat``, ``error`` ...)
and summarises it: requests per day, stat distribution, slowest paths, recent errors.

An error is a request answered with an HTTP status of 400 or more, or a JSON route
whose ``stat`` is not ``OK`` (a business error answered with 200). The ``stat`` of any
other reply (an HTML page, a file) is just its HTTP status, so a page view that
answered ``200`` is not an error.

# PERF: the work per page view is bounded: only the last :data:`TAIL_BYTES` of the
# file are read (the original parsed up to 20 MB per request). Lines that are not
# JSON objects (a console-format log, a torn write) are counted and skipped.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Read at most this many bytes from the end of the access log per page view.
TAIL_BYTES = 8 * 1024 * 1024
#: The report page itself and browser noise are not traffic worth charting.
SKIPPED_PREFIXES = ("/demo_template/", "/favicon.ico", "/_console/")
#: Stats shown by name in the distribution; the rest are summed as "other".
MAX_STATS = 8
SLOWEST_PATHS = 10
RECENT_ERRORS = 10


@dataclass
class PathTiming:
    """Cost figures of one path (seconds)."""

    path: str
    count: int
    average: float
    p95: float
    maximum: float


@dataclass
class Report:
    """Everything the template shows; built by :func:`build_report`."""

    log_file: str
    exists: bool = False
    file_size: int = 0
    bytes_read: int = 0
    truncated: bool = False
    total: int = 0
    errors: int = 0
    skipped_lines: int = 0
    first_time: str = ""
    last_time: str = ""
    per_day: list[tuple[str, int, int]] = field(default_factory=list)
    stats: list[tuple[str, int]] = field(default_factory=list)
    methods: list[tuple[str, int]] = field(default_factory=list)
    slowest: list[PathTiming] = field(default_factory=list)
    recent_errors: list[dict[str, Any]] = field(default_factory=list)
    cost_p50: float = 0.0
    cost_p95: float = 0.0
    distinct_paths: int = 0

    @property
    def error_rate(self) -> float:
        """Share of requests that are errors (see :func:`is_error`; 0.0–1.0)."""
        return self.errors / self.total if self.total else 0.0


def read_tail(path: Path, limit: int = TAIL_BYTES) -> tuple[list[bytes], int, bool]:
    """The complete lines among the last ``limit`` bytes of ``path``.

    :param path: the log file
    :param limit: most bytes to read
    :return: ``(lines, bytes_read, truncated)``; when the file is longer than
        ``limit`` the first, partial line is dropped and ``truncated`` is true
    """
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        start = max(0, size - limit)
        handle.seek(start)
        data = handle.read(limit)
    lines = data.split(b"\n")
    if start > 0:
        lines = lines[1:]  # NOTE: we seeked into the middle of a line
    if lines and not data.endswith(b"\n"):
        lines = lines[:-1]  # a line still being written
    return [line for line in lines if line.strip()], len(data), start > 0


def percentile(sorted_values: list[float], share: float) -> float:
    """Nearest-rank percentile of already sorted values (0.0 for none).

    :param sorted_values: ascending values
    :param share: 0.0–1.0, e.g. ``0.95``
    """
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, math.ceil(share * len(sorted_values)) - 1))
    return sorted_values[rank]


def entry_day(value: Any) -> str | None:
    """``YYYY-MM-DD`` of an access-log ``time`` (ISO string or epoch seconds)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return dt.datetime.fromtimestamp(value).strftime("%Y-%m-%d")
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and len(value) >= 10:
        day = value[:10]
        try:
            dt.date.fromisoformat(day)
        except ValueError:
            return None
        return day
    return None


def entry_cost(value: Any) -> float:
    """The ``cost`` field as seconds (numbers or numeric strings; else 0.0)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def parse_entries(lines: list[bytes]) -> tuple[list[dict[str, Any]], int]:
    """Decode access-log lines; return ``(entries, skipped_line_count)``.

    JSON lines are the default format; ``run --dev`` writes the console format,
    which :func:`parse_console_line` reads, so the page works in both.
    """
    entries, skipped = [], 0
    for line in lines:
        try:
            if line.lstrip().startswith(b"{"):
                entry = json.loads(line)
            else:
                entry = parse_console_line(line.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            skipped += 1
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            skipped += 1
            continue
        entries.append(entry)
    return entries, skipped


_decoder = json.JSONDecoder()
POSITIONAL = ("time", "ip", "reqid", "method", "path", "status", "stat")


def _console_value(text: str, pos: int) -> tuple[Any, int]:
    """Read one console-format value at ``pos``: JSON-quoted, JSON container or bare word."""
    if text[pos] in '"{[':
        return _decoder.raw_decode(text, pos)
    end = text.find(" ", pos)
    end = len(text) if end < 0 else end
    word = text[pos:end]
    return (None if word == "-" else word), end


def parse_console_line(text: str) -> dict[str, Any] | None:
    """Parse the trace plugin's console access-log format into a record dict.

    ``time ip reqid [parent=ID] METHOD path status stat cost=S user=U talk=T params=P error=E res=R``;
    values containing spaces are JSON-quoted. Returns ``None`` for other lines.

    :param text: one line without its newline
    """
    record: dict[str, Any] = {}
    positional = iter(POSITIONAL)
    pos, length = 0, len(text.rstrip())
    while pos < length:
        if text[pos] == " ":
            pos += 1
            continue
        key, equals = None, text.find("=", pos)
        space = text.find(" ", pos)
        if equals > pos and (space < 0 or equals < space) and text[pos:equals].isidentifier() and len(record) >= 3:
            key, pos = text[pos:equals], equals + 1
        else:
            key = next(positional, None)
            if key is None:
                return None
        if pos >= length:
            record[key] = None
            break
        record[key], pos = _console_value(text, pos)
    if not all(name in record for name in POSITIONAL):
        return None
    return record


def entry_status(value: Any) -> int | None:
    """The ``status`` field as an HTTP status (``None`` when missing or not a number)."""
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def is_error(status: int | None, stat: str, path: str, json_route: Callable[[str], bool] | None = None) -> bool:
    """Is this access-log line an error?

    Yes when the HTTP status is 400 or more; else when the route replies JSON and its
    ``stat`` is not ``OK``. The stat of a non-JSON reply is its HTTP status (``"200"``
    for a page view), which is judged as a status.

    :param status: the HTTP status, if logged
    :param stat: the logged stat
    :param path: the request path
    :param json_route: tells whether ``path`` is a JSON route; ``None``: any route
        whose stat is not a number is taken for one
    """
    if status is not None and status >= 400:
        return True
    if stat.isdigit():
        return int(stat) >= 400
    if json_route is not None and not json_route(path):
        return False
    return stat != "OK"


def build_report(
    log_file: Path,
    max_days: int = 30,
    limit: int = TAIL_BYTES,
    json_route: Callable[[str], bool] | None = None,
) -> Report:
    """Summarise the tail of an access log.

    :param log_file: ``<log_dir>/acc.log``
    :param max_days: keep the most recent days in the per-day series (1–366)
    :param limit: most bytes to read (:data:`TAIL_BYTES`)
    :param json_route: tells whether a path is a JSON route (see :func:`is_error`)
    :return: the :class:`Report`; ``exists`` is false when there is no log yet
    """
    report = Report(log_file=str(log_file))
    try:
        lines, report.bytes_read, report.truncated = read_tail(log_file, limit)
        report.file_size = log_file.stat().st_size
    except FileNotFoundError:
        return report
    report.exists = True
    entries, report.skipped_lines = parse_entries(lines)

    per_day: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    stats: Counter[str] = Counter()
    methods: Counter[str] = Counter()
    costs_by_path: dict[str, list[float]] = defaultdict(list)
    all_costs: list[float] = []
    errors: list[dict[str, Any]] = []
    for entry in entries:
        path = entry["path"]
        if path.startswith(SKIPPED_PREFIXES):
            continue
        stat = str(entry.get("stat") or "-")
        cost = entry_cost(entry.get("cost"))
        day = entry_day(entry.get("time"))
        report.total += 1
        stats[stat] += 1
        methods[str(entry.get("method") or "-")] += 1
        costs_by_path[path].append(cost)
        all_costs.append(cost)
        failed = is_error(entry_status(entry.get("status")), stat, path, json_route)
        if failed:
            report.errors += 1
            errors.append(entry)
        if day is not None:
            counts = per_day[day]
            counts[0] += 1
            counts[1] += failed
        time_text = str(entry.get("time") or "")
        if time_text and (not report.first_time or time_text < report.first_time):
            report.first_time = time_text
        if time_text > report.last_time:
            report.last_time = time_text

    report.per_day = fill_days(per_day, max_days)
    report.stats = _top_with_other(stats, MAX_STATS)
    report.methods = methods.most_common()
    report.distinct_paths = len(costs_by_path)
    all_costs.sort()
    report.cost_p50 = percentile(all_costs, 0.50)
    report.cost_p95 = percentile(all_costs, 0.95)
    report.slowest = slowest_paths(costs_by_path, SLOWEST_PATHS)
    report.recent_errors = [_error_row(entry) for entry in errors[-RECENT_ERRORS:][::-1]]
    return report


def fill_days(per_day: dict[str, list[int]], max_days: int) -> list[tuple[str, int, int]]:
    """``(day, total, errors)`` for every calendar day up to the newest, quiet days as zeros.

    :param per_day: ``{"YYYY-MM-DD": [total, errors]}``
    :param max_days: keep at most this many days, ending with the newest one
    """
    if not per_day:
        return []
    newest = dt.date.fromisoformat(max(per_day))
    oldest = max(dt.date.fromisoformat(min(per_day)), newest - dt.timedelta(days=max_days - 1))
    rows = []
    for offset in range((newest - oldest).days + 1):
        day = (oldest + dt.timedelta(days=offset)).isoformat()
        total, errors = per_day.get(day, (0, 0))
        rows.append((day, total, errors))
    return rows


def slowest_paths(costs_by_path: dict[str, list[float]], limit: int) -> list[PathTiming]:
    """The ``limit`` paths with the highest average cost, slowest first."""
    timings = []
    for path, costs in costs_by_path.items():
        costs = sorted(costs)
        timings.append(PathTiming(path, len(costs), sum(costs) / len(costs), percentile(costs, 0.95), costs[-1]))
    timings.sort(key=lambda timing: (-timing.average, timing.path))
    return timings[:limit]


def _top_with_other(counter: Counter[str], limit: int) -> list[tuple[str, int]]:
    ranked = counter.most_common()
    if len(ranked) <= limit:
        return ranked
    head = ranked[: limit - 1]
    return [*head, ("other", sum(count for _, count in ranked[limit - 1 :]))]


def _error_row(entry: dict[str, Any]) -> dict[str, Any]:
    return {key: str(entry.get(key) or "") for key in ("time", "method", "path", "status", "stat", "error", "reqid")}
