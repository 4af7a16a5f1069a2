"""The access-log statistics and chart geometry behind ``/demo_template/log``."""

from __future__ import annotations

import datetime as dt
import importlib
import json
import math
import re
from pathlib import Path

import pytest

import butterfly_router.plugin
import butterfly_trace.plugin
from butterfly_trace.access import render_console

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def modules(make_kernel):
    """``(report, charts)`` imported the way the router imports the app (package ``handlers``)."""
    make_kernel(
        plugins=[butterfly_router.plugin, butterfly_trace.plugin],
        settings={"router.handlers_dir": str(REPO / "handlers")},
    )
    return (
        importlib.import_module("handlers.demo_template.report"),
        importlib.import_module("handlers.demo_template.charts"),
    )


def record(day: str, path: str = "/demo_api/hello", stat: str = "OK", cost: float = 0.001, **extra) -> dict:
    return {
        "time": f"{day}T10:00:00.000001",
        "ip": "127.0.0.1",
        "reqid": "r" + day,
        "parent_reqid": None,
        "method": "GET",
        "path": path,
        "status": 200,
        "stat": stat,
        "cost": cost,
        "user": None,
        "talk": {},
        "params": {},
        "error": None,
        "res": [],
        **extra,
    }


def write_log(path: Path, records: list[dict], tail: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail, encoding="utf-8")
    return path


def test_report_counts_days_stats_and_slowest_paths(modules, tmp_path):
    report_module, _ = modules
    records = (
        [record("2024-05-01")] * 3
        + [record("2024-05-02", stat="ERR_BAD_PARAMS", cost=0.004)] * 2
        + [record("2024-05-02", path="/slow", cost=0.5)]
        + [record("2024-05-03", path="/demo_template/log")]
    )
    report = report_module.build_report(write_log(tmp_path / "acc.log", records))
    assert report.exists and report.total == 6 and report.errors == 2
    assert report.per_day == [("2024-05-01", 3, 0), ("2024-05-02", 3, 2)]  # the report page is skipped
    assert report.stats == [("OK", 4), ("ERR_BAD_PARAMS", 2)]
    assert [t.path for t in report.slowest] == ["/slow", "/demo_api/hello"]
    assert report.slowest[0].average == pytest.approx(0.5)
    assert report.slowest[1].count == 5 and report.slowest[1].maximum == pytest.approx(0.004)
    assert [row["stat"] for row in report.recent_errors] == ["ERR_BAD_PARAMS", "ERR_BAD_PARAMS"]
    assert report.error_rate == pytest.approx(2 / 6)
    assert report.distinct_paths == 2


def test_report_fills_quiet_days_with_zeros(modules, tmp_path):
    report_module, _ = modules
    records = [record("2024-02-27"), record("2024-03-02", stat="ERR")]
    report = report_module.build_report(write_log(tmp_path / "acc.log", records))
    assert report.per_day == [
        ("2024-02-27", 1, 0),
        ("2024-02-28", 0, 0),
        ("2024-02-29", 0, 0),
        ("2024-03-01", 0, 0),
        ("2024-03-02", 1, 1),
    ]
    spread = [record("2023-01-01"), record("2024-01-01")]
    report = report_module.build_report(write_log(tmp_path / "acc.log", spread), max_days=7)
    assert [day for day, _, _ in report.per_day] == [f"2023-12-{d}" for d in range(26, 32)] + ["2024-01-01"]
    assert report.total == 2


def test_report_keeps_only_the_most_recent_days(modules, tmp_path):
    report_module, _ = modules
    start = dt.date(2024, 1, 1)
    records = [record((start + dt.timedelta(days=i)).isoformat()) for i in range(40)]
    report = report_module.build_report(write_log(tmp_path / "acc.log", records), max_days=30)
    assert len(report.per_day) == 30
    assert report.per_day[-1][0] == "2024-02-09" and report.total == 40


