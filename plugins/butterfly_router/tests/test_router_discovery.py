"""Handler discovery: which functions become routes, broken apps, plugin packages, decorators."""

from __future__ import annotations

import inspect
import sys

import pytest

import butterfly_router.plugin
from butterfly_router import api, download, http, upload
from butterfly_router.decorators import MARK, RouteOptions, options_of
from kernel import ConfigError, hookimpl
from kernel.testing import Client

DEMO = {
    "__init__.py": """
        def ping(req):
            return "OK", {"where": "root"}

        def not_a_handler(request):
            return "OK"
    """,
    "demo/helpers.py": """
        def shared(req):
            return "OK", {"from": "helpers"}
    """,
    "demo/__init__.py": """
        from os.path import join
        from butterfly_router import api, http, retstat
        from .helpers import shared

        def hello(req, name="world"):
            return retstat.OK, {"hello": name}

        @api(admin=True, methods=("POST",))
        def secret(req):
            return retstat.OK

        def _private(req):
            return retstat.OK

        def no_req(x):
            return retstat.OK

        class Thing:
            def method(req):
                return "OK"

        CONSTANT = 3
    """,
    "notapp/readme.txt": "not a package\n",
    "plain_module.py": "def plain(req):\n    return 'OK'\n",
}


def test_public_req_functions_of_each_app_are_routes(router_app):
    app = router_app(DEMO)
    paths = {route.path for route in app.kernel.routes if route.meta.get("source") == "handlers"}
    assert paths == {"/ping", "/demo/hello", "/demo/secret"}
    assert app.client.get("/ping").json() == {"stat": "OK", "where": "root"}
    assert app.client.get("/demo/hello", query={"name": "bee"}).json() == {"stat": "OK", "hello": "bee"}


@pytest.mark.parametrize(
    "path",
    [
        "/demo/_private",
        "/demo/no_req",
        "/demo/join",
        "/demo/shared",
        "/demo/Thing",
        "/demo/CONSTANT",
        "/not_a_handler",
        "/plain_module/plain",
        "/notapp/readme",
    ],
)
def test_private_imported_and_non_req_functions_are_not_routes(router_app, path):
    reply = router_app(DEMO).client.get(path)
    assert reply.status == 404
    assert reply.json()["stat"] == "ERR_NOT_FOUND"


def test_decorator_options_reach_the_route(router_app):
    app = router_app(DEMO)
    route = app.kernel.routes.lookup("/demo/secret")
    assert route.admin is True and route.methods == frozenset({"POST"}) and route.kind == "json"
    # without methods=: GET/HEAD/POST (query string or body); OPTIONS never runs a handler
    assert app.kernel.routes.lookup("/demo/hello").methods == frozenset({"GET", "HEAD", "POST"})
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"):
        reply = app.client.request(method, "/demo/hello")
        assert reply.status == 405 and reply.headers["allow"] == "GET, HEAD, POST", method
    assert app.client.get("/demo/secret").status == 405
    assert app.client.post("/demo/secret").json() == {"stat": "OK"}
    remote = app.client.post("/demo/secret", remote_addr="10.1.2.3")
    assert remote.status == 403 and remote.json()["stat"] == "ERR_FORBIDDEN"


def test_broken_app_is_logged_and_the_others_serve(router_app, captured_logs):
    app = router_app(
        {
            "good/__init__.py": "def ok(req):\n    return 'OK'\n",
            "broken/__init__.py": "import no_such_module_xyz\n\ndef never(req):\n    return 'OK'\n",
            "raising/__init__.py": "raise RuntimeError('boom at import')\n",
        }
    )
    assert app.client.get("/good/ok").json() == {"stat": "OK"}
    assert app.client.get("/broken/never").status == 404
    failures = {e["app"]: e for e in captured_logs if e["event"] == "handler app failed to load"}
    assert set(failures) == {"broken", "raising"}
    assert isinstance(failures["raising"]["exc_info"], RuntimeError)
    assert "boom at import" in failures["raising"]["error"]
    assert failures["broken"]["log_level"] == "error"
    state = app.kernel.extensions["router"]
    assert set(state.broken_apps) == {"broken", "raising"}
    reply = app.client.get("/_meta/health")
    assert reply.status == 200  # not strict: the other apps serve, the broken ones are listed
    checks = reply.json()["checks"]
    assert checks["router.app:broken"] == {
        "ok": True,
        "detail": "failed to import: ModuleNotFoundError: No module named 'no_such_module_xyz'",
    }
    assert "boom at import" in checks["router.app:raising"]["detail"]
    # with [router] strict a broken app is unhealthy: the load balancer takes the instance out
    state.strict = True
    reply = app.client.get("/_meta/health")
    assert reply.status == 503 and reply.json()["stat"] == "ERR_SERVICE_UNAVAILABLE"
    assert "router.app:broken" in reply.headers["x-reason"]
    assert reply.json()["checks"]["router.app:raising"]["ok"] is False


def test_strict_mode_makes_a_broken_app_a_startup_error(router_app):
    with pytest.raises(ConfigError, match="broken"):
        router_app({"broken/__init__.py": "1/0\n"}, settings={"router.strict": True})


