"""``/api/v1/traces``: log a batch of rows (the SDK's path), get, search, delete, tag.

A viewer of a large trace reads ``/traces/{id}/structure`` (the span tree without
payloads) and then ``/traces/{id}/spans/{span_id}`` for the span it opens.

``POST /traces/batch`` goes through the same queue and writer as OTLP ingest. It answers
200 once the rows are committed, so a client that flushes before it reads sees its
traces; ``x-threadline-ack: queued`` answers 202 as soon as they are queued (lossy: a
server killed before the write loses them).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from starlette.responses import Response

from threadline.entities.trace import Trace, TraceInfo
from threadline.errors import ResourceNotFoundError
from threadline.semconv.json_text import bounded_json
from threadline.server.api import (
    PathId,
    PrincipalDep,
    QueryKey,
    StoreDep,
    json_response,
    span_data_response,
    stored_span_response,
)
from threadline.server.api.schemas import (
    DeletedCount,
    DeleteTraces,
    Id,
    LogTraces,
    LogTracesResponse,
    OrderBy,
    SearchTraces,
    SetTag,
    SpanResponse,
    Text,
    TraceInfoResponse,
    TraceList,
    TraceResponse,
    TraceStructureResponse,
)
from threadline.server.auth import Principal
from threadline.server.ingest.routes import accept_rows, time_bounds, wait_for_commit
from threadline.store._stored_span import span_dict
from threadline.store.base import SpanRow, Store, TraceRow
from threadline.store.row_checks import TimeBounds, check_rows

router = APIRouter(prefix="/traces", tags=["traces"])


@router.post(
    "/batch", response_model=LogTracesResponse, responses={202: {"model": LogTracesResponse}}
)
async def log_traces(
    body: LogTraces,
    request: Request,
    who: PrincipalDep,
    x_threadline_ack: Annotated[str | None, Header()] = None,
    x_threadline_sync: Annotated[str | None, Header()] = None,
) -> Response:
    """Upsert trace rows then span rows (``store.log_batch`` semantics; idempotent),
    answered once they are committed."""
    wait = wait_for_commit(x_threadline_ack, x_threadline_sync)
    bounds = time_bounds(request.app.state.settings)
    traces, spans = await request.app.state.decode_lane.run(_rows, body, bounds)
    written = await accept_rows(request, who, traces, spans, wait=wait)
    content = {"traces": len(traces), "spans": len(spans), "written": written}
    return json_response(content, 200 if written else 202)


@router.post("/search", response_model=TraceList)
def search_traces(body: SearchTraces, store: StoreDep, who: PrincipalDep) -> Response:
    """Traces matching the filter language, one page at a time (newest first by default)."""
    return _search(store, who, body)


@router.get("", response_model=TraceList)
def list_traces(
    store: StoreDep,
    who: PrincipalDep,
    experiment_id: Annotated[list[Id] | None, Query(max_length=400)] = None,
    filter_string: Annotated[Text | None, Query(max_length=10_000)] = None,
    max_results: Annotated[int, Query(ge=1, le=50_000)] = 100,
    order_by: Annotated[OrderBy | None, Query()] = None,
    page_token: Annotated[Text | None, Query(max_length=1000)] = None,
    run_id: Annotated[Id | None, Query()] = None,
    include_spans: bool = False,
) -> Response:
    """``POST /traces/search`` as a GET (``experiment_id`` and ``order_by`` repeat)."""
    query = SearchTraces(
        experiment_ids=experiment_id,
        filter_string=filter_string,
        max_results=max_results,
        order_by=order_by,
        page_token=page_token,
        run_id=run_id,
        include_spans=include_spans,
    )
    return _search(store, who, query)


@router.post("/delete", response_model=DeletedCount)
def delete_traces(body: DeleteTraces, store: StoreDep, who: PrincipalDep) -> Response:
    """Delete an experiment's traces by age (oldest first, at most ``max_traces``) or by ids."""
    who.require_write(body.experiment_id)
    deleted = store.delete_traces(
        body.experiment_id,
        max_timestamp_millis=body.max_timestamp_millis,
        max_traces=body.max_traces,
        trace_ids=body.trace_ids,
    )
    return json_response({"deleted": deleted})


@router.get("/{trace_id}", response_model=TraceResponse)
def get_trace(trace_id: PathId, store: StoreDep, who: PrincipalDep) -> Response:
    """The trace with all its spans."""
    trace = store.get_trace(trace_id)
    if trace is None or not who.can_read(trace.info.experiment_id):
        raise _not_found(trace_id)
    found = trace  # bound for the closure (mypy: not None)
    return stored_span_response(lambda verbatim: {"trace": _trace_dict(found, True, verbatim)})


