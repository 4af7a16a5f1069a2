"""Parameter binding: sources, required/unknown/reserved, every type conversion, check_params."""

from __future__ import annotations

import datetime

import pytest

from butterfly_router import check_params
from butterfly_router.binder import Binder
from butterfly_router.converters import ParamError, converter_for
from kernel import BadRequest, ConfigError, NotFound

TYPED = {
    "t/__init__.py": """
    import datetime
    import enum
    from typing import Annotated, Any, Literal, Optional

    class Color(enum.Enum):
        RED = "red"
        BLUE = "blue"

    def echo(req, **kwargs):
        return "OK", {"got": kwargs}

    def need(req, a, b, c=3):
        return "OK", {"a": a, "b": b, "c": c}

    def plain(req, v):
        return "OK", {"v": v, "type": type(v).__name__}

    def ints(req, n: int):
        return "OK", {"n": n}

    def floats(req, x: float):
        return "OK", {"x": x}

    def bools(req, flag: bool):
        return "OK", {"flag": flag}

    def strs(req, s: str):
        return "OK", {"s": s}

    def lists(req, items: list[int]):
        return "OK", {"items": items}

    def anylist(req, items: list):
        return "OK", {"items": items}

    def dicts(req, d: dict):
        return "OK", {"d": d}

    def typed_dict(req, d: dict[str, int]):
        return "OK", {"d": d}

    def optional(req, n: Optional[int], m: int | None = 5):
        return "OK", {"n": n, "m": m}

    def literal(req, mode: Literal["fast", "slow"], level: Literal[1, 2] = 1):
        return "OK", {"mode": mode, "level": level}

    def when(req, at: datetime.datetime, day: datetime.date | None = None):
        return "OK", {"at": at.isoformat(), "tz": str(at.tzinfo), "day": day and day.isoformat()}

    def colors(req, color: Color):
        return "OK", {"color": color.value}

    def annotated(req, n: Annotated[int, "a count"], anything: Any = None):
        return "OK", {"n": n, "anything": anything}

    def union(req, v: int | str):
        return "OK", {"v": v, "type": type(v).__name__}

    from annotated_types import Ge, Gt, Interval, Le, Len, Lt, MaxLen, MinLen

    def bounded(req, key: Annotated[str, MinLen(1), MaxLen(8)], n: Annotated[int, Interval(ge=1, le=1000)] = 1,
                tags: Annotated[list[str], Len(1, 2)] = ("x",), ratio: Annotated[float, Gt(0), Lt(1)] = 0.5,
                limit: Annotated[int | None, Ge(0), Le(5)] = None):
        return "OK", {"key": key, "n": n, "tags": list(tags), "ratio": ratio, "limit": limit}
""",
    "fut/__init__.py": """
    from __future__ import annotations

    def later(req, n: int, tags: list[str] | None = None):
        return "OK", {"n": n, "tags": tags}

    def unresolvable(req, n: NoSuchType):  # noqa: F821
        return "OK", {"n": n}
""",
}


@pytest.fixture
def app(router_app):
    return router_app(TYPED)


def errors_of(reply):
    assert reply.status == 400, reply.body
    body = reply.json()
    assert body["stat"] == "ERR_BAD_PARAMS"
    assert reply.headers["x-reason"]
    assert reply.headers["content-type"].startswith("application/json")
    return {error["param"]: error["reason"] for error in body["errors"]}


def test_all_problems_are_listed_at_once(app):
    errors = errors_of(app.client.get("/t/need", query={"b": "1", "zz": "1", "yy": "2", "req": "x"}))
    assert errors == {
        "a": "required parameter is missing",
        "zz": "unknown parameter",
        "yy": "unknown parameter",
        "req": "reserved: cannot be sent by the client",
    }


def test_required_and_defaults(app):
    assert app.client.get("/t/need", query={"a": "1", "b": "2"}).json() == {"stat": "OK", "a": "1", "b": "2", "c": 3}


