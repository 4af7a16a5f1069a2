"""Every kernel hook is named, documented and exercised (datasette's ``test_plugin_hooks_are_documented``)."""

from __future__ import annotations

import argparse
import inspect
import re

import pytest

from kernel import Forbidden, Response, hookimpl, hookspec, hookspecs
from kernel.testing import Client

SPECS = {
    name: func
    for name, func in inspect.getmembers(hookspecs, inspect.isfunction)
    if func.__module__ == hookspecs.__name__
}


def test_there_are_hookspecs():
    assert len(SPECS) >= 13


@pytest.mark.parametrize("name", sorted(SPECS))
def test_hook_is_prefixed_and_documented(name):
    func = SPECS[name]
    assert name.startswith("butterfly_")
    doc = inspect.getdoc(func) or ""
    summary = doc.splitlines()[0] if doc else ""
    assert summary.strip(), f"{name} has no summary line"
    for argname in inspect.signature(func).parameters:
        assert re.search(rf"^:param {argname}:", doc, re.MULTILINE), f"{name}: no ':param {argname}:'"
    assert re.search(r"^:return:", doc, re.MULTILINE), f"{name}: no ':return:'"
    assert re.search(r"\b(runs|called)\b", doc, re.IGNORECASE), f"{name}: does not say when it runs"


class ExtraSpecs:
    """A plugin's own hookspec, added through ``butterfly_add_hookspecs``."""

    @hookspec
    def butterfly_recorder_ping(self, value):
        """Test-only hook.

        :param value: anything
        :return: the value back
        """


class Recorder:
    """Implements every kernel hook and records each call with its arguments."""

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []

    def record(self, hook: str, **kwargs):
        self.calls.append((hook, kwargs))

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    # lifecycle
    @hookimpl
    def butterfly_add_hookspecs(self, pluginmanager):
        self.record("butterfly_add_hookspecs", pluginmanager=pluginmanager)
        pluginmanager.add_hookspecs(ExtraSpecs)

    @hookimpl
    def butterfly_add_settings(self, settings):
        self.record("butterfly_add_settings", settings=settings)
        settings.add("recorder", "greeting", str, "hi", "what to say", owner="recorder")

    @hookimpl
    def butterfly_configure(self, kernel):
        self.record("butterfly_configure", kernel=kernel, greeting=kernel.settings.get("recorder", "greeting"))

    @hookimpl
    def butterfly_register_routes(self, register, kernel):
        self.record("butterfly_register_routes", kernel=kernel)
        register("/rec/ok", lambda request: Response.json({"stat": "OK"}), kind="json")
        register("/rec/boom", self.boom, kind="json")
        register("/rec/denied", lambda request: Response.json({"stat": "OK"}), kind="json")

    def boom(self, request):
        raise LookupError("boom")

    @hookimpl
    def butterfly_startup(self, kernel):
        self.record("butterfly_startup", kernel=kernel)

    @hookimpl
    def butterfly_shutdown(self, kernel):
        self.record("butterfly_shutdown", kernel=kernel)

    @hookimpl
    def butterfly_add_commands(self, subparsers):
        self.record("butterfly_add_commands", subparsers=subparsers)
        subparsers.add_parser("recorder-cmd").set_defaults(run=lambda args: 0)

    @hookimpl
    def butterfly_health(self, kernel):
        self.record("butterfly_health", kernel=kernel)
        return {"recorder": (True, "fine")}

    @hookimpl
    def butterfly_recorder_ping(self, value):
        return value

    # console (called by butterfly-router's console, not by the kernel)
    @hookimpl
    def butterfly_console_links(self, register, kernel):
        self.record("butterfly_console_links", kernel=kernel)
        register("Recorder", "/rec/ok", description="what the recorder saw")
        register("Recorder admin", "/rec/denied", admin=True)

    # request
    @hookimpl
    def butterfly_request_started(self, request):
        self.record("butterfly_request_started", request=request, path=request.path)

    @hookimpl
    def butterfly_authorize(self, request, route):
        self.record("butterfly_authorize", request=request, route=route)
        return Forbidden("recorder says no") if route.path == "/rec/denied" else None

    @hookimpl
    def butterfly_handle_error(self, request, exc):
        self.record("butterfly_handle_error", request=request, exc=exc)
        return Response.json({"stat": "ERR_RECORDED", "kind": type(exc).__name__}, status=500)

    @hookimpl
    def butterfly_response_headers(self, request, response):
        self.record("butterfly_response_headers", request=request, response=response)
        response.set_header("x-recorded", "yes")

    @hookimpl
    def butterfly_request_finished(self, request, response):
        self.record("butterfly_request_finished", request=request, response=response)


