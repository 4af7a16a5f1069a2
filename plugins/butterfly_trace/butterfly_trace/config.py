"""The ``[trace]`` settings."""

from __future__ import annotations

from typing import Any

from butterfly_trace.client_ip import proxy_list
from kernel.settings import as_int

SECTION = "trace"
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
#: Where the logs go (``[trace] log_to``).
LOG_TO = ("files", "stdout")


def non_negative_int(value: Any) -> int:
    """Setting converter: an integer ``>= 0``."""
    number = as_int(value)
    if number < 0:
        raise ValueError(f"expected an integer >= 0, got {number}")
    return number


def non_negative_float(value: Any) -> float:
    """Setting converter: a number ``>= 0`` (booleans refused)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    number = float(value)
    if number < 0:
        raise ValueError(f"expected a number >= 0, got {number}")
    return number


def metrics_token(value: Any) -> str:
    """Setting converter: empty, or a token of 16 to 256 printable ASCII characters."""
    token = str(value or "").strip()
    if token and not (16 <= len(token) <= 256 and token.isascii() and token.isprintable() and " " not in token):
        raise ValueError("expected 16 to 256 printable ASCII characters without spaces")
    return token


def declare(settings) -> None:
    """Declare every ``[trace]`` setting.

    :param settings: the kernel's :class:`kernel.settings.Settings`
    """
    add = settings.add
    add(
        SECTION,
        "trusted_proxies",
        proxy_list,
        [],
        "IPs/CIDRs of reverse proxies whose X-Real-IP / X-Forwarded-For are believed",
        owner="trace",
    )
    add(
        SECTION,
        "log_to",
        str,
        "files",
        "where the logs go: files (app.log, err.log, acc.log in [server] log_dir) or stdout "
        "(every log as lines on stdout, for containers; no files)",
        choices=LOG_TO,
        owner="trace",
    )
    add(SECTION, "access_log", bool, True, "write <log_dir>/acc.log (one line per request and call)", owner="trace")
    add(
        SECTION,
        "log_max_bytes",
        non_negative_int,
        DEFAULT_MAX_BYTES,
        "rotate acc.log, app.log and err.log past this size (0: never rotate)",
        owner="trace",
    )
    add(SECTION, "log_backups", non_negative_int, 5, "rotated files kept per log (0: never rotate)", owner="trace")
    add(
        SECTION,
        "redact_keys",
        list,
        [],
        "more parameter-name words whose values are logged as *** (extends the built-in list)",
        owner="trace",
    )
    add(
        SECTION,
        "metrics",
        bool,
        True,
        "count requests per route, served admin-only (or to metrics_token) at /_trace/metrics",
        owner="trace",
    )
    add(
        SECTION,
        "metrics_token",
        metrics_token,
        "",
        "a bearer token that may read /_trace/metrics (and nothing else); empty: admins only",
        secret=True,
        owner="trace",
    )
    add(
        SECTION,
        "slow_threshold",
        non_negative_float,
        1.0,
        "seconds; a slower request also logs a WARNING 'slow request' with its timings (0: off)",
        owner="trace",
    )
