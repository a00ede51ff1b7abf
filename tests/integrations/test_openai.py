"""``threadline.openai.autolog()`` against a local server speaking OpenAI's API."""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
from typing import Any

import openai
import pytest
from pydantic import BaseModel

import threadline
from tests.integrations import _fake_openai as fake
from tests.integrations.conftest import API_KEY, all_spans, assert_no_secret, only_span
from threadline.entities.keys import SpanAttributeKey
from threadline.entities.span import SpanType
from threadline.errors import InvalidArgumentError
from threadline.integrations import _chat_format as cf

MESSAGES = [{"role": "user", "content": "Hello!"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
REPLY_USAGE = fake.usage(len(fake.pieces({})))
TOKEN_USAGE = {
    "input_tokens": REPLY_USAGE["prompt_tokens"],
    "output_tokens": REPLY_USAGE["completion_tokens"],
    "total_tokens": REPLY_USAGE["total_tokens"],
}


def chat(client: Any, **kwargs: Any) -> Any:
    return client.chat.completions.create(
        **{"model": "gpt-4o-mini", "messages": MESSAGES, **kwargs}
    )


def test_faq_snippet(captured, openai_url):
    threadline.openai.autolog()
    client = openai.OpenAI(base_url=openai_url, api_key="sk-test")
    response = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello!"}]
    )
    client.close()

    assert response.choices[0].message.content == fake.REPLY
    span = only_span(captured)
    assert span.name == "openai.chat.completions.create"
    assert span.span_type == SpanType.CHAT_MODEL
    assert span.status.status_code == "OK"
    assert span.parent_id is None
    assert span.inputs == {"model": "gpt-4o-mini", "messages": MESSAGES}
    assert span.outputs == json.loads(json.dumps(response.model_dump()))


def test_chat_attributes(captured, openai_client):
    threadline.openai.autolog()
    chat(openai_client, temperature=0.2)
    span = only_span(captured)
    attrs = span.attributes
    assert span.inputs["temperature"] == 0.2
    assert attrs[SpanAttributeKey.PROVIDER] == "openai"
    assert attrs[SpanAttributeKey.MODEL] == "gpt-4o-mini"
    assert attrs[SpanAttributeKey.TOKEN_USAGE] == TOKEN_USAGE
    assert attrs[cf.CACHED_INPUT_TOKENS] == fake.CACHED_TOKENS
    assert attrs[cf.REASONING_TOKENS] == fake.REASONING_TOKENS
    assert attrs[cf.FINISH_REASON] == "stop"
    assert attrs[cf.CHAT_MESSAGES] == [
        {"role": "user", "content": "Hello!"},
        {"role": "assistant", "content": fake.REPLY},
    ]
    assert cf.CHAT_TOOLS not in attrs


def test_stream_fully_consumed_is_what_the_caller_would_see(captured, openai_client, openai_server):
    untraced = [c.model_dump() for c in chat(openai_client, stream=True)]
    assert "stream_options" not in openai_server.last_body
    threadline.openai.autolog()
    stream = chat(openai_client, stream=True)
    assert isinstance(stream, openai.Stream)
    assert stream.response.status_code == 200  # attributes are forwarded
    traced = [c.model_dump() for c in stream]

    assert traced == untraced  # the usage-only chunk tracing asked for is not passed on
    assert openai_server.last_body["stream_options"] == {"include_usage": True}
    span = only_span(captured)
    assert span.status.status_code == "OK"
    assert span.outputs["object"] == "chat.completion"
    assert span.outputs["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": fake.REPLY},
            "finish_reason": "stop",
        }
    ]
    assert span.outputs["usage"]["total_tokens"] == REPLY_USAGE["total_tokens"]
    assert span.attributes[SpanAttributeKey.TOKEN_USAGE] == TOKEN_USAGE
    assert span.attributes[cf.CHAT_MESSAGES][-1] == {"role": "assistant", "content": fake.REPLY}
    assert SpanAttributeKey.GENERATOR_CLOSED_EARLY not in span.attributes


