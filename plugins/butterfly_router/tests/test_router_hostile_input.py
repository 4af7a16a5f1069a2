"""Every hostile input of issue 9 as a regression test: a clear 400 (or a valid reply), never a 5xx.

Each case failed before the hardening: a ``RecursionError``, a ``ValueError`` from
the reply encoder, an ``OverflowError``, or a reply that was not valid JSON.
"""

from __future__ import annotations

import json

import pytest

from butterfly_router import NOT_BLANK

APP = {
    "h/__init__.py": """
    from typing import Optional

    def echo(req, text=None, d: Optional[dict] = None, x: float = 0.0, **rest):
        return "OK", {"text": text, "d": d, "x": x, "rest": rest}

    def add(req, a: int, b: int = 1):
        return "OK", {"sum": a + b}

    def surrogate(req):
        return "OK", {"text": "bad " + chr(0xD800) + " end"}

    def not_a_number(req):
        return "OK", {"nan": float("nan"), "inf": float("-inf")}

    def huge(req):
        return "OK", {"n": 10 ** 5000, "keys": {10 ** 5000: 1}}
"""
}


@pytest.fixture
def client(router_app):
    return router_app(APP).client


def bad_params(reply, param="<body>"):
    assert reply.status == 400, reply.body[:300]
    assert reply.headers["x-reason"]
    body = json.loads(reply.body.decode("utf-8"))  # strict UTF-8: the reply is valid JSON text
    assert body["stat"] == "ERR_BAD_PARAMS"
    assert any(error["param"] == param for error in body["errors"]), body
    return body


def post_raw(client, path, raw: bytes, content_type="application/json"):
    return client.post(path, body=raw, headers={"Content-Type": content_type})


def test_deeply_nested_json_body_is_a_400_not_a_recursion_error(client):
    deep = b'{"text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    reason = bad_params(post_raw(client, "/h/echo", deep))["errors"][0]["reason"]
    assert "nested more than 64 levels" in reason
    # deep enough to pass the parser but not the depth rule
    assert bad_params(post_raw(client, "/h/echo", b'{"text": ' + b"[" * 900 + b"]" * 900 + b"}"))


def test_deeply_nested_json_in_a_dict_query_parameter_is_a_400(client):
    reply = client.get("/h/echo", query={"d": '{"a":' * 3000 + "1" + "}" * 3000})
    assert "nested more than 64 levels" in bad_params(reply, "d")["errors"][0]["reason"]


def test_lone_surrogate_in_a_json_body_is_a_400(client):
    reason = bad_params(post_raw(client, "/h/echo", b'{"text": "\\ud800"}'))["errors"][0]["reason"]
    assert "lone UTF-16 surrogate" in reason
    # a proper pair is fine and comes back as the real character
    reply = post_raw(client, "/h/echo", b'{"text": "\\ud83d\\ude00"}')
    assert reply.status == 200 and json.loads(reply.body.decode("utf-8"))["text"] == "\U0001f600"
    # surrogates smuggled as raw (CESU-8) bytes are not UTF-8 at all
    assert bad_params(post_raw(client, "/h/echo", b'{"text": "\xed\xa0\x80"}'))


def test_percent_encoded_surrogate_bytes_are_replaced_and_echoed_as_valid_utf8(client):
    for reply in (
        client.get("/h/echo?text=%ED%A0%80"),
        post_raw(client, "/h/echo", b"text=%ED%A0%80", "application/x-www-form-urlencoded"),
    ):
        assert reply.status == 200
        assert json.loads(reply.body.decode("utf-8"))["text"] == "\ufffd" * 3


def test_a_handler_echoing_a_lone_surrogate_still_sends_valid_utf8_json(client):
    reply = client.get("/h/surrogate")
    assert reply.status == 200
    reply.body.decode("utf-8")  # strict
    assert json.loads(reply.body) == {"stat": "OK", "text": "bad \ud800 end"}


def test_integers_past_the_digit_limit(client):
    # parsing: 4301 digits in a body or a query parameter is a 400
    assert (
        "too many digits"
        in bad_params(post_raw(client, "/h/add", b'{"a": ' + b"9" * 4301 + b"}"))["errors"][0]["reason"]
    )
    assert bad_params(client.get("/h/add", query={"a": "9" * 4301}), "a")
    # encoding: 4300-digit inputs whose sum has 4301 digits are sent as a string of digits
    nines = "9" * 4300
    reply = client.get("/h/add", query={"a": nines, "b": nines})
    assert reply.status == 200
    assert json.loads(reply.body)["sum"] == "1" + "9" * 4299 + "8"  # 2 × (10**4300 - 1)
    huge = client.get("/h/huge")
    assert huge.status == 200 and json.loads(huge.body)["n"] == "1" + "0" * 5000


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e400"])
def test_nan_infinity_and_huge_floats_are_refused(client, literal):
    bad_params(post_raw(client, "/h/echo", b'{"text": ' + literal + b"}"))


