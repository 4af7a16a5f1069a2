"""The /ruqi/ API in-process (SQLite): CRUD, validation errors, admin policy, pagination,
run_job, handler/http job types with the fire id reaching the target."""

from __future__ import annotations

import pytest

from kernel.testing import Client


@pytest.fixture
def api(ruqi_kernel, tmp_path):
    kernel = ruqi_kernel(f"sqlite:///{tmp_path}/ruqi.sqlite")
    return kernel, Client(kernel)


def job(job_id, **fields):
    return {
        "job_id": job_id,
        "job_trigger": "cron",
        "rule": "0 0 3 * * *",
        "job_type": "handler",
        "target": "/ruqi_test/strict",
        "payload": {"count": 1},
        **fields,
    }


def test_add_get_modify_pause_resume_remove(api):
    _kernel, client = api
    reply = client.post("/ruqi/add_job", json=job("nightly", timezone="Europe/Berlin"))
    assert reply.status == 200 and reply.json()["data"]["next_run_time"].endswith(("+01:00", "+02:00"))
    got = client.get("/ruqi/get_job", query={"job_id": "nightly"}).json()["data"]
    assert len(got["next_run_times"]) == 5 and got["last_run"] is None
    assert all(t[11:19] == "03:00:00" for t in got["next_run_times"])
    changed = client.post("/ruqi/modify_job", json={"job_id": "nightly", "rule": "30 */5 * * *"}).json()["data"]
    assert changed["rule"] == "30 */5 * * *" and changed["version"] == 2 and changed["payload"] == {"count": 1}
    assert client.post("/ruqi/pause_job", json={"job_id": "nightly"}).json()["data"]["paused"] is True
    assert client.get("/ruqi/get_job", query={"job_id": "nightly"}).json()["data"]["next_run_time"] is None
    assert client.post("/ruqi/resume_job", json={"job_id": "nightly"}).json()["data"]["paused"] is False
    assert client.post("/ruqi/remove_job", json={"job_id": "nightly"}).json() == {"stat": "OK"}
    missing = client.get("/ruqi/get_job", query={"job_id": "nightly"})
    assert missing.status == 404 and missing.json()["stat"] == "ERR_NOT_FOUND"


@pytest.mark.parametrize(
    "fields,param,fragment",
    [
        ({"rule": "* * *"}, "rule", "expected 6"),
        ({"job_trigger": "hourly"}, "job_trigger", "expected one of: cron, interval, date"),
        ({"job_type": "carrier_pigeon"}, "job_type", "unknown job type 'carrier_pigeon'"),
        ({"job_id": "../x"}, "job_id", "letters, digits"),
        ({"payload": {"count": "many"}}, "payload.count", ""),
        ({"payload": {"count": 1, "extra": 2}}, "payload.extra", "unknown"),
        ({"payload": "{not json"}, "payload", "not valid JSON"),
        ({"payload": "[1, 2]"}, "payload", "must be a JSON object"),
        ({"target": "/ruqi_test/nope"}, "target", "no route"),
        ({"timeout": -1}, "timeout", "at least 0.1"),
        ({"max_concurrent": 0}, "max_concurrent", "at least 1"),
        ({"max_concurrent": 101}, "max_concurrent", "at most 100"),
        ({"timezone": "Nowhere/Town"}, "timezone", "unknown timezone"),
        ({"job_type": "mq", "target": "/ruqi_test/strict"}, "job_type", "mq plugin"),
        ({"job_type": "script", "target": "x.sh", "payload": {}}, "job_type", "allow_scripts = true"),
        ({"job_type": "http", "target": "ftp://example.org/x"}, "target", "http:// or https://"),
        ({"job_type": "http", "target": "http://127.0.0.1:9/x", "options": {"method": "BREW"}}, "options", "method"),
    ],
)
def test_bad_jobs_get_err_bad_params_naming_the_field(api, fields, param, fragment):
    _, client = api
    reply = client.post("/ruqi/add_job", json={**job("bad-job"), **fields})
    body = reply.json()
    assert reply.status == 400 and body["stat"] == "ERR_BAD_PARAMS", body
    assert any(e["param"] == param and fragment in e["reason"] for e in body["errors"]), body
    assert client.get("/ruqi/get_jobs").json()["data"]["total"] == 0  # nothing half-saved


