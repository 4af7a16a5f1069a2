"""The demo apps in ``handlers/``, in-process through the real router and trace plugins.

Exact replies of DESIGN §4, the error shapes of §3, raw statuses, downloads and
the admin-only log-level handlers.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import pytest

import butterfly_router.plugin
import butterfly_trace.plugin
from kernel.testing import Client

REPO = Path(__file__).resolve().parents[1]
HANDLERS = REPO / "handlers"
DEMO_FILE = HANDLERS / "demo_download" / "files" / "butterfly-demo.html"
RANDSTR = re.compile(r"^[A-Za-z0-9()]+$")


@pytest.fixture
def demo_kernel(make_kernel):
    """A kernel serving the repo's handlers/ with router + trace; the root log level restored after."""
    level = logging.getLogger().level
    kernel = make_kernel(
        plugins=[butterfly_router.plugin, butterfly_trace.plugin],
        settings={"router.handlers_dir": str(HANDLERS), "router.static_dir": str(REPO / "static")},
    )
    yield kernel
    logging.getLogger().setLevel(level)


@pytest.fixture
def client(demo_kernel):
    return Client(demo_kernel)


def access_log(kernel) -> list[dict]:
    """Every record of the kernel's JSON-lines access log."""
    path = Path(kernel.log_dir) / "acc.log"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# -- root and demo_api -------------------------------------------------------------------------------


def test_root_ping_is_served_at_slash_ping(client):
    reply = client.get("/ping")
    assert reply.status == 200
    assert reply.json() == {"stat": "OK"}


def test_demo_api_ping_returns_a_fresh_random_string(client):
    first, second = client.get("/demo_api/ping"), client.get("/demo_api/ping")
    for reply in (first, second):
        assert reply.status == 200
        assert reply.headers["content-type"].startswith("application/json")
        assert reply.headers["demo"] == "1.0.1"
        body = reply.json()
        assert set(body) == {"stat", "randstr"} and body["stat"] == "OK"
        # 64-127 random bytes in unpadded base64 → 86-170 characters of [A-Za-z0-9()]
        assert RANDSTR.match(body["randstr"]) and 86 <= len(body["randstr"]) <= 170
    assert first.json()["randstr"] != second.json()["randstr"]


def test_demo_api_hello_exact_reply(client):
    reply = client.get("/demo_api/hello", query={"str_info": "x"})
    assert reply.status == 200
    assert reply.body == b'{"stat":"OK","str_info":"x"}'
    assert reply.headers["content-type"] == "application/json; charset=utf-8"
    assert reply.headers["demo"] == "1.0.1"
    assert re.fullmatch(r"[0-9a-f]{16}", reply.headers["x-reqid"])
    assert float(reply.headers["x-cost"]) >= 0


@pytest.mark.parametrize("send", ["json", "form", "query"])
def test_demo_api_hello_takes_params_from_query_form_and_json(client, send):
    value = "蝴蝶 & <b>"
    if send == "json":
        reply = client.post("/demo_api/hello", json={"str_info": value})
    elif send == "form":
        reply = client.post("/demo_api/hello", data={"str_info": value})
    else:
        reply = client.get("/demo_api/hello", query={"str_info": value})
    assert reply.status == 200
    assert reply.json() == {"stat": "OK", "str_info": value}


def test_demo_api_hello_keeps_an_empty_string(client):
    assert client.get("/demo_api/hello?str_info=").json() == {"stat": "OK", "str_info": ""}


def test_demo_api_hello_without_str_info_is_a_400_naming_the_param(client):
    reply = client.get("/demo_api/hello")
    assert reply.status == 400
    body = reply.json()
    assert body["stat"] == "ERR_BAD_PARAMS"
    assert [error["param"] for error in body["errors"]] == ["str_info"]
    assert body["errors"][0]["reason"]
    assert "str_info" in reply.headers["x-reason"]


def test_demo_api_hello_rejects_unknown_params_and_bad_json(client):
    unknown = client.get("/demo_api/hello", query={"str_info": "x", "color": "red"})
    assert unknown.status == 400
    assert [error["param"] for error in unknown.json()["errors"]] == ["color"]
    bad_json = client.post("/demo_api/hello", body=b'{"str_info": ', headers={"Content-Type": "application/json"})
    assert bad_json.status == 400
    assert bad_json.json()["stat"] == "ERR_BAD_PARAMS"
    not_object = client.post("/demo_api/hello", json=["x"])
    assert not_object.status == 400