def test_report_skips_garbage_lines_and_a_partial_last_line(modules, tmp_path):
    report_module, _ = modules
    path = write_log(
        tmp_path / "acc.log",
        [record("2024-05-01")],
        tail='not json\n[1, 2]\n{"no_path": 1}\n\xff\n{"time": "2024-05-01T1',
    )
    path.write_bytes(path.read_bytes().replace("ÿ".encode(), b"\xff"))
    report = report_module.build_report(path)
    assert report.total == 1
    assert report.skipped_lines == 4  # the unfinished last line is not counted: it is still being written


def test_report_reads_only_the_tail(modules, tmp_path):
    report_module, _ = modules
    records = [record("2024-05-01", path=f"/p{i:04d}") for i in range(2000)]
    path = write_log(tmp_path / "acc.log", records)
    line_size = len(json.dumps(records[0])) + 1
    report = report_module.build_report(path, limit=line_size * 10 + 5)
    assert report.truncated and report.file_size == path.stat().st_size
    assert report.bytes_read == line_size * 10 + 5
    assert report.total == 10 and report.skipped_lines == 0  # the cut first line is dropped, not miscounted
    assert report.slowest and all(t.path >= "/p1990" for t in report.slowest)


def test_report_reads_the_console_format_of_run_dev(modules, tmp_path):
    report_module, _ = modules
    lines = [
        render_console(
            record("2024-05-01", path="/a b", stat="ERR_X", error="bad = thing", cost=0.25, params={"q": "two words"})
        ),
        render_console(record("2024-05-02", parent_reqid="P1")),
    ]
    path = tmp_path / "acc.log"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = report_module.build_report(path)
    assert report.total == 2 and report.skipped_lines == 0
    assert report.per_day == [("2024-05-01", 1, 1), ("2024-05-02", 1, 0)]
    assert report.slowest[0].path == "/a b" and report.slowest[0].average == pytest.approx(0.25)
    assert report.recent_errors[0]["error"] == "bad = thing"


def test_report_of_a_missing_log(modules, tmp_path):
    report_module, _ = modules
    report = report_module.build_report(tmp_path / "nope.log")
    assert not report.exists and report.total == 0 and report.error_rate == 0.0


def test_report_folds_rare_stats_into_other(modules, tmp_path):
    report_module, _ = modules
    records = [record("2024-05-01", stat=f"ERR_{i}") for i in range(12)] + [record("2024-05-01")] * 5
    report = report_module.build_report(write_log(tmp_path / "acc.log", records))
    assert len(report.stats) == report_module.MAX_STATS
    assert report.stats[0] == ("OK", 5) and report.stats[-1][0] == "other"
    assert sum(count for _, count in report.stats) == 17


def test_report_tolerates_odd_field_types(modules, tmp_path):
    report_module, _ = modules
    odd = [
        record("2024-05-01", cost="0.5"),
        record("2024-05-01", cost=None),
        {"path": "/x", "time": 1714557600},
        {"path": "/y", "time": "yesterday", "stat": None},
    ]
    report = report_module.build_report(write_log(tmp_path / "acc.log", odd))
    assert report.total == 4
    assert sum(total for _, total, _ in report.per_day) == 3  # "yesterday" has no day


def test_percentile_nearest_rank(modules):
    report_module, _ = modules
    values = [float(i) for i in range(1, 101)]
    assert report_module.percentile(values, 0.5) == 50.0
    assert report_module.percentile(values, 0.95) == 95.0
    assert report_module.percentile([3.0], 0.95) == 3.0
    assert report_module.percentile([], 0.5) == 0.0


def test_day_bars_geometry(modules):
    _, charts = modules
    chart = charts.day_bars([("2024-05-01", 10, 0), ("2024-05-02", 40, 10)], width=400, height=200)
    assert [bar.label for bar in chart.bars] == ["05-01", "05-02"]
    tall, short = chart.bars[1], chart.bars[0]
    assert tall.height == pytest.approx(short.height * 4)
    assert tall.y + tall.height == pytest.approx(chart.bottom)
    assert tall.error_height == pytest.approx(tall.height / 4)
    assert chart.ticks[0][1] == "0" and chart.ticks[-1][1] == "40"
    assert all(chart.left <= bar.x and bar.x + bar.width <= chart.right for bar in chart.bars)


