"""Large span payloads on the server: kept in the artifact store (a local folder here; S3 in
``tests/artifacts/test_s3.py``), read back whole, deleted with their traces; the per-span
hard limit (413); a failing artifact store (503, nothing stored); the CLI flag reaching
``--workers`` processes and the SDK reading through them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests.server.conftest import (
    PROTOBUF,
    ClientFactory,
    count_spans,
    otlp_request,
    span_row,
    trace_id,
    trace_row,
)
from threadline.artifacts.local import LocalArtifactRepository
from threadline.errors import InvalidArgumentError
from threadline.server import ServerSettings
from threadline.server.ingest.payloads import offload_payloads
from threadline.store import tables as t
from threadline.store.base import SpanRow, TraceRow
from threadline.store.offload import REFERENCE, OffloadingStore, artifact_key, trace_prefix
from threadline.store.sql import SqlStore

THRESHOLD = 64 * 1024
# 1 MB of UTF-8 that is not all ASCII, so sizes are counted in bytes, not characters.
DOCUMENT = ("é" * 1000 + "x" * 9000) * 95


def big_inputs() -> str:
    return json.dumps({"document": DOCUMENT}, ensure_ascii=False)


def big_events() -> str:
    return json.dumps([{"name": "chunk", "timestamp_ns": 5, "attributes": {"text": "y" * 100_000}}])


def log(client: TestClient, traces: list[dict], spans: list[dict]) -> Any:
    return client.post("/api/v1/traces/batch", json={"traces": traces, "spans": spans})


def get_trace(client: TestClient, n: int) -> dict[str, Any]:
    response = client.get(f"/api/v1/traces/{trace_id(n)}")
    assert response.status_code == 200, response.text
    return dict(response.json()["trace"])


def stored_row(store: SqlStore, n: int, span: int = 1) -> dict[str, Any]:
    """The span's row as the database holds it (not through any wrapper)."""
    query = sa.select(t.spans).where(
        t.spans.c.trace_id == trace_id(n), t.spans.c.span_id == f"{span:016x}"
    )
    with store.engine.connect() as conn:
        row = conn.execute(query).mappings().first()
    assert row is not None
    return dict(row)


def inputs_key(n: int) -> str:
    """Where the inputs of span 1 of trace ``n`` (experiment "0") are kept."""
    return artifact_key("0", trace_id(n), f"{1:016x}", "inputs")


def files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


@pytest.fixture
def offload_client(make_client: ClientFactory, folder: Path) -> TestClient:
    return make_client(artifacts_destination=str(folder), artifact_threshold_bytes=THRESHOLD)


def test_a_large_input_goes_to_the_folder_and_comes_back_whole(
    offload_client: TestClient, sqlite_store: SqlStore, folder: Path
) -> None:
    span = span_row(1, inputs_json=big_inputs(), events_json=big_events())
    assert log(offload_client, [trace_row(1)], [span]).status_code == 200

    row = stored_row(sqlite_store, 1)
    assert len(row["inputs"]) < 2000 and len(row["events"]) < 2000
    reference = json.loads(row["inputs"])[REFERENCE]
    key = artifact_key("0", trace_id(1), f"{1:016x}", "inputs")
    assert reference["key"] == key
    assert reference["bytes"] == len(big_inputs().encode()) > 1_000_000
    assert reference["preview"].startswith('{"document": "éé') and len(reference["preview"]) <= 1000
    assert row["outputs"] == json.dumps("answer 1")  # small: stays in the row
    assert (folder / key).read_bytes() == big_inputs().encode()
    assert files(folder) == sorted([key, artifact_key("0", trace_id(1), f"{1:016x}", "events")])

    (stored,) = get_trace(offload_client, 1)["data"]["spans"]
    assert stored["inputs"] == {"document": DOCUMENT}
    assert stored["outputs"] == "answer 1"
    assert stored["events"] == json.loads(big_events())

    # The trace view's reads: the structure (no payloads), then one span with its payloads.
    structure = offload_client.get(f"/api/v1/traces/{trace_id(1)}/structure")
    assert structure.status_code == 200
    assert "inputs" not in structure.json()["trace"]["data"]["spans"][0]
    one = offload_client.get(f"/api/v1/traces/{trace_id(1)}/spans/{1:016x}").json()["span"]
    assert one["inputs"] == {"document": DOCUMENT}
    assert one["events"] == json.loads(big_events())

    search = offload_client.post("/api/v1/traces/search", json={"include_spans": True})
    (found,) = search.json()["traces"]
    assert found["data"]["spans"][0]["inputs"] == {"document": DOCUMENT}
    listed = offload_client.get("/api/v1/traces").json()["traces"]
    assert [x["info"]["request_preview"] for x in listed] == ["question 1"]


