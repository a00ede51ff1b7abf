"""``threadline.litellm.autolog()``: litellm's real code talking to the local OpenAI fake.

Every call goes through litellm's ``openai/`` provider to ``_fake_openai`` (``api_base``),
so what is recorded is what litellm really sends and returns.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

# litellm fetches its model price list from the internet when imported, unless told not to
# (there is no network here; the list it ships is used instead).
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")

import litellm

import threadline
from tests.integrations import _fake_openai as fake
from tests.integrations.conftest import (
    API_KEY,
    all_spans,
    assert_no_secret,
    only_span,
)
from threadline.entities.keys import SpanAttributeKey
from threadline.entities.span import SpanType
from threadline.errors import InvalidArgumentError
from threadline.integrations import _chat_format as cf

MODEL = "openai/gpt-4o-mini"
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
# Warnings from litellm's own code under this pydantic, which the suite turns into errors:
# its first call imports a module whose TypedDict schemas warn, and its stream handler
# reads every attribute of a chunk, one of them deprecated on instances.
pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:Items? .* on TypedDict class .* using the `ReadOnly` qualifier:UserWarning"
    ),
    pytest.mark.filterwarnings(
        "ignore:Accessing the 'model_\\w+' attribute on the instance is deprecated"
        ":DeprecationWarning"
    ),
]
FUNCTIONS = ("completion", "acompletion", "text_completion", "atext_completion")
FUNCTIONS += ("embedding", "aembedding")


@pytest.fixture(autouse=True)
def _thread_event_loop() -> Iterator[None]:
    """An event loop for this thread, closed after the test.

    litellm's synchronous calls run its service hooks on the thread's event loop, making
    one with ``asyncio.get_event_loop()`` when there is none and never closing it; the next
    ``asyncio.run()`` (in any later test) drops it, and its collection warns as a leak."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield
    asyncio.set_event_loop(None)
    loop.close()


@pytest.fixture
def server(openai_url: str, openai_server: fake.SSEServer) -> fake.SSEServer:
    return openai_server


@pytest.fixture
def endpoint(openai_url: str) -> dict[str, Any]:
    """Where litellm sends the calls; no retries, so that an error is one request."""
    return {"api_base": openai_url, "api_key": API_KEY, "max_retries": 0}


def chat(endpoint: dict[str, Any], **kwargs: Any) -> Any:
    return litellm.completion(**{"model": MODEL, "messages": MESSAGES, **endpoint, **kwargs})


async def achat(endpoint: dict[str, Any], **kwargs: Any) -> Any:
    return await litellm.acompletion(**{"model": MODEL, "messages": MESSAGES, **endpoint, **kwargs})


def no_created(chunk: Any) -> dict[str, Any]:
    """A chunk as the caller sees it, less ``created`` (litellm stamps its own clock)."""
    dump = chunk.model_dump()
    dump.pop("created")
    return dump


def test_completion(captured, endpoint):
    threadline.litellm.autolog()
    response = chat(endpoint, temperature=0.2)

    assert response.choices[0].message.content == fake.REPLY
    span = only_span(captured)
    assert span.name == "litellm.completion"
    assert span.span_type == SpanType.CHAT_MODEL
    assert span.status.status_code == "OK"
    assert span.parent_id is None
    assert span.inputs == {
        "model": MODEL,
        "messages": MESSAGES,
        "api_base": endpoint["api_base"],
        "max_retries": 0,
        "temperature": 0.2,
    }
    assert span.outputs == json.loads(json.dumps(response.model_dump()))
    attrs = span.attributes
    assert attrs[SpanAttributeKey.PROVIDER] == "openai"  # litellm's name for the provider
    assert attrs[SpanAttributeKey.MODEL] == "gpt-4o-mini"
    assert attrs[SpanAttributeKey.TOKEN_USAGE] == TOKEN_USAGE
    assert attrs[cf.CACHED_INPUT_TOKENS] == fake.CACHED_TOKENS
    assert attrs[cf.REASONING_TOKENS] == fake.REASONING_TOKENS
    assert attrs[cf.FINISH_REASON] == "stop"
    assert attrs[cf.CHAT_MESSAGES] == [
        {"role": "user", "content": "Hello!"},
        {"role": "assistant", "content": fake.REPLY},
    ]


def test_positional_arguments_are_recorded_by_name(captured, endpoint):
    threadline.litellm.autolog()
    litellm.completion(MODEL, MESSAGES, **endpoint)
    litellm.embedding("openai/text-embedding-3-small", ["a"], **endpoint)
    chat_span, embedding_span = all_spans(captured)
    assert chat_span.inputs["model"] == MODEL
    assert chat_span.inputs["messages"] == MESSAGES
    assert embedding_span.inputs["input"] == ["a"]