def test_day_bars_label_density_and_integer_ticks(modules):
    _, charts = modules
    days = [(f"2024-05-{i:02d}", 1, 0) for i in range(1, 31)]
    chart = charts.day_bars(days)
    shown = [bar for bar in chart.bars if bar.show_label]
    assert 10 <= len(shown) <= 15 and chart.bars[-1].show_label
    assert [label for _, label in chart.ticks] == ["0", "1", "2", "3", "4"]
    assert charts.day_bars([]).bars == []


def test_donut_slices_cover_the_circle(modules):
    _, charts = modules
    slices = charts.donut([("OK", 3), ("ERR_A", 1)])
    assert [s.color for s in slices] == [charts.OK_COLOR, charts.PALETTE[0]]
    assert sum(s.share for s in slices) == pytest.approx(1.0)
    assert all(s.path.startswith("M") and s.path.endswith("Z") for s in slices)
    full = charts.donut([("OK", 7)])[0]
    # a 100 % slice is drawn as two half arcs per ring, so it still renders
    assert full.path.count("A") == 4
    numbers = [float(n) for n in re.findall(r"-?\d+\.\d+", full.path)]
    assert all(0 <= n <= 220 for n in numbers) and not any(math.isnan(n) for n in numbers)


def test_cost_bars_scale_to_the_slowest(modules):
    report_module, charts = modules
    timings = [report_module.PathTiming("/a", 1, 0.2, 0.2, 0.2), report_module.PathTiming("/b", 1, 0.05, 0.05, 0.05)]
    rows = charts.cost_bars(timings, width=200)
    assert [row.width for row in rows] == [200, 50] and [row.y for row in rows] == [0, 30]
    assert charts.format_ms(0.00042) == "0.42 ms" and charts.format_ms(0.0123) == "12.3 ms"
    assert charts.format_ms(1.25) == "1,250 ms"


def test_errors_are_statuses_from_400_and_non_ok_stats_of_json_routes(modules, tmp_path):
    report_module, _ = modules
    records = [
        record("2024-05-01", path="/canghai/", stat="200"),  # an HTML page view: its stat is its status
        record("2024-05-01", path="/demo_download/file", stat="200"),  # a file
        record("2024-05-01", path="/demo_api/hello", stat="ERR_BAD_PARAMS", status=400),  # 400
        record("2024-05-01", path="/demo_httpapi/teapot", stat="418", status=418),  # a raw handler's 418
        record("2024-05-01", path="/demo_api/add", stat="ERR_NOT_ALLOWED"),  # JSON business error, HTTP 200
        record("2024-05-01", path="/page/with/json/stat", stat="ERR_ODD"),  # a raw route that is not JSON
        record("2024-05-01", path="/demo_api/hello", stat="OK"),
    ]
    json_routes = {"/demo_api/hello", "/demo_api/add"}
    report = report_module.build_report(write_log(tmp_path / "acc.log", records), json_route=json_routes.__contains__)
    assert report.total == 7 and report.errors == 3
    assert [row["path"] for row in report.recent_errors] == ["/demo_api/add", "/demo_httpapi/teapot", "/demo_api/hello"]
    assert report.recent_errors[1]["status"] == "418"
    # without the route table a numeric stat is still judged as a status, and a word stat as a JSON stat
    assert report_module.build_report(tmp_path / "acc.log").errors == 4


def test_the_live_page_does_not_count_page_views_as_errors(make_kernel, tmp_path):
    kernel = make_kernel(
        plugins=[butterfly_router.plugin, butterfly_trace.plugin],
        settings={"router.handlers_dir": str(REPO / "handlers")},
    )
    from kernel.testing import Client

    client = Client(kernel)
    for path in ("/", "/", "/demo_api/hello?str_info=x", "/demo_api/hello"):
        client.get(path, headers={"Accept": "text/html"})
    page = client.get("/demo_template/log", headers={"Accept": "text/html"}).text
    assert '<span class="value">4</span>' in page  # 4 requests: two console views, an OK, a 400
    assert 'id="kpi-error-rate"><span class="label">Error rate</span><span class="value bad">25.0 %' in page
    assert "Access report" in page and 'aria-current="page">Access report</a>' in page  # in the shared bar
