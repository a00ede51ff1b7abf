"""``threadline.openai_agents.autolog()``: the real OpenAI Agents SDK against the fake server.

Agents run the SDK's own models (``OpenAIResponsesModel``, the SDK's default, and
``OpenAIChatCompletionsModel``) on a real ``AsyncOpenAI`` client that talks HTTP to
``_fake_openai``: a request offering tools gets a call of the first tool with
``{"city": "Paris"}``, one after a tool result gets the text ``REPLY``.

The SDK's trace provider is global: each test runs with the provider's processors replaced
by one "user" processor that records what it receives (it also keeps the SDK's default
exporter, which would send traces to OpenAI, out of the tests), and puts the list back.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

agents = pytest.importorskip("agents")

from agents import (  # noqa: E402
    Agent,
    GuardrailFunctionOutput,
    InputGuardrailTripwireTriggered,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    RunConfig,
    Runner,
    UserError,
    custom_span,
    function_tool,
    input_guardrail,
)
from agents.run import AgentRunner  # noqa: E402
from agents.tracing import TracingProcessor, get_trace_provider  # noqa: E402

import threadline  # noqa: E402
from tests.integrations import _fake_openai as fake  # noqa: E402
from tests.integrations.conftest import API_KEY, all_spans, assert_no_secret  # noqa: E402
from threadline.entities.keys import SpanAttributeKey  # noqa: E402
from threadline.entities.span import SpanType  # noqa: E402
from threadline.integrations import _chat_format as cf  # noqa: E402
from threadline.integrations import openai_agents as tl_agents  # noqa: E402
from threadline.tracing import _safety  # noqa: E402

MODEL = "gpt-4o-mini"
RESPONSE_MODEL = MODEL + fake.RESPONSE_MODEL_SUFFIX
INSTRUCTIONS = "You are a helpful assistant."
TOOL_REPLY = "sunny in Paris"
REPLY_TOKENS = {
    "input_tokens": fake.PROMPT_TOKENS,
    "output_tokens": len(fake.pieces({})),
    "total_tokens": fake.PROMPT_TOKENS + len(fake.pieces({})),
}
TOOL_CALL_TOKENS = {"input_tokens": fake.PROMPT_TOKENS, "output_tokens": 9, "total_tokens": 21}


class Recorder(TracingProcessor):
    """A user's own processor: what it was given, by span type."""

    def __init__(self) -> None:
        self.traces: list[str] = []
        self.spans: list[str] = []
        self._lock = threading.Lock()

    def on_trace_start(self, trace: Any) -> None:
        with self._lock:
            self.traces.append(trace.name)

    def on_trace_end(self, trace: Any) -> None:
        pass

    def on_span_start(self, span: Any) -> None:
        pass

    def on_span_end(self, span: Any) -> None:
        with self._lock:
            self.spans.append(span.span_data.type)

    def shutdown(self) -> None:
        pass

    def force_flush(self) -> None:
        pass


def processors() -> tuple[Any, ...]:
    return tuple(get_trace_provider()._multi_processor._processors)


@pytest.fixture(autouse=True)
def user_processor() -> Iterator[Recorder]:
    provider = get_trace_provider()
    saved = processors()
    recorder = Recorder()
    provider.set_processors([recorder])
    yield recorder
    provider.set_processors(list(saved))


@pytest.fixture(autouse=True)
def _no_internal_errors() -> Iterator[None]:
    """The SDK logs and swallows a processor's exceptions: make them fail the test."""
    yield
    errors = {k: n for k, n in _safety.error_counts().items() if k.startswith("openai_agents")}
    assert errors == {}


def async_client(url: str) -> Any:
    """A fresh client (an ``AsyncOpenAI`` client belongs to one event loop) that keeps no
    connection open after a request, so none outlives the test's event loop."""
    import openai

    limits = type(openai.DEFAULT_CONNECTION_LIMITS)(max_connections=10, max_keepalive_connections=0)
    http = openai.DefaultAsyncHttpxClient(limits=limits)
    return openai.AsyncOpenAI(base_url=url, api_key=API_KEY, max_retries=0, http_client=http)


def responses_model(url: str) -> OpenAIResponsesModel:
    return OpenAIResponsesModel(model=MODEL, openai_client=async_client(url))


