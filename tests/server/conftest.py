"""Server fixtures: the app on a real store (SQLite file; PostgreSQL for some tests), in
process through Starlette's TestClient, and helpers that build real OTLP messages."""

from __future__ import annotations

import dataclasses
import json
import shutil
import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from threadline.server import ServerSettings, create_app
from threadline.store import tables as t
from threadline.store.base import SpanRow, TraceRow
from threadline.store.sql import SqlStore

T0 = 1_700_000_000_000_000_000  # ns


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file already at the head schema (migrations run once per session)."""
    path = tmp_path_factory.mktemp("server-template") / "template.db"
    SqlStore(f"sqlite:///{path}").close()
    return path


@pytest.fixture
def sqlite_store(sqlite_template: Path, tmp_path: Path) -> Iterator[SqlStore]:
    path = tmp_path / "server.db"
    shutil.copyfile(sqlite_template, path)
    store = SqlStore(f"sqlite:///{path}")
    yield store
    store.close()


@pytest.fixture(scope="session")
def pg_session_store(postgres_uri: str) -> Iterator[SqlStore]:
    store = SqlStore(postgres_uri.replace("postgresql://", "postgresql+psycopg://", 1))
    yield store
    store.close()


@pytest.fixture
def pg_store(pg_session_store: SqlStore) -> SqlStore:
    """The session's PostgreSQL store, emptied (only the Default experiment left)."""
    with pg_session_store.engine.begin() as conn:
        for table in t.ALL_TABLES:
            conn.execute(table.delete())
        conn.execute(
            t.experiments.insert().values(
                experiment_id="0", id_number=0, name="Default", creation_time=0, last_update_time=0
            )
        )
    pg_session_store._known_experiments.clear()  # its cache of existing experiments too
    return pg_session_store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_store(request: pytest.FixtureRequest) -> SqlStore:
    """Each back end in turn."""
    name = "sqlite_store" if request.param == "sqlite" else "pg_store"
    store: SqlStore = request.getfixturevalue(name)
    return store


ClientFactory = Callable[..., TestClient]


@pytest.fixture
def make_client(sqlite_store: SqlStore) -> Iterator[ClientFactory]:
    """``make_client(store=…, settings=…, token=…)``: a started app (lifespan run) and its client."""
    with ExitStack() as stack:

        def factory(
            store: Any = None,
            settings: ServerSettings | None = None,
            token: str | None = None,
            **overrides: Any,
        ) -> TestClient:
            app = create_app(settings or ServerSettings(**overrides), store or sqlite_store)
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return stack.enter_context(TestClient(app, headers=headers))

        yield factory


@pytest.fixture
def client(make_client: ClientFactory) -> TestClient:
    return make_client()


@pytest.fixture
def store_client(make_client: ClientFactory, any_store: SqlStore) -> TestClient:
    """A client on each back end (SQLite, PostgreSQL)."""
    return make_client(store=any_store)


# --- rows and OTLP messages ------------------------------------------------------------


def trace_id(n: int) -> str:
    return f"tr-{n:032x}"


def trace_row(n: int, experiment_id: str = "0", **fields: Any) -> dict[str, Any]:
    """A finished trace row as JSON (``TraceRow`` fields)."""
    row = TraceRow(
        trace_id=trace_id(n),
        experiment_id=experiment_id,
        request_time=T0 // 1_000_000 + n,
        state="OK",
        execution_duration=5,
        name=f"root-{n}",
        request_preview=f"question {n}",
        response_preview=f"answer {n}",
    )
    return {**dataclasses.asdict(row), **fields}


def span_row(n: int, span: int = 1, parent: int | None = None, **fields: Any) -> dict[str, Any]:
    """A span row as JSON (``SpanRow`` fields)."""
    row = SpanRow(
        trace_id=trace_id(n),
        span_id=f"{span:016x}",
        parent_id=None if parent is None else f"{parent:016x}",
        name=f"span-{span}",
        span_type="CHAIN",
        start_time_ns=T0 + n * 1_000_000 + span,
        end_time_ns=T0 + n * 1_000_000 + span + 5_000_000,
        status_code="OK",
        status_message="",
        inputs_json=json.dumps({"question": n}),
        outputs_json=json.dumps(f"answer {n}"),
        attributes_json="{}",
        events_json="[]",
    )
    return {**dataclasses.asdict(row), **fields}


def batch(*numbers: int, experiment_id: str = "0") -> dict[str, Any]:
    """Trace rows and root spans for the given trace numbers."""
    return {
        "traces": [trace_row(n, experiment_id) for n in numbers],
        "spans": [span_row(n) for n in numbers],
    }


def any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, list):
        out = AnyValue()
        out.array_value.values.extend(any_value(v) for v in value)
        return out
    return AnyValue(string_value=str(value))


def key_values(attributes: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in attributes.items()]


def otlp_request(
    spans: list[dict[str, Any]], resource: dict[str, Any] | None = None
) -> ExportTraceServiceRequest:
    """An ``ExportTraceServiceRequest`` with one resource; each span is a dict with
    ``trace`` (int), ``span`` (int), optional ``parent``, ``name``, ``attributes``,
    ``status`` (0/1/2), ``start``/``end`` (ns offsets from T0)."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(key_values(resource or {"service.name": "test"}))
    scope = resource_spans.scope_spans.add()
    for spec in spans:
        span = scope.spans.add()
        span.trace_id = spec["trace"].to_bytes(16, "big")
        span.span_id = spec["span"].to_bytes(8, "big")
        if spec.get("parent"):
            span.parent_span_id = spec["parent"].to_bytes(8, "big")
        span.name = spec.get("name", f"span-{spec['span']}")
        span.start_time_unix_nano = T0 + spec.get("start", 0)
        span.end_time_unix_nano = T0 + spec.get("end", 10_000_000)
        span.status.code = spec.get("status", 0)
        span.status.message = spec.get("message", "")
        span.attributes.extend(key_values(spec.get("attributes", {})))
    return request


def otlp_json(request: ExportTraceServiceRequest) -> bytes:
    """OTLP/JSON of a request (hex ids, as the OTLP spec wants)."""
    from google.protobuf import json_format

    document = json_format.MessageToDict(request)
    for resource in document.get("resourceSpans", []):
        for scope in resource.get("scopeSpans", []):
            for span in scope.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        import base64

                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(document).encode()


PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def count_spans(store: SqlStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(t.spans)).scalar() or 0)