def test_stream_with_callers_stream_options_passes_usage_chunk(captured, openai_client):
    threadline.openai.autolog()
    chunks = list(chat(openai_client, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 19
    assert only_span(captured).attributes[SpanAttributeKey.TOKEN_USAGE] == TOKEN_USAGE


def test_stream_abandoned_and_collected(captured, openai_client):
    threadline.openai.autolog()
    stream = chat(openai_client, stream=True)
    received = []
    for chunk in stream:
        received.append(chunk.choices[0].delta.content)
        if len(received) == 3:
            break
    assert all_spans(captured) == []  # still open
    del stream, chunk
    gc.collect()

    span = only_span(captured)
    assert span.status.status_code == "OK"
    assert span.outputs["choices"][0]["message"]["content"] == "".join(received)
    assert span.attributes[SpanAttributeKey.GENERATOR_CLOSED_EARLY] is True


def test_stream_closed_half_way(captured, openai_client):
    threadline.openai.autolog()
    stream = chat(openai_client, stream=True)
    first = [next(stream), next(stream)]
    stream.close()
    span = only_span(captured)
    assert span.status.status_code == "OK"
    text = "".join(c.choices[0].delta.content for c in first)
    assert span.outputs["choices"][0]["message"]["content"] == text


def test_stream_as_context_manager(captured, openai_client):
    threadline.openai.autolog()
    with chat(openai_client, stream=True) as stream:
        next(stream)
        assert all_spans(captured) == []
    assert only_span(captured).status.status_code == "OK"


def test_stream_helper(captured, openai_client):
    threadline.openai.autolog()
    with openai_client.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as stream:
        for _event in stream:
            pass
        final = stream.get_final_completion()
    assert final.choices[0].message.content == fake.REPLY
    span = only_span(captured)
    assert span.outputs["choices"][0]["message"]["content"] == fake.REPLY
    assert span.attributes[SpanAttributeKey.TOKEN_USAGE] == TOKEN_USAGE


def test_stream_error_mid_stream(captured, openai_client):
    threadline.openai.autolog()
    received = []
    with pytest.raises(openai.APIError, match="The server had an error"):
        for chunk in chat(openai_client, model="error-stream", stream=True):
            received.append(chunk)
    span = only_span(captured)
    assert span.status.status_code == "ERROR"
    assert span.events[0].name == "exception"
    assert span.outputs["choices"][0]["message"]["content"] == "Hel"


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, openai.BadRequestError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
    ],
)
def test_api_error(captured, openai_client, status, error_type):
    with pytest.raises(openai.APIStatusError) as untraced:
        chat(openai_client, model=f"error-{status}")
    threadline.openai.autolog()
    with pytest.raises(error_type) as traced:
        chat(openai_client, model=f"error-{status}")

    assert type(traced.value) is type(untraced.value) is error_type
    assert str(traced.value) == str(untraced.value)
    span = only_span(captured)
    assert span.status.status_code == "ERROR"
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == error_type.__name__
    assert span.attributes[cf.CHAT_MESSAGES] == [{"role": "user", "content": "Hello!"}]


