"""Test helpers for threadline's own tests and for users' tests of traced code.

``capture_traces()`` sends traces to memory instead of the tracking store, synchronously,
and gives them back as ``Trace`` objects.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from threadline.entities.span import Span, SpanEvent, SpanStatus
from threadline.entities.trace import Trace, TraceData, TraceInfo, TraceState
from threadline.store.base import SpanRow, TraceRow
from threadline.tracing._runtime import get_pipeline


class CapturedTraces:
    """Rows written by the export pipeline, kept in memory and assembled into traces."""

    kind = "memory"

    def target(self) -> str:
        return ""

    def __init__(self) -> None:
        self.trace_rows: dict[str, TraceRow] = {}
        self.span_rows: dict[tuple[str, str], SpanRow] = {}
        self.batches = 0

    def write(self, traces: Sequence[TraceRow], spans: Sequence[SpanRow]) -> None:
        self.batches += 1
        for row in traces:
            old = self.trace_rows.get(row.trace_id)
            if (
                old is not None
                and old.state != TraceState.IN_PROGRESS.value
                and row.state == TraceState.IN_PROGRESS.value
            ):
                continue
            self.trace_rows[row.trace_id] = row
        for span in spans:
            self.span_rows[(span.trace_id, span.span_id)] = span

    @property
    def traces(self) -> list[Trace]:
        """Every captured trace, oldest first."""
        get_pipeline().flush()
        by_trace: dict[str, list[Span]] = {}
        for span_row in self.span_rows.values():
            by_trace.setdefault(span_row.trace_id, []).append(_span(span_row))
        result = []
        for row in sorted(self.trace_rows.values(), key=lambda r: r.request_time):
            spans = sorted(by_trace.get(row.trace_id, []), key=lambda s: s.start_time_ns)
            metadata = dict(row.metadata)
            info = TraceInfo(
                trace_id=row.trace_id,
                experiment_id=row.experiment_id,
                request_time=row.request_time,
                execution_duration=row.execution_duration,
                state=TraceState(row.state),
                request_preview=row.request_preview,
                response_preview=row.response_preview,
                client_request_id=row.client_request_id,
                tags=dict(row.tags),
                trace_metadata=metadata,
                name=row.name,
            )
            result.append(Trace(info, TraceData(spans)))
        return result

    def clear(self) -> None:
        self.trace_rows.clear()
        self.span_rows.clear()


def _span(row: SpanRow) -> Span:
    return Span(
        trace_id=row.trace_id,
        span_id=row.span_id,
        parent_id=row.parent_id,
        name=row.name,
        span_type=row.span_type,
        start_time_ns=row.start_time_ns,
        end_time_ns=row.end_time_ns,
        status=SpanStatus(row.status_code, row.status_message),
        inputs=json.loads(row.inputs_json),
        outputs=json.loads(row.outputs_json),
        attributes=json.loads(row.attributes_json),
        events=[SpanEvent.from_dict(e) for e in json.loads(row.events_json)],
    )


@contextmanager
def capture_traces() -> Iterator[CapturedTraces]:
    """Within the block, traces go to memory (the store is untouched)."""
    pipeline = get_pipeline()
    previous = pipeline._destination
    captured = CapturedTraces()
    pipeline.set_destination(captured)
    try:
        yield captured
    finally:
        pipeline.set_destination(previous)