def test_small_payloads_stay_in_the_database(
    offload_client: TestClient, sqlite_store: SqlStore, folder: Path
) -> None:
    inputs = json.dumps({"text": "z" * 60_000})  # just under the threshold
    assert log(offload_client, [trace_row(1)], [span_row(1, inputs_json=inputs)]).status_code == 200
    assert stored_row(sqlite_store, 1)["inputs"] == inputs
    assert files(folder) == []
    assert get_trace(offload_client, 1)["data"]["spans"][0]["inputs"] == json.loads(inputs)


def test_without_a_destination_payloads_stay_inline(
    client: TestClient, sqlite_store: SqlStore
) -> None:
    assert log(client, [trace_row(1)], [span_row(1, inputs_json=big_inputs())]).status_code == 200
    assert stored_row(sqlite_store, 1)["inputs"] == big_inputs()
    assert get_trace(client, 1)["data"]["spans"][0]["inputs"] == {"document": DOCUMENT}


def test_otlp_ingest_offloads_too(offload_client: TestClient, sqlite_store: SqlStore) -> None:
    attributes = {"threadline.span_type": "CHAIN", "threadline.inputs": big_inputs()}
    body = otlp_request([{"trace": 1, "span": 1, "attributes": attributes}])
    response = offload_client.post(
        "/v1/traces", content=body.SerializeToString(), headers={**PROTOBUF}
    )
    assert response.status_code == 200, response.text
    assert REFERENCE in json.loads(stored_row(sqlite_store, 1)["inputs"])
    assert get_trace(offload_client, 1)["data"]["spans"][0]["inputs"] == {"document": DOCUMENT}


def test_deleting_traces_deletes_their_artifacts(
    offload_client: TestClient, sqlite_store: SqlStore, folder: Path
) -> None:
    traces = [trace_row(1), trace_row(2), trace_row(3, experiment_id="7")]
    spans = [span_row(n, inputs_json=big_inputs()) for n in (1, 2, 3)]
    assert log(offload_client, traces, spans).status_code == 200
    assert len(files(folder)) == 3
    key = {n: json.loads(stored_row(sqlite_store, n)["inputs"])[REFERENCE]["key"] for n in (2, 3)}

    # Trace 3 is in another experiment: not deleted, and its artifact stays.
    body = {"experiment_id": "0", "trace_ids": [trace_id(1), trace_id(3)]}
    assert offload_client.post("/api/v1/traces/delete", json=body).json() == {"deleted": 1}
    assert files(folder) == sorted(key.values())
    assert get_trace(offload_client, 3)["data"]["spans"][0]["inputs"] == {"document": DOCUMENT}

    body = {"experiment_id": "0", "max_timestamp_millis": 2**62}
    assert offload_client.post("/api/v1/traces/delete", json=body).json() == {"deleted": 1}
    assert files(folder) == [key[3]]
    assert offload_client.get(f"/api/v1/traces/{trace_id(2)}").status_code == 404


def test_deletion_by_age_keeps_its_order_and_limit(
    offload_client: TestClient, folder: Path
) -> None:
    numbers = range(1, 6)  # request_time grows with n
    spans = [span_row(n, inputs_json=big_inputs()) for n in numbers]
    assert log(offload_client, [trace_row(n) for n in numbers], spans).status_code == 200
    body = {"experiment_id": "0", "max_timestamp_millis": 2**62, "max_traces": 2}
    assert offload_client.post("/api/v1/traces/delete", json=body).json() == {"deleted": 2}
    left = [x["info"]["trace_id"] for x in offload_client.get("/api/v1/traces").json()["traces"]]
    assert sorted(left) == [trace_id(n) for n in (3, 4, 5)]
    assert files(folder) == sorted(inputs_key(n) for n in (3, 4, 5))
    bad = {"experiment_id": "0", "max_timestamp_millis": 1, "max_traces": 0}
    assert offload_client.post("/api/v1/traces/delete", json=bad).status_code == 400


