"""``threadline.pydantic_ai.autolog()``: real Pydantic AI agents (``TestModel``,
``FunctionModel``, and ``OpenAIChatModel`` against the local OpenAI fake) recorded through
their own OpenTelemetry instrumentation and the bridge."""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.instrumented import InstrumentationSettings
from pydantic_ai.models.test import TestModel

import threadline
from tests.integrations import _fake_openai as fake
from tests.integrations.conftest import API_KEY
from threadline.entities.keys import SpanAttributeKey
from threadline.integrations import pydantic_ai as tl_pydantic_ai


@pytest.fixture(autouse=True)
def _close_event_loop() -> Iterator[None]:
    """``run_sync`` leaves an event loop set on the thread for the next call (Pydantic AI's
    design): close it after each test, or its sockets warn when it is collected."""
    yield
    _close_thread_loop()


def _close_thread_loop() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            loop = asyncio.get_event_loop_policy().get_event_loop()
        except RuntimeError:
            return
    if not loop.is_running():
        loop.close()
        asyncio.set_event_loop(None)


def _by_type(trace: Any, span_type: str) -> list[Any]:
    return [s for s in trace.data.spans if s.span_type == span_type]


def _agent(**kwargs: Any) -> Agent[None, str]:
    agent: Agent[None, str] = Agent(TestModel(), name="helper", **kwargs)

    @agent.tool_plain
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return inside(a + b)

    return agent


@threadline.trace
def inside(total: int) -> int:
    return total


def test_a_run_with_a_tool_call_under_trace(captured) -> None:
    tl_pydantic_ai.autolog(silent=True)
    agent = _agent()

    @threadline.trace
    def ask() -> str:
        return agent.run_sync("what is 1+2?").output

    assert ask() == '{"add":0}'
    (trace,) = captured.traces
    (root,) = [s for s in trace.data.spans if s.parent_id is None]
    assert root.name == "ask"
    (run,) = _by_type(trace, "AGENT")
    assert run.parent_id == root.span_id and run.name == "invoke_agent helper"
    assert run.inputs == {"user_prompt": "what is 1+2?"}
    assert run.outputs == {"add": 0}
    chats = _by_type(trace, "CHAT_MODEL")
    assert len(chats) == 2 and {c.parent_id for c in chats} == {run.span_id}
    first = min(chats, key=lambda s: s.start_time_ns)
    assert first.attributes[SpanAttributeKey.MODEL] == "test"
    assert first.attributes[SpanAttributeKey.TOKEN_USAGE]["input_tokens"] > 0
    messages = first.attributes[SpanAttributeKey.CHAT_MESSAGES]
    assert messages[0] == {"role": "user", "content": "what is 1+2?"}
    assert messages[1]["tool_calls"][0]["function"]["name"] == "add"
    assert first.attributes[SpanAttributeKey.CHAT_TOOLS][0]["name"] == "add"
    (tool,) = _by_type(trace, "TOOL")
    assert tool.name == "execute_tool add" and tool.parent_id == run.span_id
    assert tool.inputs == {"a": 0, "b": 0} and tool.outputs == 0
    (traced,) = [s for s in trace.data.spans if s.name == "inside"]
    assert traced.parent_id == tool.span_id  # @trace inside the tool nests under it


def test_an_exception_in_a_tool_reaches_the_caller_and_marks_the_spans(captured) -> None:
    tl_pydantic_ai.autolog(silent=True)
    agent: Agent[None, str] = Agent(TestModel(), name="failing")

    class ToolFailed(Exception):
        pass

    @agent.tool_plain
    def explode() -> str:
        """Always fails."""
        raise ToolFailed("the tool broke")

    with pytest.raises(ToolFailed, match="the tool broke"):
        agent.run_sync("go")
    (trace,) = captured.traces
    (tool,) = _by_type(trace, "TOOL")
    assert tool.status.status_code == "ERROR"
    assert any(e.name == "exception" for e in tool.events)
    (run,) = _by_type(trace, "AGENT")
    assert run.status.status_code == "ERROR" and trace.info.state == "ERROR"


def test_streaming_and_async_runs(captured) -> None:
    tl_pydantic_ai.autolog(silent=True)
    agent: Agent[None, str] = Agent(TestModel(custom_output_text="streamed answer"), name="s")

    async def main() -> tuple[str, str]:
        async with agent.run_stream("stream please") as result:
            streamed = "".join([chunk async for chunk in result.stream_text(delta=True)])
        plain = (await agent.run("async please")).output
        return streamed, plain

    assert asyncio.run(main()) == ("streamed answer", "streamed answer")
    streamed, plain = captured.traces
    for trace, prompt in ((streamed, "stream please"), (plain, "async please")):
        (run,) = _by_type(trace, "AGENT")
        assert run.inputs == {"user_prompt": prompt} and run.outputs == "streamed answer"
        (chat,) = _by_type(trace, "CHAT_MODEL")
        assert chat.parent_id == run.span_id
        reply = chat.attributes[SpanAttributeKey.CHAT_MESSAGES][-1]
        assert reply == {"role": "assistant", "content": "streamed answer"}


