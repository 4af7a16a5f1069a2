"""What ``butterfly run --dev`` prints: one readable line per request, real tracebacks.

Two parts, both only for a person watching a terminal (the log files keep their
own format):

* :class:`DevRenderer` renders log events like structlog's console renderer, but
  a ``traceback`` field (how the kernel and plugins log handler exceptions, as
  text, never with frame locals) is printed as the multi-line traceback it is,
  after the event line, instead of one line full of ``\\n``.
* :class:`RequestLines` is a small plugin ``run --dev`` registers: after every
  request or in-process call it prints ``time METHOD path status ms reqid`` (and
  the stat when it is not ``OK``), coloured by status.

Colours only when the stream is a terminal (``NO_COLOR`` set turns them off), or
when forced with ``run --dev --color``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import MutableMapping
from typing import IO, Any

import structlog

from kernel.markers import hookimpl

RESET = "\x1b[0m"
BOLD = "\x1b[1m"
DIM = "\x1b[2m"
RED = "\x1b[31m"
GREEN = "\x1b[32m"
YELLOW = "\x1b[33m"
CYAN = "\x1b[36m"
#: Colour of a status code by its first digit.
STATUS_COLORS = {"2": GREEN, "3": CYAN, "4": YELLOW, "5": RED}


def want_colors(stream: IO[str], force: bool | None = None) -> bool:
    """Whether to colour what goes to ``stream``.

    :param stream: where the lines go
    :param force: ``True``/``False`` to decide, ``None`` for: a terminal, and no ``NO_COLOR``
    :return: the decision
    """
    if force is not None:
        return force
    # NOTE: https://no-color.org: any non-empty NO_COLOR turns automatic colours off.
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def printable(text: str, keep: str = "") -> str:
    """``text`` with control characters escaped, so a client cannot drive the terminal.

    :param text: e.g. a request path or an exception message
    :param keep: control characters to leave alone (``"\\n"`` for tracebacks)
    :return: the safe text
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() or char in keep else repr(char)[1:-1] for char in text)


def paint(text: str, color: str, enabled: bool) -> str:
    """``text`` in ``color`` (an ANSI sequence) when ``enabled``."""
    return f"{color}{text}{RESET}" if enabled else text


class DevRenderer:
    """structlog's console renderer, with ``traceback`` fields printed as tracebacks.

    :param colors: colour the output (ANSI)
    """

    def __init__(self, colors: bool = False) -> None:
        self.colors = colors
        self._console = structlog.dev.ConsoleRenderer(colors=colors)

    def __call__(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> str:
        """Render one event: the console line, then its traceback, if any."""
        traceback_text = event_dict.pop("traceback", None)
        for key, value in event_dict.items():
            if isinstance(value, str) and key != "exception":
                event_dict[key] = printable(value)
        line = self._console(logger, method_name, event_dict)
        if not isinstance(traceback_text, str) or not traceback_text.strip():
            return line if traceback_text is None else f"{line} traceback={traceback_text!r}"
        lines = printable(traceback_text, keep="\n").rstrip("\n").split("\n")
        if self.colors and lines:
            lines[-1] = paint(lines[-1], BOLD + RED, True)  # the exception itself stands out
        return line + "\n" + "\n".join(lines)


class RequestLines:
    """Plugin: one console line per finished request (``run --dev``).

    :param stream: where lines go (default ``sys.stderr``, with the log lines)
    :param colors: colour them
    """

    def __init__(self, stream: IO[str] | None = None, colors: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.colors = colors
        # NOTE: waitress serves on many threads; one write per line, under a lock, keeps lines whole.
        self._lock = threading.Lock()

    def format(self, request: Any, response: Any) -> str:
        """``12:00:01.042 GET /app/h 200 3.1 ms reqid=...`` for a finished request.

        :param request: the :class:`~kernel.request.Request`
        :param response: its :class:`~kernel.response.Response`
        :return: the line, without a newline
        """
        colors = self.colors
        now = time.time()
        stamp = time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"
        status = str(response.status)
        stat = getattr(request, "stat", None)
        parts = [
            paint(stamp, DIM, colors),
            paint(f"{request.method:<6}", BOLD, colors),
            printable(request.path),
            paint(status, STATUS_COLORS.get(status[:1], ""), colors),
            paint(f"{request.elapsed() * 1000:.1f} ms", DIM, colors),
        ]
        if stat and stat != "OK":
            parts.append(paint(str(stat), YELLOW if response.status < 500 else RED, colors))
        parts.append(paint(f"reqid={request.reqid or '-'}", DIM, colors))
        return " ".join(parts)

    @hookimpl(trylast=True)
    def butterfly_request_finished(self, request, response):
        """Print the request's line (after the access log, so ``stat`` is final)."""
        line = self.format(request, response) + "\n"
        with self._lock:
            try:
                self.stream.write(line)
                self.stream.flush()
            except (OSError, ValueError):
                pass  # NOTE: a closed terminal must not fail requests
