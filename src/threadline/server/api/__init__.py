"""The REST API under ``/api/v1/``: one router per resource, plus ``/health`` and ``/ready``.

Routes that only touch the store are plain ``def`` functions: FastAPI runs them in its
thread pool, so a slow query never blocks the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import AfterValidator
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from threadline import _json as fast_json
from threadline.server.api.schemas import ErrorResponse, Status, storable_text
from threadline.server.auth import Principal, principal
from threadline.server.errors import ApiJSONResponse, SpanDataJSONResponse, error_response
from threadline.store._stored_span import NonFiniteValue
from threadline.store.base import Store

READY_TIMEOUT_SECONDS = 5.0

#: Error statuses every API route may answer, for the OpenAPI document.
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in (
        (400, "Invalid argument"),
        (401, "Missing or unknown bearer token"),
        (403, "The token lacks the right"),
        (404, "Not found"),
        (413, "Body too large"),
        (415, "Unsupported content type or encoding"),
        (503, "Store unavailable or ingest queue full"),
    )
}


async def store_of(request: Request) -> Store:
    """The app's store (a dependency; ``async`` so FastAPI runs it on the event loop
    instead of sending this attribute read to the thread pool)."""
    store: Store = request.app.state.store
    return store


StoreDep = Annotated[Store, Depends(store_of)]
PrincipalDep = Annotated[Principal, Depends(principal)]
PathId = Annotated[str, Path(min_length=1, max_length=256), AfterValidator(storable_text)]
QueryKey = Annotated[str, Query(min_length=1, max_length=250), AfterValidator(storable_text)]


def json_response(content: Any, status: int = 200) -> Response:
    """A JSON response (not validated against the response model again: lists can be big)."""
    return ApiJSONResponse(content, status_code=status)


def span_data_response(content: Any) -> Response:
    """Trace data read from the store (big: thousands of spans), rendered by orjson."""
    return SpanDataJSONResponse(content)


def stored_span_response(build: Callable[[bool], Any]) -> Response:
    """Trace data holding stored spans: ``build(verbatim)`` makes the content.

    With orjson, ``build(True)`` may splice the spans' stored payload texts in verbatim
    (``_stored_span.span_dict``), so they are never parsed; should orjson refuse that
    content, or be missing, or a span hold a non-finite number (``NonFiniteValue``),
    ``build(False)`` (plain values) renders as ``span_data_response`` would.
    """
    if not fast_json.HAVE_FRAGMENTS:
        return SpanDataJSONResponse(build(False))
    try:
        content = build(True)
    except NonFiniteValue:
        return SpanDataJSONResponse(build(False))
    return SpanDataJSONResponse(content, plain=lambda: build(False))


def page(key: str, items: list[dict[str, Any]], token: str | None) -> Response:
    return json_response({key: items, "next_page_token": token})


def api_router() -> APIRouter:
    """Every REST route, under ``/api/v1``."""
    from threadline.server.api import assessments, experiments, overview, runs, sessions, traces

    router = APIRouter(prefix="/api/v1", responses=ERRORS)
    router.include_router(experiments.router)
    router.include_router(overview.router)
    router.include_router(runs.router)
    router.include_router(traces.router)
    router.include_router(assessments.router)
    router.include_router(sessions.router)
    return router


health_router = APIRouter(tags=["health"])


@health_router.get("/health", response_model=Status)
async def health() -> Response:
    """Liveness: the process answers."""
    return json_response({"status": "ok"})


@health_router.get("/ready", response_model=Status, responses={503: {"model": ErrorResponse}})
async def ready(request: Request) -> Response:
    """Readiness: the store answers (its schema was upgraded when the server opened it)."""
    store: Store = request.app.state.store
    try:
        await asyncio.wait_for(
            run_in_threadpool(store.search_experiments, max_results=1), READY_TIMEOUT_SECONDS
        )
    except Exception as exc:  # not ready, whatever the reason
        return error_response(503, f"The store is not reachable: {exc}")
    return json_response({"status": "ready"})
