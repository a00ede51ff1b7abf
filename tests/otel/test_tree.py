"""One tree both ways: OpenTelemetry spans of threadline's provider and threadline spans
nest in each other, in one trace, across threads and asyncio tasks; ids never repeat."""

from __future__ import annotations

import asyncio
import contextvars
import random
import threading

import pytest
from opentelemetry import trace as trace_api

import threadline
from tests.otel.conftest import spans_by_name
from threadline.entities.span import SpanType
from threadline.tracing import _timeout


@threadline.trace
def leaf(x: int) -> int:
    return x * 2


def test_otel_spans_inside_a_threadline_span_are_its_children(provider, captured) -> None:
    tracer = provider.get_tracer("my.app")

    @threadline.trace(span_type=SpanType.AGENT)
    def agent() -> str:
        with tracer.start_as_current_span("step", attributes={"openinference.span.kind": "CHAIN"}):
            leaf(1)
        span = tracer.start_span("bare")  # started, then made current by hand
        with trace_api.use_span(span, end_on_exit=True):
            leaf(2)
        return "done"

    agent()
    (trace,) = captured.traces
    spans = spans_by_name(trace)
    root = spans["agent"]
    assert spans["step"].parent_id == root.span_id and spans["step"].span_type == "CHAIN"
    assert spans["bare"].parent_id == root.span_id
    leaves = [s for s in trace.data.spans if s.name == "leaf"]
    assert sorted(s.parent_id for s in leaves) == sorted(
        [spans["step"].span_id, spans["bare"].span_id]
    )
    assert {s.trace_id for s in trace.data.spans} == {trace.info.trace_id}


def test_the_otel_ids_are_the_stored_ids(provider, captured) -> None:
    tracer = provider.get_tracer("my.app")
    with (
        tracer.start_as_current_span("root") as root,
        tracer.start_as_current_span("child") as child,
    ):
        pass
    (trace,) = captured.traces
    spans = spans_by_name(trace)
    assert trace.info.trace_id == "tr-" + format(root.get_span_context().trace_id, "032x")
    assert spans["root"].span_id == format(root.get_span_context().span_id, "016x")
    assert spans["child"].span_id == format(child.get_span_context().span_id, "016x")
    assert spans["root"].start_time_ns == root.start_time
    assert spans["child"].end_time_ns == child.end_time


def test_threadline_spans_inside_otel_spans_are_their_children(provider, captured) -> None:
    tracer = provider.get_tracer("my.app")
    with tracer.start_as_current_span("otel-root"):
        leaf(1)
        with threadline.start_span("manual") as manual:
            with tracer.start_as_current_span("otel-inner"):
                leaf(2)
            manual.set_outputs("ok")
    (trace,) = captured.traces
    spans = spans_by_name(trace)
    assert spans["otel-root"].parent_id is None
    assert spans["manual"].parent_id == spans["otel-root"].span_id
    assert spans["otel-inner"].parent_id == spans["manual"].span_id
    by_parent = {s.parent_id for s in trace.data.spans if s.name == "leaf"}
    assert by_parent == {spans["otel-root"].span_id, spans["otel-inner"].span_id}
    assert trace.info.state == "OK" and trace.info.request_preview is None


def test_explicit_start_and_end_times_are_kept(provider, captured) -> None:
    tracer = provider.get_tracer("my.app")
    span = tracer.start_span("back-dated", start_time=1_800_000_000_000_000_000)
    span.end(end_time=1_800_000_000_500_000_000)
    (trace,) = captured.traces
    (stored,) = trace.data.spans
    assert (stored.start_time_ns, stored.end_time_ns) == (
        1_800_000_000_000_000_000,
        1_800_000_000_500_000_000,
    )
    assert trace.info.execution_duration == 500


