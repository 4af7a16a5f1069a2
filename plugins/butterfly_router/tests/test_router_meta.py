"""/_meta/openapi.json, /_meta/health and /_meta/routes."""

from __future__ import annotations

import json

import pytest

from kernel import hookimpl

APPS = {
    "m/__init__.py": '''
    import datetime
    from typing import Literal, Optional
    from butterfly_router import api, download, http, upload

    def hello(req, name: str, times: int = 1, tags: list[str] | None = None, mode: Literal["a", "b"] = "a"):
        """Say hello.

        Longer description of hello.
        """
        return "OK", {"name": name}

    @api(methods=("POST",), admin=True)
    def create(req, when: datetime.datetime, payload: dict, ratio: float = 0.5, flag: bool = False, **extra):
        """Create something."""
        return "OK"

    @upload
    def put(req, stream, label: Optional[str] = None):
        return "OK"

    @download
    def fetch(req, name: str):
        return name

    @http
    def page(req):
        return 200, "<p>x</p>"
'''
}


@pytest.fixture
def app(router_app, tmp_path):
    (tmp_path / "static").mkdir()
    return router_app(APPS, settings={"router.static_dir": str(tmp_path / "static")})


def resolve(document, ref):
    assert ref.startswith("#/")
    node = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def check_openapi_structure(document):
    """The structural rules of OpenAPI 3.0 that matter to code generators."""
    assert document["openapi"].startswith("3.0.")
    assert document["info"]["title"] and document["info"]["version"]
    operation_ids = set()
    for path, item in document["paths"].items():
        assert path.startswith("/")
        for method, operation in item.items():
            assert method in {"get", "post", "put", "patch", "delete", "head", "options", "trace"}
            assert operation["operationId"] not in operation_ids
            operation_ids.add(operation["operationId"])
            assert operation["responses"] and all(
                code.isdigit() or code == "default" for code in operation["responses"]
            )
            for response in operation["responses"].values():
                if "$ref" in response:
                    response = resolve(document, response["$ref"])
                assert response["description"]
                for media in response.get("content", {}).values():
                    if "$ref" in media["schema"]:
                        resolve(document, media["schema"]["$ref"])
            names = set()
            for parameter in operation.get("parameters", []):
                assert parameter["in"] in {"query", "path", "header", "cookie"}
                assert ("schema" in parameter) != ("content" in parameter)
                assert isinstance(parameter["required"], bool)
                if parameter["in"] == "path":
                    assert parameter["required"] and "{" + parameter["name"] + "}" in path
                assert parameter["name"] not in names
                names.add(parameter["name"])
            if "requestBody" in operation:
                assert operation["requestBody"]["content"]
    json.dumps(document)


