"""The hot-path shortcuts give exactly what the general code gives."""

from __future__ import annotations

import json

import pytest
import structlog

import butterfly_trace.plugin as trace_plugin
from butterfly_trace.redact import MAX_ITEMS, MAX_VALUE_CHARS, Redactor
from kernel import Response, hookimpl
from kernel.testing import Client

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False, default=str).encode


@pytest.mark.parametrize(
    "params",
    [
        {"str_info": "x"},
        {"a": "1", "b": None, "n": 42, "neg": -7, "big": 10**30},
        {"ünï": 'çødé \u2028 "quoted" \\ \n tab\t', "empty": ""},
        {"edge": "x" * MAX_VALUE_CHARS},
        {f"k{i}": str(i) for i in range(MAX_ITEMS)},
    ],
)
def test_flat_json_is_the_encoded_clean_copy(params):
    redactor = Redactor()
    text = redactor.flat_json(params)
    assert text is not None
    assert text == _encode(redactor.clean(params))
    assert json.loads(text) == params


@pytest.mark.parametrize(
    "params",
    [
        {"password": "pw"},
        {"note": "ok", "X-Api-Key": "k"},
        {"long": "x" * (MAX_VALUE_CHARS + 1)},
        {f"k{i}": "v" for i in range(MAX_ITEMS + 1)},
        {"nested": {"a": "1"}},
        {"items": ["a", "b"]},
        {"flag": True},
        {"ratio": 0.5},
        {1: "non-str key"},
        {"blob": b"bytes"},
    ],
)
def test_flat_json_declines_what_needs_cleaning(params):
    redactor = Redactor()
    assert redactor.flat_json(params) is None
    redactor.clean(params)  # the general path still handles it


def test_flat_json_honours_extra_redact_words():
    assert Redactor(["customer_no"]).flat_json({"customerNo": "123"}) is None
    assert Redactor().flat_json({"customerNo": "123"}) == '{"customerNo":"123"}'


class ContextProbe:
    """``/probe`` reports what structlog's context holds while it runs."""

    @hookimpl
    def butterfly_register_routes(self, register):
        """Register ``/probe``."""
        register(
            "/probe", lambda request: Response.json({"stat": "OK", "context": structlog.contextvars.get_contextvars()})
        )


def test_reqid_is_in_structlogs_context_during_the_request(make_kernel):
    # NOTE: the MQ producer reads the reqid from structlog's context (message lineage).
    kernel = make_kernel(plugins=[trace_plugin, ContextProbe()])
    response = Client(kernel).get("/probe")
    _, trace_id, span_id, _ = response.headers["traceparent"].split("-")
    assert response.json()["context"] == {
        "reqid": response.headers["x-reqid"],
        "trace_id": trace_id,
        "span_id": span_id,
    }
    inner = kernel.call("/probe", {}, source="mq", reqid="msg-1", parent_reqid="http-1")
    context = inner.data["context"]
    assert context.pop("trace_id") != trace_id and context.pop("span_id") != span_id  # a call of its own: a new trace
    assert context == {"reqid": "msg-1", "parent_reqid": "http-1"}
    assert structlog.contextvars.get_contextvars() == {}


def test_keys_bound_around_a_call_survive_it(make_kernel):
    kernel = make_kernel(plugins=[trace_plugin, ContextProbe()])
    structlog.contextvars.bind_contextvars(job="nightly", reqid="outer-1")
    try:
        inner = kernel.call("/probe", {}, source="ruqi", reqid="run-1")
        context = inner.data["context"]
        assert len(context.pop("trace_id")) == 32 and len(context.pop("span_id")) == 16
        assert context == {"job": "nightly", "reqid": "run-1"}
        assert structlog.contextvars.get_contextvars() == {"job": "nightly", "reqid": "outer-1"}
    finally:
        structlog.contextvars.clear_contextvars()


class LeakyHandler:
    """``/leak`` binds a key into the log context and never unbinds it."""

    @hookimpl
    def butterfly_register_routes(self, register):
        """Register ``/leak``."""

        def leak(request):
            structlog.contextvars.bind_contextvars(customer="acme")
            return Response.json({"stat": "OK"})

        register("/leak", leak)


def test_http_request_leaves_no_keys_for_the_next_request_on_the_thread(make_kernel):
    # NOTE: waitress reuses worker threads; a key a handler forgot to unbind must not
    # show up on the log lines of the next, unrelated request.
    kernel = make_kernel(plugins=[trace_plugin, ContextProbe(), LeakyHandler()])
    client = Client(kernel)
    assert client.get("/leak").status == 200
    assert structlog.contextvars.get_contextvars() == {}
    response = client.get("/probe")
    _, trace_id, span_id, _ = response.headers["traceparent"].split("-")
    assert response.json()["context"] == {
        "reqid": response.headers["x-reqid"],
        "trace_id": trace_id,
        "span_id": span_id,
    }
