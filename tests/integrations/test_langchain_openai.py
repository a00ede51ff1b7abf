"""``ChatOpenAI`` against the local OpenAI fake, with LangChain's and OpenAI's autologging.

Decision under test: with both on, a chat model run's SDK call is not recorded apart (one
span per model call, its tokens counted once); with only OpenAI's on, the SDK call is.
"""

from __future__ import annotations

import asyncio

import pytest
from langchain.agents import create_agent
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

import threadline
from tests.integrations import _fake_langchain as fl
from tests.integrations import _fake_openai as fake
from tests.integrations.conftest import API_KEY, all_spans, assert_no_secret
from threadline.entities.keys import SpanAttributeKey
from threadline.entities.span import SpanType

USAGE = fake.usage(len(fake.pieces({})))
TOKENS = {
    "input_tokens": USAGE["prompt_tokens"],
    "output_tokens": USAGE["completion_tokens"],
    "total_tokens": USAGE["total_tokens"],
}


@pytest.fixture
def model(openai_url: str) -> ChatOpenAI:
    return ChatOpenAI(model="gpt-4o-mini", base_url=openai_url, api_key=API_KEY, max_retries=0)


@pytest.fixture
def both() -> None:
    threadline.langchain.autolog(silent=True)
    threadline.openai.autolog(silent=True)


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def test_invoke_is_recorded_once_by_the_chat_model_span(captured, model, both):
    assert model.invoke("Hello!").content == fake.REPLY

    (span,) = all_spans(captured)
    assert (span.name, span.span_type) == ("ChatOpenAI", SpanType.CHAT_MODEL)
    attributes = span.attributes
    assert attributes[SpanAttributeKey.MODEL] == "gpt-4o-mini"
    assert attributes[SpanAttributeKey.PROVIDER] == "openai"
    assert attributes[SpanAttributeKey.TOKEN_USAGE] == TOKENS
    assert attributes[SpanAttributeKey.FINISH_REASON] == "stop"
    assert attributes[SpanAttributeKey.COST]["total_cost"] > 0
    assert attributes[SpanAttributeKey.CHAT_MESSAGES] == [
        {"role": "user", "content": "Hello!"},
        {"role": "assistant", "content": fake.REPLY},
    ]
    assert span.inputs["model"] == "gpt-4o-mini"
    assert_no_secret(captured)


def test_without_langchain_autolog_the_sdk_call_is_recorded(captured, model):
    threadline.openai.autolog(silent=True)
    model.invoke("Hello!")
    (span,) = all_spans(captured)
    assert span.name == "openai.chat.completions.create"


def test_stream_and_astream_are_recorded_once(captured, model, both):
    assert "".join(c.content for c in model.stream("Hello!")) == fake.REPLY

    async def run() -> str:
        return "".join([c.content async for c in model.astream("Hello!")])

    assert asyncio.run(run()) == fake.REPLY
    spans = all_spans(captured)
    assert [(s.name, s.parent_id) for s in spans] == [("ChatOpenAI", None), ("ChatOpenAI", None)]
    for span in spans:
        assert span.outputs == {"role": "assistant", "content": fake.REPLY}
    assert threadline.get_current_active_span() is None


def test_stream_with_usage_reports_tokens(captured, openai_url, both):
    model = ChatOpenAI(
        model="gpt-4o-mini",
        base_url=openai_url,
        api_key=API_KEY,
        max_retries=0,
        stream_usage=True,
    )
    list(model.stream("Hello!"))
    (span,) = all_spans(captured)
    assert span.attributes[SpanAttributeKey.TOKEN_USAGE] == TOKENS


def test_tool_calling_agent_over_http(captured, model, both):
    agent = create_agent(model, tools=[get_weather])
    result = agent.invoke({"messages": [("user", "Weather in Paris?")]})
    assert result["messages"][-1].content == fake.REPLY

    (trace,) = captured.traces
    spans = fl.agent_spans(trace)
    names = {s.span_id: s.name for s in spans}
    assert [(s.name, s.span_type, names.get(s.parent_id)) for s in spans] == [
        ("LangGraph", SpanType.AGENT, None),
        ("model", SpanType.CHAIN, "LangGraph"),
        ("ChatOpenAI", SpanType.CHAT_MODEL, "model"),
        ("tools", SpanType.CHAIN, "LangGraph"),
        ("get_weather", SpanType.TOOL, "tools"),
        ("model", SpanType.CHAIN, "LangGraph"),
        ("ChatOpenAI", SpanType.CHAT_MODEL, "model"),
    ]
    first_call = spans[2]
    tools = first_call.attributes[SpanAttributeKey.CHAT_TOOLS]
    assert [t["name"] for t in tools] == ["get_weather"]
    assert tools[0]["parameters"]["properties"] == {"city": {"type": "string"}}
    reply = first_call.attributes[SpanAttributeKey.CHAT_MESSAGES][-1]
    assert reply["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": fake.TOOL_ARGUMENTS,
    }
    assert first_call.attributes[SpanAttributeKey.FINISH_REASON] == "tool_calls"
    assert spans[4].outputs["content"] == "sunny in Paris"
    # Tokens are counted once: only the chat model spans carry them.
    counted = [s.name for s in spans if SpanAttributeKey.TOKEN_USAGE in s.attributes]
    assert counted == ["ChatOpenAI", "ChatOpenAI"]
    assert_no_secret(captured)


def test_an_api_error_reaches_the_caller_and_the_span_is_error(captured, openai_url, both):
    import openai

    broken = ChatOpenAI(model="error-500", base_url=openai_url, api_key=API_KEY, max_retries=0)
    with pytest.raises(openai.InternalServerError) as raised:
        broken.invoke("Hello!")
    (span,) = all_spans(captured)
    assert span.status.status_code == "ERROR"
    # langchain-openai re-raises the SDK's error as its own subclass: the one the caller sees
    assert span.events[0].attributes["exception.type"] == type(raised.value).__name__
    assert span.attributes[SpanAttributeKey.CHAT_MESSAGES] == [
        {"role": "user", "content": "Hello!"}
    ]
