"""``threadline.dspy.autolog()``: real DSPy programs on DSPy's ``DummyLM``, and a real
``dspy.LM`` against the fake OpenAI server (through litellm and through DSPy's own engine).

DSPy's settings are global: each test starts from no LM and no callbacks, and puts back
what was there. ``dspy.configure`` may only be called by the thread (and asyncio task)
that first called it, so tests configure in the main thread and use ``dspy.context``
everywhere else.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

# litellm and DSPy fetch price and model lists from the internet unless told not to.
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "true")

dspy = pytest.importorskip("dspy")

from dspy.utils.callback import BaseCallback  # noqa: E402
from dspy.utils.dummies import DummyLM  # noqa: E402

import threadline  # noqa: E402
from tests.integrations import _fake_openai as fake  # noqa: E402
from tests.integrations.conftest import API_KEY, all_spans, assert_no_secret  # noqa: E402
from threadline.entities.keys import SpanAttributeKey  # noqa: E402
from threadline.entities.span import SpanType  # noqa: E402
from threadline.integrations import _chat_format as cf  # noqa: E402
from threadline.integrations import dspy as tl_dspy  # noqa: E402
from threadline.tracing import _safety  # noqa: E402

# Warnings from litellm's own code under this pydantic (as in test_litellm.py).
pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:Items? .* on TypedDict class .* using the `ReadOnly` qualifier:UserWarning"
    ),
    pytest.mark.filterwarnings(
        "ignore:Accessing the 'model_\\w+' attribute on the instance is deprecated"
        ":DeprecationWarning"
    ),
]


class UserCallback(BaseCallback):
    """A user's own callback: the LM calls it saw."""

    def __init__(self) -> None:
        self.lm_calls = 0

    def on_lm_end(self, call_id: str, outputs: Any, exception: Any = None) -> None:
        self.lm_calls += 1


@pytest.fixture(autouse=True)
def dspy_settings() -> Iterator[None]:
    saved = {key: dspy.settings.get(key) for key in ("lm", "callbacks", "adapter")}
    dspy.configure(lm=None, callbacks=[], adapter=None)
    yield
    dspy.configure(**saved)


@pytest.fixture(autouse=True)
def _no_internal_errors() -> Iterator[None]:
    """DSPy logs and swallows a callback's exceptions: make them fail the test."""
    yield
    errors = {k: n for k, n in _safety.error_counts().items() if k.startswith("dspy")}
    assert errors == {}


@threadline.trace
def shout(city: str) -> str:
    return city.upper()


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {shout(city)}"


def broken_weather(city: str) -> str:
    """A tool that fails."""
    raise ValueError(f"no weather for {city}")


def react_answers(tool: str) -> list[dict[str, Any]]:
    """What a ReAct over one tool says: call it for Paris, finish, then answer."""
    return [
        {"next_thought": "look it up", "next_tool_name": tool, "next_tool_args": {"city": "Paris"}},
        {"next_thought": "done", "next_tool_name": "finish", "next_tool_args": {}},
        {"reasoning": "it said so", "answer": "sunny"},
    ]


def only_trace(captured: Any) -> Any:
    traces = captured.traces
    assert len(traces) == 1, [[s.name for s in t.data.spans] for t in traces]
    return traces[0]


def tree(trace: Any) -> list[tuple[int, str]]:
    """(depth, name) of each span, in start order."""
    spans = {s.span_id: s for s in trace.data.spans}

    def depth(span: Any) -> int:
        return 0 if span.parent_id is None else 1 + depth(spans[span.parent_id])

    return [(depth(s), s.name) for s in trace.data.spans]


# --- programs -------------------------------------------------------------------------------


