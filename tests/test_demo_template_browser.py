"""``/demo_template/log`` on real waitress, rendered by real headless Chromium.

Three earlier days of history are seeded into ``acc.log``, today's traffic is real
HTTP; the page's SVG charts must show exactly that, with no console errors, and
the screenshot must be a real picture.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import struct
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import pytest

import butterfly_router.plugin
import butterfly_trace.plugin

REPO = Path(__file__).resolve().parents[1]
#: (days ago, OK requests, ERR_BAD_PARAMS requests) written before the server starts.
HISTORY = [(4, 7, 1), (2, 3, 0), (1, 12, 4)]  # day 3 had no traffic


def seed_history(log_dir: Path) -> None:
    """Write earlier days' access-log lines in the trace plugin's JSON-lines format."""
    log_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for days_ago, ok, bad in HISTORY:
        day = (dt.datetime.now() - dt.timedelta(days=days_ago)).replace(hour=9, minute=30)
        for index in range(ok + bad):
            stat = "OK" if index < ok else "ERR_BAD_PARAMS"
            lines.append(
                {
                    "time": day.isoformat(timespec="microseconds"),
                    "ip": "127.0.0.1",
                    "reqid": f"seed{days_ago}{index:04d}",
                    "parent_reqid": None,
                    "method": "GET",
                    "path": "/demo_api/old_report",
                    "status": 200 if stat == "OK" else 400,
                    "stat": stat,
                    "cost": 0.25,
                    "user": None,
                    "talk": {},
                    "params": {},
                    "error": None,
                    "res": [],
                }
            )
    (log_dir / "acc.log").write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")


def fetch(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            reply.read()
            return reply.status
    except urllib.error.HTTPError as error:
        error.read()
        return error.code


def png_facts(data: bytes) -> tuple[int, int, int]:
    """``(width, height, distinct byte values in the decoded pixel rows)`` of a PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    position, idat = 8, b""
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        if kind == b"IDAT":
            idat += data[position + 8 : position + 8 + length]
        position += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


@pytest.mark.slow
def test_report_page_in_chromium(make_kernel, live_server, chromium, tmp_path):
    seed_history(tmp_path / "logs")
    kernel = make_kernel(
        plugins=[butterfly_router.plugin, butterfly_trace.plugin],
        settings={"router.handlers_dir": str(REPO / "handlers")},
    )
    server = live_server(kernel)
    traffic = {
        "/demo_api/hello?str_info=x": (5, 200),
        "/demo_api/hello": (2, 400),
        "/demo_httpapi/teapot": (1, 418),
        "/demo_api/add?a=1&b=2": (2, 200),
        "/no/such/route": (1, 404),
    }
    for path, (times, status) in traffic.items():
        for _ in range(times):
            assert fetch(server.url + path) == status
    today_total = sum(times for times, _ in traffic.values())
    kernel.extensions["trace"].access_log.flush()  # the lines are written off the request thread

    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    external: list[str] = []
    page.on("request", lambda request: None if request.url.startswith(server.url) else external.append(request.url))
    try:
        response = page.goto(server.url + "/demo_template/log", wait_until="load")
        assert response.status == 200
        assert page.title() == "Access log report · Butterfly"

        days = page.locator("#chart-per-day g.day")
        assert days.count() == 5  # 4 days ago .. today, the quiet day included
        totals = [int(days.nth(i).get_attribute("data-total")) for i in range(days.count())]
        errors = [int(days.nth(i).get_attribute("data-errors")) for i in range(days.count())]
        assert totals == [8, 0, 3, 16, today_total]
        assert errors == [1, 0, 0, 4, 4]  # today: 2×400 + 418 + 404
        assert page.locator("#chart-per-day rect.bar").count() == 5
        assert page.locator("#chart-per-day rect.bar-errors").count() == 3  # only days with errors
        labels = page.locator("#chart-per-day text.day-label").all_text_contents()
        assert labels[-1] == dt.date.today().strftime("%m-%d")
        box = page.locator("#chart-per-day rect.bar").last.bounding_box()
        assert box["height"] > 20 and box["width"] > 10  # really drawn, not collapsed

        slices = page.locator("#chart-stats path.slice")
        stats = {
            slices.nth(i).get_attribute("data-stat"): int(slices.nth(i).get_attribute("data-count"))
            for i in range(slices.count())
        }
        seeded_ok = sum(ok for _, ok, _ in HISTORY)
        seeded_bad = sum(bad for _, _, bad in HISTORY)
        assert stats == {"OK": seeded_ok + 7, "ERR_BAD_PARAMS": seeded_bad + 2, "418": 1, "ERR_NOT_FOUND": 1}
        legend = page.locator("#stats-legend li .name").all_text_contents()
        assert legend[0] == "OK" and set(legend) == set(stats)

        rows = page.locator("#chart-slowest g.cost-row")
        paths = [rows.nth(i).get_attribute("data-path") for i in range(rows.count())]
        assert paths[0] == "/demo_api/old_report"  # 250 ms each: the slowest by far
        assert set(paths) == {
            "/demo_api/old_report",
            "/demo_api/hello",
            "/demo_httpapi/teapot",
            "/demo_api/add",
            "/no/such/route",
        }
        widths = [float(rows.nth(i).locator("rect.cost-bar").get_attribute("width")) for i in range(rows.count())]
        assert widths == sorted(widths, reverse=True) and widths[0] == 260

        assert page.locator("#kpi-total .value").text_content() == str(seeded_ok + seeded_bad + today_total)
        error_rows = page.locator("#errors tbody tr")
        assert error_rows.count() == seeded_bad + 4  # 9: under the cap of 10
        assert "GET /no/such/route" in error_rows.first.text_content()  # newest first
        assert not problems, problems
        assert not external, external  # no CDN, no fonts, nothing fetched from elsewhere

        shot = tmp_path / "demo_template.png"
        page.screenshot(path=str(shot), full_page=True)
    finally:
        page.close()
    data = shot.read_bytes()
    width, height, distinct = png_facts(data)
    assert width == 1280 and height >= 900
    assert len(data) > 30_000 and distinct > 64  # a real picture, not a blank single colour
    artifacts = os.environ.get("BUTTERFLY_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        (Path(artifacts) / shot.name).write_bytes(data)
