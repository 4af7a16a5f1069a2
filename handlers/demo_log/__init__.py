"""demo_log: read and change the runtime log level, and see the change take effect.

The level itself belongs to the trace plugin, which serves it admin-only at
``/_trace/loglevel``. These handlers go through that very route in-process
(``req.kernel.call``), so the level logic and its audit line live in one place;
the inner call's access-log line carries this request's reqid as its parent.
Both handlers are admin routes, like the trace endpoint they front: ``loglevel_get``
is a read (GET), ``loglevel_set`` a write (POST only).
"""

import logging
from typing import Annotated, Literal

import structlog
from annotated_types import MaxLen

from butterfly_router import api, retstat

TRACE_LOGLEVEL = "/_trace/loglevel"
log = structlog.get_logger("butterfly.demo_log")


def _trace_loglevel(req, params):
    """Call the trace plugin's log-level route in-process and return its reply data."""
    response = req.kernel.call(TRACE_LOGLEVEL, params, source="handler", parent_reqid=req.reqid, user=req.user)
    if response.status == 404:
        return retstat.ERR_NOT_FOUND, {"errors": [{"param": "-", "reason": "the trace plugin is not installed"}]}
    data = dict(response.data or {})
    return data.pop("stat", retstat.ERR), data


@api(admin=True, methods=("GET", "HEAD"))
def loglevel_get(req):
    """``/demo_log/loglevel_get`` → ``{"stat": "OK", "level": "INFO"}`` (the root logger's level).

    :param req: the request
    :return: ``(stat, data)``
    """
    return _trace_loglevel(req, {})


@api(admin=True, methods=("POST",))
def loglevel_set(req, level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]):
    """``POST /demo_log/loglevel_set level=DEBUG`` → ``{"stat": "OK", "level": "DEBUG", "previous": "INFO"}``.

    The change is per process and not persisted (``[server] log_level`` is the
    start-up value). A level outside the list is a 400 ``ERR_BAD_PARAMS``.

    :param req: the request
    :param level: the new level of the root logger (``app.log`` follows it)
    :return: ``(stat, data)``
    """
    return _trace_loglevel(req, {"level": level})


def emit(req, message: Annotated[str, MaxLen(200)] = "hello from demo_log"):
    """``/demo_log/emit?message=x``: log ``message`` at DEBUG, INFO and WARNING.

    Look in ``logs/app.log``: after ``loglevel_set level=DEBUG`` the DEBUG line
    appears too. The reply says which levels the logger lets through now.

    :param req: the request
    :param message: the text to log (at most 200 characters)
    :return: ``(stat, data)`` with ``enabled``: the level names that were written
    """
    root = logging.getLogger()
    enabled = [name for name in ("DEBUG", "INFO", "WARNING") if root.isEnabledFor(getattr(logging, name))]
    log.debug(message, demo="debug")
    log.info(message, demo="info")
    log.warning(message, demo="warning")
    return retstat.OK, {"enabled": enabled}
