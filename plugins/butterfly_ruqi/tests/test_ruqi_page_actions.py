"""The /ruqi/ page (in-process): action buttons, relative times, paginated runs, the CSRF rule.

The page in Chromium (its buttons clicked) is in the root ``tests/test_pages_browser.py``.
"""

from __future__ import annotations

import html
import json
import re

from butterfly_ruqi import service
from kernel.testing import Client

HTML = {"Accept": "text/html"}


def add_tick(state, job_id: str, rule: str = "1h", **fields) -> None:
    job = {
        "job_id": job_id,
        "job_trigger": "interval",
        "rule": rule,
        "job_type": "handler",
        "target": "/ruqi_test/tick",
    }
    service.add_job(state, {**job, **fields})


def buttons(page: str, job_id: str) -> dict[str, dict]:
    """``{api path: body}`` of the POST buttons in the row of ``job_id``."""
    row = page[page.index(f'<tr data-job="{job_id}">') :].split("</tr>", 1)[0]
    return {
        url: json.loads(html.unescape(body))
        for url, body in re.findall(r"data-post=\"([^\"]+)\" data-body='([^']*)'", row)
    }


def test_page_offers_pause_run_remove_and_the_buttons_work(ruqi_kernel, tmp_path, new_job_id, poll):
    kernel = ruqi_kernel(f"sqlite:///{tmp_path}/ruqi.sqlite")
    kernel.startup()  # run now needs this instance's scheduler
    state = kernel.extensions["ruqi"]
    job_id = new_job_id("page")
    add_tick(state, job_id)
    client = Client(kernel)
    page = client.get("/ruqi/", headers=HTML).text
    assert buttons(page, job_id) == {
        "/ruqi/pause_job": {"job_id": job_id},
        "/ruqi/run_job": {"job_id": job_id},
        "/ruqi/remove_job": {"job_id": job_id},
    }
    assert f'data-confirm="Remove job {job_id}? Its runs stay in the history."' in page
    next_run = re.search(
        r'<td data-label="Next run" class="nowrap"><time datetime="([^"]+)" title="([^"]+)">in (?:5\d min|1 h)</time>',
        page,
    )
    assert next_run, re.search(r'<td data-label="Next run".{0,200}', page).group(0)

    # what a click sends: a JSON POST to the admin API
    assert client.post("/ruqi/pause_job", json={"job_id": job_id}).json()["stat"] == "OK"
    page = client.get("/ruqi/", headers=HTML).text
    assert "/ruqi/resume_job" in buttons(page, job_id) and "/ruqi/pause_job" not in buttons(page, job_id)
    assert client.post("/ruqi/resume_job", json={"job_id": job_id}).json()["stat"] == "OK"
    fire = client.post("/ruqi/run_job", json={"job_id": job_id}).json()["data"]["fire_id"]
    poll(lambda: service.get_history(state, job_id=job_id, status="succeeded")["total"] == 1)
    page = client.get(f"/ruqi/?job_id={job_id}", headers=HTML).text
    assert f'<tr data-run="{fire}">' in page and "manual" in page
    assert client.post("/ruqi/remove_job", json={"job_id": job_id}).json()["stat"] == "OK"
    assert f'<tr data-job="{job_id}">' not in client.get("/ruqi/", headers=HTML).text
    # the buttons are admin writes: a remote caller without the auth plugin is refused
    assert client.post("/ruqi/pause_job", json={"job_id": job_id}, remote_addr="203.0.113.9").status == 403


def test_runs_are_paginated_with_relative_times(ruqi_kernel, tmp_path, new_job_id, poll):
    kernel = ruqi_kernel(f"sqlite:///{tmp_path}/ruqi.sqlite")
    kernel.startup()
    state = kernel.extensions["ruqi"]
    job_id = new_job_id("many")
    add_tick(state, job_id, max_concurrent=30)
    for _ in range(23):
        service.run_job(state, job_id)
    poll(lambda: service.get_history(state, job_id=job_id, status="succeeded")["total"] == 23)
    client = Client(kernel)
    first = client.get(f"/ruqi/?job_id={job_id}", headers=HTML).text
    assert first.count('<tr data-run="') == 20 and "page 1 of 2 · 23 runs" in first
    older = re.search(r'<a href="([^"]+)" rel="next">older →</a>', first).group(1)
    assert html.unescape(older) == f"/ruqi/?job_id={job_id}&page=2"  # keeps the job filter
    second = client.get(html.unescape(older), headers=HTML).text
    assert second.count('<tr data-run="') == 3 and 'rel="prev"' in second
    scheduled = re.findall(
        r'<td data-label="Scheduled" class="nowrap"><time datetime="([^"]+)" title="([^"]+)">([^<]+)</time>', second
    )
    assert len(scheduled) == 3 and all(text.endswith("ago") or text == "just now" for _, _, text in scheduled)
    assert all(title.endswith("UTC") for _, title, _ in scheduled)  # the exact time on hover
    failed_only = client.get(f"/ruqi/?job_id={job_id}&status=failed", headers=HTML).text
    assert "No runs recorded yet." in failed_only


def test_bad_page_parameters_are_a_400_naming_them(ruqi_kernel, tmp_path):
    client = Client(ruqi_kernel(f"sqlite:///{tmp_path}/ruqi.sqlite"))
    for query, param in (
        ("page=0", "page"),
        ("jobs_page=x", "jobs_page"),
        ("status=bogus", "status"),
        ("job_id=" + "j" * 65, "job_id"),
    ):
        reply = client.get(f"/ruqi/?{query}", headers=HTML)
        assert reply.status == 400 and reply.json()["errors"][0]["param"] == param, query


def test_page_buttons_pass_the_auth_plugins_csrf_rule(make_kernel, tmp_path, handlers_dir, new_job_id):
    """A cookie-authenticated POST from the page carries the site's Origin; a cross-site one is refused."""
    import butterfly_auth.plugin
    import butterfly_router.plugin
    import butterfly_ruqi.plugin
    import butterfly_store.plugin
    from butterfly_auth import users

    settings = {
        "store.url": f"sqlite:///{tmp_path}/ruqi-auth.sqlite",
        "router.handlers_dir": str(handlers_dir),
        "auth.argon2_time_cost": 1,
        "auth.argon2_memory_kib": 1024,
        "auth.argon2_parallelism": 1,
    }
    plugins = [butterfly_store.plugin, butterfly_router.plugin, butterfly_ruqi.plugin, butterfly_auth.plugin]
    kernel = make_kernel(plugins=plugins, settings=settings)
    users.create_user(kernel, "ops", "correct horse battery", ("admin",))
    job_id = new_job_id("csrf")
    add_tick(kernel.extensions["ruqi"], job_id)
    client = Client(kernel)
    token = client.post("/auth/login", json={"username": "ops", "password": "correct horse battery"}).json()["token"]
    cookie = {"Cookie": f"butterfly_token={token}"}
    assert client.get("/ruqi/", headers={**cookie, **HTML}).status == 200  # the page itself: a safe GET
    refused = client.post("/ruqi/pause_job", json={"job_id": job_id}, headers=cookie)
    assert refused.status == 403 and "Origin" in refused.headers["x-reason"]
    cross_site = client.post(
        "/ruqi/pause_job", json={"job_id": job_id}, headers={**cookie, "Origin": "https://evil.example"}
    )
    assert cross_site.status == 403
    same_site = client.post(
        "/ruqi/pause_job", json={"job_id": job_id}, headers={**cookie, "Origin": "http://testserver"}
    )
    assert same_site.status == 200 and same_site.json()["data"]["paused"] is True
