"""A finished OpenTelemetry span's data onto its threadline span, through ``threadline.semconv``.

The conventions give the span type, inputs, outputs, model, tokens and the conversation in
the chat format; the attributes they were read from as inputs or outputs are not kept a
second time. Everything else stays as an attribute, with ``otel.scope.name``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from threadline.entities.span import SpanEvent, SpanStatusCode
from threadline.semconv import map_attributes, threadline_attributes
from threadline.tracing._span import LiveSpan

SCOPE_KEY = "otel.scope.name"

# Instrumentation scope → what an integration adds for its library's own keys
# (``threadline.pydantic_ai`` registers one); called after the conventions are applied.
ScopeMapper = Callable[[LiveSpan, Mapping[str, Any]], None]
SCOPE_MAPPERS: dict[str, ScopeMapper] = {}


def plain(value: Any) -> Any:
    """OpenTelemetry attribute values (tuples for arrays) as JSON-able values."""
    return list(value) if isinstance(value, tuple) else value


def apply(live: LiveSpan, span: ReadableSpan) -> None:
    """Name, type, inputs, outputs, attributes, events and status of ``span`` onto ``live``."""
    attrs = {key: plain(value) for key, value in (span.attributes or {}).items()}
    events: list[dict[str, Any]] = [
        {
            "name": event.name,
            "timestamp_ns": event.timestamp,
            "attributes": {k: plain(v) for k, v in (event.attributes or {}).items()},
        }
        for event in span.events
    ]
    mapped = map_attributes(attrs, events)
    live._name = span.name
    if mapped.span_type != "UNKNOWN" or live._span_type == "UNKNOWN":
        live._span_type = mapped.span_type
    if live._inputs is None and mapped.inputs is not None:
        live._inputs = mapped.inputs.python_value()
    if live._outputs is None and mapped.outputs is not None:
        live._outputs = mapped.outputs.python_value()
    skip = mapped.payload_keys
    own = {key: value for key, value in attrs.items() if key not in skip}
    own.update(threadline_attributes(mapped))
    scope = span.instrumentation_scope
    if scope is not None and scope.name:
        own[SCOPE_KEY] = scope.name
    if live._attributes:
        own.update(live._attributes)  # what threadline code set on the span wins
    live._attributes = own
    if events:
        live.events.extend(SpanEvent(e["name"], e["timestamp_ns"], e["attributes"]) for e in events)
    status = span.status
    if status.status_code is StatusCode.ERROR:
        live._status_code = SpanStatusCode.ERROR
        live._status_message = status.description or live._status_message
    elif status.status_code is StatusCode.OK and live._status_code == SpanStatusCode.UNSET:
        live._status_code = SpanStatusCode.OK
    state = live._trace_state
    for key, value in mapped.metadata.items():
        state.metadata.setdefault(key, value)
    mapper = SCOPE_MAPPERS.get(scope.name) if scope is not None else None
    if mapper is not None:
        mapper(live, attrs)
