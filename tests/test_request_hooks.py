"""The kernel's direct calls of the request hooks keep pluggy's semantics (kernel/fasthooks.py).

Wrappers of both styles, hook-call monitoring, late registration and ``for_routes``
filters, through the real request path.
"""

from __future__ import annotations

from pathlib import Path

from kernel import Forbidden, Response, for_routes, hookimpl
from kernel.testing import Client


class Routes:
    """A public route and an admin read."""

    @hookimpl
    def butterfly_register_routes(self, register):
        register("/t/public", lambda request: Response.json({"stat": "OK", "user": request.user}))
        register("/t/admin", lambda request: Response.json({"stat": "OK"}), admin=True, methods=("GET",))


class OldStyleWrapper:
    """A third-party plugin with ``hookwrapper=True`` implementations (pluggy's old style)."""

    def __init__(self):
        self.seen: list[tuple[str, object]] = []

    @hookimpl(hookwrapper=True)
    def butterfly_response_headers(self, request, response):
        self.seen.append(("before", request.path))
        outcome = yield
        outcome.get_result()
        response.headers.append(("x-wrapped", "old"))
        self.seen.append(("after", request.path))

    @hookimpl(hookwrapper=True)
    def butterfly_authorize(self, request, route):
        outcome = yield
        if request.environ.get("HTTP_X_DENY"):
            outcome.force_result(Forbidden("denied by the wrapper"))


class NewStyleWrapper:
    """A third-party plugin with ``wrapper=True`` implementations (pluggy's new style)."""

    def __init__(self):
        self.finished: list[int] = []

    @hookimpl(wrapper=True)
    def butterfly_request_finished(self, request, response):
        result = yield
        self.finished.append(response.status)
        return result

    @hookimpl(wrapper=True)
    def butterfly_authorize(self, request, route):
        verdict = yield
        if request.environ.get("HTTP_X_NEW_DENY"):
            return Forbidden("denied by the new-style wrapper")
        return verdict


class AdminOnly:
    """A ``butterfly_authorize`` that only ever decides admin routes, and says so."""

    def __init__(self):
        self.routes: list[str] = []

    @hookimpl(tryfirst=True)
    @for_routes(lambda route: route.admin)
    def butterfly_authorize(self, request, route):
        self.routes.append(route.path)
        return True

    @hookimpl
    @for_routes(lambda route: route.admin)
    def butterfly_request_finished(self, request, response):
        self.routes.append(f"finished {request.path}")


def test_old_style_hookwrappers_of_a_third_party_plugin_wrap_the_request_hooks(make_kernel):
    wrapper = OldStyleWrapper()
    kernel = make_kernel(plugins=[(Routes(), "routes"), (wrapper, "wrapper")])
    client = Client(kernel)
    reply = client.get("/t/public")
    assert reply.status == 200
    assert reply.headers.get("x-wrapped") == "old"
    assert wrapper.seen == [("before", "/t/public"), ("after", "/t/public")]
    denied = client.get("/t/public", headers={"X-Deny": "1"})
    assert denied.status == 403
    assert denied.headers.get("x-reason") == "denied by the wrapper"


def test_new_style_wrappers_of_a_third_party_plugin_wrap_the_request_hooks(make_kernel):
    wrapper = NewStyleWrapper()
    kernel = make_kernel(plugins=[(Routes(), "routes"), (wrapper, "wrapper")])
    client = Client(kernel)
    assert client.get("/t/public").status == 200
    assert client.get("/t/missing").status == 404
    assert client.get("/t/public", headers={"X-New-Deny": "1"}).status == 403
    assert wrapper.finished == [200, 404, 403]


def test_hook_call_monitoring_sees_every_request_hook_and_can_be_undone(make_kernel):
    kernel = make_kernel(plugins=[(Routes(), "routes")])
    client = Client(kernel)
    assert client.get("/t/public").status == 200
    called: list[str] = []
    undo = kernel.pm.add_hookcall_monitoring(lambda name, impls, kwargs: called.append(name), lambda *args: None)
    assert client.get("/t/public").status == 200
    assert [name for name in called if name != "butterfly_authorize"] == [
        "butterfly_request_started",
        "butterfly_response_headers",
        "butterfly_request_finished",
    ]
    assert "butterfly_authorize" in called
    undo()
    del called[:]
    assert client.get("/t/public").status == 200
    assert called == []


def test_a_plugin_registered_after_start_up_runs_without_a_refresh(make_kernel):
    kernel = make_kernel(plugins=[(Routes(), "routes")])
    client = Client(kernel)
    assert client.get("/t/public").headers.get("x-wrapped") is None
    wrapper = OldStyleWrapper()
    kernel.pm.register(wrapper, name="late")
    assert client.get("/t/public").headers.get("x-wrapped") == "old"
    kernel.pm.unregister(wrapper)
    assert client.get("/t/public").headers.get("x-wrapped") is None


def test_for_routes_leaves_an_implementation_out_of_the_routes_it_does_not_apply_to(make_kernel):
    admin_only = AdminOnly()
    kernel = make_kernel(plugins=[(Routes(), "routes"), (admin_only, "admin-only")])
    client = Client(kernel)
    assert client.get("/t/public").status == 200
    assert admin_only.routes == []
    # the implementation decides the admin route (even for a remote peer the kernel's default would refuse)
    assert client.get("/t/admin", remote_addr="203.0.113.9").status == 200
    assert admin_only.routes == ["/t/admin", "finished /t/admin"]
    # a request that matches no route runs every implementation
    assert client.get("/t/nowhere").status == 404
    assert admin_only.routes[-1] == "finished /t/nowhere"


def test_the_kernels_default_admin_policy_still_guards_admin_routes(make_kernel):
    kernel = make_kernel(plugins=[(Routes(), "routes")])
    client = Client(kernel)
    assert client.get("/t/admin").status == 200
    assert client.get("/t/admin", remote_addr="203.0.113.9").status == 403
    assert client.get("/t/public", remote_addr="203.0.113.9").status == 200


def test_the_request_path_uses_only_pluggys_public_api():
    source = (Path(__file__).resolve().parents[1] / "kernel" / "fasthooks.py").read_text(encoding="utf-8")
    assert "pluggy._" not in source
    assert "_multicall" not in source
    assert "_inner_hookexec" not in source
