"""The authorize hook: marks, admin routes, CSRF, browser redirects, trusted identity only."""

from __future__ import annotations

import json

import pytest

import butterfly_trace.plugin as trace_plugin
from butterfly_auth import login_required, role
from kernel import Response, hookimpl
from kernel.testing import Client


@login_required
def whoami(request):
    return Response.json({"stat": "OK", "user": request.user, "roles": request.ctx["auth.roles"]})


@role("ops")
def ops_only(request):
    return Response.json({"stat": "OK"})


def open_to_all(request):
    return Response.json({"stat": "OK", "user": request.user})


def admin_console(request):
    return Response.json({"stat": "OK"})


@role("ops")
def admin_and_ops(request):
    return Response.json({"stat": "OK"})


class DemoRoutes:
    """A test plugin with one route per kind of protection."""

    @hookimpl
    def butterfly_register_routes(self, register):
        register("/t/whoami", whoami, kind="json")
        register("/t/ops", ops_only, kind="json")
        register("/t/open", open_to_all, kind="json")
        register("/t/admin", admin_console, kind="html", methods=("GET", "HEAD", "POST"), admin=True)
        register("/t/admin_ops", admin_and_ops, kind="json", methods=("GET",), admin=True)
        register("/t/admin_write", admin_console, kind="json", admin=True)  # no methods: POST only


@pytest.fixture
def setup(auth_kernel, add_user, login):
    """A kernel with the demo routes, and sessions for an admin, an ops user and a plain user."""
    kernel = auth_kernel(plugins=[(DemoRoutes(), "demo")])
    client = Client(kernel)
    names = {"admin": add_user(kernel, ("admin",)), "ops": add_user(kernel, ("ops",)), "plain": add_user(kernel)}
    tokens = {key: login(client, name)["token"] for key, name in names.items()}
    return kernel, client, names, tokens


def test_marks_and_admin_routes(setup, auth_header):
    _kernel, client, names, tokens = setup
    expected = {  # path: (anonymous, plain, ops, admin)
        "/t/open": (200, 200, 200, 200),
        "/t/whoami": (401, 200, 200, 200),
        "/t/ops": (401, 403, 200, 200),
        "/t/admin": (401, 403, 403, 200),
        "/t/admin_ops": (401, 403, 403, 200),  # admin AND the handler's role: ops alone is not enough
    }
    for path, statuses in expected.items():
        seen = (
            client.get(path).status,
            *(client.get(path, headers=auth_header(tokens[k])).status for k in ("plain", "ops", "admin")),
        )
        assert seen == statuses, path
    reply = client.get("/t/whoami", headers=auth_header(tokens["ops"])).json()
    assert reply["user"] == names["ops"] and reply["roles"] == ["ops"]
    denied = client.get("/t/whoami")
    assert denied.json()["stat"] == "ERR_UNAUTHORIZED" and denied.headers["www-authenticate"].startswith("Bearer")


def test_an_admin_route_without_methods_is_post_only(setup, auth_header):
    kernel, client, _, tokens = setup
    admin = auth_header(tokens["admin"])
    assert kernel.routes.lookup("/t/admin_write").methods == {"POST"}
    refused = client.get("/t/admin_write", headers=admin)
    assert refused.status == 405 and refused.headers["allow"] == "POST"
    assert client.post("/t/admin_write", headers=admin).status == 200


def test_admin_routes_need_the_role_from_loopback_too(setup, auth_header):
    kernel, client, _, tokens = setup
    for address in ("127.0.0.1", "::1", "10.1.2.3"):
        assert client.get("/t/admin", remote_addr=address).status == 401
        assert client.get("/t/admin", remote_addr=address, headers=auth_header(tokens["admin"])).status == 200
    # in-process calls (MQ, ruqi, CLI) are trusted code, as without the plugin
    assert kernel.call("/t/admin").status == 200


def test_client_identity_headers_are_ignored(setup, auth_header):
    _kernel, client, names, tokens = setup
    spoof = {
        "X-Username": names["admin"],
        "X-Auth-User": names["admin"],
        "X-Remote-User": names["admin"],
        "X-Forwarded-User": names["admin"],
    }
    assert client.get("/t/admin", headers=spoof).status == 401
    assert client.get("/t/open", headers=spoof).json()["user"] is None
    mixed = client.get("/t/whoami", headers={**spoof, **auth_header(tokens["plain"])})
    assert mixed.json()["user"] == names["plain"]


def test_access_log_user_is_the_authenticated_one(auth_kernel, add_user, login, auth_header):
    kernel = auth_kernel(plugins=[trace_plugin, (DemoRoutes(), "demo")])
    client = Client(kernel)
    name = add_user(kernel)
    token = login(client, name)["token"]
    client.get("/t/open", headers={"X-Username": "mallory"})
    client.get("/t/open", headers={"X-Username": "mallory", **auth_header(token)})
    kernel.shutdown()  # NOTE: flushes and closes the log files
    lines = [json.loads(line) for line in (kernel.log_dir / "acc.log").read_text().splitlines()]
    opened = [line["user"] for line in lines if line["path"] == "/t/open"]
    assert opened == [None, name]
    login_line = next(line for line in lines if line["path"] == "/auth/login")
    assert "correct horse" not in json.dumps(login_line)


