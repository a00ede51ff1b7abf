"""OTLP/HTTP trace requests to threadline rows: the one pure decode step of every transport.

``decode_otlp(body, content_type, experiment_header)`` parses a protobuf or OTLP/JSON
``ExportTraceServiceRequest`` and returns ``(trace rows, span rows)``; ``decode_request``
also reports the spans it rejected (OTLP partial success). No I/O, no state.

Spans exported by threadline itself (they carry ``threadline.span_type``) are mapped back
exactly: type, inputs, outputs, events, token usage, and on the root the trace's
experiment, tags and metadata; the convention keys the exporter derived are dropped again.
Other spans are read through the OpenInference and OTel GenAI conventions
(``threadline.semconv``). Every trace in a request gets a trace row: final for a
root span (no parent id), ``IN_PROGRESS`` otherwise, so spans that arrive before their root
still land in the right experiment.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from threadline.entities.keys import TRACE_ID_PREFIX, TraceMetadataKey
from threadline.errors import InvalidArgumentError
from threadline.semconv import otlp_rows as conv
from threadline.store.base import SpanRow, TraceRow
from threadline.store.row_checks import TimeBounds, check_rows, unclean_count

PROTOBUF_TYPES = ("application/x-protobuf", "application/protobuf")
JSON_TYPE = "application/json"
EXPERIMENT_ATTRIBUTE = "threadline.experiment_id"
DEFAULT_EXPERIMENT = "0"
MAX_EXPERIMENT_ID_CHARS = 256
MAX_REJECTION_NOTES = 3
PAUSE_EVERY = 50  # spans between two calls of decode_request's ``pause``
INT64_MAX = 2**63 - 1
_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}


class OtlpDecodeError(InvalidArgumentError):
    """The body is not a valid OTLP trace request (answered 400)."""


class UnsupportedContentType(InvalidArgumentError):
    """The content type is neither OTLP protobuf nor OTLP/JSON (answered 415)."""


@dataclass
class DecodedBatch:
    """Rows decoded from one request, and what was rejected (OTLP partial success)."""

    traces: list[TraceRow] = field(default_factory=list)
    spans: list[SpanRow] = field(default_factory=list)
    rejected_spans: int = 0
    error_message: str = ""
    cleaned_rows: int = 0  # rows with NUL characters or lone surrogates, stored as U+FFFD


def decode_otlp(
    body: bytes, content_type: str, experiment_header: str | None
) -> tuple[list[TraceRow], list[SpanRow]]:
    """The trace and span rows of an OTLP/HTTP traces request (see ``decode_request``)."""
    batch = decode_request(body, content_type, experiment_header)
    return batch.traces, batch.spans


def decode_request(
    body: bytes,
    content_type: str,
    experiment_header: str | None,
    pause: Callable[[], None] | None = None,
    bounds: TimeBounds | None = None,
) -> DecodedBatch:
    """Decode a request; raises ``UnsupportedContentType`` or ``OtlpDecodeError``.

    The experiment of a span: the header, else its resource's ``threadline.experiment_id``,
    else its root span's, else ``"0"``. Spans with invalid ids, or times outside ``bounds``,
    are rejected and counted; the rest are kept. A value the store could not keep (an id or
    ``client_request_id`` too long for its column) refuses the whole request, naming it.
    ``pause`` is called every ``PAUSE_EVERY`` spans: the server's way to let its writer
    thread have the interpreter (``WritePriority``).
    """
    header = None if experiment_header is None else check_experiment_id(experiment_header)
    kind = media_type(content_type)
    request = _parse_json(body) if kind == JSON_TYPE else _parse_protobuf(body)
    builder = _Builder(bounds)
    for resource_spans in request.resource_spans:
        resource = conv.attributes(resource_spans.resource.attributes)
        experiment = header or _experiment_attribute(resource)
        for scope_spans in resource_spans.scope_spans:
            for n, span in enumerate(scope_spans.spans):
                if pause is not None and not n % PAUSE_EVERY:
                    pause()
                builder.add(span, experiment)
    return builder.finish()


def media_type(content_type: str | None) -> str:
    """``application/json`` or ``application/x-protobuf``, else ``UnsupportedContentType``."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind == JSON_TYPE:
        return JSON_TYPE
    if kind in PROTOBUF_TYPES:
        return PROTOBUF_TYPES[0]
    raise UnsupportedContentType(
        f"Content-Type {content_type or '(none)'!r} is not supported on /v1/traces: send OTLP "
        f"as application/x-protobuf or application/json."
    )


