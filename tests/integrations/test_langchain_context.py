"""Where LangChain spans go: under ``@trace`` code, around it, and apart between runs.

``@trace`` around a LangChain call and ``@trace`` code inside a tool (sync, async, and a
sync tool that ``ainvoke`` runs in an executor thread), inside an invoked chain, inside a
graph node; runs in concurrent threads and asyncio tasks; the current span after streams,
batches and errors.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypedDict

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from langgraph.graph import END, StateGraph

import threadline
from threadline.integrations import langchain as integration
from threadline.integrations._llm_call import _calling

PROMPT = ChatPromptTemplate.from_messages([("user", "{question}")])


@pytest.fixture(autouse=True)
def _autolog() -> None:
    threadline.langchain.autolog(silent=True)


def as_args(city: str) -> dict[str, str]:
    return {"city": city}


def tree(trace: Any) -> dict[str, str | None]:
    """Each span's name -> its parent's name."""
    names = {s.span_id: s.name for s in trace.data.spans}
    return {s.name: names.get(s.parent_id) if s.parent_id else None for s in trace.data.spans}


@threadline.trace
def lookup(city: str) -> str:
    return f"sunny in {city}"


@tool
def weather(city: str) -> str:
    """The weather in a city."""
    return lookup(city)


@tool
async def async_weather(city: str) -> str:
    """The weather in a city, asynchronously."""
    await asyncio.sleep(0)
    return lookup(city)


def test_a_langchain_run_nests_under_the_current_span(captured):
    @threadline.trace
    def handle(question: str) -> str:
        chain = PROMPT | FakeListChatModel(responses=["Paris."]) | StrOutputParser()
        return chain.invoke({"question": question})

    assert handle("Capital?") == "Paris."
    (trace,) = captured.traces
    assert tree(trace) == {
        "handle": None,
        "RunnableSequence": "handle",
        "ChatPromptTemplate": "RunnableSequence",
        "FakeListChatModel": "RunnableSequence",
        "StrOutputParser": "RunnableSequence",
    }


@pytest.mark.parametrize(
    ("the_tool", "asynchronous"),
    [(weather, False), (async_weather, True), (weather, True)],
    ids=["sync-tool", "async-tool", "sync-tool-in-executor"],
)
def test_trace_code_inside_a_tool_nests_under_the_tool(captured, the_tool, asynchronous):
    if asynchronous:
        result = asyncio.run(the_tool.ainvoke({"city": "Paris"}))
    else:
        result = the_tool.invoke({"city": "Paris"})
    assert result == "sunny in Paris"

    (trace,) = captured.traces
    assert tree(trace) == {the_tool.name: None, "lookup": the_tool.name}
    assert threadline.get_current_active_span() is None


def as_text(text: str) -> dict[str, str]:
    return {"text": text}


def upper(text: str) -> str:
    return text.upper()


def exclaim(text: str) -> str:
    return text + "!"


def test_chain_inside_trace_code_inside_a_tool_nests_under_that_code(captured):
    @threadline.trace
    def summarise(text: str) -> str:
        return (RunnableLambda(upper) | RunnableLambda(exclaim)).invoke(text)

    @tool
    def shout(text: str) -> str:
        """Shout the text."""
        return summarise(text)

    assert (RunnableLambda(as_text) | shout).invoke("hi") == "HI!"
    (trace,) = captured.traces
    spans = sorted(trace.data.spans, key=lambda s: s.start_time_ns)
    by_id = {s.span_id: s for s in spans}
    shape = [(s.name, by_id[s.parent_id].name if s.parent_id else None) for s in spans]
    assert shape == [
        ("RunnableSequence", None),
        ("as_text", "RunnableSequence"),
        ("shout", "RunnableSequence"),
        ("summarise", "shout"),
        ("RunnableSequence", "summarise"),
        ("upper", "RunnableSequence"),
        ("exclaim", "RunnableSequence"),
    ]
    inner = spans[4]
    assert [s.parent_id for s in spans[5:]] == [inner.span_id, inner.span_id]


def test_trace_code_inside_a_graph_node_nests_under_the_node(captured):
    class State(TypedDict):
        city: str
        report: str

    graph = StateGraph(State)
    graph.add_node("forecast", lambda s: {"report": lookup(s["city"])})
    graph.set_entry_point("forecast")
    graph.add_edge("forecast", END)
    app = graph.compile()

    assert app.invoke({"city": "Oslo"})["report"] == "sunny in Oslo"
    (trace,) = captured.traces
    assert tree(trace) == {"LangGraph": None, "forecast": "LangGraph", "lookup": "forecast"}


def test_consumer_code_between_stream_chunks_does_not_nest_under_the_stream(captured):
    @threadline.trace
    def show(chunk: str) -> str:
        return chunk

    @threadline.trace
    def handle() -> None:
        chain = PROMPT | FakeListChatModel(responses=["ab"]) | StrOutputParser()
        for chunk in chain.stream({"question": "q"}):
            show(chunk)
        for message in FakeListChatModel(responses=["cd"]).stream("q"):
            show(message.content)

    handle()
    (trace,) = captured.traces
    spans = trace.data.spans
    handle_span = next(s for s in spans if s.name == "handle")
    shows = [s for s in spans if s.name == "show"]
    assert [s.inputs["chunk"] for s in shows] == ["a", "b", "c", "d"]
    assert all(s.parent_id == handle_span.span_id for s in shows)
    assert threadline.get_current_active_span() is None


def test_batch_runs_do_not_see_each_others_spans(captured):
    @threadline.trace
    def mark(value: str) -> str:
        return value

    def first(value: str) -> str:
        return value

    def then_mark(value: str) -> str:
        return mark(value)

    chain = RunnableLambda(first) | RunnableLambda(then_mark)
    assert chain.batch(["a", "b", "c"]) == ["a", "b", "c"]

    traces = captured.traces
    assert len(traces) == 3
    for trace in traces:
        (root,) = [s for s in trace.data.spans if s.parent_id is None]
        assert root.name == "RunnableSequence"
        marks = [s for s in trace.data.spans if s.name == "mark"]
        assert len(marks) == 1 and marks[0].inputs == {"value": root.inputs}


def test_runs_in_concurrent_threads_do_not_mix(captured):
    barrier = threading.Barrier(2)

    @tool
    def slow(city: str) -> str:
        """Waits for the other thread, so both runs are open at once."""
        barrier.wait(timeout=10)
        return lookup(city)

    @threadline.trace
    def handle(city: str) -> str:
        return (RunnableLambda(as_args) | slow).invoke(city)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(handle, ["Paris", "Rome"]))
    assert results == ["sunny in Paris", "sunny in Rome"]
    _assert_separate(captured.traces)


def test_runs_in_concurrent_asyncio_tasks_do_not_mix(captured):
    @tool
    async def slow(city: str) -> str:
        """Yields to the other task, so both runs are open at once."""
        await asyncio.sleep(0.01)
        return lookup(city)

    @threadline.trace
    async def handle(city: str) -> str:
        return await (RunnableLambda(as_args) | slow).ainvoke(city)

    async def main() -> list[str]:
        return await asyncio.gather(handle("Paris"), handle("Rome"))

    assert asyncio.run(main()) == ["sunny in Paris", "sunny in Rome"]
    _assert_separate(captured.traces)


def _assert_separate(traces: list[Any]) -> None:
    assert len(traces) == 2
    for trace in traces:
        spans = {s.name: s for s in trace.data.spans}
        city = spans["handle"].inputs["city"]
        assert tree(trace) == {
            "handle": None,
            "RunnableSequence": "handle",
            "as_args": "RunnableSequence",
            "slow": "RunnableSequence",
            "lookup": "slow",
        }
        assert spans["lookup"].inputs == {"city": city}
        assert spans["slow"].inputs == {"city": city}


def test_copy_context_into_a_worker_thread_keeps_the_trace(captured):
    @threadline.trace
    def handle() -> str:
        ctx = contextvars.copy_context()
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(ctx.run, weather.invoke, {"city": "Lima"}).result()

    assert handle() == "sunny in Lima"
    (trace,) = captured.traces
    assert tree(trace) == {"handle": None, "weather": "handle", "lookup": "weather"}


def test_scopes_are_restored_after_errors_streams_and_batches(captured):
    @tool
    def broken(city: str) -> str:
        """Always fails."""
        raise RuntimeError("down")

    with pytest.raises(RuntimeError):
        broken.invoke({"city": "x"})
    list(FakeListChatModel(responses=["abc"]).stream("q"))
    asyncio.run(_astream_all())
    FakeListChatModel(responses=["a", "b"]).generate([[HumanMessage("1")], [HumanMessage("2")]])
    assert threadline.get_current_active_span() is None
    assert _calling.get() is None
    runs = integration.INTEGRATION.handler.runs
    assert len(runs) == 0
    assert runs._scoped == {} and runs._starters == {}


async def _astream_all() -> None:
    async for _chunk in FakeListChatModel(responses=["abc"]).astream("q"):
        pass


def test_inside_an_unsampled_trace_nothing_is_recorded(captured):
    @threadline.trace(sampling_ratio_override=0.0)
    def handle() -> str:
        return (RunnableLambda(as_args) | weather).invoke("Quito")

    assert handle() == "sunny in Quito"
    assert captured.traces == []
    assert threadline.get_current_active_span() is None
    assert len(integration.INTEGRATION.handler.runs) == 0
