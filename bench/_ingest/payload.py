"""OTLP/HTTP protobuf batches of traces with 10 spans each, encoded once and re-keyed.

A batch is encoded once with ``opentelemetry-proto``; every trace id in it starts with the
same random 8-byte marker and every span id with a random 4-byte one, so a batch with
unique trace and span ids is two ``bytes.replace`` (no protobuf work in the timed loop).
Span ids are unique across batches too: Phoenix keys spans by span id alone.
"""

from __future__ import annotations

import json
import os
import time

SPANS_PER_TRACE = 10
MARKER = os.urandom(8)
SPAN_MARKER = os.urandom(4)


def encode_batch(traces: int, service: str = "bench-ingest") -> bytes:
    """An ``ExportTraceServiceRequest`` of ``traces`` traces x 10 spans, as bytes.

    Each trace is a root span ``agent`` with nine children ``step`` (OpenInference-style
    ``input.value``/``output.value`` JSON attributes plus two plain ones), all OK.
    """
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

    def kv(key: str, value: str | int) -> KeyValue:
        if isinstance(value, int):
            return KeyValue(key=key, value=AnyValue(int_value=value))
        return KeyValue(key=key, value=AnyValue(string_value=value))

    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(kv("service.name", service))
    scope = resource_spans.scope_spans.add()
    scope.scope.name = "bench"
    start = time.time_ns()
    for t in range(traces):
        trace_id = MARKER + t.to_bytes(8, "big")
        root_id = SPAN_MARKER + (t * SPANS_PER_TRACE + 1).to_bytes(4, "big")
        for s in range(SPANS_PER_TRACE):
            span = scope.spans.add()
            span.trace_id = trace_id
            span.span_id = SPAN_MARKER + (t * SPANS_PER_TRACE + 1 + s).to_bytes(4, "big")
            if s:
                span.parent_span_id = root_id
            span.name = "agent" if s == 0 else "step"
            span.kind = Span.SPAN_KIND_INTERNAL
            span.start_time_unix_nano = start + s * 1000
            span.end_time_unix_nano = start + 100_000 - s * 1000
            span.status.code = Status.STATUS_CODE_OK
            span.attributes.extend(
                [
                    kv("input.value", json.dumps({"x": {"q": s, "tag": "a"}})),
                    kv("input.mime_type", "application/json"),
                    kv("output.value", json.dumps({"answer": s, "ok": True})),
                    kv("output.mime_type", "application/json"),
                    kv("bench.step", s),
                    kv("bench.kind", "root" if s == 0 else "child"),
                ]
            )
    return request.SerializeToString()


def rekey(template: bytes, client: int, request: int) -> bytes:
    """``template`` with trace and span ids made unique for (``client``, ``request``).

    ``client`` starts at 1 (an all-zero trace id is invalid in OTLP and dropped), below
    256; ``request`` below 2**24.
    """
    trace_prefix = client.to_bytes(2, "big") + request.to_bytes(6, "big")
    span_prefix = client.to_bytes(1, "big") + request.to_bytes(3, "big")
    return template.replace(MARKER, trace_prefix).replace(SPAN_MARKER, span_prefix)
