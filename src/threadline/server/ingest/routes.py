"""``POST /v1/traces`` (OTLP/HTTP, protobuf or JSON), and ``accept_rows``: the way every
transport hands decoded rows to the ingest queue.

Success means committed: a request is answered 2xx only once the transaction holding all
its rows has committed (the writer commits many requests' rows together, and each request
waits for its own batch), so an acknowledged trace survives a killed server and is
readable at once on every worker. ``x-threadline-ack: queued`` opts one request into the
lossy fast path: answered once queued, lost if the server dies before writing it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from threadline.errors import InvalidArgumentError, StoreError
from threadline.server.api import ERRORS, PrincipalDep
from threadline.server.auth import Principal
from threadline.server.config import ServerSettings
from threadline.server.errors import ApiError
from threadline.server.ingest.decode import (
    JSON_TYPE,
    DecodedBatch,
    UnsupportedContentType,
    decode_request,
    media_type,
)
from threadline.server.ingest.payloads import check_payload_sizes, offload_payloads
from threadline.server.ingest.writer import BatchWriter, IngestUnavailableError, wait_written
from threadline.store.base import SpanRow, Store, TraceRow
from threadline.store.row_checks import TimeBounds

router = APIRouter(tags=["ingest"])

_OTLP_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": {"type": "object"}},
        },
    }
}
_OTLP_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "ExportTraceServiceResponse, in the encoding of the request",
        "content": {"application/x-protobuf": {}, "application/json": {}},
    },
    **ERRORS,
}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
COMMITTED, QUEUED = "committed", "queued"


@router.post(
    "/v1/traces",
    openapi_extra=_OTLP_BODY,
    responses=_OTLP_RESPONSE,
    response_class=Response,
    summary="OTLP/HTTP trace export",
)
async def export_traces(
    request: Request,
    who: PrincipalDep,
    x_threadline_experiment_id: Annotated[str | None, Header()] = None,
    x_threadline_ack: Annotated[str | None, Header()] = None,
    x_threadline_sync: Annotated[str | None, Header()] = None,
) -> Response:
    """Ingest OTLP spans into the experiment of the header, the resource attribute
    ``threadline.experiment_id``, or ``"0"``; answered once they are committed."""
    content_type = request.headers.get("content-type")
    try:
        kind = media_type(content_type)
    except UnsupportedContentType as exc:
        raise ApiError(415, str(exc)) from None
    wait = wait_for_commit(x_threadline_ack, x_threadline_sync)
    check_room(request)
    body = await request.body()
    pause = request.app.state.write_priority.wait_turn
    bounds = time_bounds(request.app.state.settings)
    batch = await request.app.state.decode_lane.run(
        decode_request, body, kind, x_threadline_experiment_id, pause, bounds
    )
    if batch.rejected_spans and not batch.spans:
        raise ApiError(400, f"Nothing of this request was stored. {batch.error_message}")
    await accept_rows(request, who, batch.traces, batch.spans, wait=wait)
    return _otlp_response(kind, batch)


def time_bounds(settings: ServerSettings) -> TimeBounds:
    """The times this server accepts now: from 2000 to ``max_future_seconds`` ahead."""
    return TimeBounds(int(time.time() * 1000), int(settings.max_future_seconds * 1000))


async def accept_rows(
    request: Request,
    who: Principal,
    traces: Sequence[TraceRow],
    spans: Sequence[SpanRow],
    *,
    wait: bool,
) -> bool:
    """Check write access, queue the rows; with ``wait``, return once they are written.

    Returns whether they were written. Raises ``ApiError``: 403, 413 (a span payload over
    the limit), 503 (queue full, shutting down, the artifact store failing, or the write
    still pending after the wait), or 400 if the store refused them.
    """
    if not who.write:
        raise ApiError(403, "This token is read-only.")
    if who.scoped:
        await run_in_threadpool(_check_trace_access, request.app.state.store, who, traces, spans)
    writer: BatchWriter = request.app.state.writer
    settings = request.app.state.settings
    check_payload_sizes(spans, settings.max_payload_bytes)
    spans = await offload_payloads(request.app.state.store, spans, traces)
    try:
        done = writer.submit(traces, spans, wait=wait)
    except IngestUnavailableError as exc:
        raise _unavailable(exc) from None
    if done is None:
        return False
    try:
        written = await wait_written(done, settings.sync_wait_seconds)
    except IngestUnavailableError as exc:
        raise _unavailable(exc) from None
    except InvalidArgumentError as exc:  # the store refused this request's data
        raise ApiError(400, f"The store refused the batch: {exc}") from None
    except StoreError as exc:  # failed again and again while the store answers
        raise ApiError(
            503,
            f"The store could not write the batch: {exc}",
            headers={"Retry-After": str(settings.retry_after_seconds)},
        ) from None
    if not written:
        raise ApiError(
            503,
            "The batch is queued but not yet committed (the store is slow or unavailable); "
            "sending it again is safe.",
            headers={"Retry-After": str(settings.retry_after_seconds)},
        )
    return True


def check_room(request: Request) -> None:
    """503 before any decoding when the ingest queue has no room for a request like the
    last one (``BatchWriter.check_room``)."""
    writer: BatchWriter = request.app.state.writer
    try:
        writer.check_room()
    except IngestUnavailableError as exc:
        raise _unavailable(exc) from None


def _unavailable(exc: IngestUnavailableError) -> ApiError:
    """The writer's refusal as a 503 saying when to retry."""
    return ApiError(503, str(exc), headers={"Retry-After": str(exc.retry_after)})