def test_predict(captured):
    tl_dspy.autolog()
    dspy.configure(lm=DummyLM([{"answer": "Paris"}]))
    prediction = dspy.Predict("question -> answer")(question="Capital of France?")
    assert prediction.answer == "Paris"

    trace = only_trace(captured)
    assert tree(trace) == [
        (0, "Predict.forward"),
        (1, "ChatAdapter.format"),
        (1, "DummyLM.__call__"),
        (1, "ChatAdapter.parse"),
    ]
    predict, fmt, lm, parse = trace.data.spans
    assert predict.span_type == SpanType.CHAIN
    assert predict.inputs == {"question": "Capital of France?"}
    assert predict.outputs == {"answer": "Paris"}
    assert predict.attributes["dspy.signature"] == "question -> answer"
    assert trace.info.request_preview == '{"question":"Capital of France?"}'

    assert fmt.span_type == parse.span_type == SpanType.PARSER
    assert fmt.inputs["signature"] == "question -> answer"
    assert fmt.inputs["inputs"] == {"question": "Capital of France?"}
    assert fmt.outputs[-1]["role"] == "user"
    assert parse.inputs["completion"] == "[[ ## answer ## ]]\nParis"
    assert parse.outputs == {"answer": "Paris"}

    assert lm.span_type == SpanType.CHAT_MODEL
    assert lm.attributes[SpanAttributeKey.MODEL] == "dummy"
    assert lm.attributes[SpanAttributeKey.TOKEN_USAGE] == {
        "input_tokens": 0,
        "output_tokens": 0,
        "total_tokens": 0,
    }
    messages = lm.attributes[cf.CHAT_MESSAGES]
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]
    assert messages[1]["content"] == fmt.outputs[-1]["content"]
    assert messages[-1] == {"role": "assistant", "content": "[[ ## answer ## ]]\nParis"}
    assert lm.outputs == ["[[ ## answer ## ]]\nParis"]
    assert all(s.status.status_code == "OK" for s in trace.data.spans)