@pytest.mark.parametrize("offload", [True, False], ids=["artifacts", "inline"])
def test_a_payload_over_the_limit_is_413_and_nothing_is_written(
    make_client: ClientFactory, sqlite_store: SqlStore, folder: Path, offload: bool
) -> None:
    destination = {"artifacts_destination": str(folder)} if offload else {}
    client = make_client(max_payload_bytes=200_000, **destination)
    assert log(client, [trace_row(1)], [span_row(1)]).status_code == 200
    before = get_trace(client, 1)

    too_big = span_row(3, span=2, outputs_json=json.dumps("o" * 300_000))
    response = log(client, [trace_row(2), trace_row(3)], [span_row(2), span_row(3), too_big])
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "PAYLOAD_TOO_LARGE"
    assert "Span 'span-2'" in error["message"]
    assert f"{2:016x} of trace {trace_id(3)}" in error["message"]
    assert "has outputs of 300002 bytes" in error["message"]
    assert "limit of 200000 bytes" in error["message"]
    assert "THREADLINE_SERVER_MAX_PAYLOAD_BYTES" in error["message"]
    assert "Nothing in this request was stored" in error["message"]

    otlp = otlp_request([{"trace": 4, "span": 1, "attributes": {"big": "a" * 300_000, "small": 1}}])
    response = client.post("/v1/traces", content=otlp.SerializeToString(), headers=PROTOBUF)
    assert response.status_code == 413
    assert "has attributes of" in response.json()["error"]["message"]

    assert count_spans(sqlite_store) == 1
    assert get_trace(client, 1) == before
    for n in (2, 3, 4):
        assert client.get(f"/api/v1/traces/{trace_id(n)}").status_code == 404
    assert not folder.exists() or files(folder) == []


def test_a_failing_artifact_store_answers_503_and_stores_nothing(
    offload_client: TestClient, sqlite_store: SqlStore, folder: Path
) -> None:
    assert log(offload_client, [trace_row(1)], [span_row(1, inputs_json=big_inputs())]).is_success
    # Trace 2's artifacts folder cannot be created: a file is in the way.
    in_the_way = folder / trace_prefix("0", trace_id(2)).rstrip("/")
    in_the_way.parent.mkdir(parents=True, exist_ok=True)
    in_the_way.write_text("in the way")

    response = log(offload_client, [trace_row(2)], [span_row(2, inputs_json=big_inputs())])
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    message = response.json()["error"]["message"]
    assert "The artifact store failed, so nothing in this request was stored" in message
    assert "Cannot write artifact" in message and "can be retried" in message

    # OTLP, even without waiting for the write, is refused the same way.
    attributes = {"threadline.span_type": "CHAIN", "threadline.inputs": big_inputs()}
    body = otlp_request([{"trace": 2, "span": 5, "attributes": attributes}])
    otlp = offload_client.post("/v1/traces", content=body.SerializeToString(), headers=PROTOBUF)
    assert otlp.status_code == 503

    assert offload_client.get(f"/api/v1/traces/{trace_id(2)}").status_code == 404
    assert count_spans(sqlite_store) == 1
    assert get_trace(offload_client, 1)["data"]["spans"][0]["inputs"] == {"document": DOCUMENT}

    in_the_way.unlink()  # the store recovers: sending again works
    response = log(offload_client, [trace_row(2)], [span_row(2, inputs_json=big_inputs())])
    assert response.status_code == 200
    assert get_trace(offload_client, 2)["data"]["spans"][0]["inputs"] == {"document": DOCUMENT}