def test_tool_calls_normalised(captured, openai_client):
    threadline.openai.autolog()
    first = chat(openai_client, tools=TOOLS)
    call = first.choices[0].message.tool_calls[0]
    followup = [
        *MESSAGES,
        first.choices[0].message,  # a pydantic message, as the docs show
        {"role": "tool", "tool_call_id": call.id, "content": "21 °C, sunny"},
    ]
    chat(openai_client, tools=TOOLS, messages=followup)

    one, two = all_spans(captured)
    expected_call = {
        "id": "call_fake1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": fake.TOOL_ARGUMENTS},
    }
    assert one.attributes[cf.CHAT_TOOLS] == [
        {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": TOOLS[0]["function"]["parameters"],
        }
    ]
    assert one.attributes[cf.FINISH_REASON] == "tool_calls"
    assert one.attributes[cf.CHAT_MESSAGES] == [
        {"role": "user", "content": "Hello!"},
        {"role": "assistant", "content": None, "tool_calls": [expected_call]},
    ]
    assert two.attributes[cf.CHAT_MESSAGES] == [
        {"role": "user", "content": "Hello!"},
        {"role": "assistant", "content": None, "tool_calls": [expected_call]},
        {"role": "tool", "content": "21 °C, sunny", "tool_call_id": "call_fake1"},
        {"role": "assistant", "content": fake.REPLY},
    ]


def test_streamed_tool_call_reassembled(captured, openai_client):
    threadline.openai.autolog()
    list(chat(openai_client, tools=TOOLS, stream=True))
    span = only_span(captured)
    message = span.outputs["choices"][0]["message"]
    assert message["tool_calls"] == [
        {
            "id": "call_fake1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": fake.TOOL_ARGUMENTS},
        }
    ]
    assert span.attributes[cf.FINISH_REASON] == "tool_calls"
    assert span.attributes[cf.CHAT_MESSAGES][-1]["tool_calls"] == message["tool_calls"]


def test_async_chat_and_stream(captured, openai_url):
    threadline.openai.autolog()

    async def main() -> tuple[Any, list[Any]]:
        async with openai.AsyncOpenAI(base_url=openai_url, api_key=API_KEY) as client:
            response = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            stream = await client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            )
            assert isinstance(stream, openai.AsyncStream)
            chunks = [c async for c in stream]
            return response, chunks

    response, chunks = asyncio.run(main())
    assert response.choices[0].message.content == fake.REPLY
    assert all(c.choices for c in chunks)
    plain, streamed = all_spans(captured)
    assert plain.attributes[SpanAttributeKey.TOKEN_USAGE] == TOKEN_USAGE
    assert streamed.outputs["choices"][0]["message"]["content"] == fake.REPLY
    assert streamed.attributes[SpanAttributeKey.TOKEN_USAGE] == TOKEN_USAGE


def test_async_stream_closed_half_way_and_async_error(captured, openai_url):
    threadline.openai.autolog()

    async def main() -> None:
        async with openai.AsyncOpenAI(base_url=openai_url, api_key=API_KEY, max_retries=0) as c:
            stream = await c.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            )
            async for _chunk in stream:
                break
            await stream.close()
            with pytest.raises(openai.RateLimitError):
                await c.chat.completions.create(model="error-429", messages=MESSAGES)

    asyncio.run(main())
    closed, failed = all_spans(captured)
    assert closed.status.status_code == "OK"
    assert closed.attributes[SpanAttributeKey.GENERATOR_CLOSED_EARLY] is True
    assert failed.status.status_code == "ERROR"


def test_async_calls_in_parallel_nest_under_their_own_parents(captured, openai_url):
    threadline.openai.autolog()

    @threadline.trace(span_type=SpanType.AGENT)
    async def agent(i: int) -> str:
        async with openai.AsyncOpenAI(base_url=openai_url, api_key=API_KEY) as client:
            response = await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"q{i}"}]
            )
        return response.choices[0].message.content

    async def main() -> list[str]:
        return await asyncio.gather(*(agent(i) for i in range(4)))

    assert asyncio.run(main()) == [fake.REPLY] * 4
    traces = captured.traces
    assert len(traces) == 4
    for trace in traces:
        root, llm = sorted(trace.data.spans, key=lambda s: s.parent_id is not None)
        assert llm.parent_id == root.span_id
        assert llm.inputs["messages"][0]["content"] == f"q{root.inputs['i']}"


