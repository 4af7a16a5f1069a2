"""Per-kernel trace state, kept in ``kernel.extensions["trace"]``."""

from __future__ import annotations

import time
import weakref
from typing import TYPE_CHECKING

import structlog

from butterfly_trace import files, reopen, writers
from butterfly_trace.access import AccessLog
from butterfly_trace.client_ip import TrustedProxies, parse_networks
from butterfly_trace.config import SECTION
from butterfly_trace.metrics import Metrics
from butterfly_trace.redact import Redactor
from kernel import ConfigError, logs

if TYPE_CHECKING:
    from kernel import Kernel, Request, Response

EXTENSION = "trace"
#: Seconds between two reports of a failing access-log write.
WRITE_ERROR_INTERVAL = 60.0

log = structlog.get_logger("butterfly.trace")


class TraceState:
    """What the request hooks need, built once from the settings.

    Attributes: ``proxies`` (:class:`TrustedProxies`), ``access_log``
    (:class:`AccessLog` or ``None``), ``metrics`` (:class:`Metrics` or ``None``),
    ``slow_threshold`` (seconds, ``0`` = off), ``log_dir``.
    """

    def __init__(self, kernel: Kernel) -> None:
        settings = kernel.settings.section(SECTION)
        server = kernel.settings.section("server")
        try:
            self.proxies = TrustedProxies(parse_networks(settings.trusted_proxies or []))
        except ValueError as exc:  # the setting's converter validates too; belt and braces
            raise ConfigError(f"bad value for [trace] trusted_proxies: {exc}") from None
        self.log_dir = kernel.log_dir
        self.slow_threshold = settings.slow_threshold or 0.0
        self.metrics = Metrics() if settings.metrics else None
        self.access_log: AccessLog | None = None
        keys: list[str] = []
        self._last_write_error = 0.0
        max_bytes, backups = settings.log_max_bytes, settings.log_backups
        fmt = server.log_format
        #: ``files`` (log_dir) or ``stdout``
        self.log_to = settings.log_to
        to_stdout = self.log_to == "stdout"
        if to_stdout:
            keys.append(files.acquire_stdout_handler(logs.make_formatter(fmt)))
        else:
            keys.append(files.acquire_root_handlers(self.log_dir, logs.make_formatter(fmt), max_bytes, backups))
        if settings.access_log:
            writer: writers.RotatingWriter | writers.StreamWriter
            if to_stdout:
                writer = writers.STDOUT
            else:
                path = self.log_dir / "acc.log"
                writer = files.acquire_writer(path, max_bytes, backups)
                keys.append(files.writer_key(path))
            self.access_log = AccessLog(
                writer,
                Redactor(settings.redact_keys or []),
                fmt,
                logger="butterfly.access" if to_stdout else None,
                on_error=self._report_write_error,
            )
        self._keys = tuple(keys)
        # NOTE: kernels that are never started never see butterfly_shutdown; give the
        # files back when such a kernel is garbage collected (tests build many). The
        # callback must not reference the kernel, nor take locks (see release_soon).
        self._finalizer = weakref.finalize(kernel, _release_soon, self._keys)

    def start(self) -> None:
        """A served kernel: access-log lines off the request thread; SIGHUP reopens the files."""
        if self.access_log is not None:
            self.access_log.start()
        if self.log_to == "files":
            reopen.install_sighup_handler()
        else:
            files.detach_console()

    def close(self) -> None:
        """Write the queued access-log lines, give back the log files (the last kernel
        using a file closes it); idempotent."""
        if self.access_log is not None:
            self.access_log.stop()
        # finalize.detach() succeeds once: either here or in the GC callback, never both.
        if self._finalizer.detach() is not None:
            for key in self._keys:
                files.release(key)

    def finish(self, request: Request, response: Response) -> None:
        """Access log, metrics and the slow-request warning for a finished request."""
        cost = request.elapsed()
        if self.access_log is not None:
            try:
                self.access_log.write(request, response, cost)
            except (OSError, ValueError, TypeError) as exc:
                self._report_write_error(exc)
        if self.metrics is not None:
            self.metrics.observe(request, response, cost)
        if self.slow_threshold and cost >= self.slow_threshold:
            log.warning(
                "slow request",
                method=request.method,
                path=request.path,
                cost=round(cost, 6),
                status=response.status,
                talk={k: round(v, 3) for k, v in request.timings.items()},
            )

    def _report_write_error(self, exc: Exception) -> None:
        # NOTE: a full disk must not fail requests nor flood err.log: one line a minute.
        now = time.monotonic()
        if now - self._last_write_error >= WRITE_ERROR_INTERVAL:
            self._last_write_error = now
            log.error(
                "access log write failed", path=str(self.log_dir / "acc.log"), error=f"{type(exc).__name__}: {exc}"
            )


def _release_soon(keys: tuple[str, ...]) -> None:
    for key in keys:
        files.release_soon(key)


def get_state(kernel: Kernel) -> TraceState:
    """The trace state of ``kernel`` (set in ``butterfly_configure``)."""
    return kernel.extensions[EXTENSION]
