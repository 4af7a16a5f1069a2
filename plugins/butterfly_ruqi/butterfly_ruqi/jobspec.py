"""A job's definition (:class:`JobSpec`) and the checks ``add_job`` / ``modify_job`` run.

Values arrive from JSON, forms, the CLI or Python; :func:`normalize_job` converts
them (``"true"`` → ``True``, a JSON text → a dict) and reports every bad field as
``ERR_BAD_PARAMS`` with ``errors: [{"param", "reason"}]``.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from butterfly_ruqi.rules import TRIGGERS, RuleError, build_trigger
from kernel import BadRequest

JOB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
MAX_TIMEOUT = 7 * 86400
MAX_CONCURRENT = 100
#: fields ``modify_job`` may change (everything but the id)
EDITABLE = (
    "job_name",
    "job_trigger",
    "rule",
    "job_type",
    "target",
    "payload",
    "options",
    "timezone",
    "timeout",
    "misfire_grace",
    "coalesce",
    "max_concurrent",
)
#: fields whose change restarts the schedule (new anchor, occurrences counted from now)
SCHEDULE_FIELDS = ("job_trigger", "rule", "timezone")


@dataclass
class JobSpec:
    """A job's definition, as stored in ``ruqi_job`` (without scheduler state)."""

    job_id: str
    job_name: str
    job_trigger: str
    rule: str
    job_type: str
    target: str
    payload: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    timezone: str = "UTC"
    timeout: float = 300.0
    misfire_grace: float = 60.0
    coalesce: bool = False
    max_concurrent: int = 1

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the definition."""
        return asdict(self)

    @classmethod
    def from_row(cls, row) -> JobSpec:
        """Snapshot a ``RuqiJob`` row."""
        return cls(
            job_id=row.job_id,
            job_name=row.job_name,
            job_trigger=row.job_trigger,
            rule=row.rule,
            job_type=row.job_type,
            target=row.target,
            payload=_plain(row.payload),
            options=_plain(row.options),
            timezone=row.timezone,
            timeout=row.timeout,
            misfire_grace=row.misfire_grace,
            coalesce=row.coalesce,
            max_concurrent=row.max_concurrent,
        )


def _plain(value: Any) -> dict[str, Any]:
    """A plain ``dict`` copy of a pony JSON value (its tracked dicts cannot be copied field by field)."""
    return json.loads(json.dumps(value)) if value else {}


class _Errors:
    """Collects ``{"param", "reason"}`` errors so one reply names them all."""

    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, param: str, reason: str) -> None:
        self.items.append({"param": param, "reason": reason})

    def raise_if_any(self) -> None:
        if self.items:
            summary = "; ".join(f"{e['param']}: {e['reason']}" for e in self.items)
            raise BadRequest(summary, data={"errors": self.items})


def to_bool(value: Any) -> bool:
    """``true/false/1/0/yes/no/on/off`` or a bool."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        return value.strip().lower() in ("1", "true", "yes", "on")
    raise ValueError(f"expected true or false, got {value!r}")


def to_object(value: Any, name: str) -> dict[str, Any]:
    """A JSON object from a dict, a JSON text or ``None`` (→ ``{}``)."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ValueError(f"{name} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a JSON object, got {type(value).__name__}")
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be JSON-serialisable: {exc}") from None
    return value


def _number(value: Any, kind, low, high, name: str):
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not low <= number <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {number}")
    return number


def normalize_job(values: dict[str, Any], defaults: dict[str, Any], registry, kernel, now_ms: int) -> JobSpec:
    """Convert and check a job definition; run its job type's own checks.

    :param values: the raw fields (missing optional fields take ``defaults``)
    :param defaults: ``timezone``, ``timeout``, ``misfire_grace`` defaults
    :param registry: the :class:`~butterfly_ruqi.jobtypes.JobTypeRegistry`
    :param kernel: passed to the job type's ``validate``
    :param now_ms: the time the rule would take effect (for ``date now``)
    :raises kernel.BadRequest: every bad field, with ``errors``
    :return: the :class:`JobSpec`
    """
    errors = _Errors()
    clean: dict[str, Any] = {}
    for name in ("job_id", "job_trigger", "rule", "job_type", "target"):
        value = values.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            errors.add(name, "missing")
        elif not isinstance(value, str):
            errors.add(name, f"must be a string, got {type(value).__name__}")
        else:
            clean[name] = value.strip()
    if "job_id" in clean and not JOB_ID_RE.match(clean["job_id"]):
        errors.add("job_id", "1-64 characters: letters, digits, _ . : - (not starting with a symbol)")
    if "job_trigger" in clean and clean["job_trigger"] not in TRIGGERS:
        errors.add("job_trigger", f"must be one of {', '.join(TRIGGERS)}, got {clean['job_trigger']!r}")
    if len(clean.get("rule", "")) > 128:
        errors.add("rule", "longer than 128 characters")
    if len(clean.get("target", "")) > 1024:
        errors.add("target", "longer than 1024 characters")
    name = values.get("job_name") or clean.get("job_id", "")
    clean["job_name"] = str(name)[:128]
    converters = (
        ("payload", lambda v: to_object(v, "payload"), {}),
        ("options", lambda v: to_object(v, "options"), {}),
        ("timezone", lambda v: str(v).strip(), defaults["timezone"]),
        ("timeout", lambda v: _number(v, float, 0.1, MAX_TIMEOUT, "timeout"), defaults["timeout"]),
        ("misfire_grace", lambda v: _number(v, float, 1, MAX_TIMEOUT, "misfire_grace"), defaults["misfire_grace"]),
        ("coalesce", to_bool, False),
        ("max_concurrent", lambda v: _number(v, int, 1, MAX_CONCURRENT, "max_concurrent"), 1),
    )
    for name, convert, default in converters:
        value = values.get(name)
        try:
            clean[name] = default if value is None else convert(value)
        except ValueError as exc:
            errors.add(name, str(exc))
    errors.raise_if_any()
    try:
        build_trigger(clean["job_trigger"], clean["rule"], clean["timezone"], now_ms)
    except RuleError as exc:
        errors.add(exc.param, exc.reason)
    errors.raise_if_any()
    spec = JobSpec(**clean)
    registry.get(spec.job_type).validate(kernel, spec)
    return spec