def test_every_kernel_hook_is_called_in_order_with_the_right_arguments(make_kernel):
    recorder = Recorder()
    kernel = make_kernel(plugins=[(recorder, "recorder")])

    # construction: specs → settings → configure → routes
    assert recorder.names() == [
        "butterfly_add_hookspecs",
        "butterfly_add_settings",
        "butterfly_configure",
        "butterfly_register_routes",
    ]
    calls = dict(recorder.calls)
    assert calls["butterfly_add_hookspecs"]["pluginmanager"] is kernel.pm
    assert calls["butterfly_add_settings"]["settings"] is kernel.settings
    assert calls["butterfly_configure"] == {"kernel": kernel, "greeting": "hi"}
    assert calls["butterfly_register_routes"]["kernel"] is kernel
    assert kernel.routes.lookup("/rec/ok").plugin == "recorder"
    assert kernel.hook.butterfly_recorder_ping(value=5) == [5]  # the added hookspec is live

    kernel.startup()
    assert recorder.calls[-1] == ("butterfly_startup", {"kernel": kernel})

    client = Client(kernel)
    del recorder.calls[:]
    reply = client.get("/rec/ok")
    assert reply.status == 200 and reply.headers["x-recorded"] == "yes"
    assert recorder.names() == [
        "butterfly_request_started",
        "butterfly_authorize",
        "butterfly_response_headers",
        "butterfly_request_finished",
    ]
    request = recorder.calls[0][1]["request"]
    assert recorder.calls[0][1]["path"] == "/rec/ok"
    assert all(kwargs["request"] is request for _, kwargs in recorder.calls)
    assert recorder.calls[1][1]["route"] is kernel.routes.lookup("/rec/ok")
    assert recorder.calls[2][1]["response"] is recorder.calls[3][1]["response"]

    del recorder.calls[:]
    reply = client.get("/rec/boom")
    assert reply.status == 500 and reply.json() == {"stat": "ERR_RECORDED", "kind": "LookupError"}
    assert recorder.names() == [
        "butterfly_request_started",
        "butterfly_authorize",
        "butterfly_handle_error",
        "butterfly_response_headers",
        "butterfly_request_finished",
    ]
    exc = recorder.calls[2][1]["exc"]
    assert isinstance(exc, LookupError) and str(exc) == "boom"

    del recorder.calls[:]
    reply = client.get("/rec/denied")
    assert reply.status == 403 and reply.json() == {"stat": "ERR_FORBIDDEN"}
    assert reply.headers["x-reason"] == "recorder says no"
    assert recorder.names() == [
        "butterfly_request_started",
        "butterfly_authorize",
        "butterfly_response_headers",
        "butterfly_request_finished",
    ]

    del recorder.calls[:]
    assert kernel.hook.butterfly_health(kernel=kernel) == [{"recorder": (True, "fine")}]
    assert recorder.calls == [("butterfly_health", {"kernel": kernel})]

    kernel.shutdown()
    kernel.shutdown()  # once only
    assert recorder.calls[-1] == ("butterfly_shutdown", {"kernel": kernel})
    assert recorder.names().count("butterfly_shutdown") == 1

    subparsers = argparse.ArgumentParser(prog="butterfly").add_subparsers()
    kernel.hook.butterfly_add_commands(subparsers=subparsers)
    assert recorder.calls[-1] == ("butterfly_add_commands", {"subparsers": subparsers})
    assert "recorder-cmd" in subparsers.choices

    # the recorder covers every hook the kernel defines: a new hook needs a test here
    assert {name for name, _ in Recorder.__dict__.items() if name in SPECS} == set(SPECS)


def test_in_process_calls_run_the_same_request_hooks(make_kernel):
    recorder = Recorder()
    kernel = make_kernel(plugins=[(recorder, "recorder")])
    del recorder.calls[:]
    response = kernel.call("/rec/ok", {"a": 1}, source="mq", parent_reqid="parent-1")
    assert response.data == {"stat": "OK"}
    assert recorder.names() == [
        "butterfly_request_started",
        "butterfly_authorize",
        "butterfly_response_headers",
        "butterfly_request_finished",
    ]
    request = recorder.calls[0][1]["request"]
    assert (request.source, request.method, request.parent_reqid, request.params) == (
        "mq",
        "QUEUE",
        "parent-1",
        {"a": 1},
    )


def test_optional_hook_of_an_absent_plugin_does_not_fail_startup(make_kernel):
    class UsesStoreHook:
        @hookimpl(optionalhook=True)
        def butterfly_store_define_entities(self, db):
            raise AssertionError("never called: the store plugin is absent")

    kernel = make_kernel(plugins=[(UsesStoreHook(), "uses-store")])
    assert "uses-store" in [info.name for info in kernel.plugins]


def test_console_links_feed_the_navigation_bar_of_every_page(make_kernel):
    import butterfly_router.plugin

    recorder = Recorder()
    kernel = make_kernel(plugins=[butterfly_router.plugin, (recorder, "recorder")])
    assert [kwargs for name, kwargs in recorder.calls if name == "butterfly_console_links"] == [{"kernel": kernel}]

    local = Client(kernel).get("/", headers={"Accept": "text/html"})  # loopback without auth: an admin
    assert local.status == 200
    assert '<a href="/rec/ok">Recorder</a>' in local.text and '<a href="/rec/denied">Recorder admin</a>' in local.text
    assert "what the recorder saw" in local.text

    remote = Client(kernel, remote_addr="192.0.2.7").get("/")  # not an admin: admin links hidden
    assert remote.status == 200
    assert '<a href="/rec/ok">Recorder</a>' in remote.text and "/rec/denied" not in remote.text
