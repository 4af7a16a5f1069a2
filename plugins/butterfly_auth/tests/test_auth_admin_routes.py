"""Every admin route of every installed plugin needs the admin role once auth is installed.

The kernel is built with entry points ON, so the routes come from whatever is
installed (router demo handlers, trace, ruqi, auth, ...); MQ stays off without a
Redis URL.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from kernel import hookimpl
from kernel.testing import Client

REPO = Path(__file__).resolve().parents[3]
HANDLER_SOURCE = """
from butterfly_router import api
from butterfly_auth import login_required, role


@role("ops")
def restart(req, service: str = "web"):
    return "OK", {"restarted": service, "by": req.user}


@login_required
@api(methods=("GET",))
def profile(req):
    return "OK", {"user": req.user}


def public(req):
    return "OK", {"user": req.user}
"""


class HandlerPackage:
    """Contributes ``/authdemo/*`` through the router's handler-package hook."""

    @hookimpl(optionalhook=True)
    def butterfly_router_handler_packages(self):
        return [("authdemo", "butterfly_auth_demo_handlers")]


@pytest.fixture
def full_kernel(make_kernel, tmp_path, monkeypatch, sqlite_url, fast_hashing):
    package = tmp_path / "pkgs" / "butterfly_auth_demo_handlers"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(HANDLER_SOURCE))
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    settings = {"store.url": sqlite_url, "router.handlers_dir": str(REPO / "handlers"), **fast_hashing}
    return make_kernel(plugins=[(HandlerPackage(), "authdemo")], settings=settings, load_entrypoints=True)


def _probe(route) -> tuple[str, str]:
    method = "GET" if route.methods is None or "GET" in route.methods else sorted(route.methods)[0]
    return method, route.path + ("probe" if route.prefix else "")


def test_every_admin_route_needs_the_admin_role(full_kernel, add_user, login, auth_header):
    kernel = full_kernel
    admin_routes = [route for route in kernel.routes if route.admin]
    owners = {route.plugin for route in admin_routes}
    # not vacuous: admin routes from the auth plugin itself and from other plugins
    assert "auth" in owners and len(owners) >= 2 and len(admin_routes) >= 4, owners
    client = Client(kernel)  # a loopback peer: no free pass once auth is installed
    plain = login(client, add_user(kernel))["token"]
    admin_token = login(client, add_user(kernel, ("admin",)))["token"]
    for route in admin_routes:
        method, path = _probe(route)
        anonymous = client.request(method, path)
        assert anonymous.status == 401, (path, anonymous.status)
        assert client.request(method, path, headers=auth_header(plain)).status == 403, path
        allowed = client.request(method, path, headers=auth_header(admin_token))
        assert allowed.status not in (302, 401, 403), (path, allowed.status, allowed.text[:200])


def test_admin_api_token_works_on_admin_routes(full_kernel, add_user, auth_header):
    from butterfly_auth import api_tokens

    kernel = full_kernel
    token, _ = api_tokens.create_token(kernel, add_user(kernel, ("admin",)), label="ops bot")
    client = Client(kernel)
    reply = client.get("/auth/users", headers=auth_header(token), remote_addr="203.0.113.9")
    assert reply.status == 200 and isinstance(reply.json()["users"], list)


def test_router_handlers_marked_with_decorators(full_kernel, add_user, login, auth_header):
    kernel = full_kernel
    client = Client(kernel)
    ops_name = add_user(kernel, ("ops",))
    ops, plain = login(client, ops_name)["token"], login(client, add_user(kernel))["token"]
    assert client.get("/authdemo/public").json() == {"stat": "OK", "user": None}
    assert client.get("/authdemo/profile").status == 401
    assert client.get("/authdemo/profile", headers=auth_header(plain)).status == 200
    assert client.post("/authdemo/restart", json={"service": "db"}, headers=auth_header(plain)).status == 403
    done = client.post("/authdemo/restart", json={"service": "db"}, headers=auth_header(ops))
    assert done.json() == {"stat": "OK", "restarted": "db", "by": ops_name}