def test_nested_under_agent(captured, openai_client):
    threadline.openai.autolog()

    @threadline.trace(span_type=SpanType.AGENT)
    def agent(question: str) -> str:
        response = chat(openai_client, messages=[{"role": "user", "content": question}])
        return response.choices[0].message.content

    assert agent("Hello!") == fake.REPLY
    (trace,) = captured.traces
    root, llm = sorted(trace.data.spans, key=lambda s: s.parent_id is not None)
    assert root.name == "agent" and root.parent_id is None
    assert llm.parent_id == root.span_id
    assert llm.trace_id == root.trace_id


def test_stream_consumed_after_the_parent_returned_keeps_its_parent(captured, openai_client):
    threadline.openai.autolog()

    @threadline.trace
    def agent() -> Any:
        return chat(openai_client, stream=True)

    with threadline.start_span("outer"):
        stream = agent()
        text = "".join(c.choices[0].delta.content or "" for c in stream)
    assert text == fake.REPLY
    spans = {s.name: s for s in all_spans(captured)}
    assert spans["openai.chat.completions.create"].parent_id == spans["agent"].span_id


def test_disable_restores_originals_and_reenable(captured, openai_client):
    from openai.resources.chat.completions import AsyncCompletions, Completions
    from openai.resources.embeddings import Embeddings

    originals = (
        vars(Completions)["create"],
        vars(AsyncCompletions)["create"],
        vars(Completions)["parse"],
        vars(Embeddings)["create"],
    )
    threadline.openai.autolog()
    assert vars(Completions)["create"] is not originals[0]
    assert vars(Completions)["create"].__wrapped__ is originals[0]
    threadline.openai.autolog(disable=True)
    after = (
        vars(Completions)["create"],
        vars(AsyncCompletions)["create"],
        vars(Completions)["parse"],
        vars(Embeddings)["create"],
    )
    assert all(a is b for a, b in zip(after, originals))
    chat(openai_client)
    assert captured.traces == []

    threadline.openai.autolog()
    chat(openai_client)
    assert len(captured.traces) == 1


def test_log_traces_false_patches_nothing_and_undoes(captured, openai_client):
    from openai.resources.chat.completions import Completions

    original = vars(Completions)["create"]
    threadline.openai.autolog(log_traces=False)
    assert vars(Completions)["create"] is original
    threadline.openai.autolog()
    threadline.openai.autolog(log_traces=False)
    assert vars(Completions)["create"] is original
    chat(openai_client)
    assert captured.traces == []


def test_autolog_twice_gives_one_span_per_call(captured, openai_client):
    threadline.openai.autolog()
    threadline.openai.autolog()
    chat(openai_client)
    list(chat(openai_client, stream=True))
    assert [len(t.data.spans) for t in captured.traces] == [1, 1]


def test_api_key_never_in_the_trace(captured, openai_url, openai_server):
    threadline.openai.autolog()
    client = openai.OpenAI(base_url=openai_url, api_key=API_KEY, max_retries=0)
    secret_headers = {"Authorization": f"Bearer {API_KEY}", "api-key": API_KEY}
    chat(client, extra_headers=secret_headers, extra_query={"api-key": API_KEY})
    list(chat(client, stream=True, extra_headers=secret_headers))
    with pytest.raises(openai.AuthenticationError):
        chat(client, model="error-401", extra_headers=secret_headers)
    azure = openai.AzureOpenAI(
        azure_endpoint=openai_server.url, api_key=API_KEY, api_version="2024-06-01"
    )
    azure.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    client.close()
    azure.close()

    assert openai_server.requests[-1][1]["api-key"] == API_KEY  # it was sent
    assert len(all_spans(captured)) == 4
    assert_no_secret(captured)


