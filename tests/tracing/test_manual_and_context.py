"""start_span, live-span methods, current-trace helpers, threads, snapshots, switches."""

from __future__ import annotations

import contextvars
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

import threadline
from threadline.entities.span import SpanEvent, SpanStatus
from threadline.entities.trace_location import ExperimentLocation
from threadline.errors import InvalidArgumentError


def test_start_span_live_methods_and_reads(captured):
    with threadline.start_span(name="foo", span_type="CHAIN", attributes={"a": 1}) as span:
        span.set_inputs({"a": 1})
        span.set_outputs({"b": 2})
        span.set_attribute("k", "v")
        span.set_attributes({"n": 2, "obj": object})
        span.add_event(SpanEvent("retry", attributes={"attempt": 1}))
        assert threadline.get_current_active_span() is span
        assert (span.name, span.span_type, span.parent_id) == ("foo", "CHAIN", None)
        assert span.trace_id.startswith("tr-") and span.end_time_ns is None
    assert threadline.get_current_active_span() is None
    assert span.end_time_ns >= span.start_time_ns
    stored = captured.traces[0].data.spans[0]
    assert stored.inputs == {"a": 1}
    assert stored.outputs == {"b": 2}
    assert stored.attributes == {"a": 1, "k": "v", "n": 2, "obj": repr(object)}
    assert stored.events[0].name == "retry" and stored.events[0].attributes == {"attempt": 1}
    assert threadline.get_last_active_trace_id() == span.trace_id


def test_set_status_and_record_exception(captured):
    with threadline.start_span("a") as span:
        span.set_status("ERROR")
    with threadline.start_span("b") as span:
        span.record_exception(ValueError("x"))
    with threadline.start_span("c") as span:
        span.set_status(SpanStatus("OK", "fine"))
    a, b, c = (t.data.spans[0] for t in captured.traces)
    assert a.status.status_code == "ERROR"
    assert b.status.status_code == "ERROR" and b.events[0].name == "exception"
    assert c.status == SpanStatus("OK", "fine")


def test_start_span_exception_propagates_and_marks_error(captured):
    with pytest.raises(KeyError), threadline.start_span("risky"):
        raise KeyError("missing")
    span = captured.traces[0].data.spans[0]
    assert span.status.status_code == "ERROR"
    assert span.events[0].attributes["exception.type"] == "KeyError"


def test_setters_after_end_are_ignored_with_a_warning(captured, caplog):
    with threadline.start_span("done") as span:
        pass
    with caplog.at_level(logging.WARNING, logger="threadline"):
        span.set_outputs("late")
    assert captured.traces[0].data.spans[0].outputs is None
    assert "after it ended" in caplog.text


def test_update_current_trace_sets_previews_tags_metadata(captured):
    @threadline.trace
    def predict(messages: list[dict]) -> str:
        custom_preview = f"{messages[0]['content'][:10]} ... {messages[-1]['content'][:10]}"
        threadline.update_current_trace(request_preview=custom_preview)
        result = "a long answer " * 10
        threadline.update_current_trace(
            response_preview=f"Result: {result[:50]}...",
            tags={"env": "dev"},
            metadata={"version": 2},
            client_request_id="req-1",
            session_id="s-9",
            user="alice",
        )
        return result

    predict([{"role": "user", "content": "Hello there, how are you"}, {"content": "bye now!!"}])
    info = captured.traces[0].info
    assert info.request_preview == "Hello ther ... bye now!!"
    assert info.response_preview.startswith("Result: a long answer")
    assert info.tags == {"env": "dev"}
    assert info.trace_metadata["version"] == "2"
    assert info.trace_metadata["session_id"] == "s-9"
    assert info.trace_metadata["user"] == "alice"
    assert info.client_request_id == "req-1"


def test_update_current_trace_outside_trace_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="threadline"):
        threadline.update_current_trace(tags={"a": "b"})
    assert "outside a trace" in caplog.text
    with pytest.raises(InvalidArgumentError, match="request_preview"):
        threadline.update_current_trace(request_preview=3)


def test_default_previews_are_truncated_root_inputs_and_outputs(captured):
    @threadline.trace
    def big(text):
        return text * 2

    big("x" * 1500)
    info = captured.traces[0].info
    assert len(info.request_preview) == 1000 and info.request_preview.startswith('{"text":"xxx')
    assert len(info.response_preview) == 1000 and info.response_preview.endswith("...")


def test_worker_threads_with_copied_context_join_the_parent_trace(captured):
    @threadline.trace
    def worker_function(data):
        return data * 2

    @threadline.trace
    def main_function(data_list):
        with ThreadPoolExecutor(max_workers=4) as executor:
            futures = []
            for data in data_list:
                ctx = contextvars.copy_context()
                futures.append(executor.submit(ctx.run, worker_function, data))
            return [f.result() for f in futures]

    assert main_function([1, 2, 3, 4]) == [2, 4, 6, 8]
    (trace,) = captured.traces
    assert len(trace.data.spans) == 5
    root = trace.data.root_span
    assert all(s.parent_id == root.span_id for s in trace.data.spans if s is not root)


