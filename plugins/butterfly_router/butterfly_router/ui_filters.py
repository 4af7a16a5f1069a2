"""Jinja filters the shared page layout offers every plugin's templates.

Times: :func:`moment` reads what the plugins store (datetimes, ISO text, epoch
seconds or milliseconds) into an aware datetime; :func:`ago` says how long ago (or
how soon) in words; :func:`absolute` is the exact time for the hover title. The
``time`` macro of ``butterfly/macros.html`` puts them into
``<time datetime=… title=…>3 min ago</time>``.

Charts: :func:`sparkline` lays out a small line chart as SVG path data, drawn by the
``sparkline`` macro — computed here, so pages need no JavaScript to draw it.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

#: Epoch numbers above this are milliseconds (1e11 s is the year 5138).
MILLISECONDS_ABOVE = 1e11


def moment(value: Any) -> dt.datetime | None:
    """An aware datetime from what plugins store, or ``None``.

    :param value: an aware or naive datetime (naive = server local time), epoch seconds
        or milliseconds (int/float), or ISO 8601 text (``2024-05-01T12:00:03+00:00``,
        ``2024-05-01 12:00:03``)
    :return: the moment, ``None`` for ``None``, ``""``, zero, negative or unreadable values
    """
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.astimezone()
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if value <= 0:
            return None
        seconds = value / 1000 if value > MILLISECONDS_ABOVE else value
        try:
            return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and value.strip():
        try:
            parsed = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            return None
        return parsed if parsed.tzinfo is not None else parsed.astimezone()
    return None


def absolute(value: Any) -> str:
    """``2024-05-01 12:00:03 UTC+08:00`` (in the moment's own offset); ``""`` when unknown."""
    when = moment(value)
    if when is None:
        return ""
    offset = when.utcoffset() or dt.timedelta(0)
    if not offset:
        zone = "UTC"
    else:
        minutes = int(offset.total_seconds() // 60)
        sign = "+" if minutes >= 0 else "-"
        zone = f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return f"{when:%Y-%m-%d %H:%M:%S} {zone}"


def iso(value: Any) -> str:
    """The ``datetime`` attribute of a ``<time>`` element; ``""`` when unknown."""
    when = moment(value)
    return when.isoformat(timespec="seconds") if when is not None else ""


def ago(value: Any, now: dt.datetime | None = None) -> str:
    """``just now``, ``12 s ago``, ``5 min ago``, ``3 h ago``, ``4 d ago``, ``in 2 min``, or a date.

    :param value: anything :func:`moment` reads
    :param now: the reference time (default: the current time)
    :return: the words; ``""`` when the value is unknown
    """
    when = moment(value)
    if when is None:
        return ""
    now = now or dt.datetime.now(dt.UTC)
    seconds = (now - when).total_seconds()
    future, seconds = seconds < 0, abs(seconds)
    if seconds < 1:
        return "just now"
    for limit, size, unit in ((60, 1, "s"), (3600, 60, "min"), (86400, 3600, "h"), (86400 * 45, 86400, "d")):
        if seconds < limit:
            words = f"{int(seconds // size)} {unit}"
            return f"in {words}" if future else f"{words} ago"
    return f"{when:%Y-%m-%d}"


def since(seconds: Any, now: dt.datetime | None = None) -> str:
    """An age in seconds as :func:`ago` words (``just now``, ``12 s ago``); ``—`` when unknown."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return "—"
    now = now or dt.datetime.now(dt.UTC)
    return ago(now - dt.timedelta(seconds=seconds), now)


def duration(seconds: Any) -> str:
    """Seconds as ``850 ms``, ``4.2 s``, ``3 min 20 s``, ``2 h 5 min``; ``—`` when unknown."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60} min"
    return f"{whole // 86400} d {whole % 86400 // 3600} h"


def pretty(value: Any) -> str:
    """JSON indented for a ``<pre>`` (non-ASCII kept; unknown objects as text)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str, sort_keys=False)


@dataclass(frozen=True)
class Sparkline:
    """A small line chart, laid out for an SVG ``viewBox="0 0 width height"``.

    :param line: ``points`` of the ``<polyline>``
    :param area: ``d`` of the filled ``<path>`` under the line
    :param last_x: x of the newest value (for its dot)
    :param last_y: y of the newest value
    :param peak: the largest value
    :param total: the sum of the values
    """

    width: int
    height: int
    line: str
    area: str
    last_x: float
    last_y: float
    peak: float
    total: float


def sparkline(values: list[float] | tuple[float, ...], width: int = 120, height: int = 28) -> Sparkline:
    """Lay out ``values`` (oldest first) as a sparkline; all zeros lie on the baseline.

    :param values: the series
    :param width: SVG width
    :param height: SVG height
    """
    numbers = [max(0.0, float(v)) for v in values] or [0.0]
    peak = max(numbers)
    pad = 2.0
    span_x = (width - 2 * pad) / max(len(numbers) - 1, 1)
    span_y = height - 2 * pad
    points = [
        (round(pad + index * span_x, 2), round(height - pad - (span_y * value / peak if peak else 0.0), 2))
        for index, value in enumerate(numbers)
    ]
    line = " ".join(f"{x},{y}" for x, y in points)
    baseline = height - pad
    area = f"M{points[0][0]},{baseline} " + " ".join(f"L{x},{y}" for x, y in points) + f" L{points[-1][0]},{baseline} Z"
    return Sparkline(width, height, line, area, points[-1][0], points[-1][1], peak, sum(numbers))


FILTERS = {
    "moment": moment,
    "absolute": absolute,
    "iso": iso,
    "ago": ago,
    "since": since,
    "duration": duration,
    "pretty": pretty,
    "sparkline": sparkline,
}
