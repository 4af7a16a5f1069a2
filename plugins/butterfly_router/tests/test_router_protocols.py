"""JSON and raw protocols: return shapes, headers, errors, exceptions, the stat adaptor."""

from __future__ import annotations

import pytest

from kernel import ConfigError

HANDLERS = {
    "p/__init__.py": """
    from butterfly_router import api, http, retstat
    from kernel import Response

    SHARED = {"k": 1}

    def just_stat(req):
        return retstat.OK

    def business_error(req):
        return "ERR_USER_NOT_FOUND", {"user": "bob"}

    def with_headers(req):
        return retstat.OK, None, [("X-Demo", "1.0"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]

    def dict_headers(req):
        return retstat.OK, {"x": 1}, {"X-Demo": "bad\\r\\nvalue"}

    def overrides_stat(req):
        return retstat.OK, {"stat": "FAKE", "v": 1}

    def shared(req):
        return retstat.OK, SHARED

    def int_stat(req):
        return 401, {"message": "login"}

    def returns_none(req):
        return None

    def four(req):
        return "OK", {}, [], 1

    def data_list(req):
        return "OK", [1, 2]

    def bad_headers(req):
        return "OK", {}, ["nope"]

    def unserialisable(req):
        return "OK", {"obj": object()}

    def boom(req):
        raise RuntimeError("secret-internal-detail")

    def sets_stat(req):
        return "OK", {"reqstat": req.stat}

    @http
    def status_only(req):
        return 204

    @http
    def html(req, code: int = 200):
        return code, "<p>héllo</p>"

    @http
    def raw_dict(req):
        return 418, {"stat": "TEAPOT"}, {"X-Tea": "yes"}

    @http
    def raw_list(req):
        return 200, [1, "a"]

    @http
    def raw_bytes(req):
        return 200, b"\\x00\\x01", [("Content-Type", "application/octet-stream")]

    @http
    def latin1(req):
        return 200, "café", [("Content-Type", "text/plain; charset=latin-1")]

    @http
    def bad_status(req):
        return "200", "x"

    @http
    def bad_body(req):
        return 200, object()

    @http
    def passthrough(req):
        return Response(302, [("Location", "/elsewhere")], b"")

    @http
    def redirect(req):
        return 303, "", [("Location", "/p/just_stat")]
"""
}


@pytest.fixture
def app(router_app):
    return router_app(HANDLERS)


def test_stat_only_and_business_errors_are_http_200(app):
    reply = app.client.get("/p/just_stat")
    assert (reply.status, reply.json()) == (200, {"stat": "OK"})
    assert reply.headers["content-type"] == "application/json; charset=utf-8"
    reply = app.client.get("/p/business_error")
    assert (reply.status, reply.json()) == (200, {"stat": "ERR_USER_NOT_FOUND", "user": "bob"})
    assert app.kernel.call("/p/business_error").stat == "ERR_USER_NOT_FOUND"


def test_stat_comes_first_and_wins_and_the_handlers_dict_is_untouched(app):
    reply = app.client.get("/p/overrides_stat")
    assert reply.body.startswith(b'{"stat":"OK"') and reply.json() == {"stat": "OK", "v": 1}
    app.client.get("/p/shared")
    import sys

    assert sys.modules[f"{app.package}.p"].SHARED == {"k": 1}


def test_handler_headers_list_and_dict(app):
    reply = app.client.get("/p/with_headers")
    assert reply.headers["x-demo"] == "1.0"
    assert [v for k, v in reply.header_list if k == "Set-Cookie"] == ["a=1", "b=2"]
    reply = app.client.get("/p/dict_headers")
    assert reply.headers["x-demo"] == "bad  value" and reply.json() == {"stat": "OK", "x": 1}


def test_int_stat_is_kept(app):
    assert app.client.get("/p/int_stat").json() == {"stat": 401, "message": "login"}


@pytest.mark.parametrize(
    "path", ["/p/returns_none", "/p/four", "/p/data_list", "/p/bad_headers", "/p/bad_status", "/p/bad_body"]
)
def test_bad_return_shapes_are_logged_500s(app, captured_logs, path):
    reply = app.client.get(path)
    assert reply.status == 500 and reply.json() == {"stat": "ERR_SERVER_EXCEPTION"}
    assert "invalid reply" in reply.headers["x-reason"]
    events = [e for e in captured_logs if e["event"] == "handler returned an invalid reply"]
    assert events and events[0]["path"] == path and events[0]["handler"].endswith(path.rsplit("/", 1)[1])