def test_demo_api_add_converts_typed_params(client):
    assert client.get("/demo_api/add?a=2&b=3").json() == {"stat": "OK", "sum": 5}
    assert client.get("/demo_api/add?a=41").json() == {"stat": "OK", "sum": 42}
    assert client.post("/demo_api/add", json={"a": -2, "b": 10}).json() == {"stat": "OK", "sum": 8}


@pytest.mark.parametrize("query, param", [("a=two", "a"), ("a=1&b=1.5", "b"), ("b=2", "a")])
def test_demo_api_add_bad_params(client, query, param):
    reply = client.get("/demo_api/add?" + query)
    assert reply.status == 400
    body = reply.json()
    assert body["stat"] == "ERR_BAD_PARAMS"
    assert param in [error["param"] for error in body["errors"]]


def test_demo_api_steps_timing_points_reach_headers_and_access_log(demo_kernel, client):
    reply = client.get("/demo_api/steps?rounds=2")
    assert reply.status == 200
    assert reply.json() == {"stat": "OK", "rounds": 2, "timings": ["finish", "hash", "prepare"]}
    timing = reply.headers["server-timing"]
    for name in ("prepare", "hash", "finish", "total"):
        assert re.search(rf"\b{name};dur=[\d.]+", timing), timing
    record = next(r for r in access_log(demo_kernel) if r["reqid"] == reply.headers["x-reqid"])
    assert record["path"] == "/demo_api/steps" and record["stat"] == "OK"
    assert set(record["talk"]) == {"prepare", "hash", "finish"}
    assert record["params"] == {"rounds": "2"}


def test_demo_api_steps_out_of_range_is_a_handler_chosen_error_stat(client):
    reply = client.get("/demo_api/steps?rounds=0")
    assert reply.status == 200  # a handler-chosen stat is HTTP 200 (DESIGN §3)
    assert reply.json()["stat"] == "ERR_BAD_PARAMS"
    assert reply.json()["errors"][0]["param"] == "rounds"


def test_demo_api_is_callable_in_process(demo_kernel):
    response = demo_kernel.call("/demo_api/hello", {"str_info": "cli"})
    assert response.status == 200
    assert response.data == {"stat": "OK", "str_info": "cli"}
    record = access_log(demo_kernel)[-1]
    assert record["method"] == "CLI" and record["path"] == "/demo_api/hello"


# -- demo_httpapi ----------------------------------------------------------------------------------------


def test_httpapi_ping_and_hello(client):
    ping = client.get("/demo_httpapi/ping")
    assert ping.status == 200 and ping.headers["content-type"].startswith("application/json")
    assert ping.json()["stat"] == "OK" and RANDSTR.match(ping.json()["randstr"])
    hello = client.get("/demo_httpapi/hello?str_info=x")
    assert hello.status == 200 and hello.json() == {"stat": "OK", "str_info": "x"}
    assert hello.headers["demo"] == "1.0.1"
    missing = client.get("/demo_httpapi/hello")
    assert missing.status == 400 and missing.json()["errors"][0]["param"] == "str_info"


def test_httpapi_create_answers_201_with_location(client):
    reply = client.post("/demo_httpapi/create", data={"name": "new thing"})
    assert reply.status == 201
    assert reply.json() == {"stat": "OK", "name": "new thing"}
    assert reply.headers["location"] == "/demo_httpapi/hello?str_info=new%20thing"
    followed = client.get(reply.headers["location"])
    assert followed.json() == {"stat": "OK", "str_info": "new thing"}


def test_httpapi_create_errors(client):
    assert client.get("/demo_httpapi/create?name=x").status == 405
    too_long = client.post("/demo_httpapi/create", json={"name": "x" * 65})
    assert too_long.status == 422 and too_long.json()["errors"][0]["param"] == "name"
    assert client.post("/demo_httpapi/create", json={}).status == 400


def test_httpapi_custom_statuses(client):
    nothing = client.get("/demo_httpapi/nothing")
    assert nothing.status == 204 and nothing.body == b""
    moved = client.get("/demo_httpapi/moved")
    assert moved.status == 302 and moved.headers["location"] == "/demo_api/ping"
    teapot = client.get("/demo_httpapi/teapot")
    assert teapot.status == 418
    assert teapot.headers["content-type"] == "text/plain; charset=utf-8"
    assert teapot.text.startswith("I'm a teapot")


