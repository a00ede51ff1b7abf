"""``threadline.groq.autolog()`` against a local server speaking Groq's API."""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import groq
import pytest

import threadline
from tests.integrations import _fake_groq
from tests.integrations import _fake_openai as fake
from tests.integrations.conftest import API_KEY, all_spans, assert_no_secret, only_span
from threadline.entities.keys import SpanAttributeKey
from threadline.entities.span import SpanType
from threadline.errors import InvalidArgumentError
from threadline.integrations import _chat_format as cf

MODEL = "llama-3.3-70b-versatile"
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
TOOL_CALL = {
    "id": "call_fake1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": fake.TOOL_ARGUMENTS},
}


@pytest.fixture(scope="module")
def groq_server() -> Iterator[fake.SSEServer]:
    server = _fake_groq.serve()
    yield server
    server.stop()


@pytest.fixture
def groq_url(groq_server: fake.SSEServer) -> str:
    groq_server.requests.clear()
    return groq_server.url


@pytest.fixture
def client(groq_url: str) -> Iterator[groq.Groq]:
    with groq.Groq(api_key=API_KEY, base_url=groq_url, max_retries=0) as client:
        yield client


def chat(client: Any, **kwargs: Any) -> Any:
    return client.chat.completions.create(**{"model": MODEL, "messages": MESSAGES, **kwargs})


def test_chat_completion(captured, client, groq_server):
    threadline.groq.autolog()
    response = chat(client, temperature=0.2)

    assert groq_server.requests[-1][0] == _fake_groq.PATH
    assert response.choices[0].message.content == fake.REPLY
    span = only_span(captured)
    assert span.name == "groq.chat.completions.create"
    assert span.span_type == SpanType.CHAT_MODEL
    assert span.status.status_code == "OK"
    assert span.parent_id is None
    assert span.inputs == {"model": MODEL, "messages": MESSAGES, "temperature": 0.2}
    assert span.outputs == json.loads(json.dumps(response.model_dump()))
    attrs = span.attributes
    assert attrs[SpanAttributeKey.PROVIDER] == "groq"
    assert attrs[SpanAttributeKey.MODEL] == MODEL
    assert attrs[SpanAttributeKey.TOKEN_USAGE] == TOKEN_USAGE
    assert attrs[cf.CACHED_INPUT_TOKENS] == fake.CACHED_TOKENS
    assert cf.REASONING_TOKENS not in attrs  # Groq did not report any
    assert attrs[cf.FINISH_REASON] == "stop"
    assert attrs[cf.CHAT_MESSAGES] == [
        {"role": "user", "content": "Hello!"},
        {"role": "assistant", "content": fake.REPLY},
    ]


def test_stream_fully_consumed_is_what_the_caller_would_see(captured, client, groq_server):
    untraced = [c.model_dump() for c in chat(client, stream=True)]
    threadline.groq.autolog()
    stream = chat(client, stream=True)
    assert isinstance(stream, groq.Stream)
    assert stream.response.status_code == 200  # attributes are forwarded
    traced = [c.model_dump() for c in stream]

    assert traced == untraced
    assert "stream_options" not in groq_server.last_body  # the request is unchanged
    assert traced[-1]["x_groq"]["usage"]["total_tokens"] == REPLY_USAGE["total_tokens"]
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
    assert span.attributes[cf.CACHED_INPUT_TOKENS] == fake.CACHED_TOKENS
    assert span.attributes[cf.CHAT_MESSAGES][-1] == {"role": "assistant", "content": fake.REPLY}
    assert SpanAttributeKey.GENERATOR_CLOSED_EARLY not in span.attributes


def test_stream_abandoned_half_way(captured, client):
    threadline.groq.autolog()
    stream = chat(client, stream=True)
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
    assert SpanAttributeKey.TOKEN_USAGE not in span.attributes  # the usage never came