def chat_model(url: str) -> OpenAIChatCompletionsModel:
    return OpenAIChatCompletionsModel(model=MODEL, openai_client=async_client(url))


def run_sync(*args: Any, **kwargs: Any) -> Any:
    """``Runner.run_sync`` in a new thread, in the caller's context.

    The SDK runs every ``run_sync`` of a thread on that thread's one event loop, which it
    leaves open after shutting its async generators down: a second call there warns (the
    SDK's behaviour, traced or not). A thread of its own, whose loop is closed after."""
    context = contextvars.copy_context()
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(context.run, run_sync_here, *args, **kwargs).result()


def run_sync_here(*args: Any, **kwargs: Any) -> Any:
    try:
        return Runner.run_sync(*args, **kwargs)
    finally:
        policy = asyncio.get_event_loop_policy()
        policy.get_event_loop().close()
        policy.set_event_loop(None)


@threadline.trace
def shout(city: str) -> str:
    return city.upper()


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


@function_tool
def get_weather_traced(city: str) -> str:
    """The weather in a city, through traced code."""
    return f"sunny in {shout(city)}"


@function_tool(failure_error_function=None)
def broken_weather(city: str) -> str:
    """A tool that fails."""
    raise ValueError(f"no weather for {city}")


@function_tool
def flaky_weather(city: str) -> str:
    """A tool that fails; the SDK tells the model instead of raising."""
    raise ValueError(f"no weather for {city}")


def agent(url: str, *, tools: list[Any] | None = None, name: str = "Assistant", **kw: Any) -> Any:
    model = kw.pop("model", None) or responses_model(url)
    return Agent(name=name, instructions=INSTRUCTIONS, model=model, tools=tools or [], **kw)


def by_name(trace: Any) -> dict[str, Any]:
    return {s.name: s for s in trace.data.spans}


def children(trace: Any, parent: Any) -> list[str]:
    return [s.name for s in trace.data.spans if s.parent_id == parent.span_id]


def only_trace(captured: Any) -> Any:
    traces = captured.traces
    assert len(traces) == 1, [[s.name for s in t.data.spans] for t in traces]
    return traces[0]


# --- runs ----------------------------------------------------------------------------------


def test_plain_run(captured, openai_url, user_processor):
    tl_agents.autolog()
    result = run_sync(agent(openai_url), "Hello!")
    assert result.final_output == fake.REPLY

    trace = only_trace(captured)
    assert [(s.name, s.span_type) for s in trace.data.spans] == [
        ("Agent workflow", SpanType.AGENT),
        ("Assistant", SpanType.AGENT),
        ("turn 1", SpanType.CHAIN),
        ("response", SpanType.CHAT_MODEL),
    ]
    root, agent_span, turn, response = trace.data.spans
    assert root.parent_id is None
    assert agent_span.parent_id == root.span_id
    assert turn.parent_id == agent_span.span_id and response.parent_id == turn.span_id
    assert root.inputs == {"input": "Hello!"}
    assert root.outputs == fake.REPLY
    assert trace.info.request_preview == '{"input":"Hello!"}'
    assert trace.info.response_preview == fake.REPLY
    assert root.attributes["openai_agents.trace_id"].startswith("trace_")
    assert agent_span.attributes["openai_agents.agent.output_type"] == "str"
    assert turn.attributes["openai_agents.agent"] == "Assistant"

    attributes = response.attributes
    assert attributes[SpanAttributeKey.MODEL] == RESPONSE_MODEL
    assert attributes[SpanAttributeKey.PROVIDER] == "openai"
    assert attributes[SpanAttributeKey.TOKEN_USAGE] == REPLY_TOKENS
    assert attributes[cf.CACHED_INPUT_TOKENS] == fake.CACHED_TOKENS
    assert attributes[cf.CHAT_MESSAGES] == [
        {"role": "system", "content": INSTRUCTIONS},
        {"role": "user", "content": "Hello!"},
        {"role": "assistant", "content": fake.REPLY},
    ]
    assert response.inputs["input"] == [{"content": "Hello!", "role": "user"}]
    assert response.outputs["output"][0]["content"][0]["text"] == fake.REPLY
    assert all(s.status.status_code == "OK" for s in trace.data.spans)
    assert_no_secret(captured)
    # The user's processor still gets every trace and span.
    assert user_processor.traces == ["Agent workflow"]
    assert sorted(user_processor.spans) == ["agent", "response", "task", "turn"]