def test_duplicate_id_is_a_conflict_and_unknown_ids_are_404(api):
    _, client = api
    assert client.post("/ruqi/add_job", json=job("once")).status == 200
    again = client.post("/ruqi/add_job", json=job("once"))
    assert again.status == 409 and again.json()["stat"] == "ERR_JOB_EXISTS"
    for name in ("modify_job", "pause_job", "resume_job", "remove_job"):
        assert client.post(f"/ruqi/{name}", json={"job_id": "ghost"}).status == 404, name


def test_writes_are_admin_only_and_post_only(api):
    _, client = api
    remote = client.post("/ruqi/add_job", json=job("remote"), remote_addr="203.0.113.9")
    assert remote.status == 403
    assert client.get("/ruqi/add_job", query=job("by-get", payload='{"count": 1}')).status == 405
    assert client.get("/ruqi/get_jobs", remote_addr="203.0.113.9").status == 200  # reads are open
    assert client.get("/ruqi/", remote_addr="203.0.113.9").status == 403  # the console is admin


def test_lists_paginate_and_cap_the_page_size(api):
    _, client = api
    for index in range(5):
        client.post("/ruqi/add_job", json=job(f"page-{index}", job_name=f"group-{index % 2}"))
    first = client.get("/ruqi/get_jobs", query={"page_size": 2}).json()["data"]
    second = client.get("/ruqi/get_jobs", query={"page_size": 2, "page_index": 3}).json()["data"]
    assert first["total"] == 5 and len(first["list"]) == 2 and len(second["list"]) == 1
    assert client.get("/ruqi/get_jobs", query={"job_name": "group-1"}).json()["data"]["total"] == 2
    too_big = client.get("/ruqi/get_history", query={"page_size": 100000})
    assert too_big.status == 400 and too_big.json()["errors"][0]["param"] == "page_size"
    assert client.get("/ruqi/get_history", query={"status": "exploded"}).status == 400
    # [ruqi] max_page_size (200) is what the OpenAPI document shows; the handler refuses past it
    assert client.get("/ruqi/get_jobs", query={"page_size": 201}).status == 400
    assert client.get("/ruqi/get_jobs", query={"page_size": 200}).status == 200
    document = client.get("/_meta/openapi.json").json()
    sizes = [p["schema"] for p in document["paths"]["/ruqi/get_jobs"]["get"]["parameters"] if p["name"] == "page_size"]
    assert sizes[0]["maximum"] == 200 and sizes[0]["minimum"] == 1


