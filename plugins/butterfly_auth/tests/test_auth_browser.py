"""Login and logout in real headless Chromium against a real waitress server."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel import Response, hookimpl
from kernel.testing import Client

REPO = Path(__file__).resolve().parents[3]


def dashboard(request):
    tab = request.query.get("tab", "")
    body = f"<!doctype html><title>dash</title><h1 id='who'>dashboard of {request.user}</h1><p id='tab'>{tab}</p>"
    return Response(200, [("Content-Type", "text/html; charset=utf-8")], body.encode())


class Dashboard:
    """An admin HTML page standing in for canghai/ruqi/demo_template."""

    @hookimpl
    def butterfly_register_routes(self, register):
        register("/t/dashboard", dashboard, kind="html", methods=("GET", "HEAD"), admin=True)


@pytest.mark.slow
def test_browser_login_lands_on_next_and_logout_clears_the_cookie(
    make_kernel, live_server, chromium, sqlite_url, fast_hashing, add_user
):
    settings = {"store.url": sqlite_url, "router.handlers_dir": str(REPO / "handlers"), **fast_hashing}
    kernel = make_kernel(plugins=[(Dashboard(), "dashboard")], settings=settings, load_entrypoints=True)
    admin = add_user(kernel, ("admin",))
    server = live_server(kernel)
    context = chromium.new_context()
    page = context.new_page()
    try:
        page.goto(server.url + "/t/dashboard?tab=queues")
        assert page.url == server.url + "/auth/login?next=/t/dashboard%3Ftab%3Dqueues"
        # the shared stylesheet is allowed by the CSP (a blocked style would leave the default button)
        color = page.evaluate("getComputedStyle(document.querySelector('#submit')).backgroundColor")
        assert color not in ("", "rgb(239, 239, 239)", "rgba(0, 0, 0, 0)")

        page.fill("#username", admin)
        page.fill("#password", "not the password")
        page.click("#submit")
        assert "Invalid user name or password" in page.inner_text("#login-error")

        page.fill("#password", "correct horse battery")
        page.click("#submit")
        page.wait_for_url(server.url + "/t/dashboard?tab=queues")
        assert page.inner_text("#who") == f"dashboard of {admin}" and page.inner_text("#tab") == "queues"
        cookies = {c["name"]: c for c in context.cookies()}
        session = cookies["butterfly_token"]
        assert session["httpOnly"] is True and session["sameSite"] == "Lax"
        assert "butterfly_token=" not in page.evaluate("document.cookie")  # HttpOnly: not readable by scripts
        assert page.goto(server.url + "/demo_template/log").status == 200  # a real admin dashboard

        page.goto(server.url + "/auth/logout")
        page.click("#logout")
        page.wait_for_url(server.url + "/auth/login?logged_out=1")
        assert "butterfly_token" not in {c["name"] for c in context.cookies()}
        page.goto(server.url + "/t/dashboard")
        assert page.url.startswith(server.url + "/auth/login?next=")
        # the logged-out token is dead server-side too, not just forgotten by the browser
        replay = Client(kernel).get("/t/dashboard", headers={"Cookie": f"butterfly_token={session['value']}"})
        assert replay.status == 401
    finally:
        context.close()