def test_empty_value_is_an_empty_string_not_missing(app):
    assert app.client.get("/t/need?a=&b=").json() == {"stat": "OK", "a": "", "b": "", "c": 3}
    assert errors_of(app.client.get("/t/ints?n="))["n"].startswith("expected an integer")
    assert app.client.get("/t/optional?n=").json() == {"stat": "OK", "n": None, "m": 5}


def test_sources_query_form_and_json_merge_with_json_winning(app):
    client = app.client
    assert client.post("/t/need", data={"a": "f", "b": "g"}).json()["a"] == "f"
    assert client.post("/t/need?a=q&b=q", json={"a": 1}).json() == {"stat": "OK", "a": 1, "b": "q", "c": 3}
    assert client.post("/t/need?a=q", data={"a": "form", "b": "x"}).json()["a"] == "form"


def test_bad_json_bodies_are_400_with_the_error_shape(app):
    bad = app.client.post("/t/echo", body=b"{not json", headers={"Content-Type": "application/json"})
    assert errors_of(bad) == {"<body>": bad.json()["errors"][0]["reason"]}
    assert "<body>" in errors_of(app.client.post("/t/echo", json=[1, 2]))


def test_kwargs_accepts_unknown_but_never_req(app):
    assert app.client.get("/t/echo", query={"x": "1", "y": ["2", "3"]}).json()["got"] == {"x": "1", "y": ["2", "3"]}
    assert errors_of(app.client.post("/t/echo", json={"req": 1})) == {"req": "reserved: cannot be sent by the client"}


def test_no_hint_passes_values_as_given(app):
    assert app.client.get("/t/plain?v=7").json() == {"stat": "OK", "v": "7", "type": "str"}
    assert app.client.post("/t/plain", json={"v": 7}).json() == {"stat": "OK", "v": 7, "type": "int"}
    assert app.client.get("/t/plain?v=1&v=2").json()["v"] == ["1", "2"]


@pytest.mark.parametrize("sent, expected", [("42", 42), (" -3 ", -3), (7, 7), (8.0, 8)])
def test_int(app, sent, expected):
    assert app.client.post("/t/ints", json={"n": sent}).json()["n"] == expected


@pytest.mark.parametrize("sent", ["x", "1.5", "1_000", "", True, 1.5, None, {"a": 1}, "9" * 5000])
def test_int_rejects(app, sent):
    assert errors_of(app.client.post("/t/ints", json={"n": sent}))["n"].startswith("expected")


def test_scalar_given_more_than_once_is_an_error(app):
    assert "more than once" in errors_of(app.client.get("/t/ints?n=1&n=2"))["n"]
    assert "more than once" in errors_of(app.client.get("/t/strs?s=a&s=b"))["s"]


@pytest.mark.parametrize("sent, expected", [("1.5", 1.5), ("2", 2.0), (3, 3.0), ("-1e3", -1000.0)])
def test_float(app, sent, expected):
    assert app.client.post("/t/floats", json={"x": sent}).json()["x"] == expected


@pytest.mark.parametrize("sent", ["nan", "inf", "-Infinity", "abc", "", False, [1.0]])
def test_float_rejects_non_finite_and_junk(app, sent):
    assert "x" in errors_of(app.client.post("/t/floats", json={"x": sent}))


@pytest.mark.parametrize(
    "sent, expected",
    [
        ("true", True),
        ("FALSE", False),
        ("1", True),
        ("0", False),
        ("yes", True),
        ("no", False),
        ("on", True),
        ("off", False),
        (True, True),
        (False, False),
        (1, True),
        (0, False),
    ],
)
def test_bool(app, sent, expected):
    assert app.client.post("/t/bools", json={"flag": sent}).json()["flag"] is expected


@pytest.mark.parametrize("sent", ["maybe", "", 2, None, [True]])
def test_bool_rejects(app, sent):
    assert errors_of(app.client.post("/t/bools", json={"flag": sent}))["flag"].startswith("expected a")


