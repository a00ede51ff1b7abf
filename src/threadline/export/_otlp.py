"""OTLP/HTTP export: span rows → an OpenTelemetry collector, as protobuf or OTLP/JSON.

Rows are mapped once into plain values (``ResourceGroup`` / ``OtlpSpan``), then encoded.
Protobuf uses the ``opentelemetry-proto`` package (the ``[otel]`` extra), imported only
inside functions; OTLP/JSON is written by hand, so ``http/json`` needs no extra package.
Attributes carry threadline's own keys plus the OpenInference and OTel GenAI semantic
conventions, so tools that read either understand the spans. The HTTP client is the
standard library, to keep the SDK light.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import math
import threading
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, TypeAlias
from urllib.parse import urlsplit

from threadline import settings
from threadline.entities.keys import TRACE_ID_PREFIX, SpanAttributeKey, TraceMetadataKey
from threadline.errors import InvalidArgumentError, ThreadlineError
from threadline.store._call_deadline import timeout_for
from threadline.store.base import SpanRow, TraceRow

PROTOBUF = "http/protobuf"
JSON = "http/json"
TIMEOUT_S = 10.0
SCOPE_NAME = "threadline"
JSON_MIME = "application/json"

_INSTALL_HINT = "pip install 'threadline[otel]'"
_ERROR_BODY_CHARS = 500
# As the OTLP/HTTP spec lists them, plus answers that a configuration fix (a token, the
# endpoint's URL) turns into a success: the spans are kept rather than dropped.
_RETRYABLE_STATUSES = frozenset(
    {408, 429, 500, 502, 503, 504, 401, 403, 404, 301, 302, 303, 307, 308}
)
_RETRY_AFTER_STATUSES = frozenset({429, 503})
_EXPERIMENT_CACHE_SIZE = 10_000  # traces whose experiment is remembered across batches
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

_SPAN_KIND_INTERNAL = 1
_STATUS_CODES = {"UNSET": 0, "OK": 1, "ERROR": 2}
_OPENINFERENCE_KINDS = {
    "LLM": "LLM",
    "CHAT_MODEL": "LLM",
    "TOOL": "TOOL",
    "RETRIEVER": "RETRIEVER",
    "EMBEDDING": "EMBEDDING",
    "RERANKER": "RERANKER",
    "AGENT": "AGENT",
    "CHAIN": "CHAIN",
}
_GENAI_OPERATIONS = {"CHAT_MODEL": "chat", "EMBEDDING": "embeddings", "LLM": "text_completion"}

Scalar: TypeAlias = "str | bool | int | float"
AttributeValue: TypeAlias = "Scalar | list[Scalar]"
Attributes: TypeAlias = "dict[str, AttributeValue]"


class OtlpExportError(ThreadlineError):
    """An OTLP export failed.

    ``status`` is the HTTP status (``None`` when the collector was not reached),
    ``retry_after`` the delay in seconds the collector asked for (429/503 with
    ``Retry-After``), and ``retryable`` whether sending the same batch again may work.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        retryable: bool = True,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.retryable = retryable


# --- the model: rows mapped to OTLP, independent of the encoding -----------------------


@dataclass(frozen=True)
class OtlpEvent:
    name: str
    time_ns: int
    attributes: Attributes


@dataclass(frozen=True)
class OtlpSpan:
    trace_id: bytes  # 16 bytes
    span_id: bytes  # 8 bytes
    parent_span_id: bytes  # 8 bytes, empty on a root span
    name: str
    start_ns: int
    end_ns: int
    status_code: int  # OTLP enum: UNSET 0, OK 1, ERROR 2
    status_message: str
    attributes: Attributes
    events: list[OtlpEvent]


@dataclass(frozen=True)
class ResourceGroup:
    """The spans sent under one resource (one per experiment in a batch)."""

    attributes: Attributes
    spans: list[OtlpSpan]


