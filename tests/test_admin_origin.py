"""The default admin policy (no butterfly-auth) against browsers steered by other sites.

A live server (router, store, wuxing, ruqi, MQ, every demo app) is driven with raw
HTTP requests shaped like a browser's: a cross-site HTML form auto-submitted to an
admin write (``Origin``/``Referer``/``Sec-Fetch-Site`` of another site), and a
DNS-rebinding page (``Host: evil.example:<port>`` resolving to 127.0.0.1) reading an
admin page. Then headless Chromium on 127.0.0.1 uses the ruqi and canghai buttons,
which must keep working without auth.
"""

from __future__ import annotations

import http.client
import json
import time
from urllib.parse import urlencode

import pytest

from kernel.testing import Client

FORM = "application/x-www-form-urlencoded"


def raw(server, method: str, path: str, headers: dict[str, str], body: bytes = b""):
    """One request as a browser would send it: ``(status, x-reason, body)``."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        # NOTE: skip_host: the test chooses the Host header (rebinding sends the attacker's name).
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in {"Content-Length": str(len(body)), **headers}.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        reply = connection.getresponse()
        return reply.status, reply.getheader("x-reason") or "", reply.read()
    finally:
        connection.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory, redis_server):
    """A full install without butterfly-auth, with a ruqi job and a queued message."""
    import butterfly_mq.plugin
    import butterfly_router.plugin
    import butterfly_ruqi.plugin
    import butterfly_store.plugin
    import butterfly_wuxing.plugin
    from butterfly_ruqi import service
    from kernel.testing import LiveServer, build_kernel

    base = tmp_path_factory.mktemp("origin")
    kernel = build_kernel(
        base,
        [
            butterfly_store.plugin,
            butterfly_router.plugin,
            butterfly_wuxing.plugin,
            butterfly_ruqi.plugin,
            butterfly_mq.plugin,
        ],
        {
            "store.url": f"sqlite:///{base}/origin.sqlite",
            "router.handlers_dir": str(base / "no-handlers"),
            "mq.redis_url": redis_server.url,
            "mq.prefix": f"origin{int(time.time() * 1000) % 10**8}",
            "mq.consume": False,
        },
    )
    state = kernel.extensions["ruqi"]
    for job_id in ("nightly", "weekly"):
        service.add_job(
            state,
            {
                "job_id": job_id,
                "job_trigger": "cron",
                "rule": "0 0 3 * * *",
                "job_type": "http",
                "target": "http://127.0.0.1:9/",
            },
        )
    server = LiveServer(kernel).start()
    yield kernel, server
    server.stop()
    kernel.shutdown()


def job_exists(kernel, job_id: str) -> bool:
    from butterfly_ruqi import service

    return service.get_jobs(kernel.extensions["ruqi"], job_id=job_id)["total"] == 1


def test_a_cross_site_form_cannot_drive_an_admin_write(served):
    kernel, server = served
    own = f"127.0.0.1:{server.port}"
    body = urlencode({"job_id": "nightly"}).encode()
    foreign = [
        {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site", "Referer": "http://evil.example/x.html"},
        {"Origin": "http://evil.example"},  # a browser without Sec-Fetch-*
        {"Referer": "http://evil.example/x.html"},  # an old browser: no Origin on a form post
        {"Origin": "null"},  # a sandboxed frame
        {"Origin": "http://127.0.0.1:3000", "Sec-Fetch-Site": "same-site"},  # another local app's page
        {"Sec-Fetch-Site": "cross-site"},
    ]
    for headers in foreign:
        status, reason, reply = raw(
            server, "POST", "/ruqi/remove_job", {"Host": own, "Content-Type": FORM, **headers}, body
        )
        assert status == 403, (headers, status, reply)
        assert reason.startswith("admin write refused: sent by another site"), reason
        assert json.loads(reply)["stat"] == "ERR_FORBIDDEN"
        assert job_exists(kernel, "nightly")
    # the same post from this site's own page (fetch: Origin and Sec-Fetch-Site same-origin) passes
    status, _, reply = raw(
        server,
        "POST",
        "/ruqi/pause_job",
        {"Host": own, "Content-Type": FORM, "Origin": f"http://{own}", "Sec-Fetch-Site": "same-origin"},
        body,
    )
    assert status == 200 and json.loads(reply)["data"]["paused"] is True
    # curl, the CLI and scripts send neither Origin nor Referer: they keep working
    status, _, reply = raw(server, "POST", "/ruqi/remove_job", {"Host": own, "Content-Type": FORM}, body)
    assert status == 200 and json.loads(reply)["stat"] == "OK"
    assert not job_exists(kernel, "nightly")


def test_a_rebinding_host_cannot_read_admin_pages(served):
    kernel, server = served
    port = server.port
    for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1.nip.io:{port}", f"192.168.1.5:{port}"):
        status, reason, reply = raw(server, "GET", "/ruqi/", {"Host": host, "Accept": "text/html"})
        assert status == 403, (host, status)
        assert "is not this machine" in reason and b"weekly" not in reply
        status, _, _ = raw(server, "GET", "/canghai/api/queues", {"Host": host})
        assert status == 403
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", f"127.0.0.2:{port}", "localhost"):
        status, _, reply = raw(server, "GET", "/ruqi/", {"Host": host, "Accept": "text/html"})
        assert status == 200 and b"weekly" in reply, host
    # a page anyone may read shows admins more: behind a rebinding Host the caller is no admin
    from butterfly_wuxing import wuxing_of

    wuxing_of(kernel).ensure_section("ops", "db", "1", {"s|db_password": ("string", "", "")})
    wuxing_of(kernel).instance_create("ops", "db-1", "db", "1", {"s|db_password": "hunter2"})
    path = "/wuxing/instance_get?namespace=ops&instance_name=db-1"
    _, _, local = raw(server, "GET", path, {"Host": f"127.0.0.1:{port}"})
    _, _, rebound = raw(server, "GET", path, {"Host": f"evil.example:{port}"})
    assert b"hunter2" in local and b"hunter2" not in rebound


def test_in_process_clients_and_headerless_requests_stay_admins(served):
    kernel, _ = served
    client = Client(kernel)  # no Host header at all (HTTP/1.0, WSGI tests)
    assert client.get("/ruqi/get_job", query={"job_id": "weekly"}).status == 200
    assert client.post("/ruqi/pause_job", data={"job_id": "weekly"}).status == 200
    refused = client.post("/ruqi/resume_job", data={"job_id": "weekly"}, headers={"Origin": "http://evil.example"})
    assert refused.status == 403


@pytest.mark.slow
def test_page_buttons_work_without_auth_from_127_0_0_1(served, chromium):
    from butterfly_mq import enqueue
    from butterfly_ruqi import service

    kernel, server = served
    enqueue("/origin/report", {"day": "today"}, kernel=kernel)
    page = chromium.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(server.url + "/ruqi/")
        page.click("tr[data-job='weekly'] button[data-post='/ruqi/resume_job']")
        page.locator("tr[data-job='weekly'] .job-state", has_text="active").wait_for()
        assert service.get_job(kernel.extensions["ruqi"], "weekly")["paused"] is False
        page.goto(server.url + "/canghai/?all=1")
        row = "#queues tr[data-queue='/origin/report']"
        page.click(f"{row} button[data-post='/canghai/api/pause']")
        page.locator(f"{row} button[data-post='/canghai/api/resume']").wait_for()
        page.click(f"{row} button[data-post='/canghai/api/resume']")
        page.locator(f"{row} button[data-post='/canghai/api/pause']").wait_for()
        assert page.locator("#flash.error").count() == 0, page.inner_text("#flash")
        assert errors == []
    finally:
        page.close()
