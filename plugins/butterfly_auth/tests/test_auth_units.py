"""Small pieces: safe ``next``, Accept negotiation, decorators, the HTML login form flow."""

from __future__ import annotations

import pytest

from butterfly_auth import login_required, role
from butterfly_auth.decorators import MARK, NONE, Requirement, requirement_of
from butterfly_auth.pages import safe_next
from kernel.testing import Client

FORM_ACCEPT = "text/html,application/xhtml+xml,*/*;q=0.8"


@pytest.mark.parametrize(
    "value",
    [
        "https://evil.example/",
        "//evil.example",
        "/\\evil.example",
        "\\\\evil",
        "http:/x",
        "javascript:alert(1)",
        "evil",
        "",
        None,
        ["/a"],
        "/a\nSet-Cookie: x",
        "/" + "a" * 3000,
        "///evil.example",
    ],
)
def test_safe_next_refuses_off_site_targets(value):
    assert safe_next(value) == "/"


@pytest.mark.parametrize("value", ["/", "/canghai/", "/ruqi?tab=jobs&x=1", "/a/b#frag", "/%2F%2Fsafe"])
def test_safe_next_keeps_same_site_paths(value):
    assert safe_next(value) == value


def test_decorators_mark_without_wrapping():
    def handler(req):
        return "OK"

    assert requirement_of(handler) is NONE
    assert login_required(handler) is handler and requirement_of(handler) == Requirement(login=True)
    assert role("ops", "dev")(handler) is handler
    assert getattr(handler, MARK) == Requirement(login=True, roles=frozenset({"ops", "dev"}))

    @login_required()
    def other(req):
        return "OK"

    assert requirement_of(other).login
    with pytest.raises(TypeError, match='@role\\("name"\\)'):
        role(other)
    with pytest.raises(TypeError, match="role names"):
        role()
    with pytest.raises(TypeError):
        login_required("admin")


def test_html_login_form_flow(auth_kernel, add_user):
    kernel = auth_kernel()
    name = add_user(kernel)
    client = Client(kernel)
    page = client.get("/auth/login", query={"next": "//evil.example"}, headers={"Accept": FORM_ACCEPT})
    assert page.status == 200 and 'value="/"' in page.text and "evil" not in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    xss = client.get("/auth/login", query={"next": '/"><script>alert(1)</script>'})
    assert "<script>alert" not in xss.text

    failed = client.post(
        "/auth/login",
        data={"username": name, "password": "nope nope", "next": "/canghai/"},
        headers={"Accept": FORM_ACCEPT},
    )
    assert (
        failed.status == 401 and "Invalid user name or password" in failed.text and "set-cookie" not in failed.headers
    )

    done = client.post(
        "/auth/login",
        data={"username": name, "password": "correct horse battery", "next": "https://evil.example/"},
        headers={"Accept": FORM_ACCEPT},
    )
    assert done.status == 303 and done.headers["location"] == "/"
    cookies = [value for key, value in done.header_list if key.lower() == "set-cookie"]
    session = next(c for c in cookies if c.startswith("butterfly_token="))
    assert "HttpOnly" in session and "SameSite=Lax" in session and "Secure" not in session
    csrf_cookie = next(c for c in cookies if c.startswith("butterfly_token_csrf="))
    assert "HttpOnly" not in csrf_cookie


def test_cookie_secure_setting(auth_kernel, add_user):
    kernel = auth_kernel(settings={"auth.cookie_secure": True, "auth.cookie_samesite": "Strict"})
    name = add_user(kernel)
    reply = Client(kernel).post("/auth/login", json={"username": name, "password": "correct horse battery"})
    cookies = [value for key, value in reply.header_list if key.lower() == "set-cookie"]
    assert all("Secure" in c and "SameSite=Strict" in c for c in cookies) and len(cookies) == 2


def test_logout_without_session_clears_cookies_and_get_changes_nothing(auth_kernel, add_user, login):
    kernel = auth_kernel()
    client = Client(kernel)
    token = login(client, add_user(kernel))["token"]
    cookie = {"Cookie": f"butterfly_token={token}"}
    assert client.get("/auth/logout", headers=cookie).json()["hint"] == "POST to log out"
    assert client.get("/auth/me", headers=cookie).status == 200  # a GET never logs out
    reply = client.post("/auth/logout")
    assert reply.json() == {"stat": "OK", "logged_out": False}
    assert any("Max-Age=0" in v for k, v in reply.header_list if k.lower() == "set-cookie")


def test_in_process_calls_use_the_trusted_user(auth_kernel, add_user):
    kernel = auth_kernel()
    name = add_user(kernel, ("ops",))
    reply = kernel.call("/auth/me", user=name, source="ruqi")
    assert reply.data["user"] == name and reply.data["auth"] == "in_process" and reply.data["via"] == "ruqi"
    assert kernel.call("/auth/me").status == 401  # no user given: nobody
