"""structlog, configured once by the process entry point (never at import).

structlog events and foreign stdlib records (waitress, apscheduler, pony, redis)
go through one :class:`structlog.stdlib.ProcessorFormatter`, so every line has the
same shape: JSON lines by default, a readable console format with ``run --dev``.
"""

from __future__ import annotations

import logging
import sys
from typing import IO

import structlog

#: structlog caches a logger on first use (fast), which freezes it to the config of
#: that moment; ``kernel.testing`` turns this off so ``capture_logs`` keeps working.
CACHE_LOGGERS = True

SHARED_PROCESSORS: list[structlog.typing.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=False),
]


def make_formatter(fmt: str = "json", *, colors: bool = False) -> logging.Formatter:
    """A formatter rendering structlog and stdlib records alike.

    :param fmt: ``json`` (one JSON object per line) or ``console``
    :param colors: colourise the console format
    """
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=colors)
        processors: list[structlog.typing.Processor] = [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            renderer,
        ]
    else:
        processors = [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # NOTE: never show_locals: frame locals carry passwords and tokens.
            structlog.processors.ExceptionRenderer(structlog.tracebacks.ExceptionDictTransformer(show_locals=False)),
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ]
    return structlog.stdlib.ProcessorFormatter(foreign_pre_chain=SHARED_PROCESSORS, processors=processors)


def configure_structlog() -> None:
    """Send structlog events through stdlib logging (and so through its handlers)."""
    structlog.configure(
        processors=[*SHARED_PROCESSORS, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=CACHE_LOGGERS,
    )


def configure(level: str = "INFO", fmt: str = "json", stream: IO[str] | None = None) -> None:
    """Configure structlog and the root stdlib logger; safe to call again.

    :param level: root level name
    :param fmt: ``json`` or ``console``
    :param stream: where the console handler writes (default ``sys.stderr``)
    """
    configure_structlog()
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(make_formatter(fmt, colors=fmt == "console" and stream.isatty()))
    handler._butterfly = True  # type: ignore[attr-defined]  # lets a reconfigure replace it
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_butterfly", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("waitress").setLevel(logging.INFO)
    # waitress warns "Task queue depth" for nearly every request under load: noise.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
