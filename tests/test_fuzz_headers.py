"""Hypothesis over headers, cookies, paths and methods of a full in-process request: never a 5xx.

The parameter binder and bodies are fuzzed in plugins/butterfly_router/tests/test_router_fuzz.py;
this covers the other places client text is read: the request id, proxy headers (with a
trusted proxy configured), cookies, the content type and length, the path and the method.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import butterfly_router.plugin
import butterfly_trace.plugin
from kernel.testing import Client, build_kernel

FUZZ = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
#: What a WSGI server can put in environ: Latin-1 text.
latin1 = st.text(alphabet=st.characters(max_codepoint=255), max_size=80)
header_names = st.sampled_from(
    ["X-Request-Id", "X-Forwarded-For", "X-Real-IP", "Cookie", "Content-Type", "Content-Length", "Accept", "Origin"]
)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    base = tmp_path_factory.mktemp("headers")
    apps = base / "hdr_apps"
    (apps / "e").mkdir(parents=True)
    (apps / "e" / "__init__.py").write_text(
        "def echo(req, a=None):\n    return 'OK', {'a': a, 'cookies': req.cookies, 'ip': req.client_ip}\n"
    )
    kernel = build_kernel(
        base,
        [butterfly_router.plugin, butterfly_trace.plugin],
        {"router.handlers_dir": str(apps), "router.static_dir": "", "trace.trusted_proxies": ["127.0.0.1"]},
    )
    yield Client(kernel)
    kernel.shutdown()


@FUZZ
@given(
    headers=st.dictionaries(header_names, latin1, max_size=5),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH", "FOO"]),
    path=st.sampled_from(["/e/echo", "/e/echo/", "/e/nope", "/"]) | latin1.map(lambda text: "/" + text),
    body=st.binary(max_size=64),
)
def test_no_header_path_or_method_gives_a_5xx(client, headers, method, path, body):
    reply = client.request(method, path, headers=headers, body=body)
    assert reply.status < 500, (reply.status, reply.body[:300])
    assert reply.headers["x-reqid"]
    if reply.status >= 400:
        assert reply.headers["x-reason"] and json.loads(reply.body.decode("utf-8"))["stat"].startswith("ERR_")
    for value in reply.headers.values():  # no control characters (obs-text 0x80-0xFF is allowed)
        assert not any(ord(char) < 32 or ord(char) == 127 for char in value), value