def resource_groups(
    traces: Sequence[TraceRow],
    spans: Sequence[SpanRow],
    *,
    service_name: str = "threadline",
    experiment_ids: Mapping[str, str] | None = None,
) -> list[ResourceGroup]:
    """The batch as OTLP resources: spans grouped by the experiment of their trace.

    The experiment comes from the batch's trace rows, else from ``experiment_ids``; spans
    of a trace whose experiment is unknown go under a resource without one.
    """
    by_trace = {row.trace_id: row for row in traces}
    known = dict(experiment_ids or {})
    known.update((row.trace_id, row.experiment_id) for row in traces)
    groups: dict[str | None, list[OtlpSpan]] = {}
    for row in spans:
        root_trace = by_trace.get(row.trace_id) if row.parent_id is None else None
        groups.setdefault(known.get(row.trace_id), []).append(otlp_span(row, root_trace))
    return [
        ResourceGroup(_resource_attributes(service_name, experiment_id), group)
        for experiment_id, group in groups.items()
    ]


def otlp_span(row: SpanRow, trace: TraceRow | None = None) -> OtlpSpan:
    """One span row in OTLP terms; ``trace`` (for a root span) adds trace-level attributes."""
    attributes = _span_attributes(row)
    if trace is not None:
        attributes.update(_trace_attributes(trace))
    raw_events = _loads(row.events_json)
    if not isinstance(raw_events, list):  # a truncation marker: keep the text
        attributes["threadline.events"] = row.events_json
        raw_events = []
    trace_hex = row.trace_id
    if trace_hex.startswith(TRACE_ID_PREFIX):
        trace_hex = trace_hex[len(TRACE_ID_PREFIX) :]
    return OtlpSpan(
        trace_id=_id_bytes(trace_hex, 16),
        span_id=_id_bytes(row.span_id, 8),
        parent_span_id=b"" if row.parent_id is None else _id_bytes(row.parent_id, 8),
        name=row.name,
        start_ns=row.start_time_ns,
        end_ns=row.start_time_ns if row.end_time_ns is None else row.end_time_ns,
        status_code=_STATUS_CODES.get(row.status_code, 0),
        status_message=row.status_message,
        attributes=attributes,
        events=[_event(e, row.start_time_ns) for e in raw_events if isinstance(e, dict)],
    )


def attribute_value(value: Any) -> AttributeValue | None:
    """Scalars stay typed, lists of scalars become arrays, anything else JSON text.

    ``None`` (no value) gives ``None``: OpenTelemetry has no null attribute.
    """
    if value is None:
        return None
    if isinstance(value, (str, bool, int, float)):
        return _scalar(value)
    if isinstance(value, list) and all(isinstance(v, (str, bool, int, float)) for v in value):
        return [_scalar(v) for v in value]
    return _dumps(value)


def _scalar(value: Scalar) -> Scalar:
    if isinstance(value, int) and not _INT64_MIN <= value <= _INT64_MAX:
        return str(value)  # OTLP ints are 64-bit
    return value


def _id_bytes(text: str, size: int) -> bytes:
    """The id as ``size`` bytes; text that is not ``2*size`` hex digits is hashed stably."""
    if len(text) == 2 * size:
        try:
            value = bytes.fromhex(text)
        except ValueError:
            value = b""
        if len(value) == size:  # fromhex skips spaces
            return value
    return hashlib.sha256(text.encode("utf-8", "replace")).digest()[:size]


def _event(data: dict[str, Any], default_time_ns: int) -> OtlpEvent:
    time_ns = data.get("timestamp_ns")
    raw = data.get("attributes")
    return OtlpEvent(
        name=str(data.get("name", "")),
        time_ns=time_ns if isinstance(time_ns, int) and time_ns >= 0 else default_time_ns,
        attributes=_converted(raw) if isinstance(raw, dict) else {},
    )


def _span_attributes(row: SpanRow) -> Attributes:
    """Semantic-convention keys, then the span's own attributes, then threadline's keys.

    The span's own attributes win over derived conventions (code that set ``input.value``
    itself knows best); the ``threadline.*`` keys taken from the row always win.
    """
    own = _loads(row.attributes_json)
    own = own if isinstance(own, dict) else {}
    attributes = _semantic_attributes(row, own)
    attributes.update(_converted(own))
    attributes["threadline.span_type"] = row.span_type
    attributes["threadline.inputs"] = row.inputs_json
    attributes["threadline.outputs"] = row.outputs_json
    return attributes


