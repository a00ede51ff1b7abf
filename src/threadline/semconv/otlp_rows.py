"""One OTLP span as store rows: a span row, for a root also its trace row.

Spans exported by threadline itself (they carry ``threadline.span_type``) are mapped back
losslessly; other spans go through ``mapping.map_attributes`` (OpenInference, GenAI,
OpenLLMetry). Also the OTLP ``KeyValue`` → dict step. Pure functions, used by the server's
OTLP decoding (every transport).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from threadline.entities.keys import SpanAttributeKey
from threadline.entities.trace import truncate_preview
from threadline.pricing import cost_attribute
from threadline.semconv.json_text import (
    bounded_json,
    dumps,
    json_dict,
    json_value,
    stored_text,
)
from threadline.semconv.mapping import map_attributes, threadline_attributes, usage_counts
from threadline.semconv.vocabulary import METADATA_KEYS
from threadline.store.base import SpanRow, TraceRow

_SPAN_KEYS = (
    "threadline.span_type",
    "threadline.inputs",
    "threadline.outputs",
    "threadline.events",
)
_TRACE_KEYS = (
    "threadline.experiment_id",
    "threadline.trace.tags",
    "threadline.trace.metadata",
    "threadline.trace.request_preview",
    "threadline.trace.response_preview",
    "threadline.trace.client_request_id",
)
_SCALAR_KINDS = frozenset({"string_value", "int_value", "double_value", "bool_value"})


@dataclass(frozen=True)
class MappedSpan:
    """A span row; for a root span, its trace row; trace metadata the span revealed."""

    row: SpanRow
    trace: TraceRow | None = None
    metadata: dict[str, str] = field(default_factory=dict)


def attributes(pairs: Iterable[Any]) -> dict[str, Any]:
    """OTLP ``KeyValue``s as a dict (keys without a value are left out)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        value = pair.value
        kind = value.WhichOneof("value")
        if kind in _SCALAR_KINDS:  # the common case, inlined: this runs for every attribute
            out[pair.key] = getattr(value, kind)
        elif kind is not None:
            out[pair.key] = any_value(value)
    return out


def any_value(value: Any) -> Any:
    """An OTLP ``AnyValue`` as a JSON-able value (bytes as base64 text)."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        import base64

        return base64.b64encode(value.bytes_value).decode("ascii")
    return None if kind is None else getattr(value, kind)


def map_span(
    *,
    trace_id: str,
    span_id: str,
    parent_id: str | None,
    name: str,
    start_ns: int,
    end_ns: int | None,
    status_code: str,
    status_message: str,
    attributes: dict[str, Any],
    events: list[dict[str, Any]],
) -> MappedSpan:
    """The rows for one span (a trace row too when it is a root: no parent id)."""
    is_root = parent_id is None
    threadline_span = isinstance(attributes.get("threadline.span_type"), str)
    metadata: dict[str, str] = {}
    if threadline_span:
        own, trace_attrs = _split_threadline(attributes, is_root)
        span_type = attributes["threadline.span_type"]
        inputs = stored_text(attributes.get("threadline.inputs"))
        outputs = stored_text(attributes.get("threadline.outputs"))
        usage = own.get(SpanAttributeKey.TOKEN_USAGE)
        if isinstance(usage, str) and isinstance(parsed := json_value(usage), dict):
            own[SpanAttributeKey.TOKEN_USAGE] = usage = parsed
        counts = usage_counts(usage)
        _drop_derived(own, span_type, inputs, outputs, counts)
        recorded = attributes.get("threadline.events")
        events_json = stored_text(recorded) if isinstance(recorded, str) else dumps(events)
    else:
        mapped = map_attributes(attributes, events)
        own, trace_attrs = dict(attributes), {}
        span_type = mapped.span_type
        inputs = mapped.inputs.json_text() if mapped.inputs else "null"
        outputs = mapped.outputs.json_text() if mapped.outputs else "null"
        counts = mapped.counts
        for key, value in threadline_attributes(mapped).items():
            own.setdefault(key, value)
        events_json = bounded_json(dumps(events)) if events else "[]"
        metadata = mapped.metadata
    if counts[0] is not None or counts[1] is not None:
        _set_cost(own, compute=not threadline_span)
    row = SpanRow(
        trace_id=trace_id,
        span_id=span_id,
        parent_id=parent_id,
        name=name,
        span_type=span_type[:256],
        start_time_ns=start_ns,
        end_time_ns=end_ns,
        status_code=status_code,
        status_message=status_message,
        inputs_json=inputs,
        outputs_json=outputs,
        attributes_json=bounded_json(dumps(own)),
        events_json=events_json,
        input_tokens=counts[0],
        output_tokens=counts[1],
        total_tokens=counts[2],
    )
    trace = _root_row(row, trace_attrs) if is_root else None
    if trace is not None and metadata:
        trace = dataclasses.replace(trace, metadata={**metadata, **trace.metadata})
    return MappedSpan(row, trace, metadata)


def _split_threadline(
    attrs: dict[str, Any], is_root: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the span's own attributes, the trace-level ones a threadline root carries)."""
    trace_keys = _TRACE_KEYS if is_root else ()
    own = {k: v for k, v in attrs.items() if k not in _SPAN_KEYS and k not in trace_keys}
    trace = {k: attrs[k] for k in trace_keys if k in attrs}
    metadata = json_dict(trace.get("threadline.trace.metadata"))
    for key, meta in METADATA_KEYS:  # the exporter copies these from the metadata
        if key in own and str(own[key]) == metadata.get(meta):
            del own[key]
    return own, trace