def check_experiment_id(value: str) -> str:
    """A usable experiment id from a header or attribute, else ``OtlpDecodeError``."""
    text = value.strip()
    if not text or len(text) > MAX_EXPERIMENT_ID_CHARS or not text.isprintable():
        raise OtlpDecodeError(
            f"Invalid experiment id {value[:80]!r}: expected 1 to {MAX_EXPERIMENT_ID_CHARS} "
            "printable characters (header x-threadline-experiment-id)."
        )
    return text


def _experiment_attribute(attributes: dict[str, Any]) -> str | None:
    value = attributes.get(EXPERIMENT_ATTRIBUTE)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    try:
        return check_experiment_id(value) if isinstance(value, str) else None
    except OtlpDecodeError:
        return None


# --- parsing ---------------------------------------------------------------------------


def _parse_protobuf(body: bytes) -> Any:
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    try:
        return ExportTraceServiceRequest.FromString(body)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise OtlpDecodeError(f"Malformed OTLP protobuf body: {exc}") from None


def _parse_json(body: bytes) -> Any:
    """OTLP/JSON: protobuf's JSON mapping, except that ids are hex instead of base64."""
    from google.protobuf import json_format
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    try:
        document = json.loads(body)
    except RecursionError:
        raise OtlpDecodeError("Malformed OTLP/JSON body: nested too deeply.") from None
    except ValueError as exc:  # includes invalid UTF-8
        raise OtlpDecodeError(f"Malformed OTLP/JSON body: {exc}") from None
    if not isinstance(document, dict):
        raise OtlpDecodeError("An OTLP/JSON body must be a JSON object with 'resourceSpans'.")
    _hex_ids_to_base64(document)
    try:
        return json_format.ParseDict(
            document, ExportTraceServiceRequest(), ignore_unknown_fields=True
        )
    except (json_format.ParseError, ValueError, TypeError, AttributeError, KeyError) as exc:
        raise OtlpDecodeError(f"Invalid OTLP/JSON body: {exc}") from None
    except RecursionError:
        raise OtlpDecodeError("Invalid OTLP/JSON body: nested too deeply.") from None


_ID_KEYS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def _hex_ids_to_base64(document: dict[str, Any]) -> None:
    for r, resource in enumerate(_items(document, "resourceSpans", "resource_spans")):
        for s, scope in enumerate(_items(resource, "scopeSpans", "scope_spans")):
            for n, span in enumerate(_items(scope, "spans")):
                where = f"resourceSpans[{r}].scopeSpans[{s}].spans[{n}]"
                _convert_ids(span, where)
                for k, link in enumerate(_items(span, "links")):
                    _convert_ids(link, f"{where}.links[{k}]")


def _items(parent: Any, *keys: str) -> list[Any]:
    if not isinstance(parent, dict):
        return []
    for key in keys:
        value = parent.get(key)
        if isinstance(value, list):
            return value
    return []


def _convert_ids(item: Any, where: str) -> None:
    if not isinstance(item, dict):
        return
    for key in _ID_KEYS:
        value = item.get(key)
        if value is None:
            continue
        try:
            raw = bytes.fromhex(value) if isinstance(value, str) else None
        except ValueError:
            raw = None
        if raw is None:
            raise OtlpDecodeError(f"{where}.{key} must be a hex string, got {str(value)[:40]!r}.")
        item[key] = base64.b64encode(raw).decode("ascii")


# --- spans to rows ---------------------------------------------------------------------


@dataclass
class _TraceFacts:
    experiment: str | None  # from the header or the resource; else the root span's
    first_start_ns: int
    root: TraceRow | None = None
    metadata: dict[str, str] = field(default_factory=dict)