def test_httpapi_status_lands_in_the_access_log(demo_kernel, client):
    client.get("/demo_httpapi/teapot")
    record = access_log(demo_kernel)[-1]
    assert record["path"] == "/demo_httpapi/teapot" and record["status"] == 418


# -- demo_download ---------------------------------------------------------------------------------------


def test_download_streams_the_demo_file_with_headers(demo_kernel, client):
    reply = client.get("/demo_download/download")
    expected = DEMO_FILE.read_bytes()
    assert reply.status == 200
    assert reply.body == expected
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    assert reply.headers["content-length"] == str(len(expected))
    assert reply.headers["content-disposition"].startswith('attachment; filename="butterfly-demo.html"')
    assert reply.headers["etag"] and reply.headers["last-modified"]
    # the demo file was placed in the router's download dir (under the test's data dir)
    placed = Path(demo_kernel.data_dir) / "downloads" / "demo" / "butterfly-demo.html"
    assert placed.read_bytes() == expected


def test_download_head_sends_headers_only(client):
    reply = client.request("HEAD", "/demo_download/download")
    assert reply.status == 200 and reply.body == b""
    assert reply.headers["content-length"] == str(DEMO_FILE.stat().st_size)
    assert client.post("/demo_download/download").status == 405


def test_download_file_is_confined_to_the_download_dir(client):
    assert client.get("/demo_download/file?name=demo/butterfly-demo.html").status == 200
    assert client.get("/demo_download/file?name=demo/missing.html").status == 404
    for escape in ("../../../../etc/passwd", "/etc/passwd", "demo/../../etc/hostname"):
        reply = client.get("/demo_download/file", query={"name": escape})
        assert reply.status in (403, 404), escape
        assert b"root:" not in reply.body
    assert client.get("/demo_download/file").status == 400


def test_download_replaces_a_planted_symlink(demo_kernel, client, tmp_path):
    client.get("/demo_download/download")
    placed = Path(demo_kernel.data_dir) / "downloads" / "demo" / "butterfly-demo.html"
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve me")
    placed.unlink()
    os.symlink(secret, placed)
    reply = client.get("/demo_download/download")
    assert reply.status == 200 and reply.body == DEMO_FILE.read_bytes()
    assert not placed.is_symlink() and secret.read_text() == "do not serve me"


# -- static demo -----------------------------------------------------------------------------------------


def test_static_demo_page(client):
    reply = client.get("/static/hello.html")
    assert reply.status == 200 and b"Static files work" in reply.body
    assert reply.headers["content-type"].startswith("text/html")


# -- demo_log --------------------------------------------------------------------------------------------


def test_loglevel_get_and_set_round_trip(demo_kernel, client):
    logging.getLogger().setLevel("INFO")
    assert client.get("/demo_log/loglevel_get").json() == {"stat": "OK", "level": "INFO"}
    changed = client.post("/demo_log/loglevel_set", data={"level": "DEBUG"})
    assert changed.status == 200
    assert changed.json() == {"stat": "OK", "level": "DEBUG", "previous": "INFO"}
    assert logging.getLogger().level == logging.DEBUG
    assert client.get("/demo_log/loglevel_get").json()["level"] == "DEBUG"
    # the same level as trace's own admin endpoint reports
    assert client.get("/_trace/loglevel").json()["level"] == "DEBUG"


def test_loglevel_set_inner_call_is_logged_with_the_parent_reqid(demo_kernel, client):
    reply = client.post("/demo_log/loglevel_set", json={"level": "WARNING"})
    assert reply.status == 200
    records = access_log(demo_kernel)
    inner = next(r for r in records if r["path"] == "/_trace/loglevel")
    outer = next(r for r in records if r["path"] == "/demo_log/loglevel_set")
    assert inner["parent_reqid"] == outer["reqid"] == reply.headers["x-reqid"]


@pytest.mark.parametrize("params", [{"level": "LOUD"}, {"level": "10"}, {}])
def test_loglevel_set_rejects_bad_levels(client, params):
    before = logging.getLogger().level
    reply = client.post("/demo_log/loglevel_set", data=params)
    assert reply.status == 400
    assert reply.json()["stat"] == "ERR_BAD_PARAMS"
    assert reply.json()["errors"][0]["param"] == "level"
    assert logging.getLogger().level == before