def test_openapi_document(app):
    reply = app.client.get("/_meta/openapi.json")
    assert reply.status == 200
    document = reply.json()
    check_openapi_structure(document)
    hello = document["paths"]["/m/hello"]
    assert list(hello) == ["get", "head", "post"]  # exactly the methods the route accepts
    get = hello["get"]
    assert get["summary"] == "Say hello." and get["description"] == "Longer description of hello."
    params = {p["name"]: p for p in get["parameters"]}
    assert params["name"] == {"name": "name", "in": "query", "required": True, "schema": {"type": "string"}}
    assert params["times"]["schema"] == {"type": "integer", "default": 1} and not params["times"]["required"]
    # a query string cannot say null: optional parameters are left out instead
    assert params["tags"]["schema"] == {"type": "array", "items": {"type": "string"}}
    assert params["mode"]["schema"] == {"enum": ["a", "b"], "type": "string", "default": "a"}
    body = hello["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["name"] and body["additionalProperties"] is False

    create = document["paths"]["/m/create"]
    assert set(create) == {"post"} and create["post"]["x-butterfly-admin"] is True
    schema = create["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert schema["properties"]["when"] == {"type": "string", "format": "date-time"}
    assert schema["properties"]["payload"] == {"type": "object"}
    assert schema["properties"]["ratio"] == {"type": "number", "default": 0.5}
    assert schema["additionalProperties"] is True and schema["required"] == ["when", "payload"]

    put = document["paths"]["/m/put"]["post"]
    assert put["requestBody"]["content"]["application/octet-stream"]["schema"]["format"] == "binary"
    assert [p["name"] for p in put["parameters"]] == ["label"]
    assert "*/*" in document["paths"]["/m/fetch"]["get"]["responses"]["200"]["content"]
    assert set(document["paths"]["/m/page"]["get"]["responses"]) == {"default"}  # @http: the handler decides
    assert "/static/{path}" in document["paths"]
    assert "/_meta/health" in document["paths"]


def test_openapi_declares_every_framework_status_with_the_error_envelope(app):
    document = app.client.get("/_meta/openapi.json").json()
    responses = document["paths"]["/m/hello"]["get"]["responses"]
    assert set(responses) == {"200", "400", "401", "403", "404", "405", "413", "431", "500", "501"}
    bad = resolve(document, responses["400"]["$ref"])
    assert bad["headers"]["x-reason"] == {"$ref": "#/components/headers/XReason"}
    assert bad["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["stat"] and error["properties"]["errors"]["items"]["required"] == ["param", "reason"]
    assert "Allow" in resolve(document, responses["405"]["$ref"])["headers"]
    health = document["paths"]["/_meta/health"]["get"]["responses"]
    assert health["503"] == {"$ref": "#/components/responses/ServiceUnavailable"}
    assert list(document["paths"]["/_meta/health"]) == ["get", "head"]


def test_openapi_admin_routes_need_credentials_only_with_auth(app):
    document = app.client.get("/_meta/openapi.json").json()
    create = document["paths"]["/m/create"]["post"]
    assert create["x-butterfly-admin"] is True
    assert "security" not in create and "securitySchemes" not in document["components"]  # loopback only


def test_openapi_can_be_switched_off(router_app):
    app = router_app(APPS, settings={"router.openapi": False})
    assert app.client.get("/_meta/openapi.json").status == 404


class Health:
    def __init__(self, result):
        self.result = result

    @hookimpl
    def butterfly_health(self, kernel):
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def test_health_ok(app):
    reply = app.client.get("/_meta/health")
    assert reply.status == 200
    body = reply.json()
    assert body["stat"] == "OK" and body["checks"]["router"]["ok"] is True


def test_health_failing_check_is_503(router_app):
    app = router_app({}, plugins=[Health({"redis": (False, "connection refused"), "db": (True, "ok")})])
    reply = app.client.get("/_meta/health")
    assert reply.status == 503
    body = reply.json()
    assert body["stat"] == "ERR_SERVICE_UNAVAILABLE" and "redis" in reply.headers["x-reason"]
    assert body["checks"]["redis"] == {"ok": False, "detail": "connection refused"}
    assert body["checks"]["db"]["ok"] is True and body["checks"]["router"]["ok"] is True


def test_health_raising_check_is_reported_not_fatal(router_app, captured_logs):
    app = router_app({}, plugins=[(Health(RuntimeError("x")), "flaky")])
    reply = app.client.get("/_meta/health")
    assert reply.status == 503
    assert reply.json()["checks"]["flaky"] == {"ok": False, "detail": "health check raised RuntimeError"}
    assert any(e["event"] == "health check raised" for e in captured_logs)


def test_routes_listing_is_admin(app):
    assert app.client.get("/_meta/routes", remote_addr="192.0.2.1").status == 403
    reply = app.client.get("/_meta/routes")
    assert reply.status == 200
    routes = {route["path"]: route for route in reply.json()["routes"]}
    hello = routes["/m/hello"]
    assert hello["kind"] == "json" and hello["summary"] == "Say hello." and hello["admin"] is False
    assert hello["params"][0] == {"name": "name", "type": "str", "required": True}
    assert routes["/m/create"]["methods"] == ["POST"] and routes["/m/create"]["admin"] is True
    assert routes["/static/*"]["kind"] == "static"
    assert routes["/_meta/routes"]["admin"] is True


class Described:
    """A plugin route the router cannot inspect, described through meta, plus the OpenAPI hook."""

    @hookimpl
    def butterfly_register_routes(self, register):
        register(
            "/p/report",
            lambda request: None,
            kind="json",
            methods=("GET", "POST"),
            meta={
                "openapi": {
                    "post": {
                        "requestBody": {
                            "required": True,
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        "responses": {"503": None, "202": {"description": "queued"}},
                    }
                }
            },
        )
        register("/p/raw", lambda request: None, meta={"openapi": {"responses": {"200": {"description": "ok"}}}})

    @hookimpl(optionalhook=True)
    def butterfly_router_openapi_operation(self, route, method, operation):
        if route.path == "/p/report":
            operation["responses"]["429"] = {"$ref": "#/components/responses/TooManyRequests"}


def test_plugins_describe_their_routes_through_meta_and_the_hook(router_app):
    app = router_app({}, plugins=[(Described(), "described")])
    document = app.client.get("/_meta/openapi.json").json()
    check_openapi_structure(document)
    report = document["paths"]["/p/report"]
    assert list(report) == ["get", "post"]
    assert "requestBody" not in report["get"] and report["post"]["requestBody"]["required"] is True
    assert report["post"]["responses"]["503"] == {"$ref": "#/components/responses/ServiceUnavailable"}
    assert report["post"]["responses"]["202"] == {"description": "queued"}
    assert "503" not in report["get"]["responses"]
    assert report["get"]["responses"]["429"] == report["post"]["responses"]["429"]  # from the hook
    resolve(document, report["get"]["responses"]["429"]["$ref"])
    # a route of unknown kind says what it answers: the framework errors join its own reply
    raw = document["paths"]["/p/raw"]
    assert sorted(raw) == ["delete", "get", "head", "options", "patch", "post", "put"]  # registered without methods
    assert {"200", "400", "500"} <= set(raw["get"]["responses"]) and "default" not in raw["get"]["responses"]


class SettingBounds:
    """A plugin describing its own route with the helpers, and a setting's bound on a handler's parameter."""

    @hookimpl
    def butterfly_register_routes(self, register, kernel):
        from butterfly_router.openapi import document_parameters, json_body, query_parameters

        register(
            "/p/page",
            lambda request: None,
            kind="html",
            methods=("GET", "POST"),
            meta={
                "openapi": {
                    "get": query_parameters(
                        required=["id"], id={"type": "integer", "minimum": 1}, q={"type": "string"}
                    ),
                    "post": json_body(required=["name"], name={"type": "string", "minLength": 1}),
                }
            },
        )
        document_parameters(kernel, ["/m/hello"], times={"maximum": 7}, name={"x-butterfly-checked-by-handler": "x"})


def test_helpers_describe_parameters_and_setting_bounds(router_app):
    app = router_app(APPS, plugins=[(SettingBounds(), "bounds")])
    document = app.client.get("/_meta/openapi.json").json()
    check_openapi_structure(document)
    page = document["paths"]["/p/page"]
    assert page["get"]["parameters"] == [
        {"name": "id", "in": "query", "required": True, "schema": {"type": "integer", "minimum": 1}},
        {"name": "q", "in": "query", "required": False, "schema": {"type": "string"}},
    ]
    body = page["post"]["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"] == {
        "type": "object",
        "properties": {"name": {"type": "string", "minLength": 1}},
        "additionalProperties": False,
        "required": ["name"],
    }
    hello = document["paths"]["/m/hello"]
    query = {parameter["name"]: parameter["schema"] for parameter in hello["get"]["parameters"]}
    assert query["times"] == {"type": "integer", "default": 1, "maximum": 7}
    assert query["name"]["x-butterfly-checked-by-handler"] == "x"
    properties = hello["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert properties["times"]["maximum"] == 7 and properties["name"]["x-butterfly-checked-by-handler"] == "x"