def test_provider_as_litellm_resolves_it(captured, endpoint):
    threadline.litellm.autolog()
    chat(endpoint, model="gpt-4o-mini")  # a bare name litellm knows
    chat(endpoint, model="my-finetune", custom_llm_provider="openai")
    with pytest.raises(litellm.BadRequestError, match="LLM Provider NOT provided"):
        chat(endpoint, model="no-such-model")

    known, custom, unknown = all_spans(captured)
    assert known.attributes[SpanAttributeKey.PROVIDER] == "openai"
    assert known.attributes[SpanAttributeKey.MODEL] == "gpt-4o-mini"
    assert custom.attributes[SpanAttributeKey.PROVIDER] == "openai"
    assert custom.attributes[SpanAttributeKey.MODEL] == "my-finetune"
    assert unknown.attributes[SpanAttributeKey.PROVIDER] == "litellm"
    assert unknown.attributes[SpanAttributeKey.MODEL] == "no-such-model"
    assert unknown.status.status_code == "ERROR"


def test_stream_fully_consumed_is_what_the_caller_would_see(captured, endpoint, server):
    untraced = [no_created(c) for c in chat(endpoint, stream=True)]
    assert "stream_options" not in server.last_body
    threadline.litellm.autolog()
    stream = chat(endpoint, stream=True)
    assert isinstance(stream, litellm.CustomStreamWrapper)
    assert stream.model == "gpt-4o-mini"  # attributes are forwarded
    traced = [no_created(c) for c in stream]

    assert traced == untraced  # the usage-only chunk tracing asked for is not passed on
    assert server.last_body["stream_options"] == {"include_usage": True}
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
    assert span.attributes[SpanAttributeKey.TOKEN_USAGE] == TOKEN_USAGE
    assert span.attributes[cf.CACHED_INPUT_TOKENS] == fake.CACHED_TOKENS
    assert span.attributes[cf.CHAT_MESSAGES][-1] == {"role": "assistant", "content": fake.REPLY}
    assert SpanAttributeKey.GENERATOR_CLOSED_EARLY not in span.attributes


def test_stream_with_callers_stream_options_passes_usage_chunk(captured, endpoint):
    threadline.litellm.autolog()
    chunks = list(chat(endpoint, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 19
    assert only_span(captured).attributes[SpanAttributeKey.TOKEN_USAGE] == TOKEN_USAGE


def test_stream_abandoned_half_way(captured, endpoint):
    threadline.litellm.autolog()
    stream = chat(endpoint, stream=True)
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


def test_stream_closed_and_context_manager(captured, endpoint):
    threadline.litellm.autolog()
    stream = chat(endpoint, stream=True)
    first = [next(stream), next(stream)]
    assert stream.close() is None  # litellm's close() is synchronous, and stays so
    with chat(endpoint, stream=True) as managed:
        next(managed)
    closed, left = all_spans(captured)
    text = "".join(c.choices[0].delta.content for c in first)
    assert closed.outputs["choices"][0]["message"]["content"] == text
    assert left.attributes[SpanAttributeKey.GENERATOR_CLOSED_EARLY] is True


def test_stream_error_mid_stream(captured, endpoint):
    threadline.litellm.autolog()
    with pytest.raises(litellm.exceptions.MidStreamFallbackError) as caught:
        for _chunk in chat(endpoint, model="openai/error-stream", stream=True):
            pass
    span = only_span(captured)
    assert span.status.status_code == "ERROR"
    assert span.events[0].attributes["exception.type"] == type(caught.value).__name__
    assert span.outputs["choices"][0]["message"]["content"] == "Hel"


def test_async_completion_and_stream(captured, endpoint):
    threadline.litellm.autolog()

    async def main() -> tuple[Any, list[Any]]:
        response = await achat(endpoint)
        stream = await achat(endpoint, stream=True)
        assert isinstance(stream, litellm.CustomStreamWrapper)
        chunks = [chunk async for chunk in stream]
        half = await achat(endpoint, stream=True)
        async for _chunk in half:
            break
        await half.aclose()
        return response, chunks

    response, chunks = asyncio.run(main())
    assert response.choices[0].message.content == fake.REPLY
    assert all(c.choices for c in chunks)  # no usage-only chunk
    plain, streamed, closed = all_spans(captured)
    assert {s.name for s in (plain, streamed, closed)} == {"litellm.acompletion"}
    assert plain.attributes[SpanAttributeKey.TOKEN_USAGE] == TOKEN_USAGE
    assert streamed.outputs["choices"][0]["message"]["content"] == fake.REPLY
    assert streamed.attributes[SpanAttributeKey.TOKEN_USAGE] == TOKEN_USAGE
    assert closed.status.status_code == "OK"
    assert closed.attributes[SpanAttributeKey.GENERATOR_CLOSED_EARLY] is True


def test_async_error_is_reraised(captured, endpoint):
    threadline.litellm.autolog()
    with pytest.raises(litellm.RateLimitError):
        asyncio.run(achat(endpoint, model="openai/error-429"))
    assert only_span(captured).status.status_code == "ERROR"


def test_tool_calls_normalised(captured, endpoint):
    threadline.litellm.autolog()
    first = chat(endpoint, tools=TOOLS)
    call = first.choices[0].message.tool_calls[0]
    followup = [
        *MESSAGES,
        first.choices[0].message,  # litellm's message object, as its docs show
        {"role": "tool", "tool_call_id": call.id, "content": "21 °C, sunny"},
    ]
    chat(endpoint, tools=TOOLS, messages=followup)
    list(chat(endpoint, tools=TOOLS, stream=True))

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
        (400, litellm.BadRequestError),
        (429, litellm.RateLimitError),
        (500, litellm.InternalServerError),
    ],
)
def test_api_error(captured, endpoint, status, error_type):
    with pytest.raises(Exception) as untraced:
        chat(endpoint, model=f"openai/error-{status}")
    threadline.litellm.autolog()
    with pytest.raises(error_type) as traced:
        chat(endpoint, model=f"openai/error-{status}")

    assert type(traced.value) is type(untraced.value) is error_type  # litellm's own type
    assert str(traced.value) == str(untraced.value)
    span = only_span(captured)
    assert span.status.status_code == "ERROR"
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == error_type.__name__
    assert span.attributes[cf.CHAT_MESSAGES] == [{"role": "user", "content": "Hello!"}]


