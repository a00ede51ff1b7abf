"""``threadline.langchain.autolog()`` on real langchain-core: chains, models, tools, retrievers.

Offline: langchain-core's own fake chat models and LLM, a tiny in-memory retriever
(``_fake_langchain``), and ``ChatOpenAI`` talking to the local OpenAI fake where a model
is called over HTTP (``test_langchain_openai.py``). Graphs: ``test_langchain_graph.py``;
nesting and concurrency: ``test_langchain_context.py``.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
from langchain_core.language_models.fake import FakeListLLM
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from langchain_core.tracers import context as lc_context

import threadline
from tests.integrations import _fake_langchain as fl
from tests.integrations.conftest import all_spans
from threadline.entities.keys import SpanAttributeKey
from threadline.entities.span import SpanType
from threadline.errors import InvalidArgumentError
from threadline.integrations import langchain as integration

PROMPT = ChatPromptTemplate.from_messages([("system", "Be brief."), ("user", "{question}")])


@pytest.fixture(autouse=True)
def _autolog() -> None:
    threadline.langchain.autolog(silent=True)


def chain(*responses: str) -> Any:
    return PROMPT | FakeListChatModel(responses=list(responses)) | StrOutputParser()


def spans_by_name(trace: Any) -> dict[str, Any]:
    return {s.name: s for s in trace.data.spans}


def parent_names(trace: Any) -> dict[str, str | None]:
    """Each span's name -> its parent's name."""
    names = {s.span_id: s.name for s in trace.data.spans}
    return {s.name: names.get(s.parent_id) if s.parent_id else None for s in trace.data.spans}


def test_chain_invoke_records_a_span_per_runnable(captured):
    assert chain("Paris.").invoke({"question": "Capital of France?"}) == "Paris."

    (trace,) = captured.traces
    assert parent_names(trace) == {
        "RunnableSequence": None,
        "ChatPromptTemplate": "RunnableSequence",
        "FakeListChatModel": "RunnableSequence",
        "StrOutputParser": "RunnableSequence",
    }
    spans = spans_by_name(trace)
    root = spans["RunnableSequence"]
    assert (root.span_type, root.inputs, root.outputs) == (
        SpanType.CHAIN,
        {"question": "Capital of France?"},
        "Paris.",
    )
    assert spans["ChatPromptTemplate"].span_type == SpanType.CHAIN
    assert spans["StrOutputParser"].span_type == SpanType.PARSER
    assert spans["StrOutputParser"].outputs == "Paris."
    model = spans["FakeListChatModel"]
    assert model.span_type == SpanType.CHAT_MODEL
    assert model.attributes[SpanAttributeKey.PROVIDER] == "fakelistchatmodel"
    conversation = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
    ]
    assert model.attributes[SpanAttributeKey.CHAT_MESSAGES] == conversation
    assert model.inputs["messages"] == conversation[:2]
    assert model.outputs == {"role": "assistant", "content": "Paris."}
    assert all(s.status.status_code == "OK" for s in trace.data.spans)
    assert trace.info.state.value == "OK"


def test_tool_calls_and_token_usage_from_usage_metadata(captured):
    model = fl.tool_call_then_answer("get_weather", {"city": "Paris"}, "Sunny.")
    reply = model.invoke([HumanMessage("Weather in Paris?")])
    assert reply.tool_calls[0]["name"] == "get_weather"

    span = all_spans(captured)[0]
    assert span.span_type == SpanType.CHAT_MODEL
    assert span.name == "ToolCallingFakeModel"
    assert span.attributes[SpanAttributeKey.TOKEN_USAGE] == fl.USAGE
    assert span.attributes[SpanAttributeKey.CHAT_MESSAGES] == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
    ]


def test_text_llm_records_prompts_and_text(captured):
    llm = FakeListLLM(responses=["forty-two"])
    assert llm.invoke("The answer?") == "forty-two"

    span = all_spans(captured)[0]
    assert (span.name, span.span_type) == ("FakeListLLM", SpanType.LLM)
    assert span.inputs["prompts"] == ["The answer?"]
    assert span.outputs == "forty-two"


def test_retriever_span_has_the_query_and_documents(captured):
    retriever = fl.KeywordRetriever(documents=fl.DOCUMENTS)
    rag = {"context": retriever, "question": RunnableLambda(lambda q: q)} | RunnableLambda(
        lambda d: f"{len(d['context'])} documents for {d['question']}"
    )
    assert rag.invoke("paris") == "1 documents for paris"

    (trace,) = captured.traces
    spans = spans_by_name(trace)
    found = spans["KeywordRetriever"]
    assert found.span_type == SpanType.RETRIEVER
    assert found.inputs == {"query": "paris"}
    assert found.outputs == [
        {"page_content": "Paris is the capital of France.", "metadata": {"source": "a"}, "id": "d1"}
    ]
    assert parent_names(trace)["KeywordRetriever"] == "RunnableParallel<context,question>"


def test_tool_span(captured):
    @tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    assert add.invoke({"a": 2, "b": 3}) == 5

    span = all_spans(captured)[0]
    assert (span.name, span.span_type, span.inputs, span.outputs) == (
        "add",
        SpanType.TOOL,
        {"a": 2, "b": 3},
        5,
    )


def test_exception_in_a_tool_reaches_the_caller_unchanged(captured):
    error = ValueError("no such city")

    @tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        raise error

    pipeline = RunnableLambda(lambda q: {"city": q}) | get_weather
    with pytest.raises(ValueError) as raised:
        pipeline.invoke("Atlantis")
    assert raised.value is error

    (trace,) = captured.traces
    spans = spans_by_name(trace)
    failed = spans["get_weather"]
    assert failed.span_type == SpanType.TOOL
    assert failed.status.status_code == "ERROR"
    (event,) = failed.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "ValueError"
    assert event.attributes["exception.message"] == "no such city"
    assert spans["RunnableSequence"].status.status_code == "ERROR"
    assert trace.info.state.value == "ERROR"


def test_stream_records_the_assembled_output(captured):
    chunks = list(chain("Paris is the capital.").stream({"question": "Capital?"}))
    assert "".join(chunks) == "Paris is the capital."

    (trace,) = captured.traces
    spans = spans_by_name(trace)
    assert spans["RunnableSequence"].outputs == "Paris is the capital."
    assert spans["RunnableSequence"].inputs == {"question": "Capital?"}
    assert spans["FakeListChatModel"].outputs == {
        "role": "assistant",
        "content": "Paris is the capital.",
    }
    assert all(s.end_time_ns is not None for s in trace.data.spans)


def test_astream_and_ainvoke(captured):
    async def run() -> tuple[str, str]:
        streamed = "".join([c async for c in chain("One two.").astream({"question": "q"})])
        invoked = await chain("Three.").ainvoke({"question": "q"})
        return streamed, invoked

    assert asyncio.run(run()) == ("One two.", "Three.")
    first, second = captured.traces
    assert spans_by_name(first)["RunnableSequence"].outputs == "One two."
    assert spans_by_name(second)["FakeListChatModel"].outputs["content"] == "Three."


def test_stream_stopped_early_ends_the_model_span(captured):
    model = FakeListChatModel(responses=["one two three four"])
    for _chunk in model.stream("count"):
        break

    span = all_spans(captured)[0]
    assert span.status.status_code == "OK"
    assert span.attributes[SpanAttributeKey.GENERATOR_CLOSED_EARLY] is True
    assert span.outputs == {"role": "assistant", "content": "o"}


def test_abandoned_chain_stream_ends_its_spans_when_collected(captured):
    stream = chain("one two three").stream({"question": "count"})
    assert next(stream) == "o"
    del stream
    gc.collect()

    (trace,) = captured.traces
    assert trace.info.state.value == "OK"
    spans = spans_by_name(trace)
    assert set(spans) == {
        "RunnableSequence",
        "ChatPromptTemplate",
        "FakeListChatModel",
        "StrOutputParser",
    }
    assert all(s.end_time_ns is not None for s in trace.data.spans)
    # Closing a chain's stream, LangChain drains the model's stream for its own tracing.
    assert spans["FakeListChatModel"].outputs["content"] == "one two three"
    assert len(integration.INTEGRATION.handler.runs) == 0


def test_batch_and_abatch_give_one_trace_per_input(captured):
    questions = [{"question": f"q{i}"} for i in range(3)]
    echo = PROMPT | RunnableLambda(lambda p: p.messages[-1].content.upper())
    assert echo.batch(questions) == ["Q0", "Q1", "Q2"]
    assert asyncio.run(echo.abatch(questions)) == ["Q0", "Q1", "Q2"]

    traces = captured.traces
    assert len(traces) == 6
    for trace in traces:
        root = spans_by_name(trace)["RunnableSequence"]
        assert root.outputs == root.inputs["question"].upper()
        assert len(trace.data.spans) == 3


def test_messages_of_every_role_in_the_chat_format(captured):
    model = FakeListChatModel(responses=["done"])
    model.invoke(
        [
            SystemMessage("sys"),
            HumanMessage([{"type": "text", "text": "part one"}, {"type": "text", "text": "two"}]),
            AIMessage("earlier"),
        ]
    )
    span = all_spans(captured)[0]
    assert span.attributes[SpanAttributeKey.CHAT_MESSAGES] == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "part one\ntwo"},
        {"role": "assistant", "content": "earlier"},
        {"role": "assistant", "content": "done"},
    ]


def test_autolog_is_idempotent_and_disable_removes_the_hook_exactly(captured):
    integration.autolog(disable=True, silent=True)
    before = list(lc_context._configure_hooks)
    integration.autolog(silent=True)
    integration.autolog(silent=True)
    assert len(lc_context._configure_hooks) == len(before) + 1
    chain("a").invoke({"question": "q"})
    assert len(captured.traces) == 1

    integration.autolog(disable=True, silent=True)
    after = lc_context._configure_hooks
    assert len(after) == len(before)
    assert all(x is y for x, y in zip(after, before))
    assert not integration.INTEGRATION.enabled
    chain("b").invoke({"question": "q"})
    assert len(captured.traces) == 1

    integration.autolog(log_traces=True, silent=True)
    chain("c").invoke({"question": "q"})
    assert len(captured.traces) == 2


def test_threadline_autolog_includes_langchain(captured):
    integration.autolog(disable=True, silent=True)
    threadline.autolog(silent=True)
    assert integration.INTEGRATION.enabled
    threadline.autolog(disable=True, silent=True)
    assert not integration.INTEGRATION.enabled


def test_bad_option_is_refused():
    with pytest.raises(InvalidArgumentError, match="disable"):
        integration.autolog(disable="yes")  # type: ignore[arg-type]


def test_tracing_disabled_records_nothing_and_runs_normally(captured):
    threadline.tracing.disable()
    assert chain("fine").invoke({"question": "q"}) == "fine"
    threadline.tracing.enable()
    assert captured.traces == []


def test_no_run_is_left_open_or_current(captured):
    chain("x").invoke({"question": "q"})
    list(chain("y z").stream({"question": "q"}))
    FakeListChatModel(responses=["a", "b"]).generate([[HumanMessage("1")], [HumanMessage("2")]])
    handler = integration.INTEGRATION.handler
    assert len(handler.runs) == 0
    assert threadline.get_current_active_span() is None


def test_a_chain_that_reports_agent_actions_is_an_agent(captured):
    """What a legacy ``AgentExecutor`` does: ``on_agent_action`` on its chain run."""
    from langchain_core.agents import AgentAction

    def decide(question: str, run_manager: Any) -> str:
        run_manager.on_agent_action(AgentAction(tool="search", tool_input=question, log=""))
        return "done"

    assert RunnableLambda(decide).invoke("q") == "done"
    (span,) = all_spans(captured)
    assert (span.name, span.span_type) == ("decide", SpanType.AGENT)


def test_astream_events_still_works_and_is_recorded(captured):
    async def run() -> list[str]:
        return [e["event"] async for e in chain("ok").astream_events({"question": "q"})]

    events = asyncio.run(run())
    assert events[0] == "on_chain_start" and events[-1] == "on_chain_end"
    (trace,) = captured.traces
    assert spans_by_name(trace)["RunnableSequence"].outputs == "ok"