@router.get("/{trace_id}/structure", response_model=TraceStructureResponse)
def get_trace_structure(trace_id: PathId, store: StoreDep, who: PrincipalDep) -> Response:
    """The trace with its span tree but not the spans' payloads.

    Each span has its ids, name, type, times, status and a few small attributes (model,
    provider, token usage, cost); a viewer draws the tree and timeline from this and reads
    one span's inputs, outputs, attributes and events with ``GET …/spans/{span_id}``.
    """
    trace = store.get_trace_structure(trace_id)
    if trace is None or not who.can_read(trace.info.experiment_id):
        raise _not_found(trace_id)
    spans = [_summary(span.to_dict()) for span in trace.data.spans]
    return span_data_response({"trace": {"info": trace.info.to_dict(), "data": {"spans": spans}}})


@router.get("/{trace_id}/spans/{span_id}", response_model=SpanResponse)
def get_span(trace_id: PathId, span_id: PathId, store: StoreDep, who: PrincipalDep) -> Response:
    """One span of a trace with its inputs, outputs, attributes and events."""
    _visible_info(store, who, trace_id)
    span = store.get_span(trace_id, span_id)
    if span is None:
        raise ResourceNotFoundError(f"No span with id {span_id!r} in trace {trace_id!r}.")
    found = span  # bound for the closure (mypy: not None)
    return stored_span_response(lambda verbatim: {"span": span_dict(found, verbatim=verbatim)})


@router.get("/{trace_id}/info", response_model=TraceInfoResponse)
def get_trace_info(trace_id: PathId, store: StoreDep, who: PrincipalDep) -> Response:
    """The trace's summary, without spans."""
    return json_response({"trace_info": _visible_info(store, who, trace_id).to_dict()})


@router.post("/{trace_id}/tags", response_model=TraceInfoResponse)
def set_trace_tag(trace_id: PathId, body: SetTag, store: StoreDep, who: PrincipalDep) -> Response:
    who.require_write(_visible_info(store, who, trace_id).experiment_id)
    store.set_trace_tag(trace_id, body.key, body.value)
    return json_response({"trace_info": _visible_info(store, who, trace_id).to_dict()})


@router.delete("/{trace_id}/tags", response_model=TraceInfoResponse)
def delete_trace_tag(
    trace_id: PathId, key: QueryKey, store: StoreDep, who: PrincipalDep
) -> Response:
    who.require_write(_visible_info(store, who, trace_id).experiment_id)
    store.delete_trace_tag(trace_id, key)
    return json_response({"trace_info": _visible_info(store, who, trace_id).to_dict()})


def _search(store: Store, who: Principal, query: SearchTraces) -> Response:
    traces, token = store.search_traces(
        experiment_ids=who.readable_ids(query.experiment_ids),
        filter_string=query.filter_string,
        max_results=query.max_results,
        order_by=query.order_by,
        page_token=query.page_token,
        run_id=query.run_id,
        include_spans=query.include_spans,
    )
    if not query.include_spans:  # no stored payloads in the content
        items = [_trace_dict(t, False, False) for t in traces]
        return span_data_response({"traces": items, "next_page_token": token})
    return stored_span_response(
        lambda verbatim: {
            "traces": [_trace_dict(t, True, verbatim) for t in traces],
            "next_page_token": token,
        }
    )


def _trace_dict(trace: Trace, include_spans: bool, verbatim: bool) -> dict[str, Any]:
    """``trace.to_dict()``, its spans left out unless ``include_spans``; with ``verbatim``,
    stored spans as ``span_dict`` renders them for orjson."""
    spans = [span_dict(s, verbatim=verbatim) for s in trace.data.spans] if include_spans else []
    return {"info": trace.info.to_dict(), "data": {"spans": spans}}


def _summary(span: dict[str, Any]) -> dict[str, Any]:
    """A span's JSON without the payload fields (``SpanSummaryOut``)."""
    for key in _PAYLOAD_FIELDS:
        span.pop(key, None)
    return span


_PAYLOAD_FIELDS = ("inputs", "outputs", "events")


def _visible_info(store: Store, who: Principal, trace_id: str) -> TraceInfo:
    info = store.get_trace_info(trace_id)
    if info is None or not who.can_read(info.experiment_id):
        raise _not_found(trace_id)
    return info


def _not_found(trace_id: str) -> ResourceNotFoundError:
    return ResourceNotFoundError(f"No trace with id {trace_id!r}.")


def _rows(body: LogTraces, bounds: TimeBounds) -> tuple[list[TraceRow], list[SpanRow]]:
    """Store rows from the request; payloads nested too deeply are kept as text. A value the
    store could not keep (or a time outside ``bounds``) refuses the request (400)."""
    traces = [TraceRow(**row.model_dump()) for row in body.traces]
    spans = [
        SpanRow(
            **{
                **row.model_dump(),
                "inputs_json": bounded_json(row.inputs_json),
                "outputs_json": bounded_json(row.outputs_json),
                "attributes_json": bounded_json(row.attributes_json),
                "events_json": bounded_json(row.events_json),
            }
        )
        for row in body.spans
    ]
    check_rows(traces, spans, bounds)
    return traces, spans