def test_the_document_shows_choices_bounds_and_what_the_handler_checks(api):
    kernel, client = api
    document = client.get("/_meta/openapi.json").json()
    add = document["paths"]["/ruqi/add_job"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    fields = add["properties"]
    assert fields["job_trigger"]["enum"] == ["cron", "interval", "date"]
    assert (
        fields["job_type"]["enum"] == kernel.extensions["ruqi"].registry.names()
        and "handler" in fields["job_type"]["enum"]
    )
    assert (fields["max_concurrent"]["minimum"], fields["max_concurrent"]["maximum"]) == (1, 100)
    assert fields["job_id"]["pattern"].startswith("^[A-Za-z0-9]")
    assert {name for name, schema in fields.items() if "x-butterfly-checked-by-handler" in schema} == {
        "rule",
        "target",
        "timezone",
        "payload",
        "options",
    }
    history = document["paths"]["/ruqi/get_history"]["get"]["parameters"]
    assert "succeeded" in next(p for p in history if p["name"] == "status")["schema"]["enum"]
    # blank keys are a 400 naming them, never pony's "Attribute ... is required" (a 500)
    for blank in ("", "\x0b", " \x85"):
        reply = client.post("/ruqi/pause_job", json={"job_id": blank})
        assert reply.status == 400 and reply.json()["errors"][0]["param"] == "job_id"
        assert client.get("/ruqi/get_job", query={"job_id": blank}).status == 400


def test_secrets_in_options_and_payload_are_masked_in_reads(api):
    _, client = api
    client.post(
        "/ruqi/add_job",
        json=job(
            "hook",
            job_type="http",
            target="http://127.0.0.1:9/hook",
            payload={"password": "hunter2", "n": 1},
            options={"headers": {"Authorization": "Bearer s3cret", "X-A": "1"}},
        ),
    )
    data = client.get("/ruqi/get_job", query={"job_id": "hook"}).json()["data"]
    assert data["payload"] == {"password": "********", "n": 1}
    assert data["options"]["headers"] == {"Authorization": "********", "X-A": "1"}


def test_run_job_runs_now_and_the_handler_gets_the_fire_id(api, poll):
    kernel, client = api
    assert client.post("/ruqi/run_job", json={"job_id": "x"}).status == 503  # scheduler not started
    kernel.startup()
    client.post("/ruqi/add_job", json=job("manual", target="/ruqi_test/tick", payload={"note": "hi"}))
    fire = client.post("/ruqi/run_job", json={"job_id": "manual"}).json()["data"]
    history = poll(
        lambda: [
            r
            for r in client.get("/ruqi/get_history", query={"job_id": "manual"}).json()["data"]["list"]
            if r["status"] == "succeeded"
        ]
    )
    assert history[0]["fire_id"] == fire["fire_id"] and history[0]["manual"] is True
    assert f'"fire": {fire["fire_id"]}' in history[0]["output"] and '"note": "hi"' in history[0]["output"]
    assert client.post("/ruqi/run_job", json={"job_id": "ghost"}).status == 404


def test_business_error_stat_is_a_failed_run(api, poll):
    kernel, client = api
    kernel.startup()
    client.post("/ruqi/add_job", json=job("sad", target="/ruqi_test/business_error", payload={}))
    client.post("/ruqi/run_job", json={"job_id": "sad"})
    rows = poll(
        lambda: [
            r
            for r in client.get("/ruqi/get_history", query={"job_id": "sad"}).json()["data"]["list"]
            if r["status"] in ("failed", "succeeded")
        ]
    )
    assert rows[0]["status"] == "failed" and "ERR_SOMETHING" in rows[0]["output"]


def test_http_job_sends_fire_headers_and_checks_the_status(ruqi_kernel, tmp_path, live_server, poll):
    target_kernel = ruqi_kernel(f"sqlite:///{tmp_path}/target.sqlite")
    target = live_server(target_kernel)
    kernel = ruqi_kernel(f"sqlite:///{tmp_path}/ruqi.sqlite")
    kernel.startup()
    client = Client(kernel)
    client.post(
        "/ruqi/add_job",
        json=job(
            "web",
            job_type="http",
            target=f"{target.url}/ruqi_test/tick",
            payload={"note": "via-http"},
            options={"headers": {"X-Extra": "yes"}},
        ),
    )
    client.post(
        "/ruqi/add_job",
        json=job(
            "web404",
            job_type="http",
            target=f"{target.url}/nothing/here",
            payload={},
            options={"expected_status": [200, 201]},
        ),
    )
    fire = client.post("/ruqi/run_job", json={"job_id": "web"}).json()["data"]
    client.post("/ruqi/run_job", json={"job_id": "web404"})

    def finished(job_id):
        rows = client.get("/ruqi/get_history", query={"job_id": job_id}).json()["data"]["list"]
        return [r for r in rows if r["status"] in ("failed", "succeeded")]

    ok = poll(lambda: finished("web"))[0]
    assert ok["status"] == "succeeded" and ok["output"].startswith("HTTP 200") and "via-http" in ok["output"]
    # the JSON body reached the handler; the fire id travelled as a header (the handler's
    # ruqi_fire_id param stays 0 over HTTP, so only the header proves it)
    assert ok["fire_id"] == fire["fire_id"]
    bad = poll(lambda: finished("web404"))[0]
    assert bad["status"] == "failed" and bad["output"].startswith("HTTP 404")


@pytest.mark.parametrize(
    ("method", "path", "params", "param"),
    [
        ("GET", "/ruqi/get_job", {"job_id": ""}, "job_id"),
        ("GET", "/ruqi/get_job", {"job_id": "j" * 1_000_000}, "job_id"),
        ("GET", "/ruqi/get_jobs", {"job_name": "n" * 129}, "job_name"),
        ("GET", "/ruqi/get_history", {"page_index": 10**30}, "page_index"),
        ("GET", "/ruqi/get_history", {"page_index": "9" * 5000}, "page_index"),
        ("POST", "/ruqi/remove_job", {"job_id": ""}, "job_id"),
        ("POST", "/ruqi/pause_job", {"job_id": "x" * 65}, "job_id"),
        ("POST", "/ruqi/add_job", job("big", target="/" + "t" * 1_000_000), "target"),
        ("POST", "/ruqi/modify_job", {"job_id": "nightly", "timezone": "Z" * 1000}, "timezone"),
    ],
)
def test_empty_and_oversized_key_params_are_a_400_naming_them(api, method, path, params, param):
    _, client = api
    reply = client.request(method, path, json=params) if method == "POST" else client.get(path, query=params)
    assert reply.status == 400, reply.text[:300]
    assert param in {error["param"] for error in reply.json()["errors"]}
