"""The kernel's linear request path, with no plugins and with inline test plugins."""

from __future__ import annotations

from kernel import BadRequest, Response, hookimpl
from kernel.testing import Client


def test_bare_kernel_answers_every_path_with_json_404(make_kernel):
    client = Client(make_kernel())
    for path in ("/", "/demo_api/ping", "/x/y/z", "/static/a.css"):
        reply = client.get(path)
        assert reply.status == 404
        assert reply.json() == {"stat": "ERR_NOT_FOUND"}
        assert reply.headers["content-type"].startswith("application/json")
        assert reply.headers["x-reason"]


class Recorder:
    """A plugin recording the order of request hooks."""

    def __init__(self):
        self.events = []

    @hookimpl
    def butterfly_register_routes(self, register):
        register("/t/ok", lambda request: Response.json({"stat": "OK", "n": 1}))
        register("/t/boom", self.boom)
        register("/t/bad", self.bad)
        register("/t/admin", lambda request: Response.json({"stat": "OK"}), methods=("GET",), admin=True)
        register("/t/post", lambda request: Response.json({"stat": "OK"}), methods=["POST"])

    def boom(self, request):
        raise RuntimeError("secret detail")

    def bad(self, request):
        raise BadRequest("nope", data={"errors": [{"param": "a", "reason": "missing"}]})

    @hookimpl
    def butterfly_request_started(self, request):
        self.events.append(("started", request.path))

    @hookimpl
    def butterfly_authorize(self, request, route):
        self.events.append(("authorize", route.path))

    @hookimpl
    def butterfly_response_headers(self, request, response):
        self.events.append(("headers", response.status))
        response.headers.append(("x-test", "1"))

    @hookimpl
    def butterfly_request_finished(self, request, response):
        self.events.append(("finished", response.status))

    @hookimpl
    def butterfly_handle_error(self, request, exc):
        self.events.append(("error", type(exc).__name__))


def test_hooks_run_in_order(make_kernel):
    recorder = Recorder()
    client = Client(make_kernel(plugins=[recorder]))
    reply = client.get("/t/ok/")
    assert reply.json() == {"stat": "OK", "n": 1}
    assert reply.headers["x-test"] == "1"
    assert recorder.events == [("started", "/t/ok/"), ("authorize", "/t/ok"), ("headers", 200), ("finished", 200)]


def test_handler_exception_is_a_bare_500(make_kernel):
    recorder = Recorder()
    reply = Client(make_kernel(plugins=[recorder])).get("/t/boom")
    assert reply.status == 500
    assert reply.json() == {"stat": "ERR_SERVER_EXCEPTION"}
    assert "secret" not in reply.text and "secret" not in reply.headers["x-reason"]
    assert ("error", "RuntimeError") in recorder.events
    assert recorder.events[-1] == ("finished", 500)


def test_http_error_keeps_its_fields(make_kernel):
    reply = Client(make_kernel(plugins=[Recorder()])).get("/t/bad")
    assert reply.status == 400
    assert reply.json() == {"stat": "ERR_BAD_PARAMS", "errors": [{"param": "a", "reason": "missing"}]}


def test_admin_route_loopback_only_by_default(make_kernel):
    kernel = make_kernel(plugins=[Recorder()])
    assert Client(kernel).get("/t/admin").status == 200
    remote = Client(kernel, remote_addr="10.1.2.3").get("/t/admin")
    assert remote.status == 403 and remote.json()["stat"] == "ERR_FORBIDDEN"
    proxied = Client(kernel).get("/t/admin", headers={"X-Forwarded-For": "10.1.2.3"})
    assert proxied.status == 403


def test_method_not_allowed(make_kernel):
    client = Client(make_kernel(plugins=[Recorder()]))
    reply = client.get("/t/post")
    assert reply.status == 405 and reply.headers["allow"] == "POST"
    assert client.post("/t/post").status == 200


def test_in_process_call_keeps_data(make_kernel):
    recorder = Recorder()
    kernel = make_kernel(plugins=[recorder])
    response = kernel.call("/t/ok", {}, source="mq")
    assert response.data == {"stat": "OK", "n": 1}
    assert kernel.call("/nope").status == 404