def _semantic_attributes(row: SpanRow, own: dict[str, Any]) -> Attributes:
    """OpenInference and OTel GenAI keys derived from the row."""
    attributes: Attributes = {
        "openinference.span.kind": _OPENINFERENCE_KINDS.get(row.span_type, "UNKNOWN")
    }
    for prefix, text in (("input", row.inputs_json), ("output", row.outputs_json)):
        if text != "null":
            attributes[f"{prefix}.value"] = text
            attributes[f"{prefix}.mime_type"] = JSON_MIME
    operation = _GENAI_OPERATIONS.get(row.span_type)
    if operation is not None:
        attributes["gen_ai.operation.name"] = operation
    model = own.get(SpanAttributeKey.MODEL)
    if isinstance(model, str) and model:
        attributes["gen_ai.request.model"] = model
        attributes["llm.model_name"] = model
    for keys, count in (
        (("gen_ai.usage.input_tokens", "llm.token_count.prompt"), row.input_tokens),
        (("gen_ai.usage.output_tokens", "llm.token_count.completion"), row.output_tokens),
        (("llm.token_count.total",), row.total_tokens),
    ):
        if count is not None:
            attributes.update(dict.fromkeys(keys, count))
    return attributes


def _trace_attributes(trace: TraceRow) -> Attributes:
    """Trace-level data carried by the root span."""
    attributes: Attributes = {
        "threadline.experiment_id": trace.experiment_id,
        "threadline.trace.tags": _dumps(trace.tags),
        "threadline.trace.metadata": _dumps(trace.metadata),
    }
    for key, value in (
        ("threadline.trace.request_preview", trace.request_preview),
        ("threadline.trace.response_preview", trace.response_preview),
        ("threadline.trace.client_request_id", trace.client_request_id),
    ):
        if value is not None:
            attributes[key] = value
    for key, otel_key in (
        (TraceMetadataKey.SESSION_ID, "session.id"),
        (TraceMetadataKey.USER, "user.id"),
    ):
        value = trace.metadata.get(key)
        if value:
            attributes[otel_key] = str(value)
    return attributes


def _resource_attributes(service_name: str, experiment_id: str | None) -> Attributes:
    from threadline import __version__

    attributes: Attributes = {
        "service.name": service_name,
        "telemetry.sdk.name": "threadline",
        "telemetry.sdk.language": "python",
        "telemetry.sdk.version": __version__,
    }
    if experiment_id is not None:
        attributes["threadline.experiment_id"] = experiment_id
    return attributes


def _converted(raw: dict[Any, Any]) -> Attributes:
    attributes: Attributes = {}
    for key, value in raw.items():
        converted = attribute_value(value)
        if converted is not None:
            attributes[str(key)] = converted
    return attributes


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=repr)


# --- encodings -------------------------------------------------------------------------


def encode_json(groups: Sequence[ResourceGroup]) -> bytes:
    """OTLP/JSON: camelCase names, ids as hex, enums as ints, 64-bit ints as strings."""
    from threadline import __version__

    scope = {"name": SCOPE_NAME, "version": __version__}
    document = {
        "resourceSpans": [
            {
                "resource": {"attributes": _json_attributes(group.attributes)},
                "scopeSpans": [{"scope": scope, "spans": [_json_span(s) for s in group.spans]}],
            }
            for group in groups
        ]
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", "replace"
    )


def _json_span(span: OtlpSpan) -> dict[str, Any]:
    out: dict[str, Any] = {"traceId": span.trace_id.hex(), "spanId": span.span_id.hex()}
    if span.parent_span_id:
        out["parentSpanId"] = span.parent_span_id.hex()
    status: dict[str, Any] = {"code": span.status_code}
    if span.status_message:
        status["message"] = span.status_message
    out.update(
        name=span.name,
        kind=_SPAN_KIND_INTERNAL,
        startTimeUnixNano=str(span.start_ns),
        endTimeUnixNano=str(span.end_ns),
        attributes=_json_attributes(span.attributes),
        events=[
            {
                "timeUnixNano": str(e.time_ns),
                "name": e.name,
                "attributes": _json_attributes(e.attributes),
            }
            for e in span.events
        ],
        status=status,
    )
    return out


def _json_attributes(attributes: Attributes) -> list[dict[str, Any]]:
    return [{"key": key, "value": _json_value(value)} for key, value in attributes.items()]


def _json_value(value: AttributeValue) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        if math.isfinite(value):
            return {"doubleValue": value}
        return {
            "doubleValue": "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
        }
    if isinstance(value, str):
        return {"stringValue": value}
    return {"arrayValue": {"values": [_json_value(v) for v in value]}}


