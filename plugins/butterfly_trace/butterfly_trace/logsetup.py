"""Process-wide logging glue: structlog into stdlib, the root level.

The CLI's :func:`kernel.logs.configure` normally did this already; an embedding
application or a test may not have, and then structlog would print to stdout and
never reach ``app.log``/``err.log``.
"""

from __future__ import annotations

import logging

import structlog

from kernel import logs

#: Level names the runtime log-level endpoint accepts (``WARN`` is an alias).
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL"}


def route_structlog_to_stdlib() -> None:
    """Send structlog events through stdlib logging, unless someone configured structlog.

    Same processors as :func:`kernel.logs.configure`, without touching handlers.
    """
    if structlog.is_configured():
        return
    logs.configure_structlog()


def normalise_level(name: object) -> str | None:
    """``"debug"`` → ``"DEBUG"``; ``None`` when ``name`` is not a level name."""
    if not isinstance(name, str):
        return None
    level = name.strip().upper()
    level = ALIASES.get(level, level)
    return level if level in LEVELS else None


def root_level() -> str:
    """The root logger's level name (what ``app.log`` records)."""
    return logging.getLevelName(logging.getLogger().level)


def set_root_level(level: str) -> None:
    """Set the root logger's level (``app.log`` follows; ``err.log`` stays WARNING+).

    :param level: one of :data:`LEVELS`
    """
    logging.getLogger().setLevel(level)


def quiet_waitress_queue() -> None:
    """Keep waitress' per-task "Task queue depth is N" warnings out of the logs.

    Under load waitress logs one WARNING per queued task; written to app.log and
    err.log that is a flood which costs more than the requests. Only when nobody
    chose a level for ``waitress.queue`` already.
    """
    queue_logger = logging.getLogger("waitress.queue")
    if queue_logger.level == logging.NOTSET:
        queue_logger.setLevel(logging.ERROR)
