"""The S3 artifact repository against a local S3-compatible server (moto, server mode)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from threadline.artifacts import (
    ArtifactNotFoundError,
    ArtifactStoreError,
    get_artifact_repository,
)
from threadline.artifacts.s3 import S3ArtifactRepository
from threadline.errors import InvalidArgumentError


def _keys(s3_client: Any, bucket: str) -> list[str]:
    listed = s3_client.list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def test_round_trip_under_the_prefix(s3_client: Any, bucket: str) -> None:
    repository = get_artifact_repository(f"s3://{bucket}/team/payloads/")
    assert isinstance(repository, S3ArtifactRepository)
    assert repository.location == f"s3://{bucket}/team/payloads/"
    data = os.urandom(1024 * 1024)
    repository.put("traces/tr-1/01/inputs.json", data)
    assert repository.get("traces/tr-1/01/inputs.json") == data
    assert _keys(s3_client, bucket) == ["team/payloads/traces/tr-1/01/inputs.json"]
    repository.put("traces/tr-1/01/inputs.json", b"second")
    assert repository.get("traces/tr-1/01/inputs.json") == b"second"


def test_missing_object_is_not_found(bucket: str) -> None:
    repository = get_artifact_repository(f"s3://{bucket}")
    with pytest.raises(ArtifactNotFoundError, match="is missing from"):
        repository.get("traces/none/01/inputs.json")


def test_delete_prefix_removes_only_that_trace(s3_client: Any, bucket: str) -> None:
    repository = get_artifact_repository(f"s3://{bucket}/p")
    for n in range(3):
        repository.put(f"traces/tr-a/{n:02d}/outputs.json", b"x")
    repository.put("traces/tr-ab/01/inputs.json", b"y")
    repository.delete_prefix("traces/tr-a/")
    assert _keys(s3_client, bucket) == ["p/traces/tr-ab/01/inputs.json"]
    repository.delete_prefix("traces/tr-a/")  # nothing left: not an error


def test_keys_are_checked_before_any_call(bucket: str) -> None:
    repository = get_artifact_repository(f"s3://{bucket}/p")
    with pytest.raises(InvalidArgumentError, match="not a safe relative path"):
        repository.put("../other-prefix/x.json", b"x")


def test_a_missing_bucket_is_a_store_error(s3_env: str) -> None:
    repository = get_artifact_repository("s3://no-such-bucket-here/p")
    with pytest.raises(ArtifactStoreError, match=r"Cannot write artifact .*NoSuchBucket"):
        repository.put("traces/tr-1/01/inputs.json", b"x")


def test_an_unreachable_endpoint_is_a_store_error(
    s3_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{port}")
    repository = get_artifact_repository("s3://bucket/p")
    with pytest.raises(ArtifactStoreError, match="can be retried"):
        repository.put("traces/tr-1/01/inputs.json", b"x")


def test_the_server_keeps_large_payloads_in_s3(s3_client: Any, bucket: str, tmp_path: Path) -> None:
    """A 1 MB input through the server's REST API lands in the bucket, is read back whole,
    and goes away with its trace."""
    from fastapi.testclient import TestClient

    from tests.server.conftest import span_row, trace_id, trace_row
    from threadline.server import ServerSettings, create_app
    from threadline.store.offload import REFERENCE, artifact_key
    from threadline.store.sql import SqlStore

    document = "s3 " * 350_000
    inputs = json.dumps({"document": document})
    store = SqlStore(f"sqlite:///{tmp_path / 'server.db'}")
    settings = ServerSettings(artifacts_destination=f"s3://{bucket}/threadline")
    try:
        with TestClient(create_app(settings, store)) as client:
            body = {"traces": [trace_row(1)], "spans": [span_row(1, inputs_json=inputs)]}
            assert client.post("/api/v1/traces/batch", json=body).status_code == 200
            key = "threadline/" + artifact_key("0", trace_id(1), f"{1:016x}", "inputs")
            assert _keys(s3_client, bucket) == [key]
            assert s3_client.get_object(Bucket=bucket, Key=key)["Body"].read() == inputs.encode()
            (raw,) = store.get_trace(trace_id(1)).data.spans  # the row itself: a reference
            assert raw.inputs[REFERENCE]["bytes"] == len(inputs)

            trace = client.get(f"/api/v1/traces/{trace_id(1)}").json()["trace"]
            assert trace["data"]["spans"][0]["inputs"] == {"document": document}

            delete = {"experiment_id": "0", "trace_ids": [trace_id(1)]}
            assert client.post("/api/v1/traces/delete", json=delete).json() == {"deleted": 1}
            assert _keys(s3_client, bucket) == []
    finally:
        store.close()
