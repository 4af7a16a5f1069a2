"""demo_template: an HTML report of the access log, rendered server-side.

``/demo_template/log`` reads the tail of ``<log_dir>/acc.log`` (the trace plugin's
JSON lines), summarises it (:mod:`.report`), lays out the charts (:mod:`.charts`)
and renders ``templates/report_log.html`` in the shared page layout of every
Butterfly page (:mod:`butterfly_router.ui`). The charts are inline SVG: no CDN. It
shows logs, so it is an admin route (loopback clients only unless the auth plugin
grants the admin role). The module-level :func:`butterfly_console_links` puts it in
the navigation bar (the console calls that function of every handler app).
"""

import datetime as dt
from pathlib import Path

from butterfly_router import http, ui

from . import charts
from .report import TAIL_BYTES, build_report

TEMPLATES = ui.template_dir(__file__)
#: The trace plugin's access log, relative to ``[server] log_dir``.
ACCESS_LOG_NAME = "acc.log"


def butterfly_console_links(register):
    """Put the report in the navigation bar of every page (admins only).

    :param register: ``register(title, path, *, admin=False, description="")``
    """
    register("Access report", "/demo_template/log", admin=True, description="requests per day, stats, slowest paths")


def _environment():
    """The shared-layout Jinja2 environment, with this report's filters."""
    environment = ui.environment(TEMPLATES)
    environment.filters.update(ms=charts.format_ms, shorten=_shorten, when=_when)
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


def _json_route(kernel):
    """``path → True`` when ``kernel`` serves ``path`` with a JSON handler."""

    def is_json(path: str) -> bool:
        route = kernel.routes.lookup(path)
        return route is not None and route.kind == "json"

    return is_json


def _render(req, report):
    """The report page as an HTML response.

    :param req: the request (for the navigation bar)
    :param report: a :class:`.report.Report` from :func:`.report.build_report`
    :return: a :class:`kernel.Response`
    """
    _environment()
    return ui.render(
        req,
        "report_log.html",
        source=TEMPLATES,
        title="Access log report",
        report=report,
        days=charts.day_bars(report.per_day),
        slices=charts.donut(report.stats),
        cost_rows=charts.cost_bars(report.slowest, width=260),
        tail_mib=TAIL_BYTES // (1024 * 1024),
        generated=dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
    )


@http(admin=True, methods=("GET", "HEAD"))
def log(req, days: int = 30):
    """``/demo_template/log?days=30`` → the access-log report (HTML).

    :param req: the request
    :param days: how many recent days the per-day chart shows (1–366)
    :return: the page; 400 JSON for ``days`` out of range
    """
    if not 1 <= days <= 366:
        return 400, {"stat": "ERR_BAD_PARAMS", "errors": [{"param": "days", "reason": "must be 1..366"}]}
    log_file = Path(req.kernel.log_dir) / ACCESS_LOG_NAME
    with req.timer("analysis_log"):
        report = build_report(log_file, max_days=days, json_route=_json_route(req.kernel))
    with req.timer("template_output"):
        page = _render(req, report)
    return page
