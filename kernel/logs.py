"""structlog, configured once by the process entry point (never at import).

structlog events and foreign stdlib records (waitress, apscheduler, pony, redis)
go through one :class:`structlog.stdlib.ProcessorFormatter`, so every line has the
same shape: JSON lines by default, a readable console format with ``run --dev``.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable, MutableMapping
from typing import IO, Any

import structlog

#: structlog caches a logger on first use (fast), which freezes it to the config of
#: that moment; ``kernel.testing`` turns this off so ``capture_logs`` keeps working.
CACHE_LOGGERS = True

#: Fields every line of this process carries; empty in a single-process server.
#: ``run --workers N`` sets ``worker`` (the slot index, or ``"supervisor"``) and ``pid``
#: in each process before logging is configured, so lines say which process wrote them.
PROCESS_FIELDS: dict[str, Any] = {}


def add_process_fields(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: add :data:`PROCESS_FIELDS` (an event's own values win)."""
    if PROCESS_FIELDS:  # PERF: one truth test per line in the common single-process case
        for key, value in PROCESS_FIELDS.items():
            event_dict.setdefault(key, value)
    return event_dict


SHARED_PROCESSORS: list[structlog.typing.Processor] = [
    structlog.contextvars.merge_contextvars,
    add_process_fields,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def make_formatter(fmt: str = "json", *, colors: bool = False) -> logging.Formatter:
    """A formatter rendering structlog and stdlib records alike.

    :param fmt: ``json`` (one JSON object per line) or ``console``
    :param colors: colourise the console format
    """
    if fmt == "console":
        from kernel.devconsole import DevRenderer  # structlog's console lines, tracebacks kept multi-line

        processors: list[structlog.typing.Processor] = [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            DevRenderer(colors=colors),
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


def configure(
    level: str = "INFO",
    fmt: str = "json",
    stream: IO[str] | None = None,
    *,
    colors: bool | None = None,
    console_level: str | None = None,
) -> None:
    """Configure structlog and the root stdlib logger; safe to call again.

    :param level: root level name
    :param fmt: ``json`` or ``console``
    :param stream: where the console handler writes (default ``sys.stderr``)
    :param colors: colour the console format; ``None``: when ``stream`` is a terminal
        and ``NO_COLOR`` is not set
    :param console_level: a higher threshold for ``stream`` only (one-shot CLI
        commands show warnings, while log files still get ``level``)
    """
    configure_structlog()
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    from kernel.devconsole import want_colors  # a terminal, and no NO_COLOR

    colors = want_colors(stream, colors)
    handler.setFormatter(make_formatter(fmt, colors=fmt == "console" and colors))
    if console_level:
        handler.setLevel(console_level.upper())
    handler._butterfly = True  # type: ignore[attr-defined]  # lets a reconfigure replace it
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_butterfly", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("waitress").setLevel(logging.INFO)
    # waitress warns "Task queue depth" for nearly every request under load: noise.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)


# --------------------------------------------------------------------------------------
# unhandled exceptions: one readable traceback, rate-limited per signature
# --------------------------------------------------------------------------------------

#: A traceback longer than this is cut (deep recursion); the innermost part is kept.
MAX_TRACEBACK_CHARS = 32 * 1024
#: Frames (innermost last) that make two tracebacks "the same".
SIGNATURE_FRAMES = 8


def format_traceback(exc: BaseException) -> str:
    """The exception's traceback as text, chained causes included, locals never.

    :param exc: the exception
    :return: at most :data:`MAX_TRACEBACK_CHARS` characters
    """
    text = "".join(traceback.format_exception(exc))
    if len(text) > MAX_TRACEBACK_CHARS:
        text = "…(traceback cut)\n" + text[-MAX_TRACEBACK_CHARS:]
    return text


def exception_signature(exc: BaseException) -> tuple:
    """What makes two exceptions "identical" for rate limiting: type and innermost frames.

    The message is left out on purpose: ``KeyError('a')`` and ``KeyError('b')``
    raised at the same line are one problem, not two.
    """
    frames = traceback.extract_tb(exc.__traceback__)[-SIGNATURE_FRAMES:]
    return (type(exc).__module__, type(exc).__qualname__, *((f.filename, f.lineno, f.name) for f in frames))


class RepeatLimiter:
    """Lets the first ``burst`` events per signature through in each ``window`` seconds.

    The rest are counted; when the window of a signature that suppressed something
    ends, ``report(summary, suppressed, window)`` is called once (from a timer
    thread), so a flood of identical errors costs a few lines a minute, not megabytes.

    :param report: ``report(summary, suppressed, window)``; must not raise
    :param burst: events let through per signature and window
    :param window: seconds
    :param max_signatures: signatures remembered at once (the oldest are forgotten)
    """

    def __init__(
        self,
        report: Callable[[str, int, float], None],
        *,
        burst: int = 3,
        window: float = 60.0,
        max_signatures: int = 1024,
    ) -> None:
        self.report = report
        self.burst = burst
        self.window = window
        self.max_signatures = max_signatures
        self._lock = threading.Lock()
        #: signature → [window start, events in window, suppressed, summary]
        self._entries: dict[tuple, list] = {}
        self._timers: dict[tuple, threading.Timer] = {}

    def allow(self, signature: tuple, summary: str) -> bool:
        """Record one event; ``True`` when it should be logged in full.

        :param signature: what makes events identical (:func:`exception_signature`)
        :param summary: one line naming it, for the suppression report
        """
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(signature)
            if entry is None or now - entry[0] >= self.window:
                if entry is not None and entry[2]:
                    self._report_locked(signature)  # a window ended before its timer fired
                if len(self._entries) >= self.max_signatures and signature not in self._entries:
                    self._entries.pop(next(iter(self._entries)))
                self._entries[signature] = [now, 1, 0, summary]
                return True
            entry[1] += 1
            if entry[1] <= self.burst:
                return True
            entry[2] += 1
            if signature not in self._timers:
                delay = max(0.0, entry[0] + self.window - now)
                timer = threading.Timer(delay, self._window_ended, args=(signature,))
                timer.daemon = True
                self._timers[signature] = timer
                timer.start()
            return False

    def _window_ended(self, signature: tuple) -> None:
        with self._lock:
            self._timers.pop(signature, None)
            if signature in self._entries and self._entries[signature][2]:
                self._report_locked(signature)

    def _report_locked(self, signature: tuple) -> None:
        entry = self._entries.pop(signature)
        timer = self._timers.pop(signature, None)
        if timer is not None:
            timer.cancel()
        # NOTE: report under the lock: a report must not interleave with a new window.
        self.report(entry[3], entry[2], self.window)

    def flush(self) -> None:
        """Report every pending suppression count now (shutdown, tests)."""
        with self._lock:
            for signature in [s for s, entry in self._entries.items() if entry[2]]:
                self._report_locked(signature)


def report_suppressed(summary: str, suppressed: int, window: float) -> None:
    """The default ``report`` of :class:`RepeatLimiter`: one WARNING with the count."""
    _emit(
        logging.WARNING,
        "identical errors suppressed",
        {"error": summary, "suppressed": suppressed, "window_seconds": window},
    )


def _emit(level: int, event: str, fields: dict) -> None:
    """Log through structlog when it is configured, else stdlib (stderr by default)."""
    if structlog.is_configured():
        structlog.get_logger("butterfly.kernel").log(level, event, **fields)
        return
    # NOTE: nobody configured logging (an embedding WSGI server): stdlib's last-resort
    # handler still prints WARNING and above to stderr, so nothing is lost silently.
    details = " ".join(f"{key}={value!r}" for key, value in fields.items() if key != "traceback")
    text = f"{event} {details}"
    if "traceback" in fields:
        text += "\n" + fields["traceback"]
    logging.getLogger("butterfly.kernel").log(level, text)


#: The limiter used when none is given (each kernel has its own, ``kernel.error_limiter``).
error_limiter = RepeatLimiter(report_suppressed)


def log_exception(event: str, exc: BaseException, *, limiter: RepeatLimiter | None = None, **fields: Any) -> bool:
    """Log ``exc`` at ERROR with its traceback, unless identical ones flood the log.

    The first few of each :func:`exception_signature` per minute are written in full;
    the rest are counted and reported once a minute (``identical errors suppressed``).
    For every unexpected exception in the framework and its plugins (handler
    exceptions, background jobs), so the error log stays readable under a flood.

    :param event: the log event (``"handler exception"``)
    :param exc: the exception
    :param limiter: the :class:`RepeatLimiter` to count against (default: the
        process-wide :data:`error_limiter`)
    :param fields: more fields for the line (``path``, ``method``)
    :return: ``True`` when the traceback was written, ``False`` when suppressed
    """
    error = f"{type(exc).__name__}: {exc}"[:500]
    if not (limiter or error_limiter).allow(exception_signature(exc), error):
        return False
    _emit(logging.ERROR, event, {**fields, "error": error, "traceback": format_traceback(exc)})
    return True