def test_token_usage_summed_in_the_stored_trace(tmp_path, openai_client):
    threadline.set_tracking_uri(f"sqlite:///{tmp_path}/t.db")
    threadline.openai.autolog()

    @threadline.trace(span_type=SpanType.AGENT)
    def agent() -> None:
        chat(openai_client)
        list(chat(openai_client, stream=True))

    agent()
    trace = threadline.get_trace(threadline.get_last_active_trace_id())
    assert trace is not None
    assert trace.info.token_usage == {k: 2 * v for k, v in TOKEN_USAGE.items()}


class Answer(BaseModel):
    answer: str


def test_parse_structured_output(captured, openai_client):
    threadline.openai.autolog()
    completion = openai_client.chat.completions.parse(
        model="gpt-4o-mini", messages=MESSAGES, response_format=Answer
    )
    assert completion.choices[0].message.parsed == Answer(answer="42")
    span = only_span(captured)
    assert span.name == "openai.chat.completions.parse"
    assert span.outputs["choices"][0]["message"]["parsed"] == {"answer": "42"}
    assert span.attributes[cf.CHAT_MESSAGES][-1]["content"] == fake.STRUCTURED


def test_responses_parse(captured, openai_client):
    threadline.openai.autolog()
    response = openai_client.responses.parse(
        model="gpt-4o-mini", input="Hello!", text_format=Answer
    )
    assert response.output_parsed == Answer(answer="42")
    span = only_span(captured)
    assert span.name == "openai.responses.parse"
    assert span.outputs["output"][0]["content"][0]["parsed"] == {"answer": "42"}
    assert span.attributes[cf.CHAT_MESSAGES][-1] == {
        "role": "assistant",
        "content": fake.STRUCTURED,
    }


def test_responses_api(captured, openai_client):
    threadline.openai.autolog()
    response = openai_client.responses.create(
        model="gpt-4o-mini", instructions="Be brief.", input="Hello!"
    )
    assert response.output_text == fake.REPLY
    streamed = list(
        openai_client.responses.create(model="gpt-4o-mini", input="Hello!", stream=True)
    )
    assert streamed[-1].type == "response.completed"
    with openai_client.responses.stream(model="gpt-4o-mini", input="Hello!") as stream:
        helper_text = stream.get_final_response().output_text
    assert helper_text == fake.REPLY

    plain, stream_span, helper = all_spans(captured)
    for span in (plain, stream_span, helper):
        assert span.name == "openai.responses.create"
        assert span.span_type == SpanType.CHAT_MODEL
        assert span.attributes[SpanAttributeKey.TOKEN_USAGE] == {
            "input_tokens": fake.PROMPT_TOKENS,
            "output_tokens": 7,
            "total_tokens": fake.PROMPT_TOKENS + 7,
        }
        assert span.attributes[cf.CACHED_INPUT_TOKENS] == fake.CACHED_TOKENS
        assert span.attributes[cf.CHAT_MESSAGES][-1] == {"role": "assistant", "content": fake.REPLY}
        assert span.outputs["status"] == "completed"
    assert plain.attributes[cf.CHAT_MESSAGES][0] == {"role": "system", "content": "Be brief."}


def test_responses_api_tool_call_and_abandoned_stream(captured, openai_client):
    threadline.openai.autolog()
    tools = [{"type": "function", **TOOLS[0]["function"]}]
    response = openai_client.responses.create(model="gpt-4o-mini", input="Weather?", tools=tools)
    call = response.output[0]
    stream = openai_client.responses.create(
        model="gpt-4o-mini",
        input=[
            {"role": "user", "content": "Weather?"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "21 °C"},
        ],
        tools=tools,
        stream=True,
        max_output_tokens=6,
    )
    for event in stream:
        if event.type == "response.output_text.delta" and event.delta == "w2 ":
            break
    del stream, event
    gc.collect()

    tool_span, abandoned = all_spans(captured)
    expected_call = {
        "id": "call_fake1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": fake.TOOL_ARGUMENTS},
    }
    assert tool_span.attributes[cf.CHAT_TOOLS][0]["name"] == "get_weather"
    assert tool_span.attributes[cf.CHAT_MESSAGES] == [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "tool_calls": [expected_call]},
    ]
    assert abandoned.status.status_code == "OK"
    assert abandoned.attributes[cf.CHAT_MESSAGES] == [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "tool_calls": [expected_call]},
        {"role": "tool", "content": "21 °C", "tool_call_id": "call_fake1"},
        {"role": "assistant", "content": "w0 w1 w2 "},
    ]


