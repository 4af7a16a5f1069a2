"""demo_template: an HTML report of the access log, rendered server-side.

``/demo_template/log`` reads the tail of ``<log_dir>/acc.log`` (the trace plugin's
JSON lines), summarises it (:mod:`.report`), lays out the charts (:mod:`.charts`)
and renders ``templates/report_log.html`` with Jinja2 (autoescape on). The charts
are inline SVG: no JavaScript, no CDN. It shows logs, so it is an admin route
(loopback clients only unless the auth plugin grants the admin role).
"""

import datetime as dt
import functools
from pathlib import Path

from butterfly_router import http

from . import charts
from .report import TAIL_BYTES, build_report

TEMPLATE_DIR = Path(__file__).with_name("templates")
#: The trace plugin's access log, relative to ``[server] log_dir``.
ACCESS_LOG_NAME = "acc.log"


@functools.lru_cache(maxsize=1)
def _environment():
    """The Jinja2 environment, built on first use (keeps the import cheap)."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,  # NOTE: paths, params and errors in the log come from clients
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["ms"] = charts.format_ms
    environment.filters["shorten"] = _shorten
    environment.filters["when"] = _when
    return environment


def _shorten(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters with an ellipsis in the middle."""
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return text[:head] + "…" + text[len(text) - (limit - 1 - head) :]


def _when(timestamp: str) -> str:
    """``2024-05-01T12:00:00.123456`` → ``2024-05-01 12:00:00``."""
    return timestamp[:19].replace("T", " ")


def render(report) -> str:
    """The report page as HTML.

    :param report: a :class:`.report.Report` from :func:`.report.build_report`
    :return: the HTML document
    """
    return (
        _environment()
        .get_template("report_log.html")
        .render(
            report=report,
            days=charts.day_bars(report.per_day),
            slices=charts.donut(report.stats),
            cost_rows=charts.cost_bars(report.slowest, width=260),
            tail_mib=TAIL_BYTES // (1024 * 1024),
            generated=dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
        )
    )


@http(admin=True, methods=("GET", "HEAD"))
def log(req, days: int = 30):
    """``/demo_template/log?days=30`` → the access-log report (HTML).

    :param req: the request
    :param days: how many recent days the per-day chart shows (1–366)
    :return: ``(200, html, headers)``; 400 JSON for ``days`` out of range
    """
    if not 1 <= days <= 366:
        return 400, {"stat": "ERR_BAD_PARAMS", "errors": [{"param": "days", "reason": "must be 1..366"}]}
    log_file = Path(req.kernel.log_dir) / ACCESS_LOG_NAME
    with req.timer("analysis_log"):
        report = build_report(log_file, max_days=days)
    with req.timer("template_output"):
        html = render(report)
    return 200, html, [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")]