class _Builder:
    """Collects span rows and what each trace's row needs, then builds the trace rows."""

    def __init__(self, bounds: TimeBounds | None) -> None:
        self.bounds = bounds
        self.spans: list[SpanRow] = []
        self.traces: dict[str, _TraceFacts] = {}
        self.trace_ids: dict[bytes, str] = {}
        self.rejected = 0
        self.notes: list[str] = []

    def add(self, span: Any, experiment: str | None) -> None:
        # Each protobuf field is read once: attribute access on upb messages is not free,
        # and this runs for every ingested span.
        trace_bytes, span_bytes, parent_bytes = span.trace_id, span.span_id, span.parent_span_id
        start_ns, end_ns = span.start_time_unix_nano, span.end_time_unix_nano
        problem = _invalid(span.name, trace_bytes, span_bytes, parent_bytes, max(start_ns, end_ns))
        if problem is None and self.bounds is not None:
            problem = _outside(span.name, start_ns, end_ns, self.bounds)
        if problem is not None:
            self.rejected += 1
            if len(self.notes) < MAX_REJECTION_NOTES:
                self.notes.append(problem)
            return
        trace_id = self.trace_ids.get(trace_bytes)
        if trace_id is None:  # one string per trace: a queued row holds no copy of its own
            trace_id = self.trace_ids[trace_bytes] = TRACE_ID_PREFIX + trace_bytes.hex()
        status = span.status
        events = span.events
        mapped = conv.map_span(
            trace_id=trace_id,
            span_id=span_bytes.hex(),
            parent_id=parent_bytes.hex() if parent_bytes else None,
            name=span.name,
            start_ns=start_ns,
            end_ns=end_ns or None,
            status_code=_STATUS.get(status.code, "UNSET"),
            status_message=status.message,
            attributes=conv.attributes(span.attributes),
            events=[
                {
                    "name": e.name,
                    "timestamp_ns": min(e.time_unix_nano, INT64_MAX),
                    "attributes": conv.attributes(e.attributes),
                }
                for e in events
            ]
            if events
            else [],
        )
        self.spans.append(mapped.row)
        facts = self.traces.get(trace_id)
        if facts is None:
            facts = self.traces[trace_id] = _TraceFacts(experiment, mapped.row.start_time_ns)
        facts.first_start_ns = min(facts.first_start_ns, mapped.row.start_time_ns)
        for key, value in mapped.metadata.items():
            facts.metadata.setdefault(key, value)
        if mapped.trace is not None:
            facts.root = mapped.trace
            if facts.experiment is None:
                facts.experiment = mapped.trace.experiment_id or None

    def finish(self) -> DecodedBatch:
        rows = [self._trace_row(trace_id, facts) for trace_id, facts in self.traces.items()]
        try:
            check_rows(rows, self.spans)
        except InvalidArgumentError as exc:
            raise OtlpDecodeError(f"Nothing of this request was stored: {exc}") from None
        notes = []
        if self.rejected:
            notes.append(f"Rejected {self.rejected} spans: " + "; ".join(self.notes))
        cleaned = unclean_count(rows, self.spans)
        if cleaned:
            notes.append(
                f"{cleaned} spans had NUL characters or unpaired surrogates in their names, "
                "messages, attributes or tags; they were stored as U+FFFD"
            )
        return DecodedBatch(rows, self.spans, self.rejected, ". ".join(notes), cleaned)

    @staticmethod
    def _trace_row(trace_id: str, facts: _TraceFacts) -> TraceRow:
        experiment = facts.experiment or DEFAULT_EXPERIMENT
        root = facts.root
        if root is None:
            return TraceRow(
                trace_id=trace_id,
                experiment_id=experiment,
                request_time=facts.first_start_ns // 1_000_000,
                state="IN_PROGRESS",
                metadata=dict(facts.metadata),
            )
        metadata = {**facts.metadata, **root.metadata}
        metadata.pop(TraceMetadataKey.TOKEN_USAGE, None)  # the store computes it from spans
        return dataclasses.replace(root, experiment_id=experiment, metadata=metadata)


_NO_TRACE_ID = bytes(16)
_NO_SPAN_ID = bytes(8)


def _invalid(
    name: str, trace_id: bytes, span_id: bytes, parent_id: bytes, last_ns: int
) -> str | None:
    """Why a span cannot be stored, or ``None``."""
    if len(trace_id) != 16 or trace_id == _NO_TRACE_ID:
        return f"span {name[:40]!r}: trace id must be 16 bytes, not all zero"
    if len(span_id) != 8 or span_id == _NO_SPAN_ID:
        return f"span {name[:40]!r}: span id must be 8 bytes, not all zero"
    if len(parent_id) not in (0, 8):
        return f"span {name[:40]!r}: parent span id must be empty or 8 bytes"
    if last_ns > INT64_MAX:
        return f"span {name[:40]!r}: time is past the year 2262"
    return None


def _outside(name: str, start_ns: int, end_ns: int, bounds: TimeBounds) -> str | None:
    """Why a span's times are refused (before 2000 or too far ahead of now), or ``None``."""
    if not bounds.accepts_ns(start_ns):
        return f"span {name[:40]!r}: start_time_unix_nano {start_ns} is outside the accepted range"
    if end_ns and not bounds.accepts_ns(end_ns):
        return f"span {name[:40]!r}: end_time_unix_nano {end_ns} is outside the accepted range"
    return None