def test_stream_closed_and_context_manager(captured, client):
    threadline.groq.autolog()
    stream = chat(client, stream=True)
    first = [next(stream), next(stream)]
    stream.close()
    with chat(client, stream=True) as managed:
        next(managed)
    closed, left = all_spans(captured)
    text = "".join(c.choices[0].delta.content for c in first)
    assert closed.outputs["choices"][0]["message"]["content"] == text
    assert left.status.status_code == "OK"
    assert left.attributes[SpanAttributeKey.GENERATOR_CLOSED_EARLY] is True


def test_async_chat_and_stream(captured, groq_url):
    threadline.groq.autolog()

    async def main() -> tuple[Any, list[Any]]:
        async with groq.AsyncGroq(api_key=API_KEY, base_url=groq_url, max_retries=0) as c:
            response = await chat_async(c)
            stream = await chat_async(c, stream=True)
            assert isinstance(stream, groq.AsyncStream)
            chunks = [chunk async for chunk in stream]
            half = await chat_async(c, stream=True)
            async for _chunk in half:
                break
            await half.close()
            return response, chunks

    response, chunks = asyncio.run(main())
    assert response.choices[0].message.content == fake.REPLY
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == fake.REPLY
    plain, streamed, closed = all_spans(captured)
    assert plain.attributes[SpanAttributeKey.TOKEN_USAGE] == TOKEN_USAGE
    assert streamed.outputs["choices"][0]["message"]["content"] == fake.REPLY
    assert streamed.attributes[SpanAttributeKey.TOKEN_USAGE] == TOKEN_USAGE
    assert closed.status.status_code == "OK"
    assert closed.attributes[SpanAttributeKey.GENERATOR_CLOSED_EARLY] is True


async def chat_async(client: Any, **kwargs: Any) -> Any:
    return await client.chat.completions.create(**{"model": MODEL, "messages": MESSAGES, **kwargs})


def test_async_error_is_reraised(captured, groq_url):
    threadline.groq.autolog()

    async def main() -> None:
        async with groq.AsyncGroq(api_key=API_KEY, base_url=groq_url, max_retries=0) as c:
            await chat_async(c, model="error-429")

    with pytest.raises(groq.RateLimitError):
        asyncio.run(main())
    assert only_span(captured).status.status_code == "ERROR"


def test_tool_calls_normalised(captured, client):
    threadline.groq.autolog()
    first = chat(client, tools=TOOLS)
    call = first.choices[0].message.tool_calls[0]
    followup = [
        *MESSAGES,
        first.choices[0].message,  # a pydantic message, as the docs show
        {"role": "tool", "tool_call_id": call.id, "content": "21 °C, sunny"},
    ]
    chat(client, tools=TOOLS, messages=followup)
    list(chat(client, tools=TOOLS, stream=True))

    one, two, streamed = all_spans(captured)
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
        {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
    ]
    assert two.attributes[cf.CHAT_MESSAGES] == [
        {"role": "user", "content": "Hello!"},
        {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
        {"role": "tool", "content": "21 °C, sunny", "tool_call_id": "call_fake1"},
        {"role": "assistant", "content": fake.REPLY},
    ]
    assert streamed.outputs["choices"][0]["message"]["tool_calls"] == [TOOL_CALL]
    assert streamed.attributes[cf.FINISH_REASON] == "tool_calls"
    assert streamed.attributes[cf.CHAT_MESSAGES][-1]["tool_calls"] == [TOOL_CALL]


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, groq.BadRequestError),
        (429, groq.RateLimitError),
        (500, groq.InternalServerError),
    ],
)
def test_api_error(captured, client, status, error_type):
    with pytest.raises(groq.APIStatusError) as untraced:
        chat(client, model=f"error-{status}")
    threadline.groq.autolog()
    with pytest.raises(error_type) as traced:
        chat(client, model=f"error-{status}")

    assert type(traced.value) is type(untraced.value) is error_type
    assert str(traced.value) == str(untraced.value)
    span = only_span(captured)
    assert span.status.status_code == "ERROR"
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == error_type.__name__
    assert span.attributes[cf.CHAT_MESSAGES] == [{"role": "user", "content": "Hello!"}]