def test_str(app):
    assert app.client.get("/t/strs?s=h%C3%A9llo").json()["s"] == "héllo"
    assert app.client.post("/t/strs", json={"s": 12}).json()["s"] == "12"
    for bad in (None, [1], {"a": 1}, True):
        assert "s" in errors_of(app.client.post("/t/strs", json={"s": bad}))


def test_lists(app):
    client = app.client
    assert client.get("/t/lists?items=1&items=2").json()["items"] == [1, 2]
    assert client.get("/t/lists?items=5").json()["items"] == [5]
    assert client.post("/t/lists", json={"items": [3, "4"]}).json()["items"] == [3, 4]
    assert client.post("/t/lists", json={"items": []}).json()["items"] == []
    reason = errors_of(client.post("/t/lists", json={"items": [1, "x"]}))["items"]
    assert reason.startswith("item 1: expected an integer")
    assert client.post("/t/anylist", json={"items": [1, "x", None]}).json()["items"] == [1, "x", None]
    assert client.get("/t/anylist?items=a").json()["items"] == ["a"]


def test_dicts(app):
    client = app.client
    assert client.post("/t/dicts", json={"d": {"k": [1]}}).json()["d"] == {"k": [1]}
    assert client.get("/t/dicts", query={"d": '{"k": 2}'}).json()["d"] == {"k": 2}
    assert "not JSON" in errors_of(client.get("/t/dicts?d=nope"))["d"]
    assert "JSON object" in errors_of(client.get("/t/dicts?d=[1]"))["d"]
    assert client.post("/t/typed_dict", json={"d": {"a": "1"}}).json()["d"] == {"a": 1}
    assert errors_of(client.post("/t/typed_dict", json={"d": {"a": "x"}}))["d"].startswith("key 'a'")


def test_optional(app):
    client = app.client
    assert client.post("/t/optional", json={"n": None, "m": None}).json() == {"stat": "OK", "n": None, "m": None}
    assert client.get("/t/optional?n=4&m=").json() == {"stat": "OK", "n": 4, "m": None}
    assert errors_of(client.get("/t/optional"))["n"] == "required parameter is missing"
    assert "n" in errors_of(client.get("/t/optional?n=x"))


def test_literal(app):
    client = app.client
    assert client.get("/t/literal?mode=fast&level=2").json() == {"stat": "OK", "mode": "fast", "level": 2}
    assert client.post("/t/literal", json={"mode": "slow", "level": 1}).json()["level"] == 1
    errors = errors_of(client.post("/t/literal", json={"mode": "medium", "level": True}))
    assert errors["mode"] == "expected one of: fast, slow; got 'medium'"
    assert "level" in errors


def test_datetime_and_date(app):
    client = app.client
    body = client.get("/t/when", query={"at": "2024-05-01T12:30:00Z", "day": "2024-05-02"}).json()
    assert body == {"stat": "OK", "at": "2024-05-01T12:30:00+00:00", "tz": "UTC", "day": "2024-05-02"}
    assert client.get("/t/when", query={"at": "2024-05-01 08:00"}).json()["tz"] == "None"
    errors = errors_of(client.get("/t/when", query={"at": "yesterday", "day": "2024-13-01"}))
    assert errors["at"].startswith("expected an ISO 8601 datetime")
    assert errors["day"].startswith("expected an ISO 8601 date")


def test_enum_annotated_and_union(app):
    client = app.client
    assert client.get("/t/colors?color=blue").json()["color"] == "blue"
    assert "red, blue" in errors_of(client.get("/t/colors?color=green"))["color"]
    assert client.get("/t/annotated?n=3&anything=x").json() == {"stat": "OK", "n": 3, "anything": "x"}
    assert client.get("/t/union?v=3").json() == {"stat": "OK", "v": 3, "type": "int"}
    assert client.get("/t/union?v=x").json() == {"stat": "OK", "v": "x", "type": "str"}
    assert "v" in errors_of(client.post("/t/union", json={"v": None}))


