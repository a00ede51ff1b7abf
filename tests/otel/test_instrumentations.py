"""Real instrumentations through the bridge: OpenInference's openai instrumentation against
the local OpenAI fake (inside a threadline span and around one), the httpx instrumentation's
spans dropped as noise with their children re-parented, and duplicates of threadline's own
autolog suppressed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from openinference.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

import threadline
from tests.integrations import _fake_openai as fake
from tests.otel.conftest import API_KEY, spans_by_name
from threadline.entities.keys import SpanAttributeKey
from threadline.entities.span import SpanType
from threadline.otel._scopes import ScopeFilter

MESSAGES = [{"role": "user", "content": "Hello!"}]


@pytest.fixture
def openinference(provider) -> Iterator[OpenAIInstrumentor]:
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    yield instrumentor
    instrumentor.uninstrument()


@pytest.fixture
def httpx_instrumented(provider) -> Iterator[None]:
    instrumentor = HTTPXClientInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    yield
    instrumentor.uninstrument()


def _llm_spans(trace: Any) -> list[Any]:
    return [s for s in trace.data.spans if s.span_type in ("LLM", "CHAT_MODEL")]


def test_openinference_openai_inside_a_threadline_span(
    openinference, openai_client, captured
) -> None:
    @threadline.trace(span_type=SpanType.AGENT)
    def agent() -> str:
        response = openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        return response.choices[0].message.content

    assert agent() == fake.REPLY
    (trace,) = captured.traces
    (llm,) = _llm_spans(trace)
    root = spans_by_name(trace)["agent"]
    assert llm.parent_id == root.span_id and llm.span_type == "LLM"
    assert llm.attributes[SpanAttributeKey.MODEL].startswith("gpt-4o-mini")
    usage = llm.attributes[SpanAttributeKey.TOKEN_USAGE]
    assert (
        usage["input_tokens"] == fake.PROMPT_TOKENS
        and usage["total_tokens"] > usage["input_tokens"]
    )
    messages = llm.attributes[SpanAttributeKey.CHAT_MESSAGES]
    assert messages[0] == {"role": "user", "content": "Hello!"}
    assert messages[-1] == {"role": "assistant", "content": fake.REPLY}
    assert llm.attributes[SpanAttributeKey.COST]["total_cost"] > 0
    assert "input.value" not in llm.attributes  # moved to the span's inputs
    assert llm.inputs["messages"] == MESSAGES
    assert API_KEY not in trace.to_json()


def test_threadline_span_between_otel_spans(
    provider, openinference, openai_client, captured
) -> None:
    """The reverse: an OpenTelemetry span of the app, a threadline span inside it, and the
    OpenInference span inside that one."""
    tracer = provider.get_tracer("my.app")

    @threadline.trace
    def plan() -> str:
        return (
            openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            .choices[0]
            .message.content
        )

    with tracer.start_as_current_span("request"):
        plan()
    (trace,) = captured.traces
    spans = spans_by_name(trace)
    (llm,) = _llm_spans(trace)
    assert spans["request"].parent_id is None
    assert spans["plan"].parent_id == spans["request"].span_id
    assert llm.parent_id == spans["plan"].span_id


def test_http_client_spans_are_dropped(
    provider, openinference, httpx_instrumented, openai_client, captured
) -> None:
    @threadline.trace
    def agent() -> None:
        openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    agent()
    (trace,) = captured.traces
    assert sorted(s.span_type for s in trace.data.spans) == ["LLM", "UNKNOWN"]
    scopes = {s.attributes.get("otel.scope.name") for s in trace.data.spans}
    assert "opentelemetry.instrumentation.httpx" not in scopes


def test_allow_list_keeps_a_denied_scope(
    monkeypatch, openinference, openai_client, captured
) -> None:
    monkeypatch.setenv("THREADLINE_OTEL_ALLOW_SCOPES", "opentelemetry.instrumentation.httpx")
    from threadline.otel._provider import BridgeTracerProvider

    provider = BridgeTracerProvider()  # reads the scope settings
    instrumentor = HTTPXClientInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        with provider.get_tracer("my.app").start_as_current_span("app"):
            import httpx

            httpx.get(f"{openai_client.base_url}models/none", timeout=10)
    finally:
        instrumentor.uninstrument()
    (trace,) = captured.traces
    spans = spans_by_name(trace)
    (http,) = [s for s in trace.data.spans if s.name != "app"]
    assert http.attributes["otel.scope.name"] == "opentelemetry.instrumentation.httpx"
    assert http.parent_id == spans["app"].span_id


def test_kept_children_of_a_dropped_span_attach_to_its_nearest_kept_ancestor(
    provider, captured
) -> None:
    app = provider.get_tracer("my.app")
    noise = provider.get_tracer("opentelemetry.instrumentation.requests")  # a denied scope

    @threadline.trace
    def handler() -> None:
        with noise.start_as_current_span("GET"):
            with app.start_as_current_span("inside-noise"):
                pass
            leaf()

    @threadline.trace
    def leaf() -> int:
        return 1

    with app.start_as_current_span("top"):
        handler()
    with noise.start_as_current_span("noise-root"):  # a dropped root: its children are roots
        with app.start_as_current_span("orphan-a"):
            pass
        with app.start_as_current_span("orphan-b"):
            pass
    first, second, third = captured.traces
    spans = spans_by_name(first)
    assert "GET" not in spans
    assert spans["inside-noise"].parent_id == spans["handler"].span_id
    assert spans["leaf"].parent_id == spans["handler"].span_id
    assert [s.name for s in second.data.spans] == ["orphan-a"]
    assert [s.name for s in third.data.spans] == ["orphan-b"]
    assert second.info.trace_id != third.info.trace_id


def test_deny_list_setting_adds_scopes(monkeypatch) -> None:
    monkeypatch.setenv("THREADLINE_OTEL_DENY_SCOPES", "my.noisy.lib, other")
    scopes = ScopeFilter.from_settings()
    assert scopes.drops("my.noisy.lib") and scopes.drops("my.noisy.lib.sub")
    assert not scopes.drops("my.noisy.library") and not scopes.drops("openinference.x")
    assert scopes.drops("opentelemetry.instrumentation.sqlalchemy")
    monkeypatch.setenv("THREADLINE_OTEL_ALLOW_SCOPES", "*")
    assert not ScopeFilter.from_settings().drops("opentelemetry.instrumentation.sqlalchemy")


def test_duplicates_of_threadline_autolog_are_suppressed(
    openinference, openai_client, captured
) -> None:
    """With ``threadline.openai.autolog()`` on, OpenInference's openai spans would record
    each call twice: the native span is kept, under the caller's span."""
    threadline.openai.autolog(silent=True)

    @threadline.trace
    def agent() -> None:
        openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    agent()
    threadline.openai.autolog(disable=True, silent=True)
    agent()
    native, bridged = captured.traces
    (llm,) = _llm_spans(native)
    assert llm.span_type == "CHAT_MODEL" and "otel.scope.name" not in llm.attributes
    assert llm.parent_id == spans_by_name(native)["agent"].span_id
    assert len(native.data.spans) == 2  # the call once: tokens counted once
    (other,) = _llm_spans(bridged)
    assert other.attributes["otel.scope.name"] == "openinference.instrumentation.openai"


def test_native_autolog_span_inside_a_bridged_span_is_its_child(
    provider, openai_client, captured
) -> None:
    threadline.openai.autolog(silent=True)
    with provider.get_tracer("my.app").start_as_current_span("handle-request"):
        openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    (trace,) = captured.traces
    spans = spans_by_name(trace)
    (llm,) = _llm_spans(trace)
    assert llm.parent_id == spans["handle-request"].span_id
    assert llm.attributes[SpanAttributeKey.TOKEN_USAGE]["input_tokens"] == fake.PROMPT_TOKENS
