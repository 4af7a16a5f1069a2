"""The access log: one line per HTTP request and per in-process call.

PERF: this runs for every request, so it bypasses structlog and stdlib logging:
the JSON line is assembled directly (every string through the C JSON string
encoder) and handed to a group-committing
:class:`~butterfly_trace.files.RotatingWriter`. Measured cost is in the README.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from butterfly_trace.files import RotatingWriter
from butterfly_trace.redact import Redactor
from kernel import logs as kernel_logs

if TYPE_CHECKING:
    from kernel import Request, Response

#: Field order of every access-log record.
FIELDS = (
    "time",
    "ip",
    "reqid",
    "parent_reqid",
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


class LocalTime:
    """ISO local timestamps (``2024-05-01T12:00:00.123456``), the same shape as app.log."""

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
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(second))
            self._cache = (second, prefix)
        return f"{prefix}.{int((timestamp - second) * 1_000_000):06d}"


class AccessLog:
    """Builds and writes access-log records.

    :param writer: where lines go (``<log_dir>/acc.log``)
    :param redactor: cleans the parameters
    :param fmt: ``json`` (one object per line) or ``console`` (readable, ``run --dev``)
    """

    def __init__(self, writer: RotatingWriter, redactor: Redactor, fmt: str = "json") -> None:
        self.writer = writer
        self.redactor = redactor
        self.console = fmt == "console"
        self._time = LocalTime()

    def record(self, request: Request, response: Response, cost: float) -> dict[str, Any]:
        """The access-log record of a finished request.

        ``params`` are logged only when the handler's protocol already parsed them:
        logging never reads a body (a 404 with a large upload stays unread).

        :param cost: seconds the request took
        """
        params = request.parsed_params()
        timings = request.timings
        record = {
            "time": self._time(request.started_at),
            "ip": request.client_ip,
            "reqid": request.reqid,
            "parent_reqid": request.parent_reqid,
            "method": request.method,
            "path": request.path,
            "status": response.status,
            "stat": request.stat,
            "cost": round(cost, 6),
            "user": request.user,
            "talk": _rounded(timings) if timings else {},
            "params": self.redactor.clean(params) if params else params,
            "error": request.error,
            "res": request.res,
        }
        record.update(_process_fields())
        return record

    def line(self, request: Request, response: Response, cost: float) -> bytes:
        """The encoded access-log line (with its newline) of a finished request.

        :param cost: seconds the request took
        """
        if self.console:
            text = render_console(self.record(request, response, cost))
        else:
            # PERF: hand-assembled JSON: ~2x faster than building the dict and encoding it.
            # Every string goes through the C string encoder, so nothing can break the line.
            params = request.parsed_params()
            if params:
                redactor = self.redactor
                params_json = redactor.flat_json(params) or _encode(redactor.clean(params))
            else:
                params_json = _NO_PARAMS[params is None]
            timings = request.timings
            res = request.res
            text = (
                f'{{"time":"{self._time(request.started_at)}","ip":{_json_str(request.client_ip)},'
                f'"reqid":{_json_str(request.reqid)},"parent_reqid":{_json_str(request.parent_reqid)},'
                f'"method":{_json_str(request.method)},"path":{_json_str(request.path)},'
                f'"status":{int(response.status)},"stat":{_json_str(request.stat)},"cost":{cost:.6f},'
                f'"user":{_json_str(request.user)},'
                f'"talk":{_encode(_rounded(timings)) if timings else "{}"},"params":{params_json},'
                f'"error":{_json_str(request.error)},"res":{_encode(res) if res else "[]"}'
                f"{_process_json()}}}\n"
            )
            # NOTE: "replace" so a lone surrogate from a JSON body cannot lose the line.
            return text.encode("utf-8", "replace")
        return (text + "\n").encode("utf-8", "replace")

    def write(self, request: Request, response: Response, cost: float) -> None:
        """Record ``request`` in the access log.

        :raises OSError: when the file cannot be written (the caller reports it)
        """
        self.writer.write(self.line(request, response, cost))


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