def test_annotated_types_constraints_are_enforced_before_the_handler_runs(app):
    client = app.client
    assert client.get("/t/bounded?key=k&n=1000&tags=a&tags=b&ratio=0.9&limit=").json() == {
        "stat": "OK",
        "key": "k",
        "n": 1000,
        "tags": ["a", "b"],
        "ratio": 0.9,
        "limit": None,
    }
    assert errors_of(client.get("/t/bounded?key=")) == {"key": "must not be empty"}
    assert errors_of(client.get("/t/bounded?key=123456789")) == {"key": "is longer than 8"}
    assert errors_of(client.get("/t/bounded?key=k&n=0&ratio=1&limit=6")) == {
        "n": "must be at least 1",
        "ratio": "must be less than 1",
        "limit": "must be at most 5",
    }
    assert errors_of(client.get("/t/bounded?key=k&n=1001&ratio=0"))["n"] == "must be at most 1000"
    assert (
        errors_of(client.post("/t/bounded", json={"key": "k", "tags": ["a", "b", "c"]}))["tags"] == "is longer than 2"
    )
    assert errors_of(client.post("/t/bounded", json={"key": "k", "n": "many"}))["n"].startswith("expected an integer")


def test_annotated_types_constraints_are_in_the_openapi_schema(app):
    operation = app.client.get("/_meta/openapi.json").json()["paths"]["/t/bounded"]["get"]
    schemas = {param["name"]: param["schema"] for param in operation["parameters"]}
    assert schemas["key"] == {"type": "string", "minLength": 1, "maxLength": 8}
    assert (schemas["n"]["minimum"], schemas["n"]["maximum"]) == (1, 1000)
    assert (schemas["tags"]["minItems"], schemas["tags"]["maxItems"]) == (1, 2)
    assert schemas["ratio"]["exclusiveMinimum"] is True and schemas["ratio"]["exclusiveMaximum"] is True


def test_string_annotations_are_resolved_and_unresolvable_ones_pass_through(captured_logs, router_app):
    client = router_app(TYPED).client
    assert client.get("/fut/later?n=2&tags=a&tags=b").json() == {"stat": "OK", "n": 2, "tags": ["a", "b"]}
    assert client.get("/fut/unresolvable?n=x").json() == {"stat": "OK", "n": "x"}
    warnings = [e for e in captured_logs if e["event"] == "cannot resolve type hints; values pass unconverted"]
    assert [e["handler"].rsplit(".", 1)[1] for e in warnings] == ["unresolvable"]


def test_in_process_calls_bind_json_values(app):
    response = app.kernel.call("/t/lists", {"items": [1, 2]})
    assert response.status == 200 and response.data == {"stat": "OK", "items": [1, 2]}
    bad = app.kernel.call("/t/ints", {"n": "x"})
    assert bad.status == 400 and bad.data["errors"][0]["param"] == "n"


def test_check_params(app):
    assert check_params(app.kernel, "/t/when", {"at": "2024-01-01T00:00:00"}) == {"at": datetime.datetime(2024, 1, 1)}
    with pytest.raises(NotFound):
        check_params(app.kernel, "/t/nope", {})
    with pytest.raises(BadRequest) as info:
        check_params(app.kernel, "/t/need", {"x": 1})
    assert {e["param"] for e in info.value.data["errors"]} == {"a", "b", "x"}
    assert check_params(app.kernel, "/_meta/health", {"anything": 1}) == {"anything": 1}


def test_binder_unit_and_signature_errors():
    def handler(req, a: int, *args, b: str = "x", **kwargs):
        return "OK"

    binder = Binder(handler)
    assert binder.bind({"a": "1", "c": 2}) == {"a": 1, "c": 2}
    assert binder.usage() == "a:int [b:str='x'] [k=v ...]"
    assert binder.describe()[1] == {"name": "b", "type": "str", "required": False, "default": "x"}
    with pytest.raises(ConfigError, match="req"):
        Binder(lambda request: None)
    with pytest.raises(ConfigError, match="stream"):
        Binder(lambda req: None, reserved=("stream",))
    with pytest.raises(ParamError):
        converter_for(list[int])(["1", "x"])
    assert converter_for(object) is None