def wait_for_commit(ack: str | None, sync: str | None) -> bool:
    """Whether to answer only after the commit (the default) or once queued.

    ``x-threadline-ack: committed|queued`` chooses; ``x-threadline-sync: 1``, which older
    clients send, means ``committed``. Not waiting loses the rows if the server dies before
    writing them, so it must be asked for by that name: ``x-threadline-sync: 0`` is refused.
    """
    if ack is not None:
        text = ack.strip().lower()
        if text in (COMMITTED, QUEUED):
            return text == COMMITTED
        raise ApiError(
            400, f"Header x-threadline-ack must be 'committed' or 'queued', got {ack[:20]!r}."
        )
    if sync is None or sync.strip().lower() in _TRUE:
        return True
    if sync.strip().lower() in _FALSE:
        raise ApiError(
            400,
            "Header x-threadline-sync: 0 is no longer supported: answers come after the commit. "
            "To be answered before the write (lost if the server dies), send "
            "x-threadline-ack: queued.",
        )
    raise ApiError(400, f"Header x-threadline-sync must be 1, got {sync[:20]!r}.")


def _check_trace_access(
    store: Store, who: Principal, traces: Sequence[TraceRow], spans: Sequence[SpanRow]
) -> None:
    """A token limited to some experiments writes only there, also into traces that exist."""
    for row in traces:
        who.require_write(row.experiment_id)
    rowless = {s.trace_id for s in spans} - {t.trace_id for t in traces}
    for trace_id in sorted({t.trace_id for t in traces} | rowless):
        info = store.get_trace_info(trace_id)
        if info is not None and not who.can_write(info.experiment_id):
            raise ApiError(403, f"This token may not write to trace {trace_id!r}.")
        if info is None and trace_id in rowless:
            who.require_write("0")  # the store files spans of unknown traces under "0"


def _otlp_response(kind: str, batch: DecodedBatch) -> Response:
    from google.protobuf import json_format
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceResponse,
    )

    message = ExportTraceServiceResponse()
    if batch.rejected_spans:
        message.partial_success.rejected_spans = batch.rejected_spans
    if batch.error_message:  # rejected spans, and characters stored as U+FFFD
        message.partial_success.error_message = batch.error_message
    if kind == JSON_TYPE:
        return Response(json_format.MessageToJson(message, indent=None), media_type=JSON_TYPE)
    return Response(message.SerializeToString(), media_type="application/x-protobuf")