def test_tool_call_then_answer(captured, openai_url):
    tl_agents.autolog()
    result = run_sync(agent(openai_url, tools=[get_weather]), "Weather in Paris?")
    assert result.final_output == fake.REPLY

    trace = only_trace(captured)
    names = [s.name for s in trace.data.spans]
    assert names == [
        "Agent workflow",
        "Assistant",
        "turn 1",
        "response",
        "get_weather",
        "turn 2",
        "response",
    ]
    spans = by_name(trace)
    tool = spans["get_weather"]
    assert tool.span_type == SpanType.TOOL
    assert tool.parent_id == spans["turn 1"].span_id
    assert tool.inputs == {"city": "Paris"}
    assert tool.outputs == TOOL_REPLY

    first, second = (s for s in trace.data.spans if s.name == "response")
    call = cf.tool_call("call_fake1", "get_weather", fake.TOOL_ARGUMENTS)
    assert first.attributes[cf.CHAT_MESSAGES][-1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [call],
    }
    assert first.attributes[cf.CHAT_TOOLS][0]["name"] == "get_weather"
    assert first.attributes[SpanAttributeKey.TOKEN_USAGE] == TOOL_CALL_TOKENS
    assert second.attributes[cf.CHAT_MESSAGES][-3:] == [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "content": TOOL_REPLY, "tool_call_id": "call_fake1"},
        {"role": "assistant", "content": fake.REPLY},
    ]


def test_chat_completions_model_is_a_generation_span(captured, openai_url):
    tl_agents.autolog()
    result = run_sync(
        agent(openai_url, tools=[get_weather], model=chat_model(openai_url)), "Weather?"
    )
    assert result.final_output == fake.REPLY

    trace = only_trace(captured)
    generations = [s for s in trace.data.spans if s.name == "generation"]
    assert [s.span_type for s in generations] == [SpanType.CHAT_MODEL] * 2
    first, second = generations
    assert first.attributes[SpanAttributeKey.MODEL] == MODEL
    assert first.attributes[SpanAttributeKey.TOKEN_USAGE] == {
        "input_tokens": fake.PROMPT_TOKENS,
        "output_tokens": 9,
        "total_tokens": 21,
    }
    assert first.attributes[cf.CHAT_MESSAGES][:2] == [
        {"role": "system", "content": INSTRUCTIONS},
        {"role": "user", "content": "Weather?"},
    ]
    assert first.attributes[cf.CHAT_MESSAGES][-1]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": fake.TOOL_ARGUMENTS,
    }
    assert second.attributes[cf.CHAT_MESSAGES][-1] == {"role": "assistant", "content": fake.REPLY}
    assert "base_url" in first.inputs["model_config"]
    assert_no_secret(captured)


def stream_event_types(url: str, question: str) -> tuple[list[str], Any]:
    async def main() -> tuple[list[str], Any]:
        result = Runner.run_streamed(agent(url, tools=[get_weather]), question)
        kinds = [event.type async for event in result.stream_events()]
        return kinds, result.final_output

    return asyncio.run(main())


def test_streamed_run(captured, openai_url):
    untraced, _ = stream_event_types(openai_url, "Weather?")
    tl_agents.autolog()
    kinds, final = stream_event_types(openai_url, "Weather?")
    assert kinds == untraced  # the caller sees the same stream
    assert final == fake.REPLY

    trace = only_trace(captured)
    assert [s.name for s in trace.data.spans] == [
        "Agent workflow",
        "Assistant",
        "turn 1",
        "response",
        "get_weather",
        "turn 2",
        "response",
    ]
    root = trace.data.spans[0]
    assert root.inputs == {"input": "Weather?"}
    assert root.outputs == fake.REPLY
    last = trace.data.spans[-1]
    assert last.attributes[cf.CHAT_MESSAGES][-1] == {"role": "assistant", "content": fake.REPLY}
    assert last.attributes[SpanAttributeKey.TOKEN_USAGE] == REPLY_TOKENS


