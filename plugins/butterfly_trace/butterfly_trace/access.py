"""The access log: one line per HTTP request and per in-process call.

PERF: this runs for every request, so it bypasses structlog and stdlib logging.
In a started kernel the request thread only keeps a tuple of references; a writer
thread redacts, assembles the JSON line (every string through the C JSON string
encoder) and writes a whole batch with one ``write(2)``. Measured cost is in the README.
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from butterfly_trace.redact import Redactor
from butterfly_trace.traceparent import TRACE_CONTEXT
from butterfly_trace.writers import RotatingWriter, StreamWriter
from kernel import logs as kernel_logs

if TYPE_CHECKING:
    from kernel import Request, Response

#: Field order of every access-log record. ``tracestate`` (after ``span_id``) is there only
#: when the request's trace has one (see :mod:`butterfly_trace.tracestate`).
FIELDS = (
    "time",
    "ip",
    "reqid",
    "parent_reqid",
    "trace_id",
    "span_id",
    "method",
    "path",
    "status",
    "stat",
    "cost",
    "user",
    "talk",
    "params",
    "error",
    "res",
)

# NOTE: check_circular is off because every nested value comes from Redactor.clean,
# which builds fresh, depth-limited containers; default=str covers odd types in res.
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False, default=str).encode
_encode_str = json.encoder.encode_basestring
_NO_PARAMS = {True: "null", False: "{}"}


class UtcTime:
    """UTC ISO 8601 timestamps (``2024-05-01T12:00:00.123456Z``), the same shape as app.log."""

    def __init__(self) -> None:
        # NOTE: one tuple, replaced atomically, so threads never pair a second with
        # another second's prefix.
        self._cache = (-1, "")

    def __call__(self, timestamp: float) -> str:
        """Format ``timestamp`` (seconds since the epoch)."""
        second = int(timestamp)
        cached_second, prefix = self._cache
        # PERF: strftime once per second.
        if second != cached_second:
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._cache = (second, prefix)
        return f"{prefix}.{int((timestamp - second) * 1_000_000):06d}Z"


#: What the request thread keeps of a finished request (:meth:`AccessLog.fields`).
Fields = tuple

#: Lines waiting for the writer thread beyond which request threads write themselves
#: (a disk that cannot keep up slows requests down instead of filling the memory).
MAX_PENDING = 50_000
#: Seconds the writer thread gathers lines after the first one of a batch: a line is in
#: the file about this long after its request finished.
# PERF: at 10k requests/s a 1 ms window woke the writer 2,000 times a second for ~5 lines
# each, 5.4 µs of CPU per request; 10 ms gives batches of ~100 lines (bench/README.md).
BATCH_WINDOW = 0.01
#: Access logs whose writer thread runs (see :func:`flush_started`).
STARTED: weakref.WeakSet[AccessLog] = weakref.WeakSet()


def flush_started() -> None:
    """Write the queued lines of every started access log now (before a reopen on SIGHUP)."""
    for access_log in list(STARTED):
        access_log.flush()


class AccessLog:
    """Builds and writes access-log records.

    Until :meth:`start` (and after :meth:`stop`) a line is written by the thread that
    finished the request. Started, the request thread only keeps the line's fields
    (:meth:`fields`, a tuple of references); one writer thread per access log turns
    them into lines — redaction, JSON — and writes each batch with one ``write(2)``.
    :meth:`stop` writes every line still queued before it returns.

    :param writer: where lines go (``<log_dir>/acc.log``, or stdout)
    :param redactor: cleans the parameters
    :param fmt: ``json`` (one object per line) or ``console`` (readable, ``run --dev``)
    :param logger: the ``logger`` field of each JSON line (``log_to = "stdout"``, where
        access lines mix with the app log), or ``None`` for no such field
    :param on_error: called with the exception when a batch cannot be written
    """

    def __init__(
        self,
        writer: RotatingWriter | StreamWriter,
        redactor: Redactor,
        fmt: str = "json",
        *,
        logger: str | None = None,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self.writer = writer
        self.redactor = redactor
        self.console = fmt == "console"
        self._time = UtcTime()
        self._logger_json = f',"logger":{_encode_str(logger)}' if logger else ""
        self.on_error = on_error
        self._pending: deque[Fields] = deque()
        self._drain_lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = True
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- the request thread's part ---------------------------------------------------------

    @staticmethod
    def fields(request: Request, response: Response, cost: float) -> Fields:
        """What a line needs, taken from a finished request: references, nothing built.

        :param cost: seconds the request took
        """
        trace = request.ctx.get(TRACE_CONTEXT)
        return (
            request.started_at,
            request.client_ip,
            request.reqid,
            request.parent_reqid,
            trace,
            request.method,
            request.path,
            response.status,
            request.stat,
            cost,
            request.user,
            request.timings,
            request.parsed_params(),
            request.error,
            request.res,
        )

    def write(self, request: Request, response: Response, cost: float) -> None:
        """Record ``request`` in the access log (queued for the writer thread once started).

        :raises OSError: when the file cannot be written (only when not started: the
            writer thread reports its own failures to ``on_error``)
        """
        item = self.fields(request, response, cost)
        if self._thread is None:
            self.writer.write(self.format(item))
            return
        pending = self._pending
        pending.append(item)
        if self._thread is None or len(pending) > MAX_PENDING:
            # stopped meanwhile (stop() drained before our append), or the disk lags
            self._write_pending()
            return
        if self._idle:
            self._idle = False
            self._wake.set()

    # -- the writer thread ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread (idempotent)."""
        if self._thread is not None:
            return
        STARTED.add(self)
        self._stopping = False
        thread = threading.Thread(target=self._run, name="butterfly-access-log", daemon=True)
        self._thread = thread
        thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Write every queued line and stop the writer thread; later lines are written at once."""
        thread = self._thread
        if thread is None:
            return
        self._stopping = True
        self._wake.set()
        thread.join(timeout)
        self._thread = None
        STARTED.discard(self)
        # NOTE: a request thread that appended after the thread's last look is drained
        # here; one appending after this sees _thread None and drains itself.
        self._write_pending()

    def flush(self) -> None:
        """Write what is queued now, on this thread (tests, diagnostics)."""
        self._write_pending()

    def _run(self) -> None:
        wake = self._wake
        while True:
            wake.wait()
            wake.clear()
            while True:
                # PERF: gather for BATCH_WINDOW before writing: a busy server then wakes this
                # thread once per batch, not once per request (each wake-up costs both threads).
                if not self._stopping:
                    wake.wait(BATCH_WINDOW)  # nobody sets it meanwhile but stop()
                self._write_pending()
                self._idle = True
                # NOTE: a line appended after the drain but before _idle was set did not
                # wake us: look again before sleeping.
                if not self._pending:
                    break
                self._idle = False
            if self._stopping:
                return

    def _write_pending(self) -> None:
        pending = self._pending
        if not pending:
            return
        # NOTE: one drainer at a time (the writer thread, flush, stop), so a flush returns
        # only after a batch another thread popped is written too, and lines keep their order.
        with self._drain_lock:
            count = len(pending)
            if not count:
                return
            lines = [self._safe_format(pending.popleft()) for _ in range(count)]
            try:
                self.writer.write(b"".join(lines))
            except (OSError, ValueError) as exc:
                if self.on_error is None:
                    raise
                self.on_error(exc)

    def _safe_format(self, item: Fields) -> bytes:
        try:
            return self.format(item)
        except Exception:  # noqa: BLE001 - a line that cannot be built is logged without its params
            return self.format((*item[:12], {"…": "parameters could not be logged"}, *item[13:]))

    # -- formatting -----------------------------------------------------------------------------

    def record(self, request: Request, response: Response, cost: float) -> dict[str, Any]:
        """The access-log record of a finished request.

        ``params`` are logged only when the handler's protocol already parsed them:
        logging never reads a body (a 404 with a large upload stays unread).

        :param cost: seconds the request took
        """
        return self.record_of(self.fields(request, response, cost))

    def record_of(self, item: Fields) -> dict[str, Any]:
        """The record (a dict, :data:`FIELDS` order) of the fields kept by :meth:`fields`."""
        (started, ip, reqid, parent, trace, method, path, status, stat, cost, user, timings, params, error, res) = item
        record = {
            "time": self._time(started),
            "ip": ip,
            "reqid": reqid,
            "parent_reqid": parent,
            "trace_id": trace.trace_id if trace else None,
            "span_id": trace.span_id if trace else None,
            **({"tracestate": trace.tracestate} if trace and trace.tracestate else {}),
            "method": method,
            "path": path,
            "status": status,
            "stat": stat,
            "cost": round(cost, 6),
            "user": user,
            "talk": _rounded(timings) if timings else {},
            "params": self.redactor.clean(params) if params else params,
            "error": error,
            "res": res,
        }
        record.update(_process_fields())
        return record

    def line(self, request: Request, response: Response, cost: float) -> bytes:
        """The encoded access-log line (with its newline) of a finished request.

        :param cost: seconds the request took
        """
        return self.format(self.fields(request, response, cost))

    def format(self, item: Fields) -> bytes:
        """The encoded line (with its newline) of the fields kept by :meth:`fields`."""
        if self.console:
            return (render_console(self.record_of(item)) + "\n").encode("utf-8", "replace")
        (started, ip, reqid, parent, trace, method, path, status, stat, cost, user, timings, params, error, res) = item
        # PERF: hand-assembled JSON: ~2x faster than building the dict and encoding it.
        # Every string goes through the C string encoder, so nothing can break the line.
        if params:
            redactor = self.redactor
            params_json = redactor.flat_json(params) or _encode(redactor.clean(params))
        else:
            params_json = _NO_PARAMS[params is None]
        # NOTE: trace and span ids are hex by construction (traceparent.py): no escaping.
        trace_json = f'"trace_id":"{trace.trace_id}","span_id":"{trace.span_id}"' if trace else _NO_TRACE
        if trace and trace.tracestate:  # checked, but it may hold quotes and backslashes
            trace_json += f',"tracestate":{_encode_str(trace.tracestate)}'
        text = (
            f'{{"time":"{self._time(started)}","ip":{_json_str(ip)},'
            f'"reqid":{_json_str(reqid)},"parent_reqid":{_json_str(parent)},{trace_json},'
            f'"method":{_json_str(method)},"path":{_json_str(path)},'
            f'"status":{int(status)},"stat":{_json_str(stat)},"cost":{cost:.6f},'
            f'"user":{_json_str(user)},'
            f'"talk":{_encode(_rounded(timings)) if timings else "{}"},"params":{params_json},'
            f'"error":{_json_str(error)},"res":{_encode(res) if res else "[]"}'
            f"{_process_json()}{self._logger_json}}}\n"
        )
        # NOTE: "replace" so a lone surrogate from a JSON body cannot lose the line.
        return text.encode("utf-8", "replace")


_NO_TRACE = '"trace_id":null,"span_id":null'


def _process_fields() -> dict[str, Any]:
    """``worker``/``pid`` under ``run --workers`` (``kernel.logs.PROCESS_FIELDS``), else nothing."""
    # NOTE: read per line: the fields are filled in after the plugin is imported.
    return getattr(kernel_logs, "PROCESS_FIELDS", None) or {}


def _process_json() -> str:
    fields = _process_fields()
    if not fields:  # PERF: the single-process case costs one lookup and one truth test
        return ""
    return "".join(f",{_encode_str(str(key))}:{_json_str(value)}" for key, value in fields.items())


def _rounded(timings: dict[str, float]) -> dict[str, float]:
    return {name: round(ms, 3) for name, ms in timings.items()}


def _json_str(value: Any) -> str:
    """``value`` as a JSON string literal (``null`` for ``None``)."""
    if value.__class__ is str:
        return _encode_str(value)
    if value is None:
        return "null"
    return _encode(value if isinstance(value, int | float) else str(value))


def _plain(value: Any) -> str:
    """A console field: bare when it is a simple token, else JSON-quoted (no injection)."""
    if value is None or value == "" or value == [] or value == {}:
        return "-"
    if isinstance(value, str):
        if value.isprintable() and " " not in value:
            return value
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float):
        return str(value)
    return _encode(value)


def render_console(record: dict[str, Any]) -> str:
    """``time ip reqid METHOD path status stat cost=... user=... talk=... params=...``."""
    talk = ";".join(f"{name}={ms:.3f}" for name, ms in record["talk"].items()) or "-"
    parent = f" parent={_plain(record['parent_reqid'])}" if record["parent_reqid"] else ""
    return (
        f"{record['time']} {_plain(record['ip'])} {_plain(record['reqid'])}{parent} "
        f"{_plain(record['method'])} {_plain(record['path'])} {record['status']} "
        f"{_plain(record['stat'])} cost={record['cost']:.6f} user={_plain(record['user'])} "
        f"talk={_plain(talk)} params={_plain(record['params'])} error={_plain(record['error'])} "
        f"res={_plain(record['res'])}" + "".join(f" {key}={_plain(record[key])}" for key in record if key not in FIELDS)
    )