def test_embeddings(captured, openai_client):
    threadline.openai.autolog()
    result = openai_client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert result.data[1].embedding == fake.embedding_vector(1)
    span = only_span(captured)
    assert span.name == "openai.embeddings.create"
    assert span.span_type == SpanType.EMBEDDING
    assert span.inputs == {"model": "text-embedding-3-small", "input": ["a", "b"]}
    assert span.outputs["data"][1]["embedding"] == fake.embedding_vector(1)
    assert span.attributes[SpanAttributeKey.TOKEN_USAGE] == {
        "input_tokens": 6,
        "output_tokens": 0,
        "total_tokens": 6,
    }


def test_legacy_completions(captured, openai_client):
    threadline.openai.autolog()
    text = openai_client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi")
    chunks = list(
        openai_client.completions.create(
            model="gpt-3.5-turbo-instruct", prompt="Say hi", stream=True
        )
    )
    assert all(c.choices for c in chunks)
    plain, streamed = all_spans(captured)
    for span in (plain, streamed):
        assert span.span_type == SpanType.LLM
        assert span.attributes[SpanAttributeKey.TOKEN_USAGE] == TOKEN_USAGE
        assert span.attributes[cf.FINISH_REASON] == "stop"
    assert streamed.outputs["choices"][0]["text"] == text.choices[0].text == fake.REPLY


def test_raw_response_is_returned_unchanged(captured, openai_client, openai_server):
    threadline.openai.autolog()
    raw = openai_client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    )
    assert raw.parse().choices[0].message.content == fake.REPLY
    raw_stream = openai_client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    )
    assert "stream_options" not in openai_server.last_body
    assert [c.choices[0].delta.content for c in raw_stream.parse()][1] == "Hello! "
    assert [s.status.status_code for s in all_spans(captured)] == ["OK", "OK"]


def test_tracing_disabled_records_nothing_and_changes_nothing(
    captured, openai_client, openai_server
):
    threadline.openai.autolog()
    threadline.tracing.disable()
    stream = chat(openai_client, stream=True)
    assert type(stream) is openai.Stream
    list(stream)
    assert "stream_options" not in openai_server.last_body
    assert captured.traces == []


def test_unsampled_trace_records_nothing_and_changes_nothing(
    captured, openai_client, openai_server
):
    threadline.openai.autolog()

    @threadline.trace(sampling_ratio_override=0.0)
    def agent() -> Any:
        chat(openai_client)
        return chat(openai_client, stream=True)

    stream = agent()
    assert type(stream) is openai.Stream
    list(stream)
    assert "stream_options" not in openai_server.last_body
    assert all_spans(captured) == []


def test_missing_library_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "openai", None)
    with pytest.raises(InvalidArgumentError, match=r'pip install "openai>=1\.40\.0"'):
        threadline.openai.autolog()


def test_unsupported_version_is_refused(monkeypatch):
    monkeypatch.setattr(openai, "__version__", "0.28.1")
    with pytest.raises(InvalidArgumentError, match=r"supports openai 1\.40\.0 or newer; 0\.28\.1"):
        threadline.openai.autolog()


def test_openai_is_imported_only_by_autolog():
    code = (
        "import sys, threadline\n"
        "threadline.openai; threadline.anthropic; threadline.integrations\n"
        "assert 'openai' not in sys.modules and 'anthropic' not in sys.modules\n"
        "threadline.openai.autolog()\n"
        "assert 'openai' in sys.modules and 'anthropic' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