def test_embeddings_sync_and_async(captured, endpoint):
    threadline.litellm.autolog()
    model = "openai/text-embedding-3-small"
    result = litellm.embedding(model=model, input=["a", "b"], **endpoint)
    asyncio.run(litellm.aembedding(model=model, input="c", **endpoint))

    assert result.data[1]["embedding"] == fake.embedding_vector(1)
    sync_span, async_span = all_spans(captured)
    assert (sync_span.name, async_span.name) == ("litellm.embedding", "litellm.aembedding")
    assert sync_span.span_type == async_span.span_type == SpanType.EMBEDDING
    assert sync_span.inputs["input"] == ["a", "b"]
    assert sync_span.outputs["data"][1]["embedding"] == fake.embedding_vector(1)
    assert sync_span.attributes[SpanAttributeKey.PROVIDER] == "openai"
    assert sync_span.attributes[SpanAttributeKey.MODEL] == "text-embedding-3-small"
    assert sync_span.attributes[SpanAttributeKey.TOKEN_USAGE] == {
        "input_tokens": 6,
        "output_tokens": 0,
        "total_tokens": 6,
    }
    assert async_span.attributes[SpanAttributeKey.TOKEN_USAGE]["input_tokens"] == 3


def test_text_completion_plain_and_streamed(captured, endpoint):
    threadline.litellm.autolog()
    model = "openai/gpt-3.5-turbo-instruct"
    text = litellm.text_completion(model=model, prompt="Say hi", **endpoint)
    chunks = list(litellm.text_completion(model=model, prompt="Say hi", stream=True, **endpoint))

    assert all(c.choices for c in chunks)  # the usage-only chunk is not passed on
    plain, streamed = all_spans(captured)
    for span in (plain, streamed):
        assert span.name == "litellm.text_completion"
        assert span.span_type == SpanType.LLM
        assert span.attributes[SpanAttributeKey.TOKEN_USAGE] == TOKEN_USAGE
        assert span.attributes[cf.FINISH_REASON] == "stop"
    assert streamed.outputs["choices"][0]["text"] == text.choices[0].text == fake.REPLY


