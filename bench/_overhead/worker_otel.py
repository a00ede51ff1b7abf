"""Worker for the raw OpenTelemetry SDK: BatchSpanProcessor + OTLP/HTTP to the local sink.

Each function is decorated with ``tracer.start_as_current_span`` and records its inputs
and outputs as JSON attributes, which is the work threadline and MLflow do by default.
Tracing off is the API's no-op tracer (what a program gets without an SDK).
"""

from __future__ import annotations

import argparse
import functools
import json
import urllib.request
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from _overhead.harness import Contender, build_workload, main


def _decorator(tracer: trace.Tracer) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``tracer.start_as_current_span`` as a decorator, plus inputs/outputs attributes."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @tracer.start_as_current_span(fn.__name__)
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            span = trace.get_current_span()
            recording = span.is_recording()
            if recording:
                span.set_attribute("inputs", json.dumps({"args": args, "kwargs": kwargs}))
            result = fn(*args, **kwargs)
            if recording:
                span.set_attribute("outputs", json.dumps(result))
            return result

        return wrapper

    return decorate


def _sink_stats(endpoint: str) -> dict[str, int]:
    stats_url = endpoint.rsplit("/v1/traces", 1)[0] + "/stats"
    with urllib.request.urlopen(stats_url, timeout=30) as response:
        return json.loads(response.read())


def build(args: argparse.Namespace) -> Contender:
    """An SDK tracer provider exporting to ``args.endpoint``."""
    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=args.endpoint)))
    trace.set_tracer_provider(provider)
    start = _sink_stats(args.endpoint)

    def count_stored() -> tuple[int, int]:
        provider.shutdown()  # after this nothing is pending; the tracer stops recording
        now = _sink_stats(args.endpoint)
        return now["traces"] - start["traces"], now["spans"] - start["spans"]

    def flush() -> None:
        if not provider.force_flush(timeout_millis=60_000):
            raise RuntimeError("force_flush timed out")

    return Contender(
        traced=build_workload(_decorator(provider.get_tracer("bench"))),
        disabled=build_workload(_decorator(trace.NoOpTracerProvider().get_tracer("bench"))),
        flush=flush,
        disable=lambda: None,
        count_stored=count_stored,
        versions={
            "opentelemetry-sdk": version("opentelemetry-sdk"),
            "opentelemetry-exporter-otlp-proto-http": version(
                "opentelemetry-exporter-otlp-proto-http"
            ),
        },
    )


if __name__ == "__main__":
    main(build)
