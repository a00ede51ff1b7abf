"""Load client: the real OpenTelemetry SDK (BatchSpanProcessor → OTLPSpanExporter).

``python -m _ingest.client_otel_sdk --url URL --seconds S --max-traces N [--header k=v]``
creates traces of 10 spans (a root and nine children, inputs/outputs as JSON attributes)
for ``S`` seconds, then flushes and shuts down, and prints one JSON line. The exporter is
wrapped so that each ``export()`` (one HTTP POST of up to 512 spans) is timed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any


def main() -> int:
    """Trace for the given time, flush, print the JSON line."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult

    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--max-traces", type=int, default=1_000_000)
    parser.add_argument("--header", action="append", default=[])
    args = parser.parse_args()
    headers = dict(h.split("=", 1) for h in args.header)
    latencies: list[float] = []
    counts = {"accepted": 0, "failed": 0}

    class TimedExporter(OTLPSpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            t0 = time.perf_counter()
            result = super().export(spans)
            latencies.append((time.perf_counter() - t0) * 1000)
            key = "accepted" if result is SpanExportResult.SUCCESS else "failed"
            counts[key] += len(spans)
            return result

    provider = TracerProvider(resource=Resource.create({"service.name": "bench-ingest"}))
    provider.add_span_processor(
        BatchSpanProcessor(TimedExporter(endpoint=args.url, headers=headers, timeout=60))
    )
    tracer = provider.get_tracer("bench")

    def step(i: int) -> dict[str, Any]:
        with tracer.start_as_current_span("step") as span:
            span.set_attribute("input.value", json.dumps({"x": {"q": i, "tag": "a"}}))
            out = {"answer": i, "ok": True}
            span.set_attribute("output.value", json.dumps(out))
            return out

    start = time.perf_counter()
    deadline = start + args.seconds
    traces = 0
    while traces < args.max_traces and time.perf_counter() < deadline:
        with tracer.start_as_current_span("agent") as root:
            root.set_attribute("input.value", json.dumps({"n": traces}))
            total = sum(step(i)["answer"] for i in range(9))
            root.set_attribute("output.value", json.dumps({"total": total, "ok": True}))
        traces += 1
    produced_s = time.perf_counter() - start
    provider.force_flush(timeout_millis=120_000)
    provider.shutdown()
    elapsed = time.perf_counter() - start
    result = {
        "requests": len(latencies),
        "spans_sent": traces * 10,
        "spans_accepted": counts["accepted"],
        "errors": counts["failed"],
        "elapsed_s": elapsed,
        "produce_s": produced_s,
        "latencies_ms": latencies,
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