def test_chain_of_thought_and_custom_module(captured):
    tl_dspy.autolog()

    class Answer(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.think = dspy.ChainOfThought("question -> answer")

        def forward(self, question: str) -> Any:
            return self.think(question=question)

    with dspy.context(lm=DummyLM([{"reasoning": "it is", "answer": "Paris"}])):
        assert Answer()(question="Capital?").answer == "Paris"

    trace = only_trace(captured)
    assert tree(trace) == [
        (0, "Answer.forward"),
        (1, "ChainOfThought.forward"),
        (2, "Predict.forward"),
        (3, "ChatAdapter.format"),
        (3, "DummyLM.__call__"),
        (3, "ChatAdapter.parse"),
    ]
    root = trace.data.spans[0]
    assert root.span_type == SpanType.CHAIN
    assert root.outputs == {"reasoning": "it is", "answer": "Paris"}
    assert trace.data.spans[2].attributes["dspy.signature"] == "question -> reasoning, answer"


def test_react_with_a_tool(captured):
    tl_dspy.autolog()
    with dspy.context(lm=DummyLM(react_answers("get_weather"))):
        react = dspy.ReAct("question -> answer", tools=[get_weather])
        assert react(question="Weather in Paris?").answer == "sunny"

    trace = only_trace(captured)
    spans = trace.data.spans
    root = spans[0]
    assert (root.name, root.span_type) == ("ReAct.forward", SpanType.AGENT)
    tools = [s for s in spans if s.span_type == SpanType.TOOL]
    assert [s.name for s in tools] == ["get_weather", "finish"]
    weather = tools[0]
    assert weather.parent_id == root.span_id
    assert weather.inputs == {"city": "Paris"}
    assert weather.outputs == "sunny in PARIS"
    assert weather.attributes["dspy.tool.description"] == "The weather in a city."
    # @threadline.trace inside the tool nests under the tool's span.
    (traced,) = [s for s in spans if s.name == "shout"]
    assert traced.parent_id == weather.span_id and traced.outputs == "PARIS"
    lm_calls = [s for s in spans if s.span_type == SpanType.CHAT_MODEL]
    assert len(lm_calls) == 3
    assert root.outputs["trajectory"]["observation_0"] == "sunny in PARIS"


def test_async_programs(captured):
    tl_dspy.autolog()
    lm = DummyLM([{"answer": "one"}, {"answer": "two"}])

    async def main() -> list[str]:
        with dspy.context(lm=lm):
            predict = dspy.Predict("question -> answer")
            first = await predict.acall(question="First?")
            second = await dspy.asyncify(predict)(question="Second?")
        return [first.answer, second.answer]

    assert asyncio.run(main()) == ["one", "two"]
    traces = captured.traces
    assert [t.data.spans[0].inputs for t in traces] == [
        {"question": "First?"},
        {"question": "Second?"},
    ]
    for trace in traces:
        assert [name for _, name in tree(trace)] == [
            "Predict.forward",
            "ChatAdapter.format",
            "DummyLM.__call__",
            "ChatAdapter.parse",
        ]


# --- errors ---------------------------------------------------------------------------------


def test_exception_in_a_tool_called_directly_reaches_the_caller(captured):
    tl_dspy.autolog()
    tool = dspy.Tool(broken_weather)
    with pytest.raises(ValueError, match="no weather for Rome"):
        tool(city="Rome")
    span = all_spans(captured)[0]
    assert (span.name, span.span_type, span.status.status_code) == (
        "broken_weather",
        SpanType.TOOL,
        "ERROR",
    )
    (event,) = span.events
    assert event.attributes["exception.type"] == "ValueError"


def test_exception_in_a_react_tool(captured):
    """ReAct tells the model about a failing tool and goes on: the tool span is ERROR."""
    tl_dspy.autolog()
    with dspy.context(lm=DummyLM(react_answers("broken_weather"))):
        result = dspy.ReAct("question -> answer", tools=[broken_weather])(question="Weather?")
    assert "no weather for Paris" in result.trajectory["observation_0"]
    trace = only_trace(captured)
    (tool,) = [s for s in trace.data.spans if s.name == "broken_weather"]
    assert tool.status.status_code == "ERROR"
    assert tool.events[0].attributes["exception.message"] == "no weather for Paris"
    assert trace.data.spans[0].status.status_code == "OK"


def test_exception_in_a_module_reaches_the_caller(captured):
    tl_dspy.autolog()

    class Failing(dspy.Module):
        def forward(self, question: str) -> Any:
            raise KeyError("missing")

    with pytest.raises(KeyError, match="missing"):
        Failing()(question="?")
    (span,) = all_spans(captured)
    assert span.status.status_code == "ERROR"
    assert span.events[0].attributes["exception.type"] == "KeyError"
    assert span.outputs is None


# --- nesting and concurrency ----------------------------------------------------------------


def test_program_inside_threadline_trace(captured):
    tl_dspy.autolog()

    @threadline.trace
    def answer(question: str) -> str:
        with dspy.context(lm=DummyLM([{"answer": "Paris"}])):
            return dspy.Predict("question -> answer")(question=question).answer

    assert answer("Capital?") == "Paris"
    trace = only_trace(captured)
    assert tree(trace)[:2] == [(0, "answer"), (1, "Predict.forward")]


def test_concurrent_programs_in_threads(captured):
    tl_dspy.autolog()
    questions = [f"Question {i}?" for i in range(6)]

    def run(question: str) -> str:
        with dspy.context(lm=DummyLM([{"answer": question.upper()}])):
            return dspy.Predict("question -> answer")(question=question).answer

    with ThreadPoolExecutor(max_workers=3) as pool:
        answers = list(pool.map(run, questions))
    assert answers == [q.upper() for q in questions]
    traces = captured.traces
    assert len(traces) == len(questions)
    for trace in traces:
        question = trace.data.spans[0].inputs["question"]
        assert len(trace.data.spans) == 4
        lm = next(s for s in trace.data.spans if s.span_type == SpanType.CHAT_MODEL)
        assert question in lm.attributes[cf.CHAT_MESSAGES][1]["content"]
        assert trace.data.spans[0].outputs == {"answer": question.upper()}


def test_concurrent_programs_in_asyncio(captured):
    tl_dspy.autolog()
    questions = [f"Question {i}?" for i in range(4)]

    async def one(question: str) -> str:
        with dspy.context(lm=DummyLM([{"answer": question.upper()}])):
            return (await dspy.Predict("question -> answer").acall(question=question)).answer

    async def main() -> list[str]:
        return await asyncio.gather(*(one(q) for q in questions))

    assert asyncio.run(main()) == [q.upper() for q in questions]
    for trace in captured.traces:
        question = trace.data.spans[0].inputs["question"]
        assert len(trace.data.spans) == 4
        assert trace.data.spans[0].outputs == {"answer": question.upper()}


def test_a_copied_context_keeps_the_callers_trace(captured):
    tl_dspy.autolog()
    with threadline.start_span("request"), dspy.context(lm=DummyLM([{"answer": "x"}])):
        context = contextvars.copy_context()
        predict = dspy.Predict("question -> answer")
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(context.run, predict, question="?").result()
    assert tree(only_trace(captured))[:2] == [(0, "request"), (1, "Predict.forward")]


# --- switching it on and off -----------------------------------------------------------------


def test_disable_restores_the_users_callbacks(captured):
    user = UserCallback()
    dspy.configure(callbacks=[user], lm=DummyLM([{"answer": "a"}, {"answer": "b"}]))
    tl_dspy.autolog()
    tl_dspy.autolog()  # idempotent
    callbacks = dspy.settings.callbacks
    assert callbacks[0] is user and len(callbacks) == 2
    assert tl_dspy.INTEGRATION.enabled

    tl_dspy.autolog(disable=True)
    assert dspy.settings.callbacks == [user]
    assert not tl_dspy.INTEGRATION.enabled
    dspy.Predict("question -> answer")(question="?")
    assert captured.traces == []
    assert user.lm_calls == 1  # the user's callback ran

    tl_dspy.autolog()
    dspy.Predict("question -> answer")(question="?")
    assert len(captured.traces) == 1 and user.lm_calls == 2


def test_callbacks_added_after_autolog_are_kept_on_disable():
    tl_dspy.autolog()
    later = UserCallback()
    dspy.configure(callbacks=[*dspy.settings.callbacks, later])
    tl_dspy.autolog(disable=True)
    assert dspy.settings.callbacks == [later]


def test_autolog_again_after_the_user_replaced_the_callbacks(captured):
    tl_dspy.autolog()
    user = UserCallback()
    dspy.configure(callbacks=[user], lm=DummyLM([{"answer": "a"}, {"answer": "b"}]))
    dspy.Predict("question -> answer")(question="?")
    assert captured.traces == []
    tl_dspy.autolog()
    assert dspy.settings.callbacks[0] is user and len(dspy.settings.callbacks) == 2
    dspy.Predict("question -> answer")(question="?")
    assert len(captured.traces) == 1


def test_autolog_from_another_thread_says_what_to_do():
    def enable() -> None:
        tl_dspy.autolog()

    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(enable)
        with pytest.raises(threadline.errors.InvalidArgumentError, match="thread that configures"):
            future.result()
    assert not tl_dspy.INTEGRATION.enabled
    assert dspy.settings.callbacks == []


def test_log_traces_false_and_tracing_disabled(captured):
    tl_dspy.autolog(log_traces=False)
    assert not tl_dspy.INTEGRATION.enabled
    tl_dspy.autolog()
    threadline.tracing.disable()
    try:
        with dspy.context(lm=DummyLM([{"answer": "a"}])):
            assert dspy.Predict("question -> answer")(question="?").answer == "a"
    finally:
        threadline.tracing.enable()
    assert captured.traces == []


def test_threadline_autolog_includes_dspy():
    threadline.autolog()
    assert tl_dspy.INTEGRATION.enabled
    threadline.autolog(disable=True)
    assert not tl_dspy.INTEGRATION.enabled
    assert dspy.settings.callbacks == []


# --- a real LM over HTTP --------------------------------------------------------------------


def http_lm(url: str, engine: str) -> Any:
    return dspy.LM(
        f"openai/{fake_model()}", api_base=url, api_key=API_KEY, cache=False, engine=engine
    )


def fake_model() -> str:
    return "gpt-4o-mini"


@pytest.mark.parametrize("engine", ["litellm", "auto"])
def test_real_lm_records_model_tokens_and_messages(captured, openai_url, engine):
    tl_dspy.autolog()
    with dspy.context(lm=http_lm(openai_url, engine), adapter=dspy.JSONAdapter()):
        assert dspy.Predict("question -> answer")(question="Capital?").answer == "42"

    trace = only_trace(captured)
    (lm,) = [s for s in trace.data.spans if s.span_type == SpanType.CHAT_MODEL]
    assert lm.name == "LM.__call__"
    assert lm.attributes[SpanAttributeKey.PROVIDER] == "openai"
    assert lm.attributes[SpanAttributeKey.MODEL] == fake_model() + fake.RESPONSE_MODEL_SUFFIX
    usage = fake.usage(len(fake.pieces({})))
    assert lm.attributes[SpanAttributeKey.TOKEN_USAGE] == {
        "input_tokens": usage["prompt_tokens"],
        "output_tokens": usage["completion_tokens"],
        "total_tokens": usage["total_tokens"],
    }
    assert lm.attributes[cf.CHAT_MESSAGES][-1] == {"role": "assistant", "content": fake.STRUCTURED}
    assert "api_key" not in lm.inputs
    assert_no_secret(captured)


@pytest.mark.parametrize("clients", [("litellm",), ("litellm", "openai")])
def test_client_autolog_does_not_record_lm_calls_twice(captured, openai_url, clients):
    """DSPy's litellm engine: litellm (and through it the openai SDK) make the request."""
    for client in clients:
        getattr(threadline, client).autolog()
    with dspy.context(lm=http_lm(openai_url, "litellm"), adapter=dspy.JSONAdapter()):
        dspy.Predict("question -> answer")(question="Capital?")
    alone = [s.name for s in all_spans(captured)]
    assert alone == ["litellm.completion"]  # without DSPy's autolog the client records it
    captured.clear()

    tl_dspy.autolog()
    with dspy.context(lm=http_lm(openai_url, "litellm"), adapter=dspy.JSONAdapter()):
        dspy.Predict("question -> answer")(question="Capital?")
    spans = only_trace(captured).data.spans
    assert not any(s.name.startswith(("litellm.", "openai.")) for s in spans)
    (lm,) = [s for s in spans if s.span_type == SpanType.CHAT_MODEL]
    assert (
        lm.attributes[SpanAttributeKey.TOKEN_USAGE]["total_tokens"] == fake.usage(7)["total_tokens"]
    )


def test_evaluate(captured):
    tl_dspy.autolog()
    dspy.configure(lm=DummyLM([{"answer": "a"}, {"answer": "b"}]))
    devset = [
        dspy.Example(question="q1", answer="a").with_inputs("question"),
        dspy.Example(question="q2", answer="x").with_inputs("question"),
    ]

    def exact(example: Any, prediction: Any, trace: Any = None) -> bool:
        return bool(example.answer == prediction.answer)

    evaluate = dspy.Evaluate(devset=devset, metric=exact, num_threads=1, display_progress=False)
    assert evaluate(dspy.Predict("question -> answer")).score == 50.0

    trace = only_trace(captured)
    root = trace.data.spans[0]
    assert (root.name, root.span_type) == ("Evaluate.__call__", SpanType.CHAIN)
    assert root.inputs == {"program": "Predict"}
    assert root.outputs == {"score": 50.0}
    assert root.attributes["dspy.evaluate.devset_size"] == 2
    predictions = [s for s in trace.data.spans if s.parent_id == root.span_id]
    assert [s.inputs for s in predictions] == [{"question": "q1"}, {"question": "q2"}]