def test_concurrent_runs_in_threads_and_tasks_do_not_mix(captured) -> None:
    tl_pydantic_ai.autolog(silent=True)
    agent = _agent()

    def in_thread(n: int) -> None:
        agent.run_sync(f"thread {n}")
        _close_thread_loop()

    threads = [threading.Thread(target=in_thread, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    async def tasks() -> None:
        await asyncio.gather(*(agent.run(f"task {n}") for n in range(2)))

    asyncio.run(tasks())
    traces = captured.traces
    assert len(traces) == 4
    prompts = set()
    for trace in traces:
        (run,) = _by_type(trace, "AGENT")
        prompts.add(run.inputs["user_prompt"])
        assert len(_by_type(trace, "TOOL")) == 1 and len(_by_type(trace, "CHAT_MODEL")) == 2
        ids = {s.span_id for s in trace.data.spans}
        assert all(s.parent_id in ids for s in trace.data.spans if s.parent_id is not None)
    assert prompts == {"thread 0", "thread 1", "task 0", "task 1"}


def test_cost_of_a_priced_model(captured) -> None:
    tl_pydantic_ai.autolog(silent=True)

    def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[TextPart("42")])

    agent: Agent[None, str] = Agent(FunctionModel(reply, model_name="gpt-4o-mini"))
    assert agent.run_sync("the answer?").output == "42"
    (trace,) = captured.traces
    (chat,) = _by_type(trace, "CHAT_MODEL")
    assert chat.attributes[SpanAttributeKey.MODEL] == "gpt-4o-mini"
    assert chat.attributes[SpanAttributeKey.COST]["total_cost"] > 0


def test_with_openai_autolog_the_model_call_is_recorded_once(captured, openai_server) -> None:
    """Pydantic AI's OpenAI model calls the openai SDK: with ``threadline.openai.autolog()``
    on too, that call is not recorded a second time under Pydantic AI's chat span."""
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    threadline.openai.autolog(silent=True)
    tl_pydantic_ai.autolog(silent=True)
    provider = OpenAIProvider(base_url=openai_server.url + "/v1", api_key=API_KEY)
    agent: Agent[None, str] = Agent(OpenAIChatModel("gpt-4o-mini", provider=provider))
    try:
        assert agent.run_sync("Hello!").output == fake.REPLY
    finally:  # on the loop run_sync used, before the fixture closes it
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            asyncio.get_event_loop().run_until_complete(provider.client.close())
    (trace,) = captured.traces
    (chat,) = _by_type(trace, "CHAT_MODEL")
    assert chat.attributes["otel.scope.name"] == "pydantic-ai"
    assert [s.span_type for s in trace.data.spans] == ["AGENT", "CHAT_MODEL"]
    assert chat.attributes[SpanAttributeKey.TOKEN_USAGE]["input_tokens"] == fake.PROMPT_TOKENS
    assert API_KEY not in trace.to_json()


def test_disable_restores_the_previous_setting(captured) -> None:
    mine = InstrumentationSettings()
    Agent.instrument_all(mine)
    try:
        tl_pydantic_ai.autolog(silent=True)
        tl_pydantic_ai.autolog(silent=True)  # idempotent
        assert tl_pydantic_ai.INTEGRATION.enabled
        assert Agent._instrument_default is not mine
        tl_pydantic_ai.autolog(disable=True, silent=True)
        assert Agent._instrument_default is mine
        assert not tl_pydantic_ai.INTEGRATION.enabled
    finally:
        Agent.instrument_all(False)
    tl_pydantic_ai.autolog(silent=True)
    tl_pydantic_ai.autolog(log_traces=False, silent=True)
    assert Agent._instrument_default is False
    Agent(TestModel()).run_sync("not traced")
    assert captured.traces == []


def test_threadline_autolog_includes_pydantic_ai(captured) -> None:
    threadline.autolog(silent=True)
    assert tl_pydantic_ai.INTEGRATION.enabled
    Agent(TestModel()).run_sync("hello")
    assert len(captured.traces) == 1
    threadline.autolog(disable=True, silent=True)
    assert not tl_pydantic_ai.INTEGRATION.enabled