def test_async_run(captured, openai_url):
    tl_agents.autolog()

    async def main() -> Any:
        return await Runner.run(agent(openai_url, tools=[get_weather]), "Weather?")

    assert asyncio.run(main()).final_output == fake.REPLY
    trace = only_trace(captured)
    assert trace.data.spans[0].outputs == fake.REPLY
    assert [s.name for s in trace.data.spans].count("response") == 2


def test_handoff(captured, openai_url):
    tl_agents.autolog()
    specialist = agent(openai_url, name="Specialist")
    triage = agent(openai_url, name="Triage", handoffs=[specialist])
    result = run_sync(triage, "Help me")
    assert result.final_output == fake.REPLY
    assert result.last_agent.name == "Specialist"

    trace = only_trace(captured)
    spans = by_name(trace)
    handoff = spans["handoff"]
    assert handoff.span_type == SpanType.TOOL
    assert handoff.inputs == {"from_agent": "Triage"}
    assert handoff.outputs == {"to_agent": "Specialist"}
    assert spans["Triage"].span_type == spans["Specialist"].span_type == SpanType.AGENT
    root = trace.data.spans[0]
    assert children(trace, root) == ["Triage", "Specialist"]
    assert spans["Triage"].attributes["openai_agents.agent.handoffs"] == ["Specialist"]


# --- errors ---------------------------------------------------------------------------------


def test_exception_inside_a_tool_reaches_the_caller(captured, openai_url):
    tl_agents.autolog()
    with pytest.raises(UserError) as raised:
        run_sync(agent(openai_url, tools=[broken_weather]), "Weather?")
    assert isinstance(raised.value.__cause__, ValueError)  # what the SDK raises untraced

    trace = only_trace(captured)
    assert trace.info.state.value == "ERROR"
    spans = by_name(trace)
    tool = spans["broken_weather"]
    assert tool.status.status_code == "ERROR"
    assert tool.status.description == "Error running tool: no weather for Paris"
    (event,) = tool.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "ValueError"
    assert "no weather for Paris" in event.attributes["exception.stacktrace"]
    root = trace.data.spans[0]
    assert root.status.status_code == "ERROR"
    assert root.events[0].attributes["exception.type"] == "UserError"
    assert spans["Assistant"].status.status_code == "ERROR"


def test_tool_error_the_sdk_handles_leaves_the_run_ok(captured, openai_url):
    tl_agents.autolog()
    result = run_sync(agent(openai_url, tools=[flaky_weather]), "Weather?")
    assert result.final_output == fake.REPLY

    trace = only_trace(captured)
    tool = by_name(trace)["flaky_weather"]
    assert tool.status.status_code == "ERROR"
    # The exception was handled before the span ended: the SDK's report of it is recorded.
    assert tool.status.description.startswith("Error running tool (non-fatal)")
    (event,) = tool.events
    assert event.attributes["exception.type"] == "SpanError"
    assert event.attributes["exception.message"] == tool.status.description
    assert trace.data.spans[0].status.status_code == "OK"


def test_exception_inside_a_tool_of_a_streamed_run(captured, openai_url):
    tl_agents.autolog()

    async def main() -> None:
        result = Runner.run_streamed(agent(openai_url, tools=[broken_weather]), "Weather?")
        async for _ in result.stream_events():
            pass

    with pytest.raises(UserError):
        asyncio.run(main())
    trace = only_trace(captured)
    root = trace.data.spans[0]
    assert root.status.status_code == "ERROR"
    assert root.events[0].attributes["exception.type"] == "UserError"
    assert by_name(trace)["broken_weather"].status.status_code == "ERROR"


def test_guardrail_tripwire(captured, openai_url):
    tl_agents.autolog()

    @input_guardrail(run_in_parallel=False)
    def no_weather(ctx: Any, agent: Any, text: Any) -> GuardrailFunctionOutput:
        return GuardrailFunctionOutput(output_info={"why": "weather"}, tripwire_triggered=True)

    with pytest.raises(InputGuardrailTripwireTriggered):
        run_sync(agent(openai_url, input_guardrails=[no_weather]), "Weather?")
    trace = only_trace(captured)
    guardrail = by_name(trace)["no_weather"]
    assert guardrail.span_type == SpanType.CHAIN
    assert guardrail.outputs == {"triggered": True}
    assert guardrail.parent_id == by_name(trace)["turn 1"].span_id
    assert by_name(trace)["turn 1"].status.status_code == "ERROR"
    root = trace.data.spans[0]
    assert root.status.status_code == "ERROR"
    assert root.events[0].attributes["exception.type"] == "InputGuardrailTripwireTriggered"


