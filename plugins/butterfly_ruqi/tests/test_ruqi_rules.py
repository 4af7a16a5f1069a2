"""Rules → occurrences: cron seconds/day-of-week/crontab, DST, intervals, dates, bad rules."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from butterfly_ruqi.rules import RuleError, build_trigger, format_ms, next_at_or_after, parse_interval, upcoming

UTC = UTC


def ms(*args, tz=UTC) -> int:
    return round(datetime(*args, tzinfo=tz).timestamp() * 1000)


def local(values, zone):
    return [format_ms(v, zone) for v in values]


def test_cron_seconds_field_fires_on_those_seconds():
    trigger = build_trigger("cron", "*/20 * * * * *", "UTC", 0)
    assert local(upcoming(trigger, ms(2030, 1, 1, 0, 0, 5), 4), "UTC") == [
        "2030-01-01T00:00:20.000+00:00",
        "2030-01-01T00:00:40.000+00:00",
        "2030-01-01T00:01:00.000+00:00",
        "2030-01-01T00:01:20.000+00:00",
    ]


def test_six_field_day_of_week_uses_apscheduler_numbers_like_the_original():
    # 2030-01-07 is a Monday; 0 = Monday in the original's 6-field rules
    trigger = build_trigger("cron", "0 0 12 * * 0", "UTC", 0)
    first = next_at_or_after(trigger, ms(2030, 1, 1))
    assert format_ms(first) == "2030-01-07T12:00:00.000+00:00"


def test_five_field_crontab_day_of_week_uses_crontab_numbers():
    # crontab: 0 and 7 = Sunday; 2030-01-06 is a Sunday
    for rule in ("30 6 * * 0", "30 6 * * 7", "30 6 * * sun"):
        trigger = build_trigger("cron", rule, "UTC", 0)
        assert format_ms(next_at_or_after(trigger, ms(2030, 1, 1))) == "2030-01-06T06:30:00.000+00:00", rule
    weekdays = build_trigger("cron", "0 9 * * 1-5", "UTC", 0)
    days = [datetime.fromtimestamp(v / 1000, UTC).strftime("%a") for v in upcoming(weekdays, ms(2030, 1, 5), 6)]
    assert days == ["Mon", "Tue", "Wed", "Thu", "Fri", "Mon"]  # 2030-01-05 is a Saturday
    every_other = build_trigger("cron", "0 9 * * */2", "UTC", 0)  # crontab: sun, tue, thu, sat
    days = [datetime.fromtimestamp(v / 1000, UTC).strftime("%a") for v in upcoming(every_other, ms(2030, 1, 5), 4)]
    assert days == ["Sat", "Sun", "Tue", "Thu"]


def test_cron_across_spring_forward_in_berlin_keeps_local_time():
    trigger = build_trigger("cron", "0 0 9 * * *", "Europe/Berlin", 0)
    runs = upcoming(trigger, ms(2024, 3, 29), 4)
    assert local(runs, "UTC") == [
        "2024-03-29T08:00:00.000+00:00",
        "2024-03-30T08:00:00.000+00:00",
        "2024-03-31T07:00:00.000+00:00",
        "2024-04-01T07:00:00.000+00:00",
    ]


def test_cron_in_the_skipped_hour_fires_once_that_day():
    trigger = build_trigger("cron", "0 30 2 * * *", "Europe/Berlin", 0)
    runs = local(upcoming(trigger, ms(2024, 3, 29), 4), "Europe/Berlin")
    assert [r[:10] for r in runs] == ["2024-03-29", "2024-03-30", "2024-03-31", "2024-04-01"]


def test_fixed_hour_cron_fires_once_when_clocks_go_back():
    # New York: 2024-11-03 01:30 happens twice; a daily 01:30 job must run once that day
    trigger = build_trigger("cron", "0 30 1 * * *", "America/New_York", 0)
    runs = local(upcoming(trigger, ms(2024, 11, 1, 12), 4), "America/New_York")
    assert runs == [
        "2024-11-02T01:30:00.000-04:00",
        "2024-11-03T01:30:00.000-04:00",
        "2024-11-04T01:30:00.000-05:00",
        "2024-11-05T01:30:00.000-05:00",
    ]


def test_wildcard_hour_cron_keeps_real_time_through_the_repeated_hour():
    trigger = build_trigger("cron", "0 30 * * * *", "Europe/Berlin", 0)
    runs = upcoming(trigger, ms(2024, 10, 26, 23), 4)
    gaps = {b - a for a, b in itertools.pairwise(runs)}
    assert gaps == {3_600_000}  # hourly in real time, both 02:30 passes included
    assert local(runs, "Europe/Berlin")[1:3] == ["2024-10-27T02:30:00.000+02:00", "2024-10-27T02:30:00.000+01:00"]


def test_interval_anchor_is_one_interval_after_the_next_whole_second():
    trigger = build_trigger("interval", "5m", "UTC", ms(2030, 1, 1) + 250)
    assert upcoming(trigger, 0, 2) == [ms(2030, 1, 1, 0, 5, 1), ms(2030, 1, 1, 0, 10, 1)]


@pytest.mark.parametrize("rule,seconds", [("30s", 30), ("5m", 300), ("1h", 3600), ("1d", 86400), (" 2 h ", 7200)])
def test_interval_units(rule, seconds):
    assert parse_interval(rule) == seconds


def test_date_now_and_naive_datetime_in_the_job_timezone():
    assert upcoming(build_trigger("date", "now", "UTC", 12345), 0, 3) == [12345]
    trigger = build_trigger("date", "2030-06-01 12:00:00", "Europe/Berlin", 0)
    assert upcoming(trigger, 0, 2) == [ms(2030, 6, 1, 10)]
    assert next_at_or_after(trigger, ms(2030, 6, 1, 10) + 1) is None  # past its date: never again


@pytest.mark.parametrize(
    "trigger,rule,timezone_name,param,fragment",
    [
        ("cron", "* * *", "UTC", "rule", "has 3 fields"),
        ("cron", "61 * * * * *", "UTC", "rule", "bad cron rule"),
        ("cron", "* * * * * funday", "UTC", "rule", "bad cron rule"),
        ("cron", "0 0 * * 9", "UTC", "rule", "0-7"),
        ("interval", "10", "UTC", "rule", "<number><unit>"),
        ("interval", "0s", "UTC", "rule", "at least 1s"),
        ("interval", "5w", "UTC", "rule", "<number><unit>"),
        ("interval", "999d", "UTC", "rule", "366 days"),
        ("date", "tomorrow", "UTC", "rule", "'now' or a date"),
        ("cron", "* * * * * *", "Mars/Olympus", "timezone", "unknown timezone"),
        ("cron", "* * * * * *", "../../etc/passwd", "timezone", "unknown timezone"),
        ("weekly", "x", "UTC", "job_trigger", "unknown trigger"),
    ],
)
def test_bad_rules_name_the_problem(trigger, rule, timezone_name, param, fragment):
    with pytest.raises(RuleError) as caught:
        build_trigger(trigger, rule, timezone_name, 0)
    assert caught.value.param == param
    assert fragment in caught.value.reason