def test_worker_threads_with_copied_context_stay_in_the_trace(provider, captured) -> None:
    tracer = provider.get_tracer("my.app")
    with tracer.start_as_current_span("fan-out"):
        threads = [
            threading.Thread(target=contextvars.copy_context().run, args=(leaf, n))
            for n in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    (trace,) = captured.traces
    root = spans_by_name(trace)["fan-out"]
    leaves = [s for s in trace.data.spans if s.name == "leaf"]
    assert len(leaves) == 4 and {s.parent_id for s in leaves} == {root.span_id}


def test_concurrent_asyncio_tasks_do_not_mix(provider, captured) -> None:
    tracer = provider.get_tracer("my.app")

    @threadline.trace
    async def tool(run: int) -> int:
        await asyncio.sleep(0.01)
        with tracer.start_as_current_span(f"inner-{run}"):
            await asyncio.sleep(0.01)
            return leaf(run)

    async def run(n: int) -> None:
        with tracer.start_as_current_span(f"run-{n}"):
            await asyncio.sleep(0.005 * n)
            await tool(n)

    async def main() -> None:
        await asyncio.gather(*(run(n) for n in range(3)))

    asyncio.run(main())
    traces = captured.traces
    assert len(traces) == 3
    for trace in traces:
        spans = spans_by_name(trace)
        (name,) = [n for n in spans if n.startswith("run-")]
        n = name.split("-")[1]
        assert spans["tool"].parent_id == spans[name].span_id
        assert spans["tool"].inputs == {"run": int(n)}
        assert spans[f"inner-{n}"].parent_id == spans["tool"].span_id
        assert spans["leaf"].parent_id == spans[f"inner-{n}"].span_id


def test_random_seed_in_user_code_does_not_repeat_ids(provider, captured) -> None:
    """OpenTelemetry's default id generator draws from ``random``: seeding it in user code
    would give two runs the same ids. The bridge's provider uses threadline's generator."""
    tracer = provider.get_tracer("my.app")
    for _ in range(2):
        random.seed(1234)
        with tracer.start_as_current_span("seeded"):
            leaf(1)
    traces = captured.traces
    assert len(traces) == 2
    ids = [s.span_id for t in traces for s in t.data.spans]
    assert len({t.info.trace_id for t in traces}) == 2 and len(set(ids)) == 4


def test_exceptions_make_the_span_error(provider, captured) -> None:
    tracer = provider.get_tracer("my.app")
    with pytest.raises(ValueError, match="boom"), tracer.start_as_current_span("failing"):
        raise ValueError("boom")
    (trace,) = captured.traces
    (span,) = trace.data.spans
    assert span.status.status_code == "ERROR" and "boom" in span.status.description
    assert [e.name for e in span.events] == ["exception"]
    assert span.events[0].attributes["exception.message"] == "boom"
    assert trace.info.state == "ERROR"


def test_span_processors_sampling_and_disable_apply(provider, captured, monkeypatch) -> None:
    tracer = provider.get_tracer("my.app")
    seen = []
    threadline.tracing.configure(span_processors=[lambda span: seen.append(span.name)])
    with tracer.start_as_current_span("processed"):
        pass
    assert seen == ["processed"]
    threadline.tracing.configure(span_processors=[])
    threadline.tracing.disable()
    with tracer.start_as_current_span("off") as off:
        leaf(1)
    assert not off.is_recording()
    threadline.tracing.enable()
    monkeypatch.setenv("THREADLINE_TRACE_SAMPLING_RATIO", "0")
    from threadline.tracing import _runtime

    _runtime.RT.initialized = False
    with tracer.start_as_current_span("unsampled") as unsampled:
        leaf(2)  # follows its OpenTelemetry root: not recorded either
    assert not unsampled.is_recording()
    monkeypatch.setenv("THREADLINE_TRACE_SAMPLING_RATIO", "1")
    _runtime.RT.initialized = False
    span = tracer.start_span("unsampled-elsewhere", context=_unsampled_parent())
    with trace_api.use_span(span, end_on_exit=True):
        leaf(3)  # inside an OpenTelemetry trace that is not recorded: neither is this
    assert [t.data.spans[0].name for t in captured.traces] == ["processed"]


def _unsampled_parent() -> object:
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    parent = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(0))
    return trace_api.set_span_in_context(NonRecordingSpan(parent))


def test_trace_timeout_aborts_an_open_otel_trace(provider, captured, monkeypatch) -> None:
    monkeypatch.setenv("THREADLINE_TRACE_TIMEOUT_SECONDS", "0.05")
    monkeypatch.setenv("THREADLINE_TRACE_TIMEOUT_CHECK_INTERVAL_SECONDS", "60")
    tracer = provider.get_tracer("my.app")
    with tracer.start_as_current_span("stuck"):
        import time

        time.sleep(0.1)
        assert _timeout.check_now() == 1
    (trace,) = captured.traces
    assert trace.info.state == "ERROR"
    assert trace.data.spans[0].attributes["threadline.aborted"] is True


def test_context_local_destination_routes_otel_roots(provider, captured) -> None:
    from threadline.entities.trace_location import ExperimentLocation

    tracer = provider.get_tracer("my.app")
    threadline.tracing.set_destination(ExperimentLocation("42"), context_local=True)
    try:
        with tracer.start_as_current_span("routed"):
            pass
    finally:
        threadline.tracing.set_destination(None, context_local=True)
    (trace,) = captured.traces
    assert trace.info.experiment_id == "42"


def test_spans_reach_the_store(provider, tmp_path) -> None:
    threadline.set_tracking_uri(f"sqlite:///{tmp_path / 'bridge.db'}")
    tracer = provider.get_tracer("my.app")
    with tracer.start_as_current_span("stored") as span:
        leaf(3)
    trace_id = "tr-" + format(span.get_span_context().trace_id, "032x")
    trace = threadline.get_trace(trace_id)
    assert trace is not None
    assert sorted(s.name for s in trace.data.spans) == ["leaf", "stored"]


def test_a_span_dropped_without_end_leaves_the_registry(provider) -> None:
    import gc

    from threadline.otel import _tree

    tracer = provider.get_tracer("my.app")
    span = tracer.start_span("never-ended")
    assert len(_tree.OPEN) == 1
    del span
    gc.collect()
    assert _tree.OPEN == {}