def encode_protobuf(groups: Sequence[ResourceGroup]) -> bytes:
    """An ``ExportTraceServiceRequest``, serialised (needs ``opentelemetry-proto``)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from threadline import __version__

    request = ExportTraceServiceRequest()
    for group in groups:
        resource_spans = request.resource_spans.add()
        _pb_attributes(resource_spans.resource.attributes, group.attributes)
        scope_spans = resource_spans.scope_spans.add()
        scope_spans.scope.name = SCOPE_NAME
        scope_spans.scope.version = __version__
        for span in group.spans:
            _pb_span(scope_spans.spans.add(), span)
    return request.SerializeToString()


def _pb_span(target: Any, span: OtlpSpan) -> None:
    target.trace_id = span.trace_id
    target.span_id = span.span_id
    target.parent_span_id = span.parent_span_id
    target.name = span.name
    target.kind = _SPAN_KIND_INTERNAL
    target.start_time_unix_nano = span.start_ns
    target.end_time_unix_nano = span.end_ns
    _pb_attributes(target.attributes, span.attributes)
    for event in span.events:
        pb_event = target.events.add(name=event.name, time_unix_nano=event.time_ns)
        _pb_attributes(pb_event.attributes, event.attributes)
    target.status.code = span.status_code
    target.status.message = span.status_message


def _pb_attributes(target: Any, attributes: Attributes) -> None:
    for key, value in attributes.items():
        _pb_value(target.add(key=key).value, value)


def _pb_value(target: Any, value: AttributeValue) -> None:
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, str):
        target.string_value = value
    else:
        array = target.array_value
        array.SetInParent()  # an empty list is still an array
        for item in value:
            _pb_value(array.values.add(), item)


def require_protobuf() -> None:
    """Raise ``InvalidArgumentError`` with the install command if protobuf export cannot work."""
    try:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (  # noqa: F401
            ExportTraceServiceRequest,
        )
    except ImportError as exc:
        raise InvalidArgumentError(
            f"OTLP export as http/protobuf needs the opentelemetry-proto package: run "
            f"{_INSTALL_HINT}, or set {settings.OTEL_TRACES_PROTOCOL.name}=http/json."
        ) from exc


# --- the destination -------------------------------------------------------------------


class OtlpDestination:
    """Sends span rows to an OTLP/HTTP traces endpoint; raises ``OtlpExportError`` on failure.

    Trace rows are not sent themselves: they give root spans their trace-level attributes
    and resources their experiment (remembered for spans that arrive in later batches).
    """

    kind = "otlp"

    def __init__(
        self,
        endpoint: str,
        *,
        protocol: str = PROTOBUF,
        headers: Mapping[str, str] | None = None,
        service_name: str = "threadline",
        timeout: float = TIMEOUT_S,
    ) -> None:
        if protocol not in (PROTOBUF, JSON):
            raise InvalidArgumentError(
                f"OTLP protocol {protocol!r} is not supported: use {PROTOBUF!r} or {JSON!r}."
            )
        if protocol == PROTOBUF:
            require_protobuf()
        self.endpoint = endpoint
        self.protocol = protocol
        self.headers = dict(headers or {})
        self.service_name = service_name
        self.timeout = timeout
        self._shown_url = _without_credentials(endpoint)
        self._experiments: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()
        self._opener = urllib.request.build_opener(_NoRedirect)

    def target(self) -> str:
        """The endpoint URL (recorded with spooled batches; headers are not)."""
        return self.endpoint

    def write(self, traces: Sequence[TraceRow], spans: Sequence[SpanRow]) -> None:
        """Encode the batch and POST it; a batch without spans sends nothing."""
        experiment_ids = self._remember_experiments(traces, spans)
        if not spans:
            return
        groups = resource_groups(
            traces, spans, service_name=self.service_name, experiment_ids=experiment_ids
        )
        if self.protocol == PROTOBUF:
            body = gzip.compress(encode_protobuf(groups), compresslevel=6)
            content = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
        else:
            body = encode_json(groups)
            content = {"Content-Type": JSON_MIME}
        self._post(body, content)

    def _remember_experiments(
        self, traces: Sequence[TraceRow], spans: Sequence[SpanRow]
    ) -> dict[str, str]:
        with self._lock:
            cache = self._experiments
            for row in traces:
                cache[row.trace_id] = row.experiment_id
                cache.move_to_end(row.trace_id)
            while len(cache) > _EXPERIMENT_CACHE_SIZE:
                cache.popitem(last=False)
            return {s.trace_id: cache[s.trace_id] for s in spans if s.trace_id in cache}

    def _post(self, body: bytes, content_headers: dict[str, str]) -> None:
        from threadline import __version__

        request = urllib.request.Request(self.endpoint, data=body, method="POST")
        request.add_header("User-Agent", f"threadline/{__version__}")
        for key, value in (*self.headers.items(), *content_headers.items()):
            request.add_header(key, value)  # later wins: the content headers are ours
        try:
            timeout = timeout_for(self.timeout)  # shorter on a traced call's thread
            with self._opener.open(request, timeout=timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            raise _status_error(self._shown_url, exc) from None
        except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, resets
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise OtlpExportError(
                f"OTLP export to {self._shown_url} failed: the collector could not be "
                f"reached ({type(reason).__name__}: {reason})."
            ) from exc


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are errors: urllib would resend the POST as a GET without its body."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        return None


def _status_error(url: str, exc: urllib.error.HTTPError) -> OtlpExportError:
    try:
        body = exc.read(4 * _ERROR_BODY_CHARS)
    except (OSError, http.client.HTTPException):
        body = b""
    finally:
        exc.close()
    text = body.decode("utf-8", "replace")[:_ERROR_BODY_CHARS]
    status = exc.code
    retry_after = None
    if status in _RETRY_AFTER_STATUSES and exc.headers is not None:
        retry_after = parse_retry_after(exc.headers.get("Retry-After"))
    message = f"OTLP export to {url} failed: HTTP {status} {exc.reason}: {text!r}"
    if retry_after is not None:
        message += f" (retry after {retry_after:g} s)"
    return OtlpExportError(
        message,
        status=status,
        retry_after=retry_after,
        retryable=status in _RETRYABLE_STATUSES,
    )


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), or ``None``."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        return _seconds_until(value)
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _seconds_until(http_date: str) -> float | None:
    from datetime import datetime, timezone
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(http_date)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _without_credentials(url: str) -> str:
    """The URL as shown in messages: no user:password, no query string."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