def test_guardrail_that_passes(captured, openai_url):
    tl_agents.autolog()

    @input_guardrail
    def allowed(ctx: Any, agent: Any, text: Any) -> GuardrailFunctionOutput:
        return GuardrailFunctionOutput(output_info=None, tripwire_triggered=False)

    run_sync(agent(openai_url, input_guardrails=[allowed]), "Hi")
    guardrail = by_name(only_trace(captured))["allowed"]
    assert guardrail.outputs == {"triggered": False}
    assert guardrail.status.status_code == "OK"


@function_tool(needs_approval=True)
def guarded_weather(city: str) -> str:
    """A tool that needs the user's approval."""
    return f"sunny in {city}"


def test_a_run_resumed_after_an_approval_is_a_trace_of_its_own(captured, openai_url):
    tl_agents.autolog()

    async def main() -> Any:
        assistant = agent(openai_url, tools=[guarded_weather])
        paused = await Runner.run(assistant, "Weather?")
        state = paused.to_state()
        for item in paused.interruptions:
            state.approve(item)
        return await Runner.run(assistant, state)

    assert asyncio.run(main()).final_output == fake.REPLY
    first, resumed = captured.traces
    assert first.data.spans[0].inputs == {"input": "Weather?"}
    assert by_name(first)["guarded_weather"].outputs is None  # not run: awaiting approval
    # The SDK carries on its first trace, which threadline has already written: the resumed
    # part is a trace of its own, rooted at the run's task span.
    root = resumed.data.spans[0]
    assert root.parent_id is None and root.name == "Agent workflow"
    assert root.inputs == {"input": "RunState"} and root.outputs == fake.REPLY
    assert by_name(resumed)["guarded_weather"].outputs == TOOL_REPLY
    ids = {s.span_id for s in resumed.data.spans}
    assert all(s.parent_id in ids for s in resumed.data.spans[1:])


# --- nesting --------------------------------------------------------------------------------


def test_run_inside_threadline_trace(captured, openai_url):
    tl_agents.autolog()

    @threadline.trace
    def answer(question: str) -> str:
        return run_sync(agent(openai_url), question).final_output

    assert answer("Hello!") == fake.REPLY
    trace = only_trace(captured)
    root, workflow = trace.data.spans[:2]
    assert root.name == "answer" and root.parent_id is None
    assert workflow.name == "Agent workflow" and workflow.parent_id == root.span_id
    assert workflow.inputs == {"input": "Hello!"}
    assert trace.info.request_preview == '{"question":"Hello!"}'


def test_threadline_trace_inside_a_tool(captured, openai_url):
    tl_agents.autolog()
    result = run_sync(agent(openai_url, tools=[get_weather_traced]), "Weather?")
    assert result.final_output == "Hello! How can I help you today?"

    spans = by_name(only_trace(captured))
    assert spans["shout"].parent_id == spans["get_weather_traced"].span_id
    assert spans["shout"].outputs == "PARIS"
    assert spans["get_weather_traced"].outputs == "sunny in PARIS"


def test_a_run_started_by_traced_code_inside_a_tool(captured, openai_url):
    """Tool → @trace → Runner.run: the inner run's spans nest under the @trace span."""
    tl_agents.autolog()
    inner = agent(openai_url, name="Inner")

    @threadline.trace
    async def consult(city: str) -> str:
        result = await Runner.run(inner, f"About {city}")
        return result.final_output

    @function_tool
    async def ask_inner(city: str) -> str:
        """Ask another agent."""
        return await consult(city)

    async def main() -> Any:
        return await Runner.run(agent(openai_url, tools=[ask_inner]), "Weather?")

    assert asyncio.run(main()).final_output == fake.REPLY
    trace = only_trace(captured)
    spans = by_name(trace)
    assert spans["consult"].parent_id == spans["ask_inner"].span_id
    # The inner run shares the outer SDK trace: its task span holds its input and output.
    inner_tasks = [s for s in trace.data.spans if s.parent_id == spans["consult"].span_id]
    assert [s.name for s in inner_tasks] == ["Agent workflow"]
    inner_run = inner_tasks[0]
    assert inner_run.span_type == SpanType.CHAIN
    assert inner_run.inputs == {"input": "About Paris"}
    assert inner_run.outputs == fake.REPLY
    assert children(trace, inner_run) == ["Inner"]


