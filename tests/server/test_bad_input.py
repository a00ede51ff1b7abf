"""Hostile and broken requests get a clear 4xx: never a 500, a crash, or lost data."""

from __future__ import annotations

import gzip

import pytest
from fastapi.testclient import TestClient

from tests.server.conftest import JSON, PROTOBUF, ClientFactory, batch, trace_id

JSON_BODY = {"Content-Type": "application/json"}


def _error(response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    return str(body["error"]["message"])


def test_malformed_json_and_invalid_utf8(client: TestClient) -> None:
    assert "malformed JSON" in _error(
        client.post("/api/v1/experiments", content=b'{"name": ', headers=JSON_BODY), 400
    )
    _error(client.post("/api/v1/experiments", content=b'{"name": "\xff"}', headers=JSON_BODY), 400)
    _error(client.post("/v1/traces", content=b'{"resourceSpans": [\xff]}', headers=JSON), 400)


@pytest.mark.parametrize("path", ["/api/v1/traces/batch", "/api/v1/experiments", "/v1/traces"])
def test_json_nested_ten_thousand_levels(client: TestClient, path: str) -> None:
    deep = b'{"a": ' * 10_000 + b"1" + b"}" * 10_000
    _error(client.post(path, content=deep, headers=JSON_BODY), 400)
    arrays = b"[" * 10_000 + b"]" * 10_000
    _error(client.post(path, content=arrays, headers=JSON_BODY), 400)


def test_wrong_content_types_and_encodings(client: TestClient) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert "JSON" in _error(
        client.post("/api/v1/experiments", content=b"name=x", headers=form), 415
    )
    _error(client.post("/v1/traces", content=b"x", headers={"Content-Type": "text/plain"}), 415)
    _error(
        client.post("/v1/traces", content=b"x", headers={**PROTOBUF, "Content-Encoding": "br"}), 415
    )
    bad_gzip = {**PROTOBUF, "Content-Encoding": "gzip"}
    assert "gzip" in _error(client.post("/v1/traces", content=b"not gzip", headers=bad_gzip), 400)


def test_bodies_over_the_limit_are_413(make_client: ClientFactory) -> None:
    client = make_client(max_body_bytes=1024)
    _error(client.post("/v1/traces", content=b"\x00" * 2048, headers=PROTOBUF), 413)

    def chunks():  # no Content-Length: the limit holds while streaming
        for _ in range(10):
            yield b"\x00" * 512

    _error(client.post("/v1/traces", content=chunks(), headers=PROTOBUF), 413)
    bomb = gzip.compress(b"\x00" * 10_000_000)
    assert len(bomb) < 1024 * 12
    client = make_client(max_body_bytes=64 * 1024)
    headers = {**PROTOBUF, "Content-Encoding": "gzip"}
    assert "decompressed" in _error(client.post("/v1/traces", content=bomb, headers=headers), 413)


@pytest.mark.parametrize(
    ("filter_string", "status"),
    [
        ("trace.status = 'OK'; DROP TABLE traces; --", 400),
        ("tags.x = 'a' OR 1=1", 400),
        ("span.attributes.`a` = '\x00'", 400),
        ("(" * 1000, 400),
        ("metadata.`unterminated = 'x'", 400),
        ("trace.status IN (" + ",".join("'x'" for _ in range(5000)) + ")", 400),
        ("trace.name LIKE '" + "%" * 5000 + "'", 200),  # odd, but valid
        ("trace.timestamp_ms > 99999999999999999999", 200),
        ("span.attributes.`'; DROP TABLE spans; --` = 'x'", 200),
    ],
)
def test_hostile_filters(store_client: TestClient, filter_string: str, status: int) -> None:
    store_client.post("/api/v1/traces/batch", json=batch(1))
    response = store_client.post("/api/v1/traces/search", json={"filter_string": filter_string})
    if status == 400:
        _error(response, 400)
    assert response.status_code == status, response.text
    lone = b'{"filter_string": "\\ud800 = 1"}'
    _error(store_client.post("/api/v1/traces/search", content=lone, headers=JSON_BODY), 400)
    assert len(store_client.post("/api/v1/traces/search", json={}).json()["traces"]) == 1


@pytest.mark.parametrize(
    "filter_string",
    [
        "trace.timestamp_ms > " + "9" * 5000,  # issue 12: was a 500 (int digit limit)
        "span.attributes.n = -" + "1" * 5000,
        "trace.name = '" + "x" * 10_001 + "'",
    ],
)
def test_oversized_filter_literals_are_400(store_client: TestClient, filter_string: str) -> None:
    searched = store_client.post("/api/v1/traces/search", json={"filter_string": filter_string})
    message = _error(searched, 400)
    assert "Invalid filter" in message and "at position" in message
    listed = _error(
        store_client.get("/api/v1/traces", params={"filter_string": filter_string}), 400
    )
    if len(filter_string) <= 10_000:
        assert listed == message
    else:  # GET takes filters of up to 10,000 characters
        assert "filter_string: Value should have at most 10000 items" in listed


@pytest.mark.parametrize("pattern", ["%\\", "exp\\", "a\\b%"])
def test_a_bad_like_pattern_is_400_not_503(store_client: TestClient, pattern: str) -> None:
    """Issue 12: on PostgreSQL a trailing backslash was an SQL error answered 503 +
    Retry-After, so a client that retries on 503 retried forever."""
    searched = store_client.get("/api/v1/experiments", params={"name_like": pattern})
    message = _error(searched, 400)
    assert f"Invalid name_like {pattern!r}" in message and "Retry-After" not in searched.headers
    text = f"trace.name LIKE '{pattern.replace(chr(92), chr(92) * 2)}'"
    assert "pattern" in _error(
        store_client.post("/api/v1/traces/search", json={"filter_string": text}), 400
    )
    escaped = store_client.get("/api/v1/experiments", params={"name_like": "Def\\%"})
    assert escaped.json()["experiments"] == []  # a literal '%': no such name
    assert [
        e["name"]
        for e in store_client.get("/api/v1/experiments", params={"name_like": "Def%"}).json()[
            "experiments"
        ]
    ] == ["Default"]


def test_unstorable_text_and_huge_numbers_are_400(store_client: TestClient) -> None:
    _error(store_client.post("/api/v1/experiments", json={"name": "a\x00b"}), 400)
    lone = b'{"name": "a\\ud800b"}'
    _error(store_client.post("/api/v1/experiments", content=lone, headers=JSON_BODY), 400)
    _error(store_client.get("/api/v1/experiments/a%00b"), 400)
    _error(store_client.get("/api/v1/experiments/by-name", params={"name": "\x00"}), 400)
    huge = batch(1)
    huge["spans"][0]["start_time_ns"] = 2**70
    _error(store_client.post("/api/v1/traces/batch", json=huge), 400)
    tokens = batch(2)
    tokens["spans"][0]["input_tokens"] = 10**15
    _error(store_client.post("/api/v1/traces/batch", json=tokens), 400)
    nan = b'{"max_results": NaN}'
    _error(store_client.post("/api/v1/traces/search", content=nan, headers=JSON_BODY), 400)


def test_unknown_routes_and_methods(client: TestClient) -> None:
    _error(client.get("/api/v1/nothing"), 404)
    assert client.put("/api/v1/experiments").status_code == 405
    assert client.put("/api/v1/experiments").json()["error"]["code"] == "METHOD_NOT_ALLOWED"


def test_nothing_stored_is_lost_by_bad_requests(client: TestClient) -> None:
    client.post("/api/v1/traces/batch", json=batch(1, 2))
    attacks = [
        client.post("/api/v1/traces/batch", content=b"[" * 5000, headers=JSON_BODY),
        client.post("/api/v1/traces/delete", json={"experiment_id": "0"}),
        client.post("/api/v1/traces/delete", json={"experiment_id": "0", "trace_ids": "x"}),
        client.post("/v1/traces", content=b"\xff" * 100, headers=PROTOBUF),
        client.post("/api/v1/traces/search", json={"filter_string": "1=1; DELETE FROM spans"}),
    ]
    assert all(400 <= r.status_code < 500 for r in attacks)
    trace = client.get(f"/api/v1/traces/{trace_id(1)}").json()["trace"]
    assert len(trace["data"]["spans"]) == 1
    assert len(client.post("/api/v1/traces/search", json={}).json()["traces"]) == 2


def test_nul_characters_in_otlp_spans_are_stored(store_client: TestClient) -> None:
    from tests.server.conftest import otlp_request

    attributes = {
        "input.value": "a\x00b",
        "k\x00ey": "v\x00",
        "session.id": "s\x00",
        "llm.model_name": "m\x00",
    }
    request = otlp_request(
        [{"trace": 1, "span": 1, "name": "n\x00", "message": "m\x00", "attributes": attributes}],
        resource={"threadline.experiment_id": "e\x00"},
    )
    headers = {**PROTOBUF, "x-threadline-sync": "1"}
    response = store_client.post("/v1/traces", content=request.SerializeToString(), headers=headers)
    assert response.status_code == 200, response.text
    trace = store_client.get(f"/api/v1/traces/{trace_id(1)}").json()["trace"]
    assert trace["data"]["spans"][0]["name"] == "n\ufffd"
    assert trace["info"]["experiment_id"] == "0"  # an unusable resource attribute is ignored
