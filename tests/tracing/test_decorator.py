"""@trace on every kind of callable: inputs, outputs, nesting, errors, generators."""

from __future__ import annotations

import asyncio

import pytest

import threadline
from threadline.entities.span import SpanType
from threadline.errors import InvalidArgumentError


def test_function_inputs_bound_to_parameter_names_and_output_recorded(captured):
    @threadline.trace
    def my_function(input_data, flag=False, *, mode="x"):
        return "processed result"

    assert my_function({"a": 1}, mode="y") == "processed result"
    (trace,) = captured.traces
    (span,) = trace.data.spans
    assert span.name == "my_function"
    assert span.inputs == {"input_data": {"a": 1}, "mode": "y"}
    assert span.outputs == "processed result"
    assert span.status.status_code == "OK"
    assert span.parent_id is None
    assert trace.info.state == "OK"


def test_options_name_type_attributes(captured):
    @threadline.trace(name="retrieve", span_type=SpanType.RETRIEVER, attributes={"k": 3})
    def fetch(q):
        return ["doc"]

    fetch("q")
    (span,) = captured.traces[0].data.spans
    assert (span.name, span.span_type, span.attributes) == ("retrieve", "RETRIEVER", {"k": 3})


def test_methods_leave_out_self_and_cls(captured):
    class Agent:
        @threadline.trace
        def run(self, question):
            return question.upper()

        @classmethod
        @threadline.trace
        def build(cls, size):
            return size

        @threadline.trace
        @staticmethod
        def helper(x):
            return x

    Agent().run("hi")
    Agent.build(3)
    Agent.helper(4)
    inputs = [t.data.spans[0].inputs for t in captured.traces]
    assert inputs == [{"question": "hi"}, {"size": 3}, {"x": 4}]


def test_variadic_arguments_bound_like_inspect(captured):
    @threadline.trace
    def f(a, *rest, key=None, **extra):
        return a

    f(1, 2, 3, key="k", other=5)
    (span,) = captured.traces[0].data.spans
    assert span.inputs == {"a": 1, "rest": [2, 3], "key": "k", "extra": {"other": 5}}


def test_nested_calls_form_one_trace(captured):
    @threadline.trace
    def leaf(i):
        return i * 2

    @threadline.trace(span_type="AGENT")
    def root():
        return [leaf(i) for i in range(3)]

    root()
    (trace,) = captured.traces
    root_span = trace.data.root_span
    children = [s for s in trace.data.spans if s.parent_id == root_span.span_id]
    assert [c.outputs for c in children] == [0, 2, 4]
    assert {s.trace_id for s in trace.data.spans} == {trace.info.trace_id}
    assert trace.info.trace_id.startswith("tr-") and len(trace.info.trace_id) == 35
    assert all(len(s.span_id) == 16 for s in trace.data.spans)


def test_exception_sets_error_records_event_and_is_reraised_unchanged(captured):
    class Boom(Exception):
        pass

    error = Boom("it broke")

    @threadline.trace
    def fails():
        raise error

    with pytest.raises(Boom) as info:
        fails()
    assert info.value is error
    (span,) = captured.traces[0].data.spans
    assert span.status.status_code == "ERROR"
    assert "it broke" in span.status.description
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "Boom"
    assert event.attributes["exception.message"] == "it broke"
    assert "raise error" in event.attributes["exception.stacktrace"]
    assert captured.traces[0].info.state == "ERROR"


def test_coroutines_and_many_concurrent_tasks(captured):
    @threadline.trace
    async def step(i):
        await asyncio.sleep(0.001 * (i % 3))
        return i

    @threadline.trace
    async def handle(i):
        return await step(i) + await step(i + 1)

    async def main():
        return await asyncio.gather(*(handle(i) for i in range(50)))

    assert asyncio.run(main()) == [2 * i + 1 for i in range(50)]
    traces = captured.traces
    assert len(traces) == 50
    for trace in traces:
        root = trace.data.root_span
        assert len(trace.data.spans) == 3
        assert all(s.parent_id == root.span_id for s in trace.data.spans if s is not root)
        i = root.inputs["i"]
        assert sorted(s.inputs["i"] for s in trace.data.spans if s is not root) == [i, i + 1]


def test_generator_span_covers_iteration_and_collects_items(captured):
    @threadline.trace
    def inner(x):
        return x

    @threadline.trace
    def numbers(n):
        for i in range(n):
            yield inner(i)

    assert list(numbers(3)) == [0, 1, 2]
    (trace,) = captured.traces
    root = trace.data.root_span
    assert root.outputs == [0, 1, 2]
    assert [s.parent_id for s in trace.data.spans if s is not root] == [root.span_id] * 3
    assert threadline.get_current_active_span() is None


def test_generator_output_reducer_and_early_close(captured):
    @threadline.trace(output_reducer=lambda chunks: "".join(chunks))
    def stream():
        yield from ["Hel", "lo", "!"]

    assert "".join(stream()) == "Hello!"
    gen = stream()
    next(gen)
    gen.close()
    first, second = captured.traces
    assert first.data.spans[0].outputs == "Hello!"
    assert second.data.spans[0].outputs == "Hel"
    assert second.data.spans[0].attributes["threadline.generator_closed_early"] is True
    assert second.info.state == "OK"


def test_generator_error_and_send_and_return_value(captured):
    @threadline.trace
    def echo():
        received = yield "ready"
        yield received
        return "done"

    gen = echo()
    assert next(gen) == "ready"
    assert gen.send("ping") == "ping"
    with pytest.raises(StopIteration) as stop:
        next(gen)
    assert stop.value.value == "done"

    @threadline.trace
    def broken():
        yield 1
        raise RuntimeError("mid-stream")

    with pytest.raises(RuntimeError):
        list(broken())
    assert [t.info.state for t in captured.traces] == ["OK", "ERROR"]


def test_async_generator(captured):
    @threadline.trace(output_reducer="".join)
    async def tokens():
        for t in ["a", "b", "c"]:
            await asyncio.sleep(0)
            yield t

    async def consume():
        return [t async for t in tokens()]

    assert asyncio.run(consume()) == ["a", "b", "c"]
    assert captured.traces[0].data.spans[0].outputs == "abc"


def test_bad_options_raise_at_decoration_time():
    with pytest.raises(InvalidArgumentError, match="span_type"):
        threadline.trace(span_type=3)
    with pytest.raises(InvalidArgumentError, match="trace_destination"):
        threadline.trace(trace_destination="1234")
    with pytest.raises(InvalidArgumentError, match="output_reducer"):
        threadline.trace(output_reducer="nope")


def test_wrapper_keeps_metadata():
    @threadline.trace
    def documented(a: int) -> int:
        """Doc."""
        return a

    assert documented.__name__ == "documented"
    assert documented.__doc__ == "Doc."
    assert documented.__wrapped__(1) == 1