def test_users_own_sdk_trace_and_custom_span(captured, openai_url):
    tl_agents.autolog()
    with agents.trace("Support workflow", group_id="conversation-7"):
        with custom_span("lookup", data={"rows": 3}):
            pass
        run_sync(agent(openai_url), "Hello!")

    trace = only_trace(captured)
    root = trace.data.spans[0]
    assert root.name == "Support workflow" and root.span_type == SpanType.AGENT
    assert root.attributes["openai_agents.group_id"] == "conversation-7"
    spans = by_name(trace)
    assert spans["lookup"].span_type == SpanType.CHAIN
    assert spans["lookup"].outputs == {"rows": 3}
    # The run inside the user's trace: its task span holds the input and final output.
    run = spans["Agent workflow"]
    assert run.parent_id == root.span_id
    assert run.inputs == {"input": "Hello!"} and run.outputs == fake.REPLY
    assert run.attributes["openai_agents.usage"]["requests"] == 1


# --- concurrency ----------------------------------------------------------------------------


def assert_runs_apart(captured: Any, questions: list[str]) -> None:
    traces = captured.traces
    assert sorted(t.data.spans[0].inputs["input"] for t in traces) == sorted(questions)
    for trace in traces:
        question = trace.data.spans[0].inputs["input"]
        assert [s.name for s in trace.data.spans] == [
            "Agent workflow",
            "Assistant",
            "turn 1",
            "response",
            "get_weather",
            "turn 2",
            "response",
        ]
        for span in trace.data.spans:
            if span.name == "response":
                assert span.attributes[cf.CHAT_MESSAGES][1] == {"role": "user", "content": question}
        ids = {s.span_id for s in trace.data.spans}
        assert all(s.parent_id in ids for s in trace.data.spans[1:])


def test_concurrent_runs_in_threads(captured, openai_url):
    tl_agents.autolog()
    questions = [f"Question {i}" for i in range(4)]

    def run(question: str) -> Any:
        return run_sync_here(agent(openai_url, tools=[get_weather]), question).final_output

    with ThreadPoolExecutor(max_workers=4) as pool:
        outputs = list(pool.map(run, questions))
    assert outputs == [fake.REPLY] * 4
    assert_runs_apart(captured, questions)


def test_concurrent_runs_in_asyncio(captured, openai_url):
    tl_agents.autolog()
    questions = [f"Question {i}" for i in range(4)]

    async def main() -> list[Any]:
        model = responses_model(openai_url)
        runs = [
            Runner.run(agent(openai_url, tools=[get_weather], model=model), q) for q in questions
        ]
        return [r.final_output for r in await asyncio.gather(*runs)]

    assert asyncio.run(main()) == [fake.REPLY] * 4
    assert_runs_apart(captured, questions)


def test_run_in_a_copied_context_joins_the_callers_trace(captured, openai_url):
    tl_agents.autolog()
    with threadline.start_span("request"):
        context = contextvars.copy_context()
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(context.run, run_sync_here, agent(openai_url), "Hi").result()
    trace = only_trace(captured)
    assert [s.name for s in trace.data.spans[:2]] == ["request", "Agent workflow"]


# --- switching it on and off -----------------------------------------------------------------


def test_disable_restores_the_sdk(captured, openai_url, user_processor):
    run, run_streamed = AgentRunner.run, AgentRunner.run_streamed
    tl_agents.autolog()
    tl_agents.autolog()  # idempotent: one processor
    assert tl_agents.INTEGRATION.enabled
    ours = [p for p in processors() if p is not user_processor]
    assert len(ours) == 1 and processors()[0] is user_processor
    assert AgentRunner.run is not run

    tl_agents.autolog(disable=True)
    assert not tl_agents.INTEGRATION.enabled
    assert processors() == (user_processor,)
    assert AgentRunner.run is run and AgentRunner.run_streamed is run_streamed
    assert run_sync(agent(openai_url), "Hi").final_output == fake.REPLY
    assert captured.traces == []
    assert "response" in user_processor.spans  # the user's processor still works

    tl_agents.autolog()
    run_sync(agent(openai_url), "Hi")
    assert len(captured.traces) == 1