def _drop_derived(
    own: dict[str, Any], span_type: str, inputs: str, outputs: str, counts: tuple[Any, ...]
) -> None:
    """Remove the convention keys the exporter derived (same key, same value)."""
    from threadline.export._otlp import otlp_span

    model = own.get(SpanAttributeKey.MODEL)
    probe = SpanRow(
        trace_id="",
        span_id="",
        parent_id=None,
        name="",
        span_type=span_type,
        start_time_ns=0,
        end_time_ns=0,
        status_code="UNSET",
        status_message="",
        inputs_json=inputs,
        outputs_json=outputs,
        attributes_json=dumps({SpanAttributeKey.MODEL: model} if model else {}),
        events_json="[]",
        input_tokens=counts[0],
        output_tokens=counts[1],
        total_tokens=counts[2],
    )
    for key, value in otlp_span(probe).attributes.items():
        if not key.startswith("threadline.") and own.get(key) == value:
            del own[key]


def _root_row(row: SpanRow, trace_attrs: dict[str, Any]) -> TraceRow:
    duration = None if row.end_time_ns is None else max(0, row.end_time_ns - row.start_time_ns)
    experiment = trace_attrs.get("threadline.experiment_id")
    request = trace_attrs.get("threadline.trace.request_preview")
    response = trace_attrs.get("threadline.trace.response_preview")
    client_request_id = trace_attrs.get("threadline.trace.client_request_id")
    return TraceRow(
        trace_id=row.trace_id,
        experiment_id=str(experiment) if isinstance(experiment, (str, int)) else "",
        request_time=row.start_time_ns // 1_000_000,
        state="ERROR" if row.status_code == "ERROR" else "OK",
        execution_duration=None if duration is None else duration // 1_000_000,
        name=row.name,
        request_preview=request if isinstance(request, str) else preview(row.inputs_json),
        response_preview=response if isinstance(response, str) else preview(row.outputs_json),
        client_request_id=client_request_id if isinstance(client_request_id, str) else None,
        tags=json_dict(trace_attrs.get("threadline.trace.tags")),
        metadata=json_dict(trace_attrs.get("threadline.trace.metadata")),
    )


def _set_cost(own: dict[str, Any], *, compute: bool) -> None:
    """The span's USD cost (``threadline.pricing``): kept (as an object, also when it came as
    JSON text), else computed from its model and tokens. Spans of a threadline SDK are not
    priced here: its exporter priced them already, with the user's own prices."""
    given = own.get(SpanAttributeKey.COST)
    if isinstance(given, str) and isinstance(parsed := json_value(given), dict):
        own[SpanAttributeKey.COST] = parsed
    elif compute and (cost := cost_attribute(own)) is not None:
        own[SpanAttributeKey.COST] = cost


def preview(json_text: str) -> str | None:
    """A request/response preview: a string payload as it is, else its JSON text, truncated."""
    if json_text == "null":
        return None
    value = json_value(json_text) if json_text.startswith('"') else None
    text = value if isinstance(value, str) else json_text
    return truncate_preview(text)
