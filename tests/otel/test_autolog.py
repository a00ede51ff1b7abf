"""``threadline.otel.autolog()``: the global provider is set only when none is, a provider
of the program's own keeps its exporters and gets threadline's processor, and
``disable=True`` undoes exactly that."""

from __future__ import annotations

import random

import pytest
from opentelemetry import trace as trace_api

import threadline
import threadline.otel
from tests.otel.conftest import spans_by_name
from threadline.errors import InvalidArgumentError
from threadline.otel._provider import BridgeTracerProvider


@threadline.trace
def work(x: int) -> int:
    return x + 1


def test_sets_threadline_provider_as_global_when_none_is_set(captured) -> None:
    assert isinstance(trace_api.get_tracer_provider(), trace_api.ProxyTracerProvider)
    early = trace_api.get_tracer("early.module")  # obtained before: a proxy tracer
    threadline.otel.autolog()
    threadline.otel.autolog()  # idempotent
    assert isinstance(trace_api.get_tracer_provider(), BridgeTracerProvider)
    with early.start_as_current_span("from-early"):
        work(1)
    (trace,) = captured.traces
    assert sorted(s.name for s in trace.data.spans) == ["from-early", "work"]

    threadline.otel.autolog(disable=True)
    assert isinstance(trace_api.get_tracer_provider(), trace_api.ProxyTracerProvider)
    with early.start_as_current_span("after-disable") as span:
        pass
    assert not span.is_recording()
    assert len(captured.traces) == 1
    # the program can set a provider of its own again
    from opentelemetry.sdk.trace import TracerProvider

    mine = TracerProvider()
    trace_api.set_tracer_provider(mine)
    assert trace_api.get_tracer_provider() is mine


def test_a_users_provider_keeps_its_spans_and_threadline_gets_them_too(
    user_provider, captured
) -> None:
    provider, memory = user_provider
    threadline.otel.autolog()
    assert trace_api.get_tracer_provider() is provider  # never replaced
    tracer = trace_api.get_tracer("my.app")

    @threadline.trace
    def agent() -> int:
        with tracer.start_as_current_span("otel-step"), tracer.start_as_current_span("otel-inner"):
            return work(1)

    agent()
    assert sorted(s.name for s in memory.get_finished_spans()) == ["otel-inner", "otel-step"]
    (trace,) = captured.traces
    spans = spans_by_name(trace)
    assert spans["otel-step"].parent_id == spans["agent"].span_id
    assert spans["otel-inner"].parent_id == spans["otel-step"].span_id
    # a threadline span inside the user's OpenTelemetry span is its child (context lookup)
    assert spans["work"].parent_id == spans["otel-inner"].span_id

    threadline.otel.autolog(disable=True)
    memory.clear()
    with tracer.start_as_current_span("after"):
        pass
    assert [s.name for s in memory.get_finished_spans()] == ["after"]
    assert len(captured.traces) == 1  # threadline no longer records them
    threadline.otel.autolog()  # on again: the same processor, not a second one
    with tracer.start_as_current_span("again"):
        pass
    assert len(captured.traces) == 2 and len(captured.traces[1].data.spans) == 1


def test_ids_of_a_users_seeded_provider_do_not_collide_in_threadline(
    user_provider, captured
) -> None:
    """The user's provider draws ids from ``random``: after ``random.seed()`` it repeats
    them. threadline stores its own ids for those spans, so two runs stay two traces."""
    _, memory = user_provider
    threadline.otel.autolog()
    tracer = trace_api.get_tracer("my.app")
    for _ in range(2):
        random.seed(7)
        with tracer.start_as_current_span("seeded"):
            work(1)
    otel_ids = {s.context.trace_id for s in memory.get_finished_spans()}
    assert len(otel_ids) == 1  # the user's own ids did repeat
    traces = captured.traces
    assert len(traces) == 2
    assert len({s.span_id for t in traces for s in t.data.spans}) == 4


def test_autolog_checks_its_argument() -> None:
    with pytest.raises(InvalidArgumentError, match="disable"):
        threadline.otel.autolog(disable="yes")  # type: ignore[arg-type]