def test_an_integer_too_large_for_a_float_parameter_is_a_400(client):
    reason = bad_params(post_raw(client, "/h/echo", b'{"x": ' + b"9" * 400 + b"}"), "x")["errors"][0]["reason"]
    assert "out of range" in reason


def test_a_handler_returning_nan_sends_null_not_invalid_json(client):
    reply = client.get("/h/not_a_number")
    assert reply.status == 200 and json.loads(reply.body) == {"stat": "OK", "nan": None, "inf": None}


def test_non_utf8_bodies_are_400(client):
    assert "not UTF-8" in bad_params(post_raw(client, "/h/echo", b'{"text": "\xff"}'))["errors"][0]["reason"]
    form = post_raw(client, "/h/echo", b"text=\xff\xfe", "application/x-www-form-urlencoded")
    assert form.status == 400 and form.json()["stat"] == "ERR_BAD_PARAMS" and form.headers["x-reason"]


def test_absurd_numbers_of_fields_are_400(client):
    many = b"&".join(b"k%d=1" % i for i in range(10_001))
    form = post_raw(client, "/h/echo", many, "application/x-www-form-urlencoded")
    assert form.status == 400 and "more than 10000 fields" in form.headers["x-reason"]
    query = client.get("/h/echo", query="&".join(f"k{i}=1" for i in range(10_001)))
    assert query.status == 400 and "more than 10000 fields" in query.headers["x-reason"]
    body = client.post("/h/add", json={f"k{i}": 1 for i in range(10_001)})  # not 10,001 "unknown parameter" errors
    assert body.status == 400 and "more than 10000 fields" in body.headers["x-reason"] and len(body.body) < 200


def test_a_json_body_that_is_not_an_object_is_a_400_null_included(client):
    for raw in (b"null", b"[1]", b'"text"', b"3"):
        assert "must be an object" in bad_params(post_raw(client, "/h/echo", raw))["errors"][0]["reason"]
    assert client.post("/h/echo", body=b"", headers={"Content-Type": "application/json"}).status == 200


def test_a_utf8_bom_before_a_json_body_is_ignored(client):
    reply = post_raw(client, "/h/echo", b'\xef\xbb\xbf{"text": "x"}')
    assert reply.status == 200 and reply.json()["text"] == "x"


def test_client_text_in_x_reason_cannot_carry_control_characters(client):
    reply = client.get("/h/nothing\x00\x1b[31m\x7f")
    assert reply.status == 404
    assert not any(ord(char) < 32 or ord(char) == 127 for char in reply.headers["x-reason"])


KEYS = {
    "k/__init__.py": """
    import re
    from typing import Annotated
    from annotated_types import MaxLen, MinLen
    from butterfly_router import NOT_BLANK

    def get(req, key: Annotated[str, MinLen(1), MaxLen(64), NOT_BLANK], code: Annotated[str, re.compile(r"^[A-Z]{2}$")] = "CN"):
        return "OK", {"key": key, "code": code}
"""
}


def test_blank_keys_are_refused_and_documented_as_a_pattern(router_app):
    client = router_app(KEYS).client
    assert client.get("/k/get?key=a").json() == {"stat": "OK", "key": "a", "code": "CN"}
    # pony strips these (str.strip) and calls the key "missing": a 500 if they got through
    for blank in ("", " ", "\x0b", "\t\n", "\x1d\x85", "\u3000"):
        errors = bad_params(client.get("/k/get", query={"key": blank}), "key")["errors"]
        assert errors[0]["reason"] in ("must not be empty", "must not be blank")
    assert bad_params(client.post("/k/get", json={"key": "a", "code": "cn"}), "code")["errors"][0]["reason"] == (
        "must match '^[A-Z]{2}$'"
    )
    parameters = client.get("/_meta/openapi.json").json()["paths"]["/k/get"]["get"]["parameters"]
    schemas = {parameter["name"]: parameter["schema"] for parameter in parameters}
    assert schemas["key"] == {"type": "string", "minLength": 1, "maxLength": 64, "pattern": NOT_BLANK.pattern}
    assert schemas["code"]["pattern"] == "^[A-Z]{2}$"


def test_not_blank_refuses_exactly_what_strip_removes():
    for char in map(chr, range(0x10000)):
        assert (NOT_BLANK.search(char) is None) == (char.strip() == ""), hex(ord(char))


def test_millions_of_empty_arrays_are_refused_before_parsing(client):
    # 10 MB of `[],` took seconds of GIL-holding CPU in json.loads (the cyclic GC)
    reply = post_raw(client, "/h/echo", b'{"text": [' + b"[]," * 300_000 + b"[]]}")
    assert "more than 200000 arrays and objects" in bad_params(reply)["errors"][0]["reason"]
    # brackets inside strings are text, not containers
    reply = post_raw(client, "/h/echo", b'{"text": "' + b"[" * 300_000 + b'"}')
    assert reply.status == 200 and len(reply.json()["text"]) == 300_000
