"""LangGraph under ``threadline.langchain.autolog()``: graphs, nodes, subgraphs, agents.

A graph run is the root span (``CHAIN``; ``AGENT`` when a tool ran inside it) with a span
per node; the agent is LangChain's ``create_agent`` (a LangGraph graph) driven by a fake
chat model that calls a tool and then answers (``_fake_langchain``).
"""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated, Any, TypedDict

import pytest
from langchain.agents import create_agent
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, StateGraph
from langgraph.types import interrupt

import threadline
from tests.integrations import _fake_langchain as fl
from threadline.entities.keys import SpanAttributeKey
from threadline.entities.span import SpanType


@pytest.fixture(autouse=True)
def _autolog() -> None:
    threadline.langchain.autolog(silent=True)


class State(TypedDict):
    n: int
    path: Annotated[list[str], operator.add]


def add_one(state: State) -> dict[str, Any]:
    return {"n": state["n"] + 1, "path": ["add_one"]}


def times_ten(state: State) -> dict[str, Any]:
    return {"n": state["n"] * 10, "path": ["times_ten"]}


def route(state: State) -> str:
    return "times_ten" if state["n"] < 5 else END


def two_node_graph() -> Any:
    graph = StateGraph(State)
    graph.add_node("add_one", add_one)
    graph.add_node("times_ten", times_ten)
    graph.set_entry_point("add_one")
    graph.add_conditional_edges("add_one", route)
    graph.add_edge("times_ten", END)
    return graph.compile()


def shape(trace: Any) -> list[tuple[str, str, str | None]]:
    """(name, type, parent name) of each span, in start order."""
    spans = fl.agent_spans(trace)
    names = {s.span_id: s.name for s in spans}
    return [(s.name, s.span_type, names.get(s.parent_id) if s.parent_id else None) for s in spans]


GRAPH_SHAPE = [
    ("LangGraph", SpanType.CHAIN, None),
    ("add_one", SpanType.CHAIN, "LangGraph"),
    ("route", SpanType.CHAIN, "add_one"),
    ("times_ten", SpanType.CHAIN, "LangGraph"),
]


def test_graph_with_a_conditional_edge(captured):
    assert two_node_graph().invoke({"n": 1, "path": []}) == {
        "n": 20,
        "path": ["add_one", "times_ten"],
    }
    (trace,) = captured.traces
    assert shape(trace) == GRAPH_SHAPE
    spans = {s.name: s for s in trace.data.spans}
    assert spans["LangGraph"].inputs == {"n": 1, "path": []}
    assert spans["LangGraph"].outputs == {"n": 20, "path": ["add_one", "times_ten"]}
    assert spans["route"].outputs == "times_ten"
    assert spans["times_ten"].inputs == {"n": 2, "path": ["add_one"]}


def test_graph_stream_and_astream(captured):
    app = two_node_graph()
    updates = list(app.stream({"n": 1, "path": []}))
    assert [list(u) for u in updates] == [["add_one"], ["times_ten"]]

    async def run() -> list[Any]:
        return [u async for u in app.astream({"n": 7, "path": []})]

    assert [list(u) for u in asyncio.run(run())] == [["add_one"]]
    streamed, astreamed = captured.traces
    assert shape(streamed) == GRAPH_SHAPE
    assert shape(astreamed) == GRAPH_SHAPE[:3]
    assert threadline.get_current_active_span() is None


def test_subgraph_nests_under_its_node(captured):
    inner = two_node_graph()
    outer = StateGraph(State)
    outer.add_node("inner", inner)
    outer.add_node("call_inner", lambda s: inner.invoke({"n": s["n"], "path": []}))
    outer.set_entry_point("inner")
    outer.add_edge("inner", "call_inner")
    outer.add_edge("call_inner", END)

    outer.compile().invoke({"n": 1, "path": []})
    (trace,) = captured.traces
    assert shape(trace) == [
        ("LangGraph", SpanType.CHAIN, None),
        ("inner", SpanType.CHAIN, "LangGraph"),  # the node, then the graph it runs
        ("LangGraph", SpanType.CHAIN, "inner"),
        ("add_one", SpanType.CHAIN, "LangGraph"),
        ("route", SpanType.CHAIN, "add_one"),
        ("times_ten", SpanType.CHAIN, "LangGraph"),
        ("call_inner", SpanType.CHAIN, "LangGraph"),
        ("LangGraph", SpanType.CHAIN, "call_inner"),
        ("add_one", SpanType.CHAIN, "LangGraph"),
        ("route", SpanType.CHAIN, "add_one"),
    ]


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def test_react_agent_is_an_agent_span_with_model_and_tool_spans(captured):
    model = fl.tool_call_then_answer("get_weather", {"city": "Paris"}, "It is sunny.")
    agent = create_agent(model, tools=[get_weather])
    result = agent.invoke({"messages": [("user", "Weather in Paris?")]})
    assert result["messages"][-1].content == "It is sunny."

    (trace,) = captured.traces
    assert shape(trace) == [
        ("LangGraph", SpanType.AGENT, None),
        ("model", SpanType.CHAIN, "LangGraph"),
        ("ToolCallingFakeModel", SpanType.CHAT_MODEL, "model"),
        ("tools", SpanType.CHAIN, "LangGraph"),
        ("get_weather", SpanType.TOOL, "tools"),
        ("model", SpanType.CHAIN, "LangGraph"),
        ("ToolCallingFakeModel", SpanType.CHAT_MODEL, "model"),
    ]
    spans = fl.agent_spans(trace)
    tool_span, last_model = spans[4], spans[6]
    assert tool_span.inputs == {"city": "Paris"}
    assert tool_span.outputs["content"] == "sunny in Paris"
    messages = last_model.attributes[SpanAttributeKey.CHAT_MESSAGES]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert messages[2] == {"role": "tool", "content": "sunny in Paris", "tool_call_id": "call_1"}
    assert messages[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert last_model.attributes[SpanAttributeKey.TOKEN_USAGE] == fl.USAGE


def test_exception_in_a_node_reaches_the_caller_unchanged(captured):
    error = KeyError("missing")

    def broken(state: State) -> dict[str, Any]:
        raise error

    graph = StateGraph(State)
    graph.add_node("broken", broken)
    graph.set_entry_point("broken")
    graph.add_edge("broken", END)
    with pytest.raises(KeyError) as raised:
        graph.compile().invoke({"n": 1, "path": []})
    assert raised.value is error

    (trace,) = captured.traces
    assert [(s.name, s.status.status_code) for s in trace.data.spans] == [
        ("LangGraph", "ERROR"),
        ("broken", "ERROR"),
    ]
    node = trace.data.spans[1]
    assert node.events[0].attributes["exception.type"] == "KeyError"


def test_an_interrupt_is_not_an_error(captured):
    def ask(state: State) -> dict[str, Any]:
        answer = interrupt("Which number?")
        return {"n": int(answer), "path": ["ask"]}

    graph = StateGraph(State)
    graph.add_node("ask", ask)
    graph.set_entry_point("ask")
    graph.add_edge("ask", END)
    app = graph.compile(checkpointer=InMemorySaver())
    result = app.invoke({"n": 0, "path": []}, {"configurable": {"thread_id": "t1"}})
    assert "__interrupt__" in result

    (trace,) = captured.traces
    spans = {s.name: s for s in trace.data.spans}
    assert spans["LangGraph"].status.status_code == "OK"
    node = spans["ask"]
    assert node.status.status_code == "OK"
    assert [e.name for e in node.events] == ["GraphInterrupt"]
