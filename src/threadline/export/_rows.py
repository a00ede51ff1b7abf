"""Turn finished live spans and trace states into store rows (runs on the export thread)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from threadline.entities.span import SpanAttributeKey, SpanStatusCode
from threadline.entities.trace import PREVIEW_CHARS, TraceMetadataKey, TraceState, truncate_preview
from threadline.pricing import cost_attribute
from threadline.store.base import SpanRow, TraceRow
from threadline.tracing._serialize import to_json
from threadline.tracing._span import LiveSpan
from threadline.tracing._span import TraceState as LiveTraceState


def span_row(span: LiveSpan, max_chars: int) -> SpanRow:
    """The serialised form of a finished span."""
    attributes = span._attributes
    usage = attributes.get(SpanAttributeKey.TOKEN_USAGE) if attributes else None
    tokens = _token_counts(usage)
    if attributes and usage is not None and (cost := cost_attribute(attributes)) is not None:
        attributes = {**attributes, SpanAttributeKey.COST: cost}  # the live span stays as it was
    pid = span._pid
    return SpanRow(
        trace_id=span._trace_state.trace_id,
        span_id="%016x" % span._sid,
        parent_id=None if pid is None else "%016x" % pid,
        name=span._name,
        span_type=span._span_type,
        start_time_ns=span._start_time_ns,
        end_time_ns=span._end_time_ns,
        status_code=span._status_code,
        status_message=span._status_message,
        inputs_json=to_json(span._inputs, max_chars),
        outputs_json=to_json(span._outputs, max_chars),
        attributes_json=to_json(attributes, max_chars) if attributes else "{}",
        events_json=(
            to_json([e.to_dict() for e in span._events], max_chars) if span._events else "[]"
        ),
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        total_tokens=tokens[2],
    )


def _token_counts(usage: Any) -> tuple[int | None, int | None, int | None]:
    if not isinstance(usage, dict):
        return None, None, None
    inp = _int_or_none(usage.get("input_tokens"))
    out = _int_or_none(usage.get("output_tokens"))
    total = _int_or_none(usage.get("total_tokens"))
    if total is None and (inp is not None or out is not None):
        total = (inp or 0) + (out or 0)
    return inp, out, total


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    return None


def started_trace_row(state: LiveTraceState) -> TraceRow:
    """The IN_PROGRESS row of a trace whose root is still open."""
    root = state.root
    return TraceRow(
        trace_id=state.trace_id,
        experiment_id=state.experiment_id,
        request_time=state.request_time_ms,
        state=TraceState.IN_PROGRESS.value,
        name=root._name if root is not None else None,
        request_preview=state.request_preview
        or (_preview(root._inputs) if root is not None else None),
        client_request_id=state.client_request_id,
        run_id=state.run_id,
        tags=dict(state.tags),
        metadata=_metadata(state),
    )


def finished_trace_row(root: LiveSpan, root_row: SpanRow | None = None) -> TraceRow:
    """The final row of a trace, built when its root span has ended (reusing the root's
    already-encoded JSON for the default previews when given)."""
    state = root._trace_state
    duration_ms = None
    if root._end_time_ns is not None:
        duration_ms = (root._end_time_ns - root._start_time_ns) // 1_000_000
    final = TraceState.ERROR if root._status_code == SpanStatusCode.ERROR else TraceState.OK
    return TraceRow(
        trace_id=state.trace_id,
        experiment_id=state.experiment_id,
        request_time=state.request_time_ms,
        state=final.value,
        execution_duration=duration_ms,
        name=root._name,
        request_preview=state.request_preview
        or _preview(root._inputs, root_row.inputs_json if root_row else None),
        response_preview=state.response_preview
        or _preview(root._outputs, root_row.outputs_json if root_row else None),
        client_request_id=state.client_request_id,
        run_id=state.run_id,
        tags=dict(state.tags),
        metadata=_metadata(state),
    )


def _metadata(state: LiveTraceState) -> dict[str, str]:
    metadata = dict(state.metadata)
    if state.run_id is not None:
        metadata[TraceMetadataKey.RUN_ID] = state.run_id
    return metadata


def _preview(value: Any, encoded: str | None = None) -> str | None:
    """A short text rendering: strings as they are, anything else as JSON, truncated."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value
    else:
        text = encoded if encoded is not None else to_json(value, 10 * PREVIEW_CHARS)
    return truncate_preview(text)


def rows_for_batch(items: Iterable[object], max_chars: int) -> tuple[list[TraceRow], list[SpanRow]]:
    """Rows for a batch of queue items (trace states just started, finished spans)."""
    spans: list[SpanRow] = []
    traces: dict[str, TraceRow] = {}
    for item in items:
        if isinstance(item, LiveSpan):
            row = span_row(item, max_chars)
            spans.append(row)
            state = item._trace_state
            if state.root is item:
                traces[state.trace_id] = finished_trace_row(item, row)
        elif isinstance(item, LiveTraceState) and item.trace_id not in traces:
            traces[item.trace_id] = started_trace_row(item)
    return list(traces.values()), spans
