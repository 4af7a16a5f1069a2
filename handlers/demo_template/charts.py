"""Chart geometry for the access-log page, computed in Python and drawn as inline SVG.

No JavaScript, no CDN: the template only places the rectangles, paths and labels
worked out here, so the page renders the same everywhere (and in a screenshot test).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .report import PathTiming

OK_COLOR = "#1f9d6b"
OTHER_COLOR = "#9aa4b2"
#: Colours for non-OK stats, in order of frequency; picked to stay apart from OK green.
PALETTE = ("#e5484d", "#f59f0a", "#8e4ec6", "#0b84e5", "#d6409f", "#12a5a0", "#6e56cf", "#a07553")


@dataclass
class Bar:
    """One day in the per-day chart: the total bar with the errors stacked at its foot."""

    day: str
    label: str
    show_label: bool
    total: int
    errors: int
    x: float
    width: float
    y: float
    height: float
    error_y: float
    error_height: float


@dataclass
class BarChart:
    """The per-day chart: plot box, y ticks and bars (SVG user units)."""

    width: int
    height: int
    left: int
    top: int
    right: int
    bottom: int
    ticks: list[tuple[float, str]]
    bars: list[Bar]


@dataclass
class Slice:
    """One stat in the donut chart."""

    label: str
    count: int
    share: float
    color: str
    path: str


@dataclass
class CostBar:
    """One path in the slowest-paths chart."""

    timing: PathTiming
    y: float
    width: float


def nice_ceiling(value: float, ticks: int = 4) -> tuple[float, float]:
    """Axis top and step: the smallest ``1/2/5 × 10^n`` step whose ``ticks`` steps cover ``value``."""
    if value <= 0:
        return float(ticks), 1.0
    raw_step = value / ticks
    magnitude = 10 ** math.floor(math.log10(raw_step))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw_step)
    step = max(step, 1)  # NOTE: the axis counts requests: no half steps
    return step * ticks, float(step)


def day_bars(per_day: list[tuple[str, int, int]], width: int = 760, height: int = 260) -> BarChart:
    """Lay out ``(day, total, errors)`` rows as vertical bars, oldest on the left.

    :param per_day: rows from :attr:`report.Report.per_day`
    :param width: SVG width
    :param height: SVG height
    """
    left, top, right, bottom = 48, 16, width - 12, height - 34
    peak = max((total for _, total, _ in per_day), default=0)
    axis_top, step = nice_ceiling(peak)
    ticks = [(bottom - (bottom - top) * (i * step) / axis_top, _count_label(i * step)) for i in range(5)]
    slot = (right - left) / max(len(per_day), 1)
    bar_width = max(2.0, min(48.0, slot * 0.68))
    label_every = max(1, math.ceil(len(per_day) / 12))
    bars = []
    for index, (day, total, errors) in enumerate(per_day):
        bar_height = (bottom - top) * total / axis_top
        error_height = (bottom - top) * errors / axis_top
        x = left + slot * index + (slot - bar_width) / 2
        show = (len(per_day) - 1 - index) % label_every == 0  # NOTE: the newest day always labelled
        bars.append(
            Bar(
                day,
                day[5:],
                show,
                total,
                errors,
                round(x, 2),
                round(bar_width, 2),
                round(bottom - bar_height, 2),
                round(bar_height, 2),
                round(bottom - error_height, 2),
                round(error_height, 2),
            )
        )
    return BarChart(width, height, left, top, right, bottom, ticks, bars)


def stat_color(label: str, index: int) -> str:
    """``OK`` is green, ``other`` grey, every error stat its own palette colour."""
    if label == "OK":
        return OK_COLOR
    if label == "other":
        return OTHER_COLOR
    return PALETTE[index % len(PALETTE)]


def donut(stats: list[tuple[str, int]], radius: float = 92, inner: float = 58, center: float = 110) -> list[Slice]:
    """Annulus sectors for ``(stat, count)`` rows, clockwise from 12 o'clock.

    :param stats: rows from :attr:`report.Report.stats`
    :param radius: outer radius
    :param inner: inner radius (the hole)
    :param center: x and y of the centre
    """
    total = sum(count for _, count in stats)
    slices, start, error_index = [], 0.0, 0
    for label, count in stats:
        share = count / total if total else 0.0
        end = start + share * 2 * math.pi
        color = stat_color(label, error_index)
        if label not in ("OK", "other"):
            error_index += 1
        slices.append(Slice(label, count, share, color, sector_path(center, radius, inner, start, end)))
        start = end
    return slices


def sector_path(center: float, radius: float, inner: float, start: float, end: float) -> str:
    """SVG path data of the ring between ``inner`` and ``radius`` from ``start`` to ``end`` (radians).

    Arcs are split at most every half turn, so a single 100 % slice draws a full ring.
    """
    if end - start <= 1e-9:
        return ""
    cuts = [
        start + (end - start) * i / math.ceil((end - start) / math.pi)
        for i in range(math.ceil((end - start) / math.pi) + 1)
    ]
    outer = [_point(center, radius, angle) for angle in cuts]
    hole = [_point(center, inner, angle) for angle in reversed(cuts)]
    parts = [f"M{outer[0]}"]
    parts += [f"A{radius},{radius} 0 0 1 {point}" for point in outer[1:]]
    parts.append(f"L{hole[0]}")
    parts += [f"A{inner},{inner} 0 0 0 {point}" for point in hole[1:]]
    parts.append("Z")
    return " ".join(parts)


def cost_bars(timings: list[PathTiming], width: float = 300, row: float = 30) -> list[CostBar]:
    """Horizontal bars proportional to each path's average cost.

    :param timings: rows from :attr:`report.Report.slowest`, slowest first
    :param width: width of the longest bar
    :param row: height of one row
    """
    slowest = max((timing.average for timing in timings), default=0.0)
    return [
        CostBar(timing, index * row, max(2.0, width * timing.average / slowest) if slowest else 2.0)
        for index, timing in enumerate(timings)
    ]


def format_ms(seconds: float) -> str:
    """Seconds as a short millisecond text: ``0.42 ms``, ``12.3 ms``, ``1,250 ms``."""
    ms = seconds * 1000.0
    if ms < 10:
        return f"{ms:.2f} ms"
    if ms < 1000:
        return f"{ms:.1f} ms"
    return f"{ms:,.0f} ms"


def _point(center: float, radius: float, angle: float) -> str:
    return f"{center + radius * math.sin(angle):.2f},{center - radius * math.cos(angle):.2f}"


def _count_label(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:.0f}"
