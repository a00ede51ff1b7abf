"""The app as a whole: health, readiness, the OpenAPI document, gzip, a failing store."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from typing import Any

from fastapi.testclient import TestClient

from tests.server.conftest import ClientFactory, batch, trace_id
from threadline.errors import StoreError
from threadline.store.sql import SqlStore


class DownStore:
    """A store whose database is gone: every call raises ``StoreError``."""

    def __init__(self, real: SqlStore) -> None:
        self.real = real

    def __getattr__(self, name: str) -> Any:
        def fail(*_args: Any, **_kwargs: Any) -> Any:
            raise StoreError("Could not read: connection refused")

        return fail


def test_health_and_ready(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"status": "ready"}


def test_an_unavailable_store_is_503_with_retry_after(
    make_client: ClientFactory, sqlite_store: SqlStore
) -> None:
    client = make_client(store=DownStore(sqlite_store))
    assert client.get("/health").status_code == 200
    ready = client.get("/ready")
    assert ready.status_code == 503 and ready.json()["error"]["code"] == "UNAVAILABLE"
    response = client.get("/api/v1/experiments/0")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert "connection refused" in response.json()["error"]["message"]


def test_gzip_request_bodies_on_the_rest_api(client: TestClient) -> None:
    body = gzip.compress(json.dumps(batch(1, 2)).encode())
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    response = client.post("/api/v1/traces/batch", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert client.get(f"/api/v1/traces/{trace_id(2)}").status_code == 200


def test_openapi_documents_every_route_and_our_errors(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    paths = document["paths"]
    assert {"/v1/traces", "/api/v1/traces/batch", "/api/v1/experiments", "/ready"} <= set(paths)
    operations = [op for path in paths.values() for op in path.values()]
    assert len(operations) >= 25
    assert all("422" not in op["responses"] for op in operations)
    assert "ErrorResponse" in document["components"]["schemas"]
    assert "HTTPBearer" in document["components"]["securitySchemes"]


def test_cli_help_lists_the_server_options() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "threadline.cli", "server", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    for option in ("--host", "--port", "--backend-store-uri", "--workers", "--auth-token"):
        assert option in out
    probe = (
        "import sys, threadline.cli; threadline.cli.build_parser(); print('fastapi' in sys.modules)"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "False"
