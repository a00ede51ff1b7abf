"""A trace's structure without payloads, one span with them, and LLM cost per span and trace.

``GET /api/v1/traces/{id}/structure`` and ``GET /api/v1/traces/{id}/spans/{span_id}`` on
both back ends, scoped by tokens like every trace route; the same reads through
``RestStore`` against a real server; costs from the SDK's rows and from OTLP ingest.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.remote.conftest import ServerProcess, server_on_sqlite
from tests.server.conftest import (
    JSON,
    PROTOBUF,
    ClientFactory,
    batch,
    otlp_request,
    span_row,
    trace_id,
    trace_row,
)
from threadline.export._otlp import encode_json, encode_protobuf, resource_groups
from threadline.server.config import TokenGrant
from threadline.server.ingest.decode import decode_otlp
from threadline.store.base import SpanRow, TraceRow
from threadline.store.rest import RestStore

COST_KEY = "threadline.llm.cost"
BIG_TEXT = "a long prompt " * 2_000
COST = {"input_cost": 0.00015, "output_cost": 0.0003, "total_cost": 0.00045}


def _llm_trace(n: int, experiment_id: str = "0") -> dict[str, Any]:
    """A root and one LLM child carrying big payloads, a chat attribute, tokens and a cost."""
    attributes = {
        "threadline.model": "gpt-4o-mini",
        "threadline.token_usage": {
            "input_tokens": 1000,
            "output_tokens": 500,
            "total_tokens": 1500,
        },
        "threadline.llm.cost": COST,
        "threadline.chat.messages": [{"role": "user", "content": BIG_TEXT}],
        "user.note": "kept for the span read",
    }
    events = [{"name": "exception", "timestamp_ns": 1, "attributes": {"exception.type": "E"}}]
    llm = span_row(
        n,
        span=2,
        parent=1,
        name="llm",
        span_type="CHAT_MODEL",
        inputs_json=json.dumps({"prompt": BIG_TEXT}),
        outputs_json=json.dumps("the reply"),
        attributes_json=json.dumps(attributes),
        events_json=json.dumps(events),
        input_tokens=1000,
        output_tokens=500,
        total_tokens=1500,
    )
    return {"traces": [trace_row(n, experiment_id)], "spans": [span_row(n), llm]}


def _log(client: TestClient, body: dict[str, Any]) -> None:
    response = client.post("/api/v1/traces/batch", json=body)
    assert response.status_code == 200, response.text


def test_structure_has_the_tree_without_payloads(store_client: TestClient) -> None:
    _log(store_client, _llm_trace(1))
    response = store_client.get(f"/api/v1/traces/{trace_id(1)}/structure")
    assert response.status_code == 200, response.text
    trace = response.json()["trace"]
    assert trace["info"]["trace_id"] == trace_id(1)
    assert json.loads(trace["info"]["trace_metadata"]["cost"]) == COST
    root, llm = trace["data"]["spans"]
    assert (root["name"], root["parent_id"], llm["parent_id"]) == ("span-1", None, root["span_id"])
    assert llm["status"] == {"code": "OK", "message": ""}
    assert llm["start_time_ns"] < llm["end_time_ns"]
    for span in (root, llm):
        assert not {"inputs", "outputs", "events"} & set(span)
    assert llm["attributes"] == {
        "threadline.model": "gpt-4o-mini",
        "threadline.token_usage": {
            "input_tokens": 1000,
            "output_tokens": 500,
            "total_tokens": 1500,
        },
        "threadline.llm.cost": COST,
    }
    assert BIG_TEXT not in response.text
    full = store_client.get(f"/api/v1/traces/{trace_id(1)}").text
    assert len(response.content) * 10 < len(full)


def test_a_span_read_has_its_payloads(store_client: TestClient) -> None:
    _log(store_client, _llm_trace(1))
    response = store_client.get(f"/api/v1/traces/{trace_id(1)}/spans/{2:016x}")
    assert response.status_code == 200, response.text
    span = response.json()["span"]
    assert span["inputs"] == {"prompt": BIG_TEXT} and span["outputs"] == "the reply"
    assert span["attributes"]["user.note"] == "kept for the span read"
    assert span["attributes"]["threadline.chat.messages"][0]["content"] == BIG_TEXT
    assert span["events"][0]["attributes"] == {"exception.type": "E"}


def test_unknown_ids_are_404_with_the_error_shape(client: TestClient) -> None:
    _log(client, _llm_trace(1))
    for path in (
        f"/api/v1/traces/{trace_id(9)}/structure",
        f"/api/v1/traces/{trace_id(9)}/spans/{2:016x}",
        f"/api/v1/traces/{trace_id(1)}/spans/{7:016x}",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        error = response.json()["error"]
        assert error["code"] == "NOT_FOUND" and "No " in error["message"]
    missing_span = client.get(f"/api/v1/traces/{trace_id(1)}/spans/{7:016x}").json()
    assert f"{7:016x}" in missing_span["error"]["message"]


def test_the_routes_are_in_the_openapi_document(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    structure = document["paths"]["/api/v1/traces/{trace_id}/structure"]["get"]
    span = document["paths"]["/api/v1/traces/{trace_id}/spans/{span_id}"]["get"]
    ok = structure["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ok.endswith("/TraceStructureResponse")
    assert span["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/SpanResponse"
    )
    assert "404" in structure["responses"] and "404" in span["responses"]
    summary = document["components"]["schemas"]["SpanSummaryOut"]["properties"]
    assert "inputs" not in summary and "attributes" in summary


def test_scoped_tokens_read_spans_only_of_their_experiments(make_client: ClientFactory) -> None:
    grants = (
        TokenGrant("admin"),
        TokenGrant("team", write=False, experiment_ids=frozenset({"1"})),
    )
    client = make_client(auth_tokens=grants)
    admin = {"Authorization": "Bearer admin"}
    team = {"Authorization": "Bearer team"}
    for name in ("one", "two"):
        assert client.post("/api/v1/experiments", json={"name": name}, headers=admin).is_success
    for n, experiment in ((1, "1"), (2, "2")):
        body = _llm_trace(n, experiment)
        assert client.post("/api/v1/traces/batch", json=body, headers=admin).status_code == 200

    own_span = client.get(f"/api/v1/traces/{trace_id(1)}/spans/{2:016x}", headers=team)
    assert own_span.status_code == 200
    assert client.get(f"/api/v1/traces/{trace_id(1)}/structure", headers=team).status_code == 200
    for path in (
        f"/api/v1/traces/{trace_id(2)}/structure",
        f"/api/v1/traces/{trace_id(2)}/spans/{2:016x}",
    ):
        response = client.get(path, headers=team)
        assert response.status_code == 404, path  # as if it did not exist: no leak by id
        assert BIG_TEXT not in response.text
        assert client.get(path).status_code == 401
        assert client.get(path, headers=admin).status_code == 200


# --- cost summed per trace -----------------------------------------------------------------


def test_trace_cost_is_the_sum_of_its_spans_and_follows_new_spans(store_client: TestClient) -> None:
    _log(store_client, _llm_trace(1))
    second = span_row(
        1,
        span=3,
        parent=1,
        attributes_json=json.dumps(
            {"threadline.llm.cost": {"input_cost": 0.1, "output_cost": 0.2, "total_cost": 0.3}}
        ),
        input_tokens=10,
        output_tokens=10,
    )
    _log(store_client, {"traces": [], "spans": [second]})
    info = store_client.get(f"/api/v1/traces/{trace_id(1)}/info").json()["trace_info"]
    # exact decimal sums, not float noise (0.1 + 0.00015 is 0.10015000000000001 in floats)
    assert json.loads(info["trace_metadata"]["cost"]) == {
        "input_cost": 0.10015,
        "output_cost": 0.2003,
        "total_cost": 0.30045,
    }
    _log(store_client, {"traces": [], "spans": [second]})  # idempotent
    again = store_client.get(f"/api/v1/traces/{trace_id(1)}/info").json()["trace_info"]
    assert again["trace_metadata"]["cost"] == info["trace_metadata"]["cost"]
    listed = store_client.get("/api/v1/traces", params={"experiment_id": "0"}).json()["traces"]
    assert "cost" in listed[0]["info"]["trace_metadata"]


def test_a_trace_without_priced_spans_has_no_cost(client: TestClient) -> None:
    _log(client, batch(1))
    info = client.get(f"/api/v1/traces/{trace_id(1)}/info").json()["trace_info"]
    assert "cost" not in info["trace_metadata"]


def test_otlp_gen_ai_spans_get_a_cost(store_client: TestClient) -> None:
    spans = [
        {"trace": 5, "span": 1, "name": "agent"},
        {
            "trace": 5,
            "span": 2,
            "parent": 1,
            "name": "chat gpt-4o-mini",
            "attributes": {
                "gen_ai.operation.name": "chat",
                "gen_ai.system": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                "gen_ai.usage.input_tokens": 1000,
                "gen_ai.usage.output_tokens": 500,
                "gen_ai.usage.cache_read.input_tokens": 400,
            },
        },
        {
            "trace": 5,
            "span": 3,
            "parent": 1,
            "name": "chat private-model",
            "attributes": {
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "my-private-model",
                "gen_ai.usage.input_tokens": 1000,
                "gen_ai.usage.output_tokens": 500,
            },
        },
    ]
    body = otlp_request(spans).SerializeToString()
    assert store_client.post("/v1/traces", content=body, headers={**PROTOBUF}).is_success
    trace = store_client.get(f"/api/v1/traces/tr-{5:032x}").json()["trace"]
    by_name = {s["name"]: s for s in trace["data"]["spans"]}
    priced = by_name["chat gpt-4o-mini"]["attributes"]
    # 600 uncached * $0.15 + 400 cached * $0.075 per million; 500 out * $0.60 per million
    assert priced["threadline.llm.cost"] == {
        "input_cost": 0.00012,
        "output_cost": 0.0003,
        "total_cost": 0.00042,
    }
    assert priced["threadline.token_usage.cached_input_tokens"] == 400
    assert "threadline.llm.cost" not in by_name["chat private-model"]["attributes"]
    assert json.loads(trace["info"]["trace_metadata"]["cost"])["total_cost"] == 0.00042


def test_a_priced_threadline_span_keeps_its_cost_through_otlp() -> None:
    """The SDK prices its spans (with the user's prices); ingest keeps that cost as it was
    and prices nothing itself, even for a model it knows."""
    row = SpanRow(**_llm_trace(6)["spans"][1])
    mine = {"input_cost": 1.0, "output_cost": 2.0, "total_cost": 3.0}  # a user's own prices
    priced = dataclasses.replace(
        row, attributes_json=json.dumps({**json.loads(row.attributes_json), COST_KEY: mine})
    )
    unpriced = dataclasses.replace(
        row,
        span_id=f"{3:016x}",
        attributes_json=json.dumps(
            {"threadline.model": "gpt-4o", "threadline.token_usage": {"input_tokens": 5}}
        ),
    )
    for encode, content_type in ((encode_protobuf, PROTOBUF), (encode_json, JSON)):
        body = encode(resource_groups([], [priced, unpriced]))
        _, spans = decode_otlp(body, content_type["Content-Type"], None)
        assert json.loads(spans[0].attributes_json)[COST_KEY] == mine
        assert COST_KEY not in json.loads(spans[1].attributes_json)


# --- the same reads through RestStore, against a real server -------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = server_on_sqlite(Path(tmp_path_factory.mktemp("payload-server")))
    try:
        yield process.start()
    finally:
        process.stop()


def test_rest_store_reads_structure_and_spans(server: ServerProcess) -> None:
    store = RestStore(server.url)
    body = _llm_trace(21)
    store.log_batch(
        [TraceRow(**row) for row in body["traces"]], [SpanRow(**row) for row in body["spans"]]
    )
    structure = store.get_trace_structure(trace_id(21))
    assert structure is not None
    assert [s.name for s in structure.data.spans] == ["span-1", "llm"]
    llm = structure.data.spans[1]
    assert llm.inputs is None and llm.events == []
    assert llm.get_attribute("threadline.llm.cost") == COST
    assert "threadline.chat.messages" not in llm.attributes
    full = store.get_span(trace_id(21), llm.span_id)
    assert full is not None and full.inputs == {"prompt": BIG_TEXT}
    assert store.get_span(trace_id(21), "0" * 16) is None
    assert store.get_trace_structure(trace_id(22)) is None
    info = store.get_trace_info(trace_id(21))
    assert info is not None and json.loads(info.trace_metadata["cost"]) == COST
    store.close()