def test_processors_registered_after_autolog_are_kept_on_disable(user_processor):
    tl_agents.autolog()
    later = Recorder()
    agents.add_trace_processor(later)
    tl_agents.autolog(disable=True)
    assert processors() == (user_processor, later)


def test_autolog_again_after_the_user_replaced_the_processors(captured, openai_url):
    tl_agents.autolog()
    mine = Recorder()
    agents.set_trace_processors([mine])  # drops threadline's processor with the rest
    run_sync(agent(openai_url), "Hi")
    assert captured.traces == []
    tl_agents.autolog()
    assert processors()[0] is mine and len(processors()) == 2
    run_sync(agent(openai_url), "Hi")
    assert len(captured.traces) == 1


def test_runs_that_exclude_sensitive_data_keep_it_out_of_the_trace(captured, openai_url):
    tl_agents.autolog()
    config = RunConfig(trace_include_sensitive_data=False)
    result = run_sync(agent(openai_url, tools=[get_weather]), "Secret question", run_config=config)
    assert result.final_output == fake.REPLY

    trace = only_trace(captured)
    text = trace.to_json()
    assert "Secret question" not in text and fake.REPLY not in text and "Paris" not in text
    responses = [s for s in trace.data.spans if s.name == "response"]
    assert [s.attributes[SpanAttributeKey.TOKEN_USAGE] for s in responses] == [
        TOOL_CALL_TOKENS,
        REPLY_TOKENS,
    ]
    assert trace.data.spans[0].inputs is None


def test_log_traces_false_and_tracing_disabled(captured, openai_url):
    tl_agents.autolog(log_traces=False)
    assert not tl_agents.INTEGRATION.enabled
    tl_agents.autolog()
    threadline.tracing.disable()
    try:
        assert run_sync(agent(openai_url), "Hi").final_output == fake.REPLY
    finally:
        threadline.tracing.enable()
    assert captured.traces == []
    run_sync(agent(openai_url), "Hi", run_config=RunConfig(tracing_disabled=True))
    assert captured.traces == []


def test_threadline_autolog_includes_openai_agents():
    threadline.autolog()
    assert tl_agents.INTEGRATION.enabled
    threadline.autolog(disable=True)
    assert not tl_agents.INTEGRATION.enabled


# --- with the openai client's autologging too ---------------------------------------------


def test_openai_autolog_does_not_record_the_model_calls_twice(captured, openai_url):
    threadline.openai.autolog()
    run_sync(agent(openai_url, tools=[get_weather]), "Weather?")
    alone = [s.name for s in all_spans(captured)]
    assert alone == ["openai.responses.create", "openai.responses.create"]  # no agents spans
    captured.clear()

    tl_agents.autolog()
    run_sync(agent(openai_url, tools=[get_weather]), "Weather?")
    spans = only_trace(captured).data.spans
    assert not any(s.name.startswith("openai.") for s in spans)
    models = [s for s in spans if s.span_type == SpanType.CHAT_MODEL]
    assert [s.name for s in models] == ["response", "response"]
    total = sum(s.attributes[SpanAttributeKey.TOKEN_USAGE]["total_tokens"] for s in models)
    assert total == TOOL_CALL_TOKENS["total_tokens"] + REPLY_TOKENS["total_tokens"]

    captured.clear()
    run_sync(agent(openai_url, model=chat_model(openai_url)), "Hi")
    spans = only_trace(captured).data.spans
    assert [s.name for s in spans if s.span_type == SpanType.CHAT_MODEL] == ["generation"]
    assert not any(s.name.startswith("openai.") for s in spans)


def test_openai_calls_in_a_tool_are_still_recorded(captured, openai_url):
    import openai

    threadline.openai.autolog()
    tl_agents.autolog()

    @function_tool
    def embed(city: str) -> str:
        """Embeds the city name."""
        with openai.OpenAI(base_url=openai_url, api_key=API_KEY, max_retries=0) as client:
            client.embeddings.create(model="text-embedding-3-small", input=city)
        return "done"

    run_sync(agent(openai_url, tools=[embed]), "Embed Paris")
    spans = by_name(only_trace(captured))
    assert spans["openai.embeddings.create"].parent_id == spans["embed"].span_id
