"""Values past the schema's bounds are refused before they are acknowledged (never taken
and then dropped by the writer), times outside a sane range are refused, readers tolerate
bad rows stored before these checks, and cleaned characters are reported."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time

import pytest
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.server.conftest import (
    T0,
    ClientFactory,
    otlp_request,
    span_row,
    trace_id,
    trace_row,
)
from threadline.store.base import SpanRow, TraceRow
from threadline.store.row_checks import INT64_MAX, MAX_ID_CHARS
from threadline.store.sql import SqlStore

PROTOBUF = {"Content-Type": "application/x-protobuf"}
API = "/api/v1/traces"
FAR_FUTURE_NS = INT64_MAX - 10


def _spans(n: int, **fields: object) -> bytes:
    spans = [{"trace": n, "span": 1, "name": "root", **fields}]
    return otlp_request(spans).SerializeToString()


@pytest.mark.parametrize("length", [245, 246, 250, MAX_ID_CHARS])
def test_long_experiment_ids_are_stored_not_acknowledged_and_dropped(
    store_client: TestClient, length: int
) -> None:
    """On PostgreSQL, ids of 246-256 characters made an experiment name too long for its
    column: the client got 200 and the writer dropped the rows."""
    experiment_id = "e" * length
    headers = {**PROTOBUF, "x-threadline-experiment-id": experiment_id}
    for n in range(1, 4):
        response = store_client.post("/v1/traces", content=_spans(n), headers=headers)
        assert response.status_code == 200, response.text
    for n in range(1, 4):
        found = store_client.get(f"{API}/{trace_id(n)}")
        assert found.status_code == 200, f"acknowledged trace {n} is missing: {found.text}"
        assert found.json()["trace"]["info"]["experiment_id"] == experiment_id
    experiment = store_client.get(f"/api/v1/experiments/{experiment_id}").json()["experiment"]
    assert experiment["name"].startswith("experiment-e") and len(experiment["name"]) <= 256
    too_long = {**PROTOBUF, "x-threadline-experiment-id": "e" * (MAX_ID_CHARS + 1)}
    assert store_client.post("/v1/traces", content=_spans(9), headers=too_long).status_code == 400


def test_fields_too_long_for_their_columns_are_400_naming_them(store_client: TestClient) -> None:
    cases = {
        "client_request_id": {"traces": [trace_row(1, client_request_id="c" * 501)], "spans": []},
        "span_type": {"traces": [], "spans": [span_row(1, span_type="T" * 257)]},
        "run_id": {"traces": [trace_row(1, run_id="r" * 257)], "spans": []},
    }
    for field, body in cases.items():
        response = store_client.post(f"{API}/batch", json=body)
        assert response.status_code == 400, (field, response.text)
        assert field in response.json()["error"]["message"]
    assert store_client.post(f"{API}/search", json={}).json()["traces"] == []


def test_extreme_times_are_refused_through_rest_and_otlp(store_client: TestClient) -> None:
    future = trace_row(1, request_time=INT64_MAX - 1)
    rest = store_client.post(f"{API}/batch", json={"traces": [future], "spans": []})
    assert rest.status_code == 400 and "request_time" in rest.json()["error"]["message"]
    old_span = span_row(2, start_time_ns=1_000, end_time_ns=2_000)
    rest = store_client.post(f"{API}/batch", json={"traces": [], "spans": [old_span]})
    assert rest.status_code == 400 and "start_time_ns" in rest.json()["error"]["message"]

    # OTLP: a request whose every span is out of range is refused, naming the field...
    alone = _spans(3, start=FAR_FUTURE_NS - T0, end=FAR_FUTURE_NS - T0)
    response = store_client.post("/v1/traces", content=alone, headers=PROTOBUF)
    assert response.status_code == 400 and "start_time_unix_nano" in response.text
    # ...and in a mixed request only those spans are rejected (OTLP partial success).
    mixed = otlp_request(
        [
            {"trace": 4, "span": 1, "name": "good"},
            {"trace": 5, "span": 1, "name": "bad", "start": FAR_FUTURE_NS - T0},
        ]
    ).SerializeToString()
    response = store_client.post("/v1/traces", content=mixed, headers=PROTOBUF)
    assert response.status_code == 200
    parsed = ExportTraceServiceResponse.FromString(response.content)
    assert parsed.partial_success.rejected_spans == 1
    assert "start_time_unix_nano" in parsed.partial_success.error_message
    assert store_client.get(f"{API}/{trace_id(4)}").status_code == 200
    assert store_client.get(f"{API}/{trace_id(5)}").status_code == 404
    assert [t["info"]["trace_id"] for t in store_client.get(API).json()["traces"]] == [trace_id(4)]


def test_the_future_bound_is_a_setting(make_client: ClientFactory) -> None:
    client = make_client(max_future_seconds=1.0)
    soon = trace_row(1, request_time=int(time.time() * 1000) + 60_000)
    response = client.post(f"{API}/batch", json={"traces": [soon], "spans": []})
    assert response.status_code == 400
    relaxed = make_client(max_future_seconds=3600.0)
    assert relaxed.post(f"{API}/batch", json={"traces": [soon], "spans": []}).status_code == 200


def _store_bad_rows(store: SqlStore) -> None:
    """Rows with absurd times, as an older server accepted them (straight to the store)."""
    row = TraceRow(
        trace_id=trace_id(7),
        experiment_id="0",
        request_time=INT64_MAX - 1000,
        state="OK",
        execution_duration=INT64_MAX - 1000,
        name="from the far future",
    )
    span = SpanRow(**{**span_row(7), "start_time_ns": INT64_MAX - 5, "end_time_ns": INT64_MAX})
    store.log_batch([row, dataclasses.replace(row, trace_id=trace_id(8), request_time=1)], [span])
    store.log_batch([TraceRow(**trace_row(9))], [SpanRow(**span_row(9))])


def test_readers_tolerate_bad_rows_already_stored(
    make_client: ClientFactory, any_store: SqlStore, tmp_path
) -> None:
    _store_bad_rows(any_store)
    client = make_client(store=any_store)
    stats = client.get("/api/v1/stats/experiments")
    assert stats.status_code == 200, stats.text
    (default,) = [s for s in stats.json()["stats"] if s["experiment_id"] == "0"]
    assert default["trace_count"] == 3 and default["last_activity_ms"] == INT64_MAX
    listed = client.get(API, params={"max_results": 10})
    assert listed.status_code == 200 and len(listed.json()["traces"]) == 3
    assert client.get(f"{API}/{trace_id(7)}").status_code == 200
    assert client.get(f"{API}/{trace_id(7)}/structure").status_code == 200


def test_the_cli_shows_bad_rows_already_stored(sqlite_store: SqlStore) -> None:
    _store_bad_rows(sqlite_store)
    uri = str(sqlite_store.engine.url)
    cli = [sys.executable, "-m", "threadline.cli"]
    listed = subprocess.run(
        [*cli, "traces", "list", "--tracking-uri", uri], capture_output=True, text=True, timeout=60
    )
    assert listed.returncode == 0, listed.stderr
    assert "out of range" in listed.stdout and trace_id(9) in listed.stdout
    shown = subprocess.run(
        [*cli, "traces", "show", trace_id(7), "--tracking-uri", uri],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert "from the far future" in shown.stdout


def test_cleaned_characters_are_counted_in_the_partial_success_message(
    client: TestClient,
) -> None:
    request = otlp_request(
        [
            {"trace": 1, "span": 1, "name": "n\x00", "attributes": {"k": "v\x00"}},
            {"trace": 1, "span": 2, "parent": 1, "name": "clean"},
            {"trace": 2, "span": 1, "name": "fine", "attributes": {"a\x00": "b"}},
        ]
    )
    response = client.post("/v1/traces", content=request.SerializeToString(), headers=PROTOBUF)
    assert response.status_code == 200
    parsed = ExportTraceServiceResponse.FromString(response.content)
    assert parsed.partial_success.rejected_spans == 0
    assert parsed.partial_success.error_message.startswith("2 spans had NUL")
    assert "U+FFFD" in parsed.partial_success.error_message
    spans = client.get(f"{API}/{trace_id(1)}").json()["trace"]["data"]["spans"]
    assert [s["name"] for s in spans] == ["n\ufffd", "clean"]
    clean = client.post(
        "/v1/traces", content=_spans(3), headers={**PROTOBUF, "Accept": "application/json"}
    )
    assert ExportTraceServiceResponse.FromString(clean.content) == ExportTraceServiceResponse()
