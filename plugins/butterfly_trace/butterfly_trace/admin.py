"""Admin-only endpoints: runtime log level, thread stack dump, metrics.

Registered with ``admin=True``: without the auth plugin they answer loopback
clients (and in-process calls) only. ``[trace] metrics_token`` lets a scraper
read ``/_trace/metrics`` — that route only — with ``Authorization: Bearer <token>``
(:class:`MetricsTokenGate`).
"""

from __future__ import annotations

import hmac
import sys
import threading
import traceback
from typing import TYPE_CHECKING, Any

import structlog

from butterfly_trace.logsetup import LEVELS, normalise_level, root_level, set_root_level
from butterfly_trace.metrics import CONTENT_TYPE
from butterfly_trace.state import get_state
from kernel import BadRequest, NotFound, Response, hookimpl

if TYPE_CHECKING:
    from kernel import Request

log = structlog.get_logger("butterfly.trace")
MAX_FRAMES = 64


def loglevel(request: Request) -> Response:
    """``GET`` → the root level; ``POST level=DEBUG`` → set it.

    In-process calls set the level when ``level`` is given and read it otherwise.

    :return: ``{"stat": "OK", "level": "INFO"}``
    :raises BadRequest: missing or unknown ``level`` on ``POST``
    """
    if request.method == "GET":
        return Response.json({"stat": "OK", "level": root_level()})
    raw = request.params.get("level")
    if raw is None and request.source != "http":
        return Response.json({"stat": "OK", "level": root_level()})
    level = normalise_level(raw)
    if level is None:
        reason = f"level must be one of {', '.join(LEVELS)}"
        got = "missing" if raw is None else f"got {str(raw)[:40]!r}"
        raise BadRequest(f"bad level: {got}", data={"errors": [{"param": "level", "reason": f"{reason}; {got}"}]})
    previous = root_level()
    set_root_level(level)
    # NOTE: WARNING so the change is audited in err.log whatever the new level is.
    log.warning("log level changed", previous_level=previous, new_level=level, user=request.user, ip=request.client_ip)
    return Response.json({"stat": "OK", "level": level, "previous": previous})


def thread_stacks() -> list[dict[str, Any]]:
    """Every live thread with its current stack, innermost frame last."""
    frames = sys._current_frames()
    threads = {thread.ident: thread for thread in threading.enumerate()}
    dump = []
    try:
        for ident, frame in frames.items():
            thread = threads.get(ident)
            summary = traceback.extract_stack(frame)[-MAX_FRAMES:]
            dump.append(
                {
                    "name": thread.name if thread else f"<unknown {ident}>",
                    "ident": ident,
                    "daemon": thread.daemon if thread else None,
                    "stack": [
                        f"{fs.filename}:{fs.lineno} in {fs.name}" + (f": {fs.line}" if fs.line else "")
                        for fs in summary
                    ],
                }
            )
    finally:
        del frames  # NOTE: frames keep every local alive; drop them promptly
    dump.sort(key=lambda item: (item["name"], item["ident"]))
    return dump


def stacks(request: Request) -> Response:
    """``GET /_trace/stacks``: ``{"stat": "OK", "threads": [{name, ident, daemon, stack}]}``."""
    return Response.json({"stat": "OK", "threads": thread_stacks()})


def metrics(request: Request) -> Response:
    """``GET /_trace/metrics``: Prometheus text format (404 when ``[trace] metrics`` is off)."""
    collected = get_state(request.kernel).metrics
    if collected is None:
        raise NotFound("metrics are off ([trace] metrics = false)")
    body = collected.render().encode("utf-8")
    return Response(200, [("Content-Type", CONTENT_TYPE)], body, stat="OK")


METRICS_PATH = "/_trace/metrics"


class MetricsTokenGate:
    """Lets ``GET /_trace/metrics`` through for ``Authorization: Bearer <metrics_token>``.

    Its own plugin object, registered only when ``[trace] metrics_token`` is set, so
    other requests pay nothing. It grants that one route and nothing else: for any
    other route, or without the right token, it abstains and the usual admin check
    decides (a wrong token is not an error: it may be someone's own credential).
    The token is compared in constant time.

    :param token: the configured token
    """

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    @hookimpl(tryfirst=True)
    def butterfly_authorize(self, request: Request, route) -> bool | None:
        """``True`` for the metrics route with the right bearer token, else ``None``."""
        if route.endpoint is not metrics or request.source != "http" or request.method not in ("GET", "HEAD"):
            return None
        given = request.environ.get("HTTP_AUTHORIZATION")
        if not given:
            return None
        # NOTE: compare_digest on bytes: constant time in the token's content; a
        # non-ASCII header cannot match and must not raise.
        if hmac.compare_digest(given.encode("latin-1", "replace"), self._expected):
            return True
        return None


#: ``/_trace/loglevel`` for the OpenAPI document (the router cannot read a raw endpoint's parameters).
LOGLEVEL_OPENAPI = {
    "post": {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["level"],
                        "properties": {"level": {"type": "string", "enum": list(LEVELS)}},
                    }
                }
            },
        }
    }
}


def register_routes(register, kernel) -> None:
    """Register the admin routes.

    :param register: the kernel's ``register`` callback
    :param kernel: the kernel (``[trace] metrics`` decides whether metrics are served)
    """
    register(
        "/_trace/loglevel",
        loglevel,
        kind="json",
        methods=("GET", "POST"),
        admin=True,
        meta={"openapi": LOGLEVEL_OPENAPI},
    )
    register("/_trace/stacks", stacks, kind="json", methods=("GET",), admin=True)
    if get_state(kernel).metrics is not None:
        register(METRICS_PATH, metrics, kind="text", methods=("GET",), admin=True)
