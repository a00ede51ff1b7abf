"""Fixtures for the OpenTelemetry bridge: OpenTelemetry's global provider, the bridge's
registry and every instrumentation are back to their defaults after each test."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace as trace_api
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once

import threadline.otel
from tests.integrations import _fake_openai
from threadline.otel import _tree

API_KEY = "sk-test-SECRET-otel-bridge-77"


def reset_global_provider() -> None:
    """Forget OpenTelemetry's global provider (what OpenTelemetry's own test utilities do)."""
    trace_api._TRACER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]
    trace_api._TRACER_PROVIDER = None  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _bridge_state() -> Iterator[None]:
    reset_global_provider()
    yield
    threadline.otel.autolog(disable=True)
    from threadline.integrations import registered

    for module in registered().values():
        importlib.import_module(module).INTEGRATION.autolog(disable=True, silent=True)
    reset_global_provider()
    _tree.OPEN.clear()


@pytest.fixture
def provider() -> TracerProvider:
    return threadline.otel.get_tracer_provider()


@pytest.fixture
def user_provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    """A provider of the program's own, with an in-memory exporter, set as the global one."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    trace_api.set_tracer_provider(provider)
    return provider, memory


@pytest.fixture(scope="session")
def openai_server() -> Iterator[_fake_openai.SSEServer]:
    server = _fake_openai.serve()
    yield server
    server.stop()


@pytest.fixture
def openai_client(openai_server: _fake_openai.SSEServer) -> Iterator[Any]:
    import openai

    openai_server.requests.clear()
    client = openai.OpenAI(base_url=openai_server.url + "/v1", api_key=API_KEY, max_retries=0)
    yield client
    client.close()


def spans_by_name(trace: Any) -> dict[str, Any]:
    return {span.name: span for span in trace.data.spans}