def test_unserialisable_data_is_a_500(app):
    reply = app.client.get("/p/unserialisable")
    assert reply.status == 500 and reply.json() == {"stat": "ERR_SERVER_EXCEPTION"}


def test_handler_exception_reaches_the_kernel_and_no_traceback_leaks(app):
    reply = app.client.get("/p/boom")
    assert reply.status == 500 and reply.json() == {"stat": "ERR_SERVER_EXCEPTION"}
    assert b"secret-internal-detail" not in reply.body and b"Traceback" not in reply.body
    assert app.kernel.call("/p/boom").stat == "ERR_SERVER_EXCEPTION"


def test_request_stat_is_set_for_the_access_log(app):
    response = app.kernel.call("/p/business_error")
    assert response.stat == "ERR_USER_NOT_FOUND"


def test_raw_status_only(app):
    reply = app.client.get("/p/status_only")
    assert reply.status == 204 and reply.body == b""


def test_raw_text_is_html_utf8_and_status_is_the_handlers(app):
    reply = app.client.get("/p/html", query={"code": "202"})
    assert reply.status == 202 and reply.text == "<p>héllo</p>"
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    assert reply.headers["content-length"] == str(len("<p>héllo</p>".encode()))


def test_raw_dict_and_list_are_json(app):
    reply = app.client.get("/p/raw_dict")
    assert (reply.status, reply.json(), reply.headers["x-tea"]) == (418, {"stat": "TEAPOT"}, "yes")
    assert reply.headers["content-type"].startswith("application/json")
    reply = app.client.get("/p/raw_list")
    assert reply.json() == [1, "a"] and reply.headers["content-type"].startswith("application/json")


def test_raw_bytes_and_header_charset(app):
    reply = app.client.get("/p/raw_bytes")
    assert reply.body == b"\x00\x01" and reply.headers["content-type"] == "application/octet-stream"
    reply = app.client.get("/p/latin1")
    assert reply.body == "café".encode("latin-1")


def test_raw_can_return_a_response_and_redirect(app):
    reply = app.client.get("/p/passthrough")
    assert reply.status == 302 and reply.headers["location"] == "/elsewhere"
    assert app.client.get("/p/redirect").headers["location"] == "/p/just_stat"


def test_raw_bad_params_are_400(app):
    reply = app.client.get("/p/html", query={"code": "x"})
    assert reply.status == 400 and reply.json()["errors"][0]["param"] == "code"


ADAPTOR = {"ok_field": "success", "message_field": "message"}


def test_stat_adaptor_adds_fields_to_every_json_reply(router_app):
    app = router_app(HANDLERS, settings={"router.stat_adaptor": ADAPTOR})
    client = app.client
    assert client.get("/p/just_stat").json() == {"stat": "OK", "success": True, "message": "OK"}
    assert client.get("/p/business_error").json()["success"] is False
    assert client.get("/p/int_stat").json() == {"stat": 401, "message": "login", "success": False}
    missing = client.get("/p/nope")
    assert missing.status == 404 and missing.json() == {
        "stat": "ERR_NOT_FOUND",
        "success": False,
        "message": "ERR_NOT_FOUND",
    }
    assert client.get("/p/raw_dict").json()["success"] is False
    assert client.get("/p/raw_list").json() == [1, "a"]


def test_stat_adaptor_from_environment_json_and_ok_stats(router_app):
    app = router_app(
        HANDLERS,
        environ={"BUTTERFLY_ROUTER_STAT_ADAPTOR": '{"ok_field": "ok", "ok_stats": ["OK", "ERR_USER_NOT_FOUND"]}'},
    )
    assert app.client.get("/p/business_error").json() == {"stat": "ERR_USER_NOT_FOUND", "user": "bob", "ok": True}


@pytest.mark.parametrize(
    "bad", [{"message_field": "m"}, {"ok_field": "s", "extra": 1}, "not json", {"ok_field": "s", "ok_stats": [1]}, [1]]
)
def test_stat_adaptor_bad_config_is_a_config_error(router_app, bad):
    with pytest.raises(ConfigError, match="stat_adaptor"):
        router_app(HANDLERS, settings={"router.stat_adaptor": bad})