def test_threads_without_copied_context_make_separate_traces(captured):
    @threadline.trace
    def work(i):
        with threadline.start_span("inner") as span:
            span.set_outputs(i)
        return i

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    traces = captured.traces
    assert len(traces) == 16
    for trace in traces:
        root = trace.data.root_span
        (inner,) = [s for s in trace.data.spans if s is not root]
        assert inner.outputs == root.inputs["i"]


def test_inputs_snapshot_at_call_outputs_snapshot_at_return(captured):
    @dataclass
    class Doc:
        id: str

    @threadline.trace
    def mutate(items, doc):
        items.append("during")
        return items

    items = ["before"]
    result = mutate(items, Doc("d1"))
    result.append("after-return")
    (span,) = captured.traces[0].data.spans
    assert span.inputs == {"items": ["before"], "doc": {"id": "d1"}}
    assert span.outputs == ["before", "during"]


def test_non_json_values_kept_by_repr_and_cycles_do_not_hang(captured):
    class Opaque:
        def __repr__(self):
            return "<Opaque 42>"

    cyclic: dict = {"name": "loop"}
    cyclic["self"] = cyclic

    @threadline.trace
    def f(x, y, z):
        return {1: b"bytes", (1, 2): {3}}

    f(Opaque(), cyclic, float("nan"))
    (span,) = captured.traces[0].data.spans
    assert span.inputs["x"] == "<Opaque 42>"
    assert span.inputs["y"]["name"] == "loop"
    assert span.outputs["1"] == repr(b"bytes")
    assert span.outputs["(1, 2)"] == [3]


def test_disable_and_enable(captured):
    calls = []

    @threadline.trace
    def my_function():
        calls.append(1)
        return "No trace generated"

    threadline.tracing.disable()
    assert my_function() == "No trace generated"
    with threadline.start_span("x") as span:
        span.set_outputs(1)  # the no-op span accepts every call
    assert captured.traces == []
    threadline.tracing.enable()
    my_function()
    assert len(captured.traces) == 1 and len(calls) == 2


def test_env_var_disables_tracing(monkeypatch, captured):
    monkeypatch.setenv("THREADLINE_TRACING_ENABLED", "false")

    @threadline.trace
    def f():
        return 1

    assert f() == 1
    assert captured.traces == []


def test_span_processors_mutate_live_values_before_serialisation(captured):
    @dataclass
    class Document:
        id: str
        text: str

    def filter_retrieval_output(span):
        if span.span_type == threadline.SpanType.RETRIEVAL:
            documents = span.outputs.get("documents")
            document_ids = [doc.id for doc in documents]
            span.set_outputs({"document_ids": document_ids})

    def broken(span):
        raise RuntimeError("processor bug")

    threadline.tracing.configure(span_processors=[broken, filter_retrieval_output])

    @threadline.trace(span_type=threadline.SpanType.RETRIEVER)
    def retrieve(q):
        return {"documents": [Document("d1", "secret"), Document("d2", "text")]}

    retrieve("q")
    assert captured.traces[0].data.spans[0].outputs == {"document_ids": ["d1", "d2"]}
    threadline.tracing.configure(span_processors=[])
    retrieve("q")
    assert captured.traces[1].data.spans[0].outputs["documents"][0]["text"] == "secret"


def test_configure_as_context_manager_restores_previous(captured):
    def tag(span):
        span.set_attribute("seen", True)

    with threadline.tracing.configure(span_processors=[tag]), threadline.start_span("a"):
        pass
    with threadline.start_span("b"):
        pass
    a, b = (t.data.spans[0] for t in captured.traces)
    assert a.attributes == {"seen": True} and b.attributes == {}
    with pytest.raises(InvalidArgumentError):
        threadline.tracing.configure(span_processors=["not callable"])


def test_trace_destination_on_root_and_ignored_on_child(captured, caplog):
    @threadline.trace(trace_destination=ExperimentLocation(experiment_id="1234"))
    def child():
        return 1

    @threadline.trace
    def parent():
        return child()

    child()
    with caplog.at_level(logging.WARNING, logger="threadline"):
        parent()
    first, second = captured.traces
    assert first.info.experiment_id == "1234"
    assert second.info.experiment_id == "0"
    assert "ignored" in caplog.text


def test_set_destination_context_local_is_isolated_per_thread(captured):
    threadline.tracing.set_destination(ExperimentLocation("global"))
    results = {}

    def handler(experiment_id):
        threadline.tracing.set_destination(ExperimentLocation(experiment_id), context_local=True)
        with threadline.start_span(name=f"agent-{experiment_id}") as span:
            results[experiment_id] = span.trace_id

    threads = [threading.Thread(target=handler, args=(str(i),)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with threadline.start_span("main"):
        pass
    by_id = {t.info.trace_id: t.info.experiment_id for t in captured.traces}
    assert all(by_id[trace_id] == exp for exp, trace_id in results.items())
    assert [t.info.experiment_id for t in captured.traces if t.info.name == "main"] == ["global"]
