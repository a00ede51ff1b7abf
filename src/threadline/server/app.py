"""``create_app(settings, store)``: the tracking server as an ASGI application.

Layers, outermost first: ``AuthMiddleware`` (401 before any body is read), ``BodyTimeout``
(408 for a body that arrives too slowly), ``IngestBudget`` (503 for an ingest body that
does not fit in the bytes being decoded at once), ``BodyPolicy`` (size cap, gzip, JSON
content type), then FastAPI's routing with the error handlers of ``server/errors.py``.
The ingest writer task runs for the app's lifetime; shutdown drains its queue so accepted
spans are written before the process exits.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from threadline.server.api import api_router, health_router
from threadline.server.auth import AuthMiddleware
from threadline.server.config import ServerSettings
from threadline.server.errors import ApiJSONResponse, error_response, install_error_handlers
from threadline.server.ingest.budget import BUDGET_STATE_KEY, IngestBudget, OverBudget, Reservation
from threadline.server.ingest.decode_lane import DecodeLane
from threadline.server.ingest.routes import router as ingest_router
from threadline.server.ingest.writer import BatchWriter, WritePriority
from threadline.server.slow_clients import BodyTimeout
from threadline.server.ui_routes import ui_router
from threadline.store.base import Store
from threadline.store.offload import OffloadingStore
from threadline.store.sql import SqlStore

_GZIP = ("gzip", "x-gzip")
_JSON_METHODS = ("POST", "PUT", "PATCH")
_CHUNK = 64 * 1024


def create_app(settings: ServerSettings, store: Store) -> FastAPI:
    """The server: REST API under ``/api/v1``, OTLP at ``/v1/traces``, ``/health``, ``/ready``."""
    from threadline import __version__

    store = _with_artifacts(settings, store)
    writer = BatchWriter(
        store,
        max_queued_rows=settings.ingest_queue_rows,
        batch_rows=settings.ingest_batch_rows,
        retry_after=settings.retry_after_seconds,
    )

    decode_lane = DecodeLane()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        writer.start()
        try:
            yield
        finally:
            await writer.close(settings.shutdown_drain_seconds)
            decode_lane.close()

    app = FastAPI(
        title="threadline",
        version=__version__,
        description="Tracing for LLM applications: REST API and OpenTelemetry (OTLP) ingest.",
        lifespan=lifespan,
        default_response_class=ApiJSONResponse,
        docs_url=None,  # FastAPI's pages load scripts from a CDN: ours is ui_routes' /docs
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.writer = writer
    app.state.decode_lane = decode_lane
    app.state.write_priority = WritePriority()
    install_error_handlers(app)
    app.include_router(health_router)
    app.include_router(api_router())
    app.include_router(ingest_router)
    app.include_router(ui_router())
    app.add_middleware(BodyPolicy, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        IngestBudget,
        max_bytes=settings.ingest_max_inflight_bytes,
        max_body_bytes=settings.max_body_bytes,
        retry_after=settings.retry_after_seconds,
    )
    app.add_middleware(BodyTimeout, seconds=settings.body_timeout_seconds)
    app.add_middleware(AuthMiddleware, grants=settings.auth_tokens)  # added last: runs first
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def prioritize_writes(app: FastAPI) -> None:
    """Pause the app's decoding while its store holds SQLite's write lock (``WritePriority``).

    For a worker process that shares its SQLite database with other server processes
    (``--workers N``): they wait for that lock. A single process gains nothing from it and
    loses the overlap of decoding with SQLite's own work, so it is not the default.
    """
    store = app.state.store
    inner = store.inner if isinstance(store, OffloadingStore) else store
    if isinstance(inner, SqlStore) and inner.engine.dialect.name == "sqlite":
        inner.on_write_lock = app.state.write_priority.lock_held


def _with_artifacts(settings: ServerSettings, store: Store) -> Store:
    """``store``, keeping large span payloads at the artifacts destination if one is set."""
    if settings.artifacts_destination is None or isinstance(store, OffloadingStore):
        return store
    from threadline.artifacts import get_artifact_repository

    repository = get_artifact_repository(settings.artifacts_destination)
    return OffloadingStore(store, repository, threshold_bytes=settings.artifact_threshold_bytes)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with validation errors documented as our 400 (not 422)."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
        components = schema.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        app.openapi_schema = schema
    return app.openapi_schema


class BodyPolicy:
    """Request bodies: at most ``max_bytes`` (413), also once gunzipped (gzip bombs), only
    gzip or no encoding (415), and JSON for the REST API's writes (415). Routes then see
    the plain body."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        encoding = headers.get("content-encoding", "identity").strip().lower()
        declared = headers.get("content-length", "")
        problem: tuple[int, str] | None = None
        if encoding not in ("identity", "", *_GZIP):
            problem = (415, f"Content-Encoding {encoding!r} is not supported; use gzip or none.")
        elif declared.isdigit() and int(declared) > self.max_bytes:
            problem = (413, self._too_large())
        body = b""
        if problem is None:
            reservation = scope.get("state", {}).get(BUDGET_STATE_KEY)
            body, problem = await self._body(receive, encoding in _GZIP, reservation)
        if problem is None and body and not _json_ok(scope, headers):
            problem = (415, "The API takes JSON: send Content-Type: application/json.")
        if problem is not None:
            await error_response(problem[0], problem[1])(scope, receive, send)
            return
        plain = [
            (k, v) for k, v in scope["headers"] if k not in (b"content-encoding", b"content-length")
        ]
        plain.append((b"content-length", str(len(body)).encode()))
        await self.app({**scope, "headers": plain}, _replay(body, receive), send)

    async def _body(
        self, receive: Receive, gzipped: bool, reservation: Reservation | None
    ) -> tuple[bytes, tuple[int, str] | None]:
        chunks = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away
            chunks += message.get("body", b"")
            if len(chunks) > self.max_bytes:
                return b"", (413, self._too_large())
            if not message.get("more_body", False):
                break
        if not gzipped:
            return bytes(chunks), None
        return await asyncio.to_thread(self._gunzip, bytes(chunks), reservation)

    def _gunzip(
        self, data: bytes, reservation: Reservation | None
    ) -> tuple[bytes, tuple[int, str] | None]:
        """The decompressed body; its bytes count in the ingest budget (``OverBudget``)."""
        out = bytearray()
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
                while chunk := stream.read(_CHUNK):
                    out += chunk
                    if len(out) > self.max_bytes:
                        return b"", (413, self._too_large("decompressed"))
                    if reservation is not None and not reservation.take(len(chunk)):
                        raise OverBudget
        except (OSError, EOFError, zlib.error) as exc:
            return b"", (400, f"Content-Encoding is gzip but the body is not valid gzip: {exc}")
        return bytes(out), None

    def _too_large(self, what: str = "") -> str:
        size = f"{self.max_bytes / (1024 * 1024):g} MiB"
        return f"The {what + ' ' if what else ''}request body is larger than {size}."


def _json_ok(scope: Scope, headers: Headers) -> bool:
    if not scope["path"].startswith("/api/") or scope["method"] not in _JSON_METHODS:
        return True
    kind = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields the whole body once, then defers to the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