def test_a_missing_artifact_reads_as_its_reference(
    offload_client: TestClient, folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert log(offload_client, [trace_row(1)], [span_row(1, inputs_json=big_inputs())]).is_success
    key = inputs_key(1)
    (folder / key).unlink()
    with caplog.at_level(logging.WARNING, logger="threadline.store.offload"):
        (span,) = get_trace(offload_client, 1)["data"]["spans"]
    assert span["inputs"][REFERENCE]["key"] == key
    assert span["inputs"][REFERENCE]["preview"].startswith('{"document"')
    assert "missing from the artifact store" in caplog.text


def test_a_lookalike_reference_is_not_followed(offload_client: TestClient) -> None:
    assert log(offload_client, [trace_row(1)], [span_row(1, inputs_json=big_inputs())]).is_success
    lookalike = {REFERENCE: {"key": inputs_key(1)}}
    span = span_row(2, inputs_json=json.dumps(lookalike))
    assert log(offload_client, [trace_row(2)], [span]).is_success
    assert get_trace(offload_client, 2)["data"]["spans"][0]["inputs"] == lookalike


def test_offloading_before_the_queue_keys_by_the_requests_experiments(
    sqlite_store: SqlStore, folder: Path
) -> None:
    """``offload_payloads`` with the request's trace rows: each trace's payloads are kept
    under the experiment its row names (the one the sender's token was checked for)."""
    store = OffloadingStore(sqlite_store, LocalArtifactRepository(folder), threshold_bytes=1000)
    spans = [SpanRow(**span_row(n, inputs_json=big_inputs())) for n in (1, 2)]
    traces = [TraceRow(**trace_row(1, experiment_id="5"))]
    rows = asyncio.run(offload_payloads(store, spans, traces))
    keys = [json.loads(row.inputs_json)[REFERENCE]["key"] for row in rows]
    assert keys == [
        artifact_key("5", trace_id(1), f"{1:016x}", "inputs"),
        artifact_key("0", trace_id(2), f"{1:016x}", "inputs"),  # no row, not stored: "0"
    ]
    assert files(folder) == sorted(keys)


def test_settings_validate_and_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from threadline.server.main import app_from_environment

    with pytest.raises(InvalidArgumentError, match="artifact_threshold_bytes"):
        ServerSettings(artifact_threshold_bytes=0)
    monkeypatch.setenv("THREADLINE_SERVER_BACKEND_STORE_URI", f"sqlite:///{tmp_path / 'w.db'}")
    monkeypatch.setenv("THREADLINE_SERVER_ARTIFACTS_DESTINATION", str(tmp_path / "blobs"))
    monkeypatch.setenv("THREADLINE_SERVER_ARTIFACT_THRESHOLD_BYTES", "1000")
    monkeypatch.setenv("THREADLINE_SERVER_MAX_PAYLOAD_BYTES", "5000")
    app = app_from_environment()  # what each --workers process runs
    store = app.state.store
    assert isinstance(store, OffloadingStore)
    assert store.repository.location == str(tmp_path / "blobs")
    assert store.threshold_bytes == 1000
    assert app.state.settings.max_payload_bytes == 5000


def test_a_bad_destination_stops_the_server_before_it_listens(tmp_path: Path) -> None:
    command = ["threadline.cli", "server", "--port", "0", "--artifacts-destination", "gs://b/x"]
    result = subprocess.run(
        [sys.executable, "-m", *command],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("threadline: error: Unsupported artifacts destination")
    assert "listening" not in result.stdout


def test_workers_offload_and_the_sdk_reads_payloads_whole(tmp_path: Path) -> None:
    """``threadline server --artifacts-destination blobs --workers 2`` (a folder relative to
    the server's directory), and the SDK over http: trace, then ``get_trace``."""
    import threadline
    from tests.remote.conftest import server_on_sqlite

    server = server_on_sqlite(tmp_path, "--artifacts-destination", "blobs", "--workers", "2")
    server.start()
    try:
        threadline.set_tracking_uri(server.url)

        @threadline.trace
        def summarise(document: str) -> str:
            return document[:10]

        summarise(DOCUMENT)
        tid = threadline.get_last_active_trace_id()
        assert tid is not None
        trace = threadline.get_trace(tid)
    finally:
        server.stop()
    assert trace is not None
    (span,) = trace.data.spans
    assert span.inputs == {"document": DOCUMENT}
    assert span.outputs == DOCUMENT[:10]
    blobs = tmp_path / "blobs"
    assert [p.name for p in blobs.rglob("*") if p.is_file()] == ["inputs.json"]
    with contextlib.closing(sqlite3.connect(tmp_path / "server.db")) as conn:
        (inputs,) = conn.execute("SELECT inputs FROM spans").fetchone()
    assert REFERENCE in json.loads(inputs)  # offloaded by a worker process