def test_with_openai_autolog_the_inner_openai_call_is_not_recorded_apart(captured, endpoint):
    # With an ``encoding_format`` litellm calls the openai SDK's ``embeddings.create``.
    embed = {"model": "openai/text-embedding-3-small", "input": ["a"], "encoding_format": "float"}

    def embedding() -> Any:
        return litellm.embedding(**embed, **endpoint)

    threadline.openai.autolog()
    embedding()
    assert only_span(captured).name == "openai.embeddings.create"

    captured.clear()
    threadline.litellm.autolog()
    embedding()
    asyncio.run(litellm.aembedding(**embed, **endpoint))
    chat(endpoint)
    list(chat(endpoint, stream=True))
    assert [[s.name for s in t.data.spans] for t in captured.traces] == [
        ["litellm.embedding"],
        ["litellm.aembedding"],
        ["litellm.completion"],
        ["litellm.completion"],
    ]


def test_nested_under_agent(captured, endpoint):
    threadline.litellm.autolog()

    @threadline.trace(span_type=SpanType.AGENT)
    def agent(question: str) -> str:
        response = chat(endpoint, messages=[{"role": "user", "content": question}])
        text = "".join(c.choices[0].delta.content or "" for c in chat(endpoint, stream=True))
        return response.choices[0].message.content + text

    assert agent("Hello!") == fake.REPLY * 2
    (trace,) = captured.traces
    root, *calls = sorted(trace.data.spans, key=lambda s: s.parent_id is not None)
    assert root.name == "agent" and root.parent_id is None
    assert [s.name for s in calls] == ["litellm.completion", "litellm.completion"]
    assert all(s.parent_id == root.span_id for s in calls)


def test_the_module_attribute_is_patched_and_restored(captured, endpoint):
    originals = {name: vars(litellm)[name] for name in FUNCTIONS}
    threadline.litellm.autolog()
    threadline.litellm.autolog()  # idempotent
    for name, original in originals.items():
        assert vars(litellm)[name].__wrapped__ is original
    from litellm import completion  # imported after autolog(): the traced function

    completion(model=MODEL, messages=MESSAGES, **endpoint)
    assert len(all_spans(captured)) == 1

    threadline.litellm.autolog(disable=True)
    assert all(vars(litellm)[name] is original for name, original in originals.items())
    chat(endpoint)
    assert len(all_spans(captured)) == 1

    threadline.litellm.autolog()
    chat(endpoint)
    assert len(all_spans(captured)) == 2
    threadline.litellm.autolog(log_traces=False)
    assert all(vars(litellm)[name] is original for name, original in originals.items())


def test_api_key_never_in_the_trace(captured, endpoint, server):
    threadline.litellm.autolog()
    headers = {"Authorization": f"Bearer {API_KEY}", "x-api-key": API_KEY}
    chat(endpoint, extra_headers=headers)
    list(chat(endpoint, stream=True, headers=headers))
    with pytest.raises(litellm.AuthenticationError):
        chat(endpoint, model="openai/error-401", extra_headers=headers)
    litellm.embedding(model="openai/text-embedding-3-small", input="a", **endpoint)

    assert server.requests[0][1]["authorization"] == f"Bearer {API_KEY}"  # it was sent
    assert len(all_spans(captured)) == 4
    assert_no_secret(captured)


def test_credential_like_arguments_are_left_out_of_the_inputs():
    from threadline.integrations.litellm import _inputs

    secrets = (
        "api_key",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "azure_ad_token",
        "azure_ad_token_provider",
        "vertex_credentials",
        "headers",
        "extra_headers",
        "client",
    )
    kept = {"model": MODEL, "max_tokens": 5, "prompt_cache_key": "k", "api_base": "http://x"}
    assert _inputs({**kept, **dict.fromkeys(secrets, API_KEY)}) == kept


def test_threadline_autolog_turns_it_on(captured, endpoint):
    threadline.autolog()
    assert threadline.litellm.INTEGRATION.enabled
    chat(endpoint)
    assert only_span(captured).name == "litellm.completion"
    threadline.autolog(disable=True)
    assert not threadline.litellm.INTEGRATION.enabled


def test_unsupported_version_is_refused(monkeypatch):
    monkeypatch.setattr(litellm, "__version__", "1.30.2", raising=False)
    with pytest.raises(InvalidArgumentError, match=r"supports litellm 1\.40\.0 or newer; 1\.30\.2"):
        threadline.litellm.autolog()
    assert not threadline.litellm.INTEGRATION.enabled


def test_missing_library_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "litellm", None)
    with pytest.raises(InvalidArgumentError, match=r'pip install "litellm>=1\.40\.0"'):
        threadline.litellm.autolog()


def test_litellm_is_not_imported_by_threadline():
    code = (
        "import sys, threadline\n"
        "threadline.litellm.INTEGRATION; threadline.integrations\n"
        "assert 'litellm' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
