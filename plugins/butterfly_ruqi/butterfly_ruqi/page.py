"""The ruqi web page at ``/ruqi/``: jobs, next runs, recent history, instances.

Server-rendered with Jinja2 (autoescaped), no JavaScript and no CDN; it refreshes
itself every ``REFRESH_SECONDS``.
"""

from __future__ import annotations

from functools import lru_cache

from butterfly_ruqi import service
from kernel import BadRequest, Response

REFRESH_SECONDS = 10
RECENT_RUNS = 50
MAX_JOBS = 200


@lru_cache(maxsize=1)
def _environment():
    from jinja2 import Environment, PackageLoader, select_autoescape

    return Environment(loader=PackageLoader("butterfly_ruqi", "templates"), autoescape=select_autoescape(["html"]))


def render_page(state: service.RuqiState, *, job_id: str | None = None) -> str:
    """The page's HTML.

    :param job_id: show only this job's history
    """
    jobs = service.get_jobs(state, page_size=min(MAX_JOBS, state.settings.max_page_size))
    history = service.get_history(
        state, job_id=job_id or None, page_size=min(RECENT_RUNS, state.settings.max_page_size)
    )
    counts: dict[str, int] = {}
    for run in history["list"]:
        counts[run["status"]] = counts.get(run["status"], 0) + 1
    return (
        _environment()
        .get_template("ruqi.html")
        .render(
            jobs=jobs,
            history=history,
            status=service.status(state),
            counts=counts,
            job_id=job_id,
            refresh=REFRESH_SECONDS,
        )
    )


def ruqi_page(request) -> Response:
    """``GET /ruqi/`` (``?job_id=`` filters the history)."""
    state = request.kernel.extensions["ruqi"]
    job_id = request.query.get("job_id")
    if isinstance(job_id, list):
        job_id = job_id[0] if job_id else None
    if job_id is not None and len(job_id) > 64:
        raise BadRequest("job_id too long", data={"errors": [{"param": "job_id", "reason": "is longer than 64"}]})
    html = render_page(state, job_id=job_id)
    return Response(
        200, [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")], html.encode("utf-8")
    )