def test_loglevel_set_is_post_only(client):
    assert client.get("/demo_log/loglevel_set?level=DEBUG").status == 405


@pytest.mark.parametrize("path", ["/demo_log/loglevel_get", "/demo_log/loglevel_set", "/demo_template/log"])
def test_admin_demos_refuse_remote_clients(client, path):
    before = logging.getLogger().level
    reply = (
        client.post(path, data={"level": "DEBUG"}, remote_addr="203.0.113.9")
        if path.endswith("_set")
        else client.get(path, remote_addr="203.0.113.9")
    )
    assert reply.status == 403
    assert reply.json()["stat"] == "ERR_FORBIDDEN"
    proxied = client.get(path, headers={"X-Forwarded-For": "203.0.113.9"})
    assert proxied.status in (403, 405)
    assert logging.getLogger().level == before


def test_emit_reports_enabled_levels_and_writes_app_log(demo_kernel, client):
    logging.getLogger().setLevel("INFO")
    reply = client.get("/demo_log/emit", query={"message": "demo-line-1"})
    assert reply.json() == {"stat": "OK", "enabled": ["INFO", "WARNING"]}
    client.post("/demo_log/loglevel_set", data={"level": "DEBUG"})
    assert client.get("/demo_log/emit?message=demo-line-2").json()["enabled"] == ["DEBUG", "INFO", "WARNING"]
    app_log = (Path(demo_kernel.log_dir) / "app.log").read_text(encoding="utf-8")
    assert "demo-line-2" in app_log
    levels = {
        json.loads(line)["level"] for line in app_log.splitlines() if "demo-line-2" in line and line.startswith("{")
    }
    assert levels == {"debug", "info", "warning"}
    assert client.get("/demo_log/emit", query={"message": "x" * 201}).json()["stat"] == "ERR_BAD_PARAMS"


# -- demo_template (in-process; the browser test renders it in Chromium) ------------------------------------


def test_template_page_renders_the_traffic_escaped(demo_kernel, client):
    for _ in range(3):
        client.get("/demo_api/hello?str_info=x")
    client.get("/demo_api/hello")
    client.get("/<script>alert(1)</script>")
    reply = client.get("/demo_template/log")
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    assert reply.headers["cache-control"] == "no-store"
    assert re.search(r"analysis_log;dur=[\d.]+, template_output;dur=", reply.headers["server-timing"])
    html = reply.text
    # the one shared script of every page, nothing inline, and the logged path is escaped
    assert re.findall(r"<script[^>]*>", html.lower()) == [
        re.search(r'<script src="/_console/console.js\?v=\w+" defer>', html).group(0)
    ]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'id="chart-per-day"' in html and 'id="chart-stats"' in html and 'id="chart-slowest"' in html
    assert 'data-stat="ERR_BAD_PARAMS"' in html and 'data-stat="ERR_NOT_FOUND"' in html
    assert "cdn" not in html.lower() and "http://" not in html and "https://" not in html


def test_template_page_without_traffic_says_so(client):
    reply = client.get("/demo_template/log")
    assert reply.status == 200
    assert 'id="empty"' in reply.text


def test_template_days_out_of_range(client):
    for days in ("0", "367", "many"):
        reply = client.get("/demo_template/log", query={"days": days})
        assert reply.status == 400 and reply.json()["stat"] == "ERR_BAD_PARAMS"


def test_demo_routes_are_listed_with_their_kinds(demo_kernel):
    kinds = {route.path: (route.kind, route.admin) for route in demo_kernel.routes}
    assert kinds["/demo_api/hello"] == ("json", False)
    assert kinds["/demo_httpapi/teapot"] == ("http", False)
    assert kinds["/demo_download/download"] == ("file", False)
    assert kinds["/demo_log/loglevel_set"] == ("json", True)
    assert kinds["/demo_log/loglevel_get"] == ("json", True)
    assert kinds["/demo_template/log"] == ("http", True)
    assert kinds["/ping"] == ("json", False)
    # helpers are not routes
    assert not any(path.endswith(("/_random_string", "/render", "/build_report")) for path in kinds)
