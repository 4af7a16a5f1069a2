"""Fuzzing the binder and the JSON protocol: any input gives 200 or a well-formed 400, never a 500."""

from __future__ import annotations

import json
import sys
import textwrap
import uuid
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import butterfly_router.plugin
from kernel.testing import Client, build_kernel

FUZZ_APP = {
    "z/__init__.py": """
    import datetime
    from typing import Literal, Optional

    def typed(req, a: int, b: float = 0.0, c: bool = False, d: Optional[list[int]] = None, e: dict | None = None,
              f: Literal["x", "y", 3] = "x", g: Optional[datetime.datetime] = None, h: str = "",
              k: datetime.date | None = None, i=None):
        return "OK", {"a": a, "b": b, "c": c, "d": d, "e": e, "f": f, "g": g, "h": h, "k": k, "i": i}

    def anything(req, x: list[str] | None = None, **rest):
        return "OK", {"x": x, "rest": rest}
"""
}
NAMES = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "k", "req", "x", "stat"]
FUZZ = settings(
    max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
keys = st.sampled_from(NAMES) | st.text(max_size=10)
query_pairs = st.lists(
    st.tuples(
        keys,
        st.text(max_size=30)
        | st.sampled_from(
            ["1", "-2", "1.5", "true", "no", "", "[1,2]", '{"k":1}', "2024-01-01T00:00:00Z", "2024-02-30", "x", "3"]
        ),
    ),
    max_size=8,
)


@pytest.fixture(scope="module")
def fuzz_client(tmp_path_factory):
    """One kernel for every example (built by hand: make_kernel is function scoped)."""
    base = tmp_path_factory.mktemp("fuzz")
    package = f"fz_{uuid.uuid4().hex[:12]}"
    for relative, source in FUZZ_APP.items():
        (base / package / relative).parent.mkdir(parents=True, exist_ok=True)
        (base / package / relative).write_text(textwrap.dedent(source))
    kernel = build_kernel(
        base, [butterfly_router.plugin], {"router.handlers_dir": str(base / package), "router.static_dir": ""}
    )
    yield Client(kernel)
    for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        del sys.modules[name]
    while str(base) in sys.path:
        sys.path.remove(str(base))


def check_reply(reply):
    assert reply.status in (200, 400), (reply.status, reply.body)
    assert b"Traceback" not in reply.body
    body = json.loads(reply.body)
    if reply.status == 400:
        assert body["stat"] == "ERR_BAD_PARAMS" and reply.headers["x-reason"]
        assert body["errors"] and all(
            set(error) == {"param", "reason"} and isinstance(error["param"], str) and isinstance(error["reason"], str)
            for error in body["errors"]
        )
    else:
        assert body["stat"] == "OK"
    return body


@FUZZ
@given(params=st.dictionaries(keys, json_values, max_size=8), path=st.sampled_from(["/z/typed", "/z/anything"]))
def test_fuzz_json_bodies(fuzz_client, params, path):
    check_reply(fuzz_client.post(path, json=params))


@FUZZ
@given(pairs=query_pairs, path=st.sampled_from(["/z/typed", "/z/anything"]), form=st.booleans())
def test_fuzz_query_and_form(fuzz_client, pairs, path, form):
    encoded = urlencode(pairs)
    if form:
        reply = fuzz_client.post(
            path, body=encoded.encode(), headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
    else:
        reply = fuzz_client.get(path, query=encoded)
    body = check_reply(reply)
    if reply.status == 200 and path == "/z/typed":
        assert isinstance(body["a"], int) and isinstance(body["c"], bool)


@FUZZ
@given(raw=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_fuzz_raw_json_bodies(fuzz_client, raw):
    check_reply(fuzz_client.post("/z/anything", body=raw, headers={"Content-Type": "application/json"}))