def test_stream_error_mid_stream(captured, client):
    threadline.groq.autolog()
    with pytest.raises(groq.APIError, match="The server had an error"):
        for _chunk in chat(client, model="error-stream", stream=True):
            pass
    span = only_span(captured)
    assert span.status.status_code == "ERROR"
    assert span.events[0].name == "exception"
    assert span.outputs["choices"][0]["message"]["content"] == "Hel"


def test_nested_under_agent(captured, client):
    threadline.groq.autolog()

    @threadline.trace(span_type=SpanType.AGENT)
    def agent(question: str) -> str:
        response = chat(client, messages=[{"role": "user", "content": question}])
        return response.choices[0].message.content

    assert agent("Hello!") == fake.REPLY
    (trace,) = captured.traces
    root, llm = sorted(trace.data.spans, key=lambda s: s.parent_id is not None)
    assert root.name == "agent" and root.parent_id is None
    assert llm.name == "groq.chat.completions.create"
    assert llm.parent_id == root.span_id
    assert llm.trace_id == root.trace_id


def test_disable_restores_originals_and_reenable(captured, client):
    from groq.resources.chat.completions import AsyncCompletions, Completions

    originals = (vars(Completions)["create"], vars(AsyncCompletions)["create"])
    threadline.groq.autolog()
    threadline.groq.autolog()  # idempotent: one patch, one span per call
    assert vars(Completions)["create"].__wrapped__ is originals[0]
    chat(client)
    assert len(all_spans(captured)) == 1

    threadline.groq.autolog(disable=True)
    after = (vars(Completions)["create"], vars(AsyncCompletions)["create"])
    assert all(a is b for a, b in zip(after, originals))
    chat(client)
    assert len(all_spans(captured)) == 1

    threadline.groq.autolog()
    chat(client)
    assert len(all_spans(captured)) == 2
    threadline.groq.autolog(log_traces=False)
    assert vars(Completions)["create"] is originals[0]


def test_api_key_never_in_the_trace(captured, client, groq_server):
    threadline.groq.autolog()
    secret_headers = {"Authorization": f"Bearer {API_KEY}", "x-api-key": API_KEY}
    chat(client, extra_headers=secret_headers, extra_query={"key": API_KEY})
    list(chat(client, stream=True, extra_headers=secret_headers))
    with pytest.raises(groq.AuthenticationError):
        chat(client, model="error-401", extra_headers=secret_headers)

    assert groq_server.requests[0][1]["authorization"] == f"Bearer {API_KEY}"  # it was sent
    assert len(all_spans(captured)) == 3
    assert_no_secret(captured)


def test_threadline_autolog_turns_it_on(captured, client):
    threadline.autolog()
    assert threadline.groq.INTEGRATION.enabled
    chat(client)
    assert only_span(captured).name == "groq.chat.completions.create"
    threadline.autolog(disable=True)
    assert not threadline.groq.INTEGRATION.enabled


def test_unsupported_version_is_refused(monkeypatch):
    monkeypatch.setattr(groq, "__version__", "0.8.1")
    with pytest.raises(InvalidArgumentError, match=r"supports groq 0\.9\.0 or newer; 0\.8\.1"):
        threadline.groq.autolog()
    assert not threadline.groq.INTEGRATION.enabled


def test_missing_library_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "groq", None)
    with pytest.raises(InvalidArgumentError, match=r'pip install "groq>=0\.9\.0"'):
        threadline.groq.autolog()


def test_groq_is_imported_only_by_autolog():
    code = (
        "import sys, threadline\n"
        "threadline.groq; threadline.integrations\n"
        "assert 'groq' not in sys.modules\n"
        "threadline.groq.autolog()\n"
        "assert 'groq' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
