"""Trigger rules: parse ``cron`` / ``interval`` / ``date`` rules into APScheduler 3 triggers.

Times cross this module as integer milliseconds since the epoch (UTC), because that
is how occurrences are keyed in the store: every instance names an occurrence with
the same integer, whatever its database's datetime precision.

Rules:

- ``cron``: 6 fields, seconds first, as the original ruqi (``second minute hour day
  month day_of_week``; day-of-week numbers follow APScheduler: ``0`` = Monday), or a
  5-field crontab (``minute hour day month day_of_week``; ``0``/``7`` = Sunday, as
  crontab). Names (``mon-fri``) mean the same in both.
- ``interval``: ``<N><unit>`` with unit ``s``, ``m``, ``h`` or ``d`` (``30s``, ``5m``).
  Occurrences are anchored one interval after the whole second the job took effect.
- ``date``: ``now`` or an ISO date/time (``2030-01-02 03:04:05``); a naive time is in
  the job's timezone.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

TRIGGERS = ("cron", "interval", "date")
INTERVAL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
INTERVAL_RE = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
#: crontab day-of-week numbers (0 and 7 are Sunday) as names APScheduler understands
CRONTAB_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_INTERVAL_SECONDS = 366 * 86400


class RuleError(ValueError):
    """A rule or timezone that cannot be used; the message says why."""

    def __init__(self, param: str, reason: str) -> None:
        super().__init__(f"{param}: {reason}")
        self.param = param
        self.reason = reason


def parse_timezone(name: str) -> ZoneInfo | dt_timezone:
    """Return the zone named ``name`` (IANA, e.g. ``Europe/Berlin``, or ``UTC``).

    :raises RuleError: for an unknown or malformed name
    """
    if not isinstance(name, str) or not name.strip():
        raise RuleError("timezone", "must be an IANA zone name such as UTC or Europe/Berlin")
    if name.strip().upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name.strip())
    except (ValueError, KeyError, OSError):
        raise RuleError("timezone", f"unknown timezone {name!r} (use an IANA name such as Europe/Berlin)") from None


def parse_interval(rule: str) -> int:
    """Seconds in an interval rule (``30s``, ``5m``, ``1h``, ``1d``).

    :raises RuleError: when the rule is not ``<N><s|m|h|d>`` or is zero/too long
    """
    match = INTERVAL_RE.match(rule or "")
    if not match:
        raise RuleError(
            "rule", f"interval rule {rule!r} must be <number><unit>, unit one of s, m, h, d (e.g. 30s, 5m, 1h, 1d)"
        )
    seconds = int(match.group(1)) * INTERVAL_UNITS[match.group(2)]
    if seconds <= 0:
        raise RuleError("rule", f"interval rule {rule!r} must be at least 1s")
    if seconds > MAX_INTERVAL_SECONDS:
        raise RuleError("rule", f"interval rule {rule!r} is longer than 366 days")
    return seconds


def _crontab_weekday_item(item: str) -> str:
    """Translate one crontab day-of-week list item to APScheduler names."""
    body, _, step_text = item.partition("/")
    if not re.fullmatch(r"\*|\d+(-\d+)?", body):
        return item  # names (mon-fri) and '?' mean the same to APScheduler
    if (step_text and not step_text.isdigit()) or step_text == "0":
        raise RuleError("rule", f"bad step in day-of-week item {item!r}")
    step = int(step_text) if step_text else 1
    if body == "*":
        first, last = 0, 6
    elif "-" in body:
        first, last = (int(part) for part in body.split("-"))
    else:
        first = last = int(body)
        if step_text:
            last = 6
    if not (0 <= first <= 7 and 0 <= last <= 7) or first > last:
        raise RuleError(
            "rule", f"day-of-week item {item!r} must use 0-7 (0 and 7 are Sunday) in a 5-field crontab rule"
        )
    names = dict.fromkeys(CRONTAB_WEEKDAYS[day] for day in range(first, last + 1, step))
    return ",".join(names)


def crontab_weekdays(field: str) -> str:
    """Translate a crontab day-of-week field (0 = Sunday) into APScheduler names."""
    return ",".join(_crontab_weekday_item(item) for item in field.split(","))


def cron_trigger(rule: str, zone) -> CronTrigger:
    """Build a :class:`CronTrigger` from a 6-field (seconds first) or 5-field rule.

    :raises RuleError: wrong field count or a bad field, with APScheduler's reason
    """
    fields = (rule or "").split()
    if len(fields) == 6:
        second, minute, hour, day, month, day_of_week = fields
    elif len(fields) == 5:
        second = "0"
        minute, hour, day, month, day_of_week = fields
        day_of_week = crontab_weekdays(day_of_week)
    else:
        raise RuleError(
            "rule",
            f"cron rule {rule!r} has {len(fields)} fields; expected 6 "
            "(second minute hour day month day_of_week) or 5 (crontab)",
        )
    try:
        return CronTrigger(
            second=second, minute=minute, hour=hour, day=day, month=month, day_of_week=day_of_week, timezone=zone
        )
    except (ValueError, TypeError) as exc:
        raise RuleError("rule", f"bad cron rule {rule!r}: {exc}") from None


def parse_date(rule: str, zone, now_ms: int) -> int:
    """Milliseconds of a date rule: ``now`` or an ISO date/time in ``zone``.

    :raises RuleError: when the text is not a date/time
    """
    text = (rule or "").strip()
    if text.lower() == "now":
        return now_ms
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise RuleError(
            "rule", f"date rule {rule!r} must be 'now' or a date/time such as 2030-01-02 03:04:05"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return round(moment.timestamp() * 1000)


def build_trigger(job_trigger: str, rule: str, zone_name: str, anchor_ms: int) -> BaseTrigger:
    """Build the APScheduler trigger of a job.

    :param job_trigger: ``cron``, ``interval`` or ``date``
    :param rule: the rule text
    :param zone_name: the job's IANA timezone
    :param anchor_ms: when the rule took effect (interval anchor; ``date now``)
    :raises RuleError: naming ``job_trigger``, ``rule`` or ``timezone``
    """
    zone = parse_timezone(zone_name)
    if job_trigger == "cron":
        return cron_trigger(rule, zone)
    if job_trigger == "interval":
        seconds = parse_interval(rule)
        # NOTE: anchor on a whole second so that "1s" fires on whole seconds everywhere.
        first = datetime.fromtimestamp(math.ceil(anchor_ms / 1000), tz=zone) + timedelta(seconds=seconds)
        return IntervalTrigger(seconds=seconds, start_date=first, timezone=zone)
    if job_trigger == "date":
        run_ms = parse_date(rule, zone, anchor_ms)
        return DateTrigger(run_date=datetime.fromtimestamp(run_ms / 1000, tz=zone), timezone=zone)
    raise RuleError("job_trigger", f"unknown trigger {job_trigger!r}; valid: {', '.join(TRIGGERS)}")


def to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime."""
    return round(moment.timestamp() * 1000)