def test_bad_tokens_are_refused_with_a_reason(setup, auth_header):
    _, client, _, tokens = setup
    for header in ("Bearer ", "Bearer garbage", "Bearer bf_not-a-real-token", "Bearer " + "x" * 5000):
        reply = client.get("/t/whoami", headers={"Authorization": header})
        assert reply.status == 401, header
    # an invalid Bearer does not fall back to a valid cookie
    cookie = {"Cookie": f"butterfly_token={tokens['plain']}"}
    assert client.get("/t/whoami", headers={**cookie, "Authorization": "Bearer nope"}).status == 401
    assert client.get("/t/whoami", headers=cookie).status == 200
    # other schemes are not ours: treated as no credentials
    assert client.get("/t/whoami", headers={"Authorization": "Basic YWRtaW46YWRtaW4="}).status == 401


def test_browser_navigation_is_redirected_to_login_and_json_clients_get_401(setup):
    _, client, _, _ = setup
    html = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    reply = client.get("/t/admin", query="view=1&x=%2F", headers={"Accept": html})
    assert reply.status == 302
    assert reply.headers["location"] == "/auth/login?next=/t/admin%3Fview%3D1%26x%3D%252F"
    assert client.get("/t/admin", headers={"Accept": "*/*"}).status == 401
    assert client.get("/t/admin", headers={"Accept": "application/json"}).status == 401
    assert client.post("/t/admin", headers={"Accept": html}).status == 401  # only GET/HEAD navigations


def test_csrf_cookie_writes_need_same_origin_or_token(setup):
    _, client, _, _ = setup
    login = client.post("/auth/login", json={"username": setup[2]["plain"], "password": "correct horse battery"})
    token, csrf_token = login.json()["token"], login.json()["csrf_token"]
    cookie = {"Cookie": f"butterfly_token={token}", "Host": "app.example:8080"}
    same = "http://app.example:8080"
    assert client.get("/t/whoami", headers=cookie).status == 200  # safe methods need nothing
    refused = client.post("/t/whoami", headers={**cookie, "Origin": "https://evil.example"})
    assert refused.status == 403 and "Origin" in refused.headers["x-reason"]
    assert client.post("/t/whoami", headers={**cookie, "Origin": "null"}).status == 403
    assert client.post("/t/whoami", headers=cookie).status == 403  # no Origin, no Referer, no token
    assert client.post("/t/whoami", headers={**cookie, "Referer": "https://evil.example/x"}).status == 403
    assert client.post("/t/whoami", headers={**cookie, "X-CSRF-Token": "0" * 64}).status == 403
    assert client.post("/t/whoami", headers={**cookie, "Origin": same}).status == 200
    assert client.post("/t/whoami", headers={**cookie, "Referer": same + "/canghai/"}).status == 200
    assert client.request("DELETE", "/t/whoami", headers={**cookie, "X-CSRF-Token": csrf_token}).status == 200
    # every method but GET/HEAD/OPTIONS is checked, not just the four usual writes
    for method in ("PROPFIND", "MKCOL", "LOCK", "PURGE"):
        assert client.request(method, "/t/whoami", headers={**cookie, "Origin": "https://evil.example"}).status == 403
        assert client.request(method, "/t/whoami", headers={**cookie, "X-CSRF-Token": csrf_token}).status == 200
    for method in ("GET", "HEAD", "OPTIONS"):
        assert client.request(method, "/t/whoami", headers={**cookie, "Origin": "https://evil.example"}).status == 200
    # the same token as Bearer needs no CSRF defence: browsers never add that header themselves
    assert (
        client.post("/t/whoami", headers={"Authorization": f"Bearer {token}", "Origin": "https://evil.example"}).status
        == 200
    )


def test_trusted_origins_setting(auth_kernel, add_user, login):
    kernel = auth_kernel(settings={"auth.trusted_origins": "https://console.example"}, plugins=[(DemoRoutes(), "demo")])
    client = Client(kernel)
    token = login(client, add_user(kernel))["token"]
    cookie = {"Cookie": f"butterfly_token={token}", "Host": "internal:8585"}
    assert client.post("/t/whoami", headers={**cookie, "Origin": "https://console.example"}).status == 200
    assert client.post("/t/whoami", headers={**cookie, "Origin": "http://console.example"}).status == 403


def test_cross_site_login_is_refused(setup):
    _, client, names, _ = setup
    reply = client.post(
        "/auth/login",
        data={"username": names["plain"], "password": "correct horse battery"},
        headers={"Origin": "https://evil.example", "Host": "app.example"},
    )
    assert reply.status == 403 and "set-cookie" not in reply.headers


def test_verify_endpoint_for_nginx(setup, auth_header):
    _, client, names, tokens = setup
    ok = client.get("/auth/verify", headers=auth_header(tokens["ops"]))
    assert ok.status == 200 and ok.headers["x-auth-user"] == names["ops"] and ok.headers["x-auth-roles"] == "ops"
    assert client.get("/auth/verify").status == 401
    assert client.get("/auth/verify", headers={"Accept": "text/html"}).status == 401  # never a redirect
    assert client.get("/auth/verify", headers={"X-Auth-User": names["admin"]}).status == 401
    assert client.get("/auth/verify", query={"role": "admin"}, headers=auth_header(tokens["ops"])).status == 403
    assert client.get("/auth/verify", query={"role": "ops"}, headers=auth_header(tokens["admin"])).status == 200
    # the original request was a cross-site cookie POST: nginx passes X-Original-Method
    cookie = {"Cookie": f"butterfly_token={tokens['ops']}", "Host": "app.example"}
    assert (
        client.get(
            "/auth/verify", headers={**cookie, "X-Original-Method": "POST", "Origin": "https://evil.example"}
        ).status
        == 403
    )
    assert (
        client.get(
            "/auth/verify", headers={**cookie, "X-Original-Method": "POST", "Origin": "https://app.example"}
        ).status
        == 200
    )
