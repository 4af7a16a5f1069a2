"""``kernel.response.dumps``: the fast path for small flat objects encodes exactly like the encoder."""

from __future__ import annotations

import json
import math

from hypothesis import given
from hypothesis import strategies as st

from kernel.response import dumps

VALUES = st.one_of(st.text(), st.none(), st.booleans(), st.integers(min_value=-(10**20), max_value=10**20), st.floats())


def _non_finite(value: object) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def reference(data: dict) -> bytes:
    """What the encoder path gives: strict UTF-8 JSON, or when that fails (a non-finite
    float, a lone surrogate) everything escaped to ASCII with non-finite floats as null."""
    try:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    except ValueError:
        safe = {key: None if _non_finite(value) else value for key, value in data.items()}
        return json.dumps(safe, ensure_ascii=True, separators=(",", ":")).encode("ascii")


@given(st.dictionaries(st.text(), VALUES, max_size=20))
def test_small_flat_objects_encode_exactly_like_the_json_encoder(data):
    assert dumps(data) == reference(data)


def test_the_fast_path_keeps_order_escapes_and_literals():
    data = {"stat": "OK", "text": 'é "q" \\ \n \u2028', "n": -5, "none": None, "yes": True, "no": False}
    assert dumps(data) == json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    assert dumps({"a": "\ud800"}) == b'{"a":"\\ud800"}'
    assert dumps({1: "x"}) == b'{"1":"x"}'
