"""``threadline._json``: orjson's speed with ``json.loads``'s results, and the store's and
the API's use of it (non-finite floats, lone surrogates, huge integers)."""

from __future__ import annotations

import json
import math

import pytest

from threadline import _json as fast_json
from threadline.store.sql import _loads

SAME_AS_JSON = [
    '{"a": 1, "b": [true, false, null], "c": "caf\\u00e9"}',
    "  [1, 2.5, -0, 1e3]  ",
    '"\\ud83d\\ude00"',  # a surrogate pair: one character
    "123456789012345678901234567890",  # beyond 64 bits: orjson refuses, json reads it
    '{"x": NaN, "y": -Infinity}',  # not JSON, but json.loads reads it
    '"\\ud800"',  # an escaped lone surrogate
    '{"k": 1, "k": 2}',
]


@pytest.mark.parametrize("text", SAME_AS_JSON)
def test_loads_gives_what_json_loads_gives(text: str) -> None:
    expected, got = json.loads(text), fast_json.loads(text)
    assert repr(got) == repr(expected)  # repr: NaN != NaN


@pytest.mark.parametrize("text", ["", "{", "hello", "[1,]", "1 2"])
def test_loads_refuses_what_json_loads_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(ValueError):
        fast_json.loads(text)


def test_orjson_is_used_here() -> None:
    assert fast_json.HAVE_ORJSON  # the server extra brings it; the fast paths are tested


def test_dumps_bytes_and_its_refusals() -> None:
    value = {"a": [1, 2.5, None, True], "b": "caf\u00e9"}
    assert json.loads(fast_json.dumps_bytes(value) or b"") == value
    assert fast_json.dumps_bytes({"s": "\ud800"}) is None  # lone surrogate: caller falls back
    assert fast_json.dumps_bytes({"n": 2**70}) is None
    assert fast_json.dumps_bytes({1: "x"}) is None


def test_store_reads_non_finite_floats_as_strings_and_keeps_non_json_text() -> None:
    assert _loads('{"x": NaN, "y": [Infinity, -Infinity, 1.5]}') == {
        "x": "NaN",
        "y": ["Infinity", "-Infinity", 1.5],
    }
    assert _loads("not json") == "not json"
    assert _loads("null") is None
    assert _loads("[]") == [] and _loads("{}") == {}
    first, second = _loads("[]"), _loads("[]")
    first.append(1)
    assert second == []  # each read is a fresh container
    assert _loads('"NaN"') == "NaN" and not isinstance(_loads("1.5"), str)
    assert math.isclose(_loads("1.5"), 1.5)


def test_span_data_response_renders_like_the_standard_one() -> None:
    from threadline.server.errors import ApiJSONResponse, SpanDataJSONResponse

    for content in ({"a": [1, "é", None, {"b": 2.5}]}, {"s": "\ud800"}, {"n": 2**70}):
        fast = SpanDataJSONResponse(content).body
        standard = ApiJSONResponse(content).body
        assert json.loads(fast) == json.loads(standard)