def test_broken_root_package_is_reported_and_apps_skipped(router_app, captured_logs):
    app = router_app(
        {"__init__.py": "raise ImportError('root broken')\n", "demo/__init__.py": "def ok(req):\n    return 'OK'\n"}
    )
    assert app.client.get("/demo/ok").status == 404
    assert any(e["event"] == "handler app failed to load" and e["app"] == "/" for e in captured_logs)


def test_missing_handlers_dir_serves_nothing_but_meta(make_kernel, tmp_path):
    kernel = make_kernel(
        plugins=[butterfly_router.plugin],
        settings={"router.handlers_dir": str(tmp_path / "nope"), "router.static_dir": ""},
    )
    served = {route.path for route in kernel.routes if route.plugin != "router.console"}  # the console: / + assets
    assert served == {"/_meta/health", "/_meta/routes", "/_meta/openapi.json"}


def test_bad_signature_counts_as_a_broken_app(router_app):
    app = router_app(
        {
            "pos/__init__.py": "def f(req, a, /, b):\n    return 'OK'\n",
            "ok/__init__.py": "def g(req):\n    return 'OK'\n",
        }
    )
    assert "pos" in app.kernel.extensions["router"].broken_apps
    assert app.client.get("/ok/g").status == 200


def test_handlers_dir_name_clashing_with_stdlib_is_refused(make_kernel, tmp_path):
    root = tmp_path / "json"
    root.mkdir()
    with pytest.raises(ConfigError, match="json"):
        make_kernel(plugins=[butterfly_router.plugin], settings={"router.handlers_dir": str(root)})
    assert "json" in sys.modules and hasattr(sys.modules["json"], "dumps")


class PackagePlugin:
    """Contributes a handler package, the way butterfly_wuxing or butterfly_mq would."""

    def __init__(self, packages):
        self.packages = packages

    @hookimpl(optionalhook=True)
    def butterfly_router_handler_packages(self):
        return self.packages


def _plugin_module(tmp_path, unique_name, source):
    name = unique_name("plugmod")
    (tmp_path / f"{name}.py").write_text(source)
    sys.path.insert(0, str(tmp_path))
    return name


def test_plugin_handler_packages_are_served(router_app, tmp_path, unique_name):
    module = _plugin_module(
        tmp_path,
        unique_name,
        "from os import getcwd\n\ndef info(req, n: int = 1):\n"
        "    return 'OK', {'n': n}\n\ndef _hidden(req):\n    return 'OK'\n",
    )
    try:
        app = router_app({}, plugins=[PackagePlugin([("plug", module)])])
        assert app.client.get("/plug/info", query={"n": "4"}).json() == {"stat": "OK", "n": 4}
        assert app.client.get("/plug/_hidden").status == 404
        assert app.client.get("/plug/getcwd").status == 404
        assert app.kernel.routes.lookup("/plug/info").meta["source"].startswith("plugin:")
    finally:
        sys.path.remove(str(tmp_path))


def test_duplicate_paths_are_a_startup_error(router_app, tmp_path, unique_name):
    module = _plugin_module(tmp_path, unique_name, "def hello(req):\n    return 'OK'\n")
    try:
        with pytest.raises(ConfigError, match="duplicate route /demo/hello"):
            router_app(
                {"demo/__init__.py": "def hello(req):\n    return 'OK'\n"}, plugins=[PackagePlugin([("demo", module)])]
            )
    finally:
        sys.path.remove(str(tmp_path))


def test_malformed_plugin_package_list_is_a_clear_error(router_app):
    with pytest.raises(ConfigError, match="pairs"):
        router_app({}, plugins=[PackagePlugin(["just-a-string"])])


def test_decorators_mark_and_return_the_same_function():
    def handler(req, a: int, b: str = "x"):
        """Doc."""
        return "OK"

    signature = inspect.signature(handler)
    assert api(handler) is handler and options_of(handler) == RouteOptions("json")
    assert api(admin=True)(handler) is handler and options_of(handler).admin is True
    assert http(handler) is handler and options_of(handler).kind == "http"
    assert download()(handler) is handler and options_of(handler).methods == ("GET", "HEAD")
    assert upload(methods="put")(handler) is handler and options_of(handler) == RouteOptions("upload", False, ("PUT",))
    assert inspect.signature(handler) == signature and handler.__doc__ == "Doc."
    assert getattr(handler, MARK).kind == "upload"
    with pytest.raises(TypeError):
        api("not a function")
    with pytest.raises(ValueError):
        api(methods=())


def test_undecorated_handlers_are_json(router_app):
    app = router_app({"demo/__init__.py": "def f(req):\n    return 'OK'\n"})
    route = app.kernel.routes.lookup("/demo/f")
    assert route.kind == "json" and route.admin is False


def test_two_kernels_on_the_same_dir_and_a_namespace_package(router_app, make_kernel):
    app = router_app({"demo/__init__.py": "def f(req):\n    return 'OK'\n"})  # no handlers/__init__.py
    again = make_kernel(
        plugins=[butterfly_router.plugin], settings={"router.handlers_dir": str(app.root), "router.static_dir": ""}
    )
    assert Client(again).get("/demo/f").json() == {"stat": "OK"}
