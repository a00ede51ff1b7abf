"""``POST /v1/traces``: OTLP/HTTP protobuf and JSON, gzip, responses, the queue."""

from __future__ import annotations

import gzip

from fastapi.testclient import TestClient
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.server.conftest import JSON, PROTOBUF, ClientFactory, otlp_json, otlp_request

SPANS = [
    {"trace": 1, "span": 1, "name": "root", "attributes": {"input.value": "hi"}},
    {"trace": 1, "span": 2, "parent": 1, "attributes": {"openinference.span.kind": "LLM"}},
]


def _trace(client: TestClient, n: int = 1) -> dict:
    response = client.get(f"/api/v1/traces/tr-{n:032x}")
    assert response.status_code == 200, response.text
    return response.json()["trace"]


def test_protobuf_ingest_answers_an_export_response(store_client: TestClient) -> None:
    body = otlp_request(SPANS).SerializeToString()
    response = store_client.post("/v1/traces", content=body, headers=PROTOBUF)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    assert ExportTraceServiceResponse.FromString(response.content) == ExportTraceServiceResponse()
    trace = _trace(store_client)
    assert trace["info"]["state"] == "OK" and trace["info"]["request_preview"] == "hi"
    assert [s["span_type"] for s in trace["data"]["spans"]] == ["UNKNOWN", "LLM"]


def test_json_ingest_answers_json(store_client: TestClient) -> None:
    response = store_client.post(
        "/v1/traces", content=otlp_json(otlp_request(SPANS)), headers={**JSON}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {}
    assert len(_trace(store_client)["data"]["spans"]) == 2


def test_gzip_bodies(client: TestClient) -> None:
    body = gzip.compress(otlp_request(SPANS).SerializeToString())
    headers = {**PROTOBUF, "Content-Encoding": "gzip"}
    assert client.post("/v1/traces", content=body, headers=headers).status_code == 200
    assert len(_trace(client)["data"]["spans"]) == 2


def test_experiment_header_routes_spans(client: TestClient) -> None:
    headers = {**PROTOBUF, "x-threadline-experiment-id": "42"}
    client.post("/v1/traces", content=otlp_request(SPANS).SerializeToString(), headers=headers)
    assert _trace(client)["info"]["experiment_id"] == "42"
    assert client.get("/api/v1/experiments/42").status_code == 200


def test_partial_success_reports_rejected_spans(client: TestClient) -> None:
    request = otlp_request(SPANS)
    request.resource_spans[0].scope_spans[0].spans[1].span_id = b"\x01"
    response = client.post("/v1/traces", content=otlp_json(request), headers={**JSON})
    assert response.status_code == 200
    parsed = json_format.Parse(response.content, ExportTraceServiceResponse())
    assert parsed.partial_success.rejected_spans == 1
    assert "span id" in parsed.partial_success.error_message


def test_children_before_their_root_land_in_the_right_experiment(client: TestClient) -> None:
    headers = {**PROTOBUF, "x-threadline-experiment-id": "8"}
    child = otlp_request([SPANS[1]]).SerializeToString()
    client.post("/v1/traces", content=child, headers=headers)
    early = _trace(client)["info"]
    assert (early["state"], early["experiment_id"]) == ("IN_PROGRESS", "8")
    client.post("/v1/traces", content=otlp_request([SPANS[0]]).SerializeToString(), headers=headers)
    info = _trace(client)["info"]
    assert (info["state"], info["experiment_id"], info["name"]) == ("OK", "8", "root")


def test_every_acknowledged_request_is_readable_at_once(client: TestClient) -> None:
    """No header needed: a 200 comes after the commit, so the next read finds the trace."""
    for n in range(1, 31):
        spans = [{"trace": n, "span": 1}, {"trace": n, "span": 2, "parent": 1}]
        body = otlp_request(spans).SerializeToString()
        assert client.post("/v1/traces", content=body, headers=PROTOBUF).status_code == 200
        assert len(_trace(client, n)["data"]["spans"]) == 2, f"trace {n} not readable"
    bad_ack = client.post(
        "/v1/traces", content=b"", headers={**PROTOBUF, "x-threadline-ack": "later"}
    )
    assert bad_ack.status_code == 400 and "x-threadline-ack" in bad_ack.text


def test_bad_bodies_are_4xx(client: TestClient) -> None:
    garbage = client.post("/v1/traces", content=b"\x0a\xff\xff", headers=PROTOBUF)
    assert garbage.status_code == 400
    assert garbage.json()["error"]["code"] == "INVALID_ARGUMENT"
    wrong_type = client.post("/v1/traces", content=b"x", headers={"Content-Type": "text/plain"})
    assert wrong_type.status_code == 415
    bad_sync = client.post(
        "/v1/traces", content=b"", headers={**PROTOBUF, "x-threadline-sync": "?"}
    )
    assert bad_sync.status_code == 400


def test_a_full_queue_answers_503_with_retry_after(make_client: ClientFactory) -> None:
    client = make_client(ingest_queue_rows=3)
    writer = client.app.state.writer  # type: ignore[attr-defined]
    blocked = otlp_request(SPANS).SerializeToString()
    writer._queued_rows = 3  # as if three rows were still waiting to be written
    try:
        response = client.post("/v1/traces", content=blocked, headers=PROTOBUF)
    finally:
        writer._queued_rows = 0
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"]["code"] == "UNAVAILABLE"
    assert client.post("/v1/traces", content=blocked, headers=PROTOBUF).status_code == 200


def test_a_full_queue_refuses_before_decoding(make_client: ClientFactory) -> None:
    """With no room for a request like the last one, the 503 comes before the body is
    decoded: even a body that is not protobuf gets it, not a 400."""
    client = make_client(ingest_queue_rows=3)
    body = otlp_request(SPANS).SerializeToString()
    written = client.post("/v1/traces", content=body, headers=PROTOBUF)
    assert written.status_code == 200  # written: the writer no longer touches the count
    writer = client.app.state.writer  # type: ignore[attr-defined]
    writer._queued_rows = 3  # as if three rows were still waiting to be written
    try:
        garbage = client.post("/v1/traces", content=b"\xff\x00garbage", headers=PROTOBUF)
    finally:
        writer._queued_rows = 0
    assert garbage.status_code == 503
    assert garbage.headers["retry-after"] == "1"
    assert (
        client.post("/v1/traces", content=b"\xff\x00garbage", headers=PROTOBUF).status_code == 400
    )


def test_queued_ingest_is_written_by_shutdown(sqlite_store) -> None:
    from tests.server.conftest import count_spans
    from threadline.server import ServerSettings, create_app

    queued = {**PROTOBUF, "x-threadline-ack": "queued"}
    with TestClient(create_app(ServerSettings(), sqlite_store)) as client:
        for n in range(1, 21):
            spans = [{"trace": n, "span": 1}, {"trace": n, "span": 2, "parent": 1}]
            body = otlp_request(spans).SerializeToString()
            assert client.post("/v1/traces", content=body, headers=queued).status_code == 200
    # leaving the block ran the lifespan shutdown, which drains the queue
    assert count_spans(sqlite_store) == 40