def next_at_or_after(trigger: BaseTrigger, at_ms: int) -> int | None:
    """The first occurrence of ``trigger`` at or after ``at_ms``, or ``None``.

    # NOTE: always asks with ``previous_fire_time=None`` so that the answer depends
    # only on the rule and ``at_ms`` — never on what this instance saw before —
    # which is what lets every instance name the same occurrences.
    """
    while True:
        moment = datetime.fromtimestamp(at_ms / 1000, tz=UTC)
        found = trigger.get_next_fire_time(None, moment)
        if found is None:
            return None
        found_ms = to_ms(found)
        if found_ms < at_ms:
            return None  # DateTrigger answers its date whatever "now" is
        if isinstance(trigger, CronTrigger) and _repeated_wall_time(trigger, found):
            at_ms = found_ms + 1
            continue
        return found_ms


def _repeated_wall_time(trigger: CronTrigger, moment: datetime) -> bool:
    """True for the second pass of an hour repeated when DST ends, for fixed-hour rules.

    # NOTE: APScheduler 3 fires ``0 30 2 * * *`` twice on the night clocks go back.
    # Like Vixie cron, a rule with a fixed hour fires once (in the first pass);
    # a rule whose hour is ``*`` keeps firing in real time through both passes.
    """
    local = moment.astimezone(trigger.timezone)
    if not local.fold or local.replace(fold=0).utcoffset() == local.utcoffset():
        return False
    hour = next(field for field in trigger.fields if field.name == "hour")
    return str(hour) != "*"


def upcoming(trigger: BaseTrigger, after_ms: int, count: int) -> list[int]:
    """The next ``count`` occurrences strictly after ``after_ms``."""
    found: list[int] = []
    cursor = after_ms + 1
    while len(found) < count:
        nxt = next_at_or_after(trigger, cursor)
        if nxt is None:
            break
        found.append(nxt)
        cursor = nxt + 1
    return found


def format_ms(value: int | None, zone_name: str = "UTC") -> str | None:
    """ISO text of a millisecond timestamp in ``zone_name`` (``None`` stays ``None``)."""
    if value is None:
        return None
    try:
        zone = parse_timezone(zone_name)
    except RuleError:
        zone = UTC
    return datetime.fromtimestamp(value / 1000, tz=zone).isoformat(timespec="milliseconds")