# --- settings --------------------------------------------------------------------------


def otlp_destination_from_settings() -> OtlpDestination | None:
    """The OTLP destination the ``OTEL_EXPORTER_OTLP_*`` settings describe, or ``None``.

    Raises ``InvalidArgumentError`` for a bad endpoint, or when the protocol is
    http/protobuf and ``opentelemetry-proto`` is not installed.
    """
    endpoint = _endpoint_from_settings()
    if endpoint is None:
        return None
    return otlp_destination_for_target(endpoint)


def otlp_destination_for_target(endpoint: str) -> OtlpDestination:
    """A destination for ``endpoint`` with the protocol, headers and service name of the
    current settings (replays spooled batches: the spool records no header secrets)."""
    return OtlpDestination(
        endpoint,
        protocol=settings.OTEL_TRACES_PROTOCOL.get() or settings.OTEL_PROTOCOL.get(),
        headers=merge_headers(settings.OTEL_HEADERS.get(), settings.OTEL_TRACES_HEADERS.get()),
        service_name=settings.OTEL_SERVICE_NAME.get(),
    )


def _endpoint_from_settings() -> str | None:
    """The traces endpoint as given, else the base endpoint + ``/v1/traces``."""
    full = settings.OTEL_TRACES_ENDPOINT.get()
    if full is not None:
        return _checked_url(full, settings.OTEL_TRACES_ENDPOINT.name)
    base = settings.OTEL_ENDPOINT.get()
    if base is None:
        return None
    _checked_url(base, settings.OTEL_ENDPOINT.name)
    return base.rstrip("/") + "/v1/traces"


def _checked_url(url: str, variable: str) -> str:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgumentError(
            f"Environment variable {variable}={url!r} is invalid: expected an http:// or "
            f"https:// URL of an OTLP/HTTP collector (gRPC is not supported)."
        )
    return url


def merge_headers(general: Mapping[str, str], specific: Mapping[str, str]) -> dict[str, str]:
    """Both sets of headers; on a name in both (any case), ``specific`` wins."""
    merged: dict[str, tuple[str, str]] = {}
    for source in (general, specific):
        for key, value in source.items():
            merged[key.lower()] = (key, value)
    return dict(merged.values())
