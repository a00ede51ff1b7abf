"""``threadline.gemini.autolog()`` against a local server speaking the Gemini API.

The client is the real google-genai package pointed at ``_fake_gemini`` with
``HttpOptions(base_url=...)``; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import json
import sys
import types as pytypes
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors, types
from google.genai.models import AsyncModels, Models

import threadline
from tests.integrations import _fake_gemini as fake
from tests.integrations._fake_openai import SSEServer
from tests.integrations.conftest import API_KEY, all_spans, assert_no_secret, only_span
from threadline.entities.keys import SpanAttributeKey
from threadline.entities.span import SpanType
from threadline.errors import InvalidArgumentError
from threadline.integrations import _chat_format as cf
from threadline.integrations import registered

MODEL = "gemini-2.5-flash"
EMBEDDING_MODEL = "text-embedding-004"
PATCHED = ("generate_content", "generate_content_stream", "embed_content")
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
WEATHER = types.Tool(
    function_declarations=[
        types.FunctionDeclaration(
            name="get_weather", description="The weather in a city.", parameters_json_schema=SCHEMA
        )
    ]
)
REPLY_TOKENS = len(fake.pieces({}))
TOKEN_USAGE = {
    "input_tokens": fake.PROMPT_TOKENS,
    "output_tokens": REPLY_TOKENS,
    "total_tokens": fake.PROMPT_TOKENS + REPLY_TOKENS,
}
TOOL_CALL = {
    "id": None,
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}
TOOL_REPLY = {"role": "assistant", "content": fake.TOOL_TEXT, "tool_calls": [TOOL_CALL]}


@pytest.fixture(scope="module")
def gemini_server() -> Iterator[SSEServer]:
    server = fake.serve()
    yield server
    server.stop()


@pytest.fixture
def gemini_url(gemini_server: SSEServer) -> str:
    gemini_server.requests.clear()
    return gemini_server.url


@pytest.fixture
def client(gemini_url: str) -> Iterator[genai.Client]:
    client = genai.Client(api_key=API_KEY, http_options=types.HttpOptions(base_url=gemini_url))
    yield client
    client.close()


def generate(client: Any, **kwargs: Any) -> Any:
    return client.models.generate_content(**{"model": MODEL, "contents": "Hello!", **kwargs})


def stream(client: Any, **kwargs: Any) -> Any:
    return client.models.generate_content_stream(**{"model": MODEL, "contents": "Hello!", **kwargs})


def text_of(span: Any) -> str:
    parts = span.outputs["candidates"][0]["content"]["parts"]
    return "".join(p.get("text", "") for p in parts if not p.get("thought"))


def test_plain_call(captured, client):
    threadline.gemini.autolog()
    config = types.GenerateContentConfig(system_instruction="Be brief.", temperature=0.5)
    response = generate(client, config=config)
    assert response.text == fake.REPLY

    span = only_span(captured)
    assert span.name == "gemini.models.generate_content"
    assert span.span_type == SpanType.CHAT_MODEL
    assert span.status.status_code == "OK"
    assert span.inputs == {
        "model": MODEL,
        "contents": "Hello!",
        "config": {"system_instruction": "Be brief.", "temperature": 0.5},
    }
    assert span.outputs == {
        "automatic_function_calling_history": [],  # as the library's response holds it
        "candidates": [
            {
                "content": {"parts": [{"text": fake.REPLY}], "role": "model"},
                "finish_reason": "STOP",
                "index": 0,
            }
        ],
        "model_version": MODEL + fake.MODEL_VERSION_SUFFIX,
        "response_id": fake.RESPONSE_ID,
        "usage_metadata": {
            "cached_content_token_count": fake.CACHED_TOKENS,
            "candidates_token_count": REPLY_TOKENS,
            "prompt_token_count": fake.PROMPT_TOKENS,
            "prompt_tokens_details": [{"modality": "TEXT", "token_count": fake.PROMPT_TOKENS}],
            "total_token_count": fake.PROMPT_TOKENS + REPLY_TOKENS,
        },
    }
    attrs = span.attributes
    assert attrs[SpanAttributeKey.PROVIDER] == "gemini"
    assert attrs[SpanAttributeKey.MODEL] == MODEL
    assert attrs[SpanAttributeKey.TOKEN_USAGE] == TOKEN_USAGE
    assert attrs[cf.CACHED_INPUT_TOKENS] == fake.CACHED_TOKENS
    assert cf.REASONING_TOKENS not in attrs
    assert attrs[cf.FINISH_REASON] == "STOP"
    assert attrs[cf.CHAT_MESSAGES] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello!"},
        {"role": "assistant", "content": fake.REPLY},
    ]


def test_every_form_of_contents_is_normalised(captured, client, gemini_server):
    threadline.gemini.autolog()
    contents = [
        types.Content(role="user", parts=[types.Part(text="Hi.")]),
        {"role": "model", "parts": [{"text": "Hello."}]},
        "What is",
        types.Part(text="the time?"),
        types.Part.from_bytes(data=b"\x89PNG", mime_type="image/png"),
    ]
    generate(client, contents=contents, config={"system_instruction": ["One.", "Two."]})
    span = only_span(captured)
    assert span.attributes[cf.CHAT_MESSAGES] == [
        {"role": "system", "content": "One.\nTwo."},
        {"role": "user", "content": "Hi."},
        {"role": "assistant", "content": "Hello."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is\nthe time?"},
                {"inline_data": {"data": "iVBORw==", "mime_type": "image/png"}},
            ],
        },
        {"role": "assistant", "content": fake.REPLY},
    ]
    assert span.inputs["contents"][4] == {
        "inline_data": {"data": "iVBORw==", "mime_type": "image/png"}
    }
    # what was sent is what the SDK makes of the same contents
    sent = [c["role"] for c in gemini_server.last_body["contents"]]
    assert sent == ["user", "model", "user"]


def test_stream_fully_consumed(captured, client):
    untraced = [c.model_dump(exclude={"sdk_http_response"}) for c in stream(client)]
    threadline.gemini.autolog()
    traced_stream = stream(client)
    assert isinstance(traced_stream, pytypes.GeneratorType)
    assert inspect.isgenerator(traced_stream)
    traced = [c.model_dump(exclude={"sdk_http_response"}) for c in traced_stream]
    assert traced == untraced

    span = only_span(captured)
    assert span.name == "gemini.models.generate_content_stream"
    assert span.status.status_code == "OK"
    assert span.outputs["candidates"] == [
        {
            "content": {"parts": [{"text": fake.REPLY}], "role": "model"},
            "finish_reason": "STOP",
            "index": 0,
        }
    ]
    assert span.outputs["model_version"] == MODEL + fake.MODEL_VERSION_SUFFIX
    assert span.attributes[SpanAttributeKey.TOKEN_USAGE] == TOKEN_USAGE
    assert span.attributes[cf.FINISH_REASON] == "STOP"
    assert span.attributes[cf.CHAT_MESSAGES][-1] == {"role": "assistant", "content": fake.REPLY}
    assert SpanAttributeKey.GENERATOR_CLOSED_EARLY not in span.attributes


def test_stream_abandoned_half_way(captured, client):
    threadline.gemini.autolog()
    chunks = stream(client)
    texts = []
    for chunk in chunks:
        texts.append(chunk.text)
        if len(texts) == 2:
            break
    assert all_spans(captured) == []  # the stream is still open
    del chunks
    gc.collect()

    span = only_span(captured)
    assert span.status.status_code == "OK"
    assert text_of(span) == "".join(texts) == "Hello! How "
    assert span.attributes[SpanAttributeKey.GENERATOR_CLOSED_EARLY] is True
    assert cf.FINISH_REASON not in span.attributes
    # the early chunks report the prompt only
    assert span.attributes[SpanAttributeKey.TOKEN_USAGE] == {
        "input_tokens": fake.PROMPT_TOKENS,
        "output_tokens": 0,
        "total_tokens": fake.PROMPT_TOKENS,
    }


def test_stream_closed_half_way(captured, client):
    threadline.gemini.autolog()
    chunks = stream(client)
    assert next(chunks).text == "Hello! "
    chunks.close()
    span = only_span(captured)
    assert text_of(span) == "Hello! "
    assert span.attributes[SpanAttributeKey.GENERATOR_CLOSED_EARLY] is True
    with pytest.raises(StopIteration):
        next(chunks)


# google-genai's async client uses aiohttp when it is installed (else httpx), and its
# session class makes aiohttp warn that subclassing ClientSession is discouraged.
_AIOHTTP_SUBCLASS = (
    "ignore:Inheritance class AiohttpClientSession from ClientSession is discouraged"
    ":DeprecationWarning"
)


@contextlib.asynccontextmanager
async def async_models(url: str, transport: str) -> AsyncIterator[Any]:
    """``client.aio.models`` on the library's default transport, or forced to httpx."""
    options: dict[str, Any] = {"base_url": url}
    if transport == "httpx":
        options["httpx_async_client"] = httpx.AsyncClient()
    client = genai.Client(api_key=API_KEY, http_options=options)
    try:
        yield client.aio.models
    finally:
        await client.aio.aclose()
        client.close()
        if transport == "httpx":
            await options["httpx_async_client"].aclose()


@pytest.mark.filterwarnings(_AIOHTTP_SUBCLASS)
@pytest.mark.parametrize("transport", ["default", "httpx"])
def test_async_plain_stream_and_embeddings(captured, gemini_url, transport):
    threadline.gemini.autolog()

    async def main() -> list[Any]:
        async with async_models(gemini_url, transport) as models:
            response = await models.generate_content(model=MODEL, contents="Hello!")
            chunks = await models.generate_content_stream(model=MODEL, contents="Hello!")
            assert isinstance(chunks, pytypes.AsyncGeneratorType)
            texts = [chunk.text async for chunk in chunks]
            embedded = await models.embed_content(model=EMBEDDING_MODEL, contents="a b c")
            return [response.text, "".join(texts), embedded.embeddings[0].values]

    assert asyncio.run(main()) == [fake.REPLY, fake.REPLY, fake.embedding_vector(0)]
    spans = all_spans(captured)
    assert [(s.name, s.span_type) for s in spans] == [
        ("gemini.models.generate_content", SpanType.CHAT_MODEL),
        ("gemini.models.generate_content_stream", SpanType.CHAT_MODEL),
        ("gemini.models.embed_content", SpanType.EMBEDDING),
    ]
    for span in spans[:2]:
        assert span.status.status_code == "OK"
        assert text_of(span) == fake.REPLY
        assert span.attributes[SpanAttributeKey.TOKEN_USAGE] == TOKEN_USAGE
        assert span.attributes[cf.CHAT_MESSAGES][-1] == {
            "role": "assistant",
            "content": fake.REPLY,
        }
    assert spans[2].attributes[SpanAttributeKey.TOKEN_USAGE]["input_tokens"] == 3


@pytest.mark.filterwarnings(_AIOHTTP_SUBCLASS)
@pytest.mark.parametrize("transport", ["default", "httpx"])
def test_async_stream_closed_half_way_and_error(captured, gemini_url, transport):
    threadline.gemini.autolog()

    async def main() -> None:
        async with async_models(gemini_url, transport) as models:
            chunks = await models.generate_content_stream(model=MODEL, contents="Hi")
            async for _ in chunks:
                break
            await chunks.aclose()
            with pytest.raises(errors.ClientError):
                await models.generate_content(model="error-429", contents="Hi")

    asyncio.run(main())
    closed, failed = all_spans(captured)
    assert text_of(closed) == "Hello! "
    assert closed.attributes[SpanAttributeKey.GENERATOR_CLOSED_EARLY] is True
    assert failed.status.status_code == "ERROR"
    assert failed.events[0].attributes["exception.type"] == "ClientError"


def test_tool_call_normalised(captured, client):
    threadline.gemini.autolog()
    code = types.Tool(code_execution=types.ToolCodeExecution())
    config = types.GenerateContentConfig(tools=[WEATHER, code])
    question = types.Content(role="user", parts=[types.Part(text="Weather in Paris?")])
    first = generate(client, contents=[question], config=config)
    call = first.function_calls[0]
    assert (call.name, call.args) == ("get_weather", fake.TOOL_ARGS)
    answer = types.Part.from_function_response(name="get_weather", response={"result": "21 °C"})
    followup = [question, first.candidates[0].content, types.Content(role="user", parts=[answer])]
    generate(client, contents=followup, config=config)
    list(stream(client, contents=[question], config=config))

    one, two, streamed = all_spans(captured)
    assert one.attributes[cf.CHAT_TOOLS] == [
        {"name": "get_weather", "description": "The weather in a city.", "parameters": SCHEMA},
        {"name": "code_execution", "description": None, "parameters": None},
    ]
    assert one.attributes[cf.FINISH_REASON] == "STOP"
    user = {"role": "user", "content": "Weather in Paris?"}
    assert one.attributes[cf.CHAT_MESSAGES] == [user, TOOL_REPLY]
    assert two.attributes[cf.CHAT_MESSAGES] == [
        user,
        TOOL_REPLY,
        {"role": "tool", "content": {"result": "21 °C"}, "name": "get_weather"},
        {"role": "assistant", "content": fake.REPLY},
    ]
    # the stream keeps the function call whole, with its thought signature
    assert streamed.outputs["candidates"][0]["content"]["parts"] == [
        {"text": fake.TOOL_TEXT},
        {
            "function_call": {"args": fake.TOOL_ARGS, "name": "get_weather"},
            "thought_signature": fake.THOUGHT_SIGNATURE,
        },
    ]
    assert streamed.attributes[cf.CHAT_MESSAGES][-1] == TOOL_REPLY
    assert streamed.attributes[cf.CHAT_TOOLS] == one.attributes[cf.CHAT_TOOLS]


def test_thoughts_are_counted_as_output_and_left_out_of_the_conversation(captured, client):
    threadline.gemini.autolog()
    thinking = {"thinking_config": {"include_thoughts": True}}
    generate(client, config=thinking)
    list(stream(client, config=thinking))
    for span in all_spans(captured):
        output = REPLY_TOKENS + fake.THOUGHTS_TOKENS
        assert span.attributes[SpanAttributeKey.TOKEN_USAGE] == {
            "input_tokens": fake.PROMPT_TOKENS,
            "output_tokens": output,
            "total_tokens": fake.PROMPT_TOKENS + output,
        }
        assert span.attributes[cf.REASONING_TOKENS] == fake.THOUGHTS_TOKENS
        assert span.attributes[cf.CHAT_MESSAGES][-1] == {
            "role": "assistant",
            "content": fake.REPLY,
        }
        parts = span.outputs["candidates"][0]["content"]["parts"]
        assert parts[0] == {"text": fake.THOUGHT, "thought": True}


def test_blocked_prompt_reports_the_block_reason(captured, client):
    threadline.gemini.autolog()
    response = generate(client, model="blocked")
    assert response.text is None
    span = only_span(captured)
    assert span.status.status_code == "OK"
    assert span.outputs["prompt_feedback"] == {"block_reason": "SAFETY"}
    assert span.attributes[cf.FINISH_REASON] == "SAFETY"
    assert span.attributes[cf.CHAT_MESSAGES] == [
        {"role": "user", "content": "Hello!"},
        {"role": "assistant", "content": None},
    ]


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(400, errors.ClientError), (429, errors.ClientError), (503, errors.ServerError)],
)
def test_api_error(captured, client, status, error_type):
    with pytest.raises(errors.APIError) as untraced:
        generate(client, model=f"error-{status}")
    threadline.gemini.autolog()
    with pytest.raises(errors.APIError) as traced:
        generate(client, model=f"error-{status}")
    assert type(traced.value) is type(untraced.value) is error_type
    assert str(traced.value) == str(untraced.value)
    assert traced.value.code == status
    span = only_span(captured)
    assert span.status.status_code == "ERROR"
    assert span.events[0].name == "exception"
    assert span.events[0].attributes["exception.type"] == error_type.__name__
    assert span.attributes[cf.CHAT_MESSAGES] == [{"role": "user", "content": "Hello!"}]


def test_api_error_of_a_stream(captured, client):
    threadline.gemini.autolog()
    with pytest.raises(errors.ClientError):
        list(stream(client, model="error-400"))
    with pytest.raises(errors.ServerError, match="overloaded"):
        list(stream(client, model="error-stream"))
    refused, broken = all_spans(captured)
    assert refused.status.status_code == broken.status.status_code == "ERROR"
    assert refused.outputs is None
    assert refused.events[0].attributes["exception.type"] == "ClientError"
    assert text_of(broken) == "Hello! "  # what arrived before the error
    assert broken.events[0].attributes["exception.type"] == "ServerError"


def test_nested_under_agent(captured, client):
    threadline.gemini.autolog()

    @threadline.trace(span_type=SpanType.AGENT)
    def agent() -> str:
        chat = client.chats.create(model=MODEL)
        chat.send_message("Hello!")
        return "".join(chunk.text for chunk in chat.send_message_stream("Again."))

    assert agent() == fake.REPLY
    (trace,) = captured.traces
    root, *llm = sorted(trace.data.spans, key=lambda s: s.parent_id is not None)
    assert root.name == "agent"
    assert [s.name for s in llm] == [
        "gemini.models.generate_content",
        "gemini.models.generate_content_stream",
    ]
    assert all(s.parent_id == root.span_id for s in llm)
    assert llm[1].attributes[cf.CHAT_MESSAGES] == [
        {"role": "user", "content": "Hello!"},
        {"role": "assistant", "content": fake.REPLY},
        {"role": "user", "content": "Again."},
        {"role": "assistant", "content": fake.REPLY},
    ]


def get_weather(city: str) -> dict[str, str]:
    """The weather in a city."""
    return {"weather": f"21 °C in {city}"}


def test_chat_with_automatic_function_calling_is_one_span_per_request(captured, client):
    threadline.gemini.autolog()
    chat = client.chats.create(model=MODEL, config={"tools": [get_weather]})
    assert chat.send_message("Weather in Paris?").text == fake.REPLY
    first, second = all_spans(captured)  # the chat made two requests
    assert first.inputs["config"]["tools"][0].startswith("<function get_weather")
    assert first.attributes[cf.CHAT_TOOLS] == [
        {"name": "get_weather", "description": "The weather in a city.", "parameters": None}
    ]
    assert first.attributes[cf.CHAT_MESSAGES][-1] == TOOL_REPLY
    assert second.attributes[cf.CHAT_MESSAGES][-2:] == [
        {
            "role": "tool",
            "content": {"result": {"weather": "21 °C in Paris"}},
            "name": "get_weather",
        },
        {"role": "assistant", "content": fake.REPLY},
    ]
    assert second.attributes[SpanAttributeKey.TOKEN_USAGE] == TOKEN_USAGE


def test_disable_restores_originals_and_reenable(captured, client):
    owners = (Models, AsyncModels)
    originals = {(cls, n): vars(cls)[n] for cls in owners for n in PATCHED}
    threadline.gemini.autolog()
    assert all(vars(cls)[n] is not o for (cls, n), o in originals.items())
    threadline.gemini.autolog(disable=True)
    assert all(vars(cls)[n] is o for (cls, n), o in originals.items())
    generate(client)
    assert captured.traces == []
    threadline.gemini.autolog()
    generate(client)
    assert len(captured.traces) == 1


def test_log_traces_false_and_idempotency(captured, client):
    original = vars(Models)["generate_content"]
    threadline.gemini.autolog(log_traces=False)
    assert vars(Models)["generate_content"] is original
    threadline.gemini.autolog()
    threadline.gemini.autolog()
    generate(client)
    list(stream(client))
    assert [len(t.data.spans) for t in captured.traces] == [1, 1]
    threadline.gemini.autolog(log_traces=False)
    assert vars(Models)["generate_content"] is original


def test_embeddings(captured, client):
    threadline.gemini.autolog()
    response = client.models.embed_content(
        model=EMBEDDING_MODEL,
        contents=["a b", "c"],
        config=types.EmbedContentConfig(output_dimensionality=fake.EMBEDDING_DIM),
    )
    assert [e.values for e in response.embeddings] == [
        fake.embedding_vector(0),
        fake.embedding_vector(1),
    ]
    span = only_span(captured)
    assert span.name == "gemini.models.embed_content"
    assert span.span_type == SpanType.EMBEDDING
    assert span.inputs == {
        "model": EMBEDDING_MODEL,
        "contents": ["a b", "c"],
        "config": {"output_dimensionality": fake.EMBEDDING_DIM},
    }
    assert span.outputs["embeddings"] == [
        {"values": fake.embedding_vector(0)},
        {"values": fake.embedding_vector(1)},
    ]
    assert span.attributes[SpanAttributeKey.MODEL] == EMBEDDING_MODEL
    assert span.attributes[SpanAttributeKey.TOKEN_USAGE] == {
        "input_tokens": 3,
        "output_tokens": 0,
        "total_tokens": 3,
    }
    assert cf.CHAT_MESSAGES not in span.attributes


def test_api_key_never_in_the_trace(captured, client, gemini_server):
    threadline.gemini.autolog()
    options = types.HttpOptions(headers={"x-goog-api-key": API_KEY}, base_url=gemini_server.url)
    generate(client, config=types.GenerateContentConfig(http_options=options, temperature=0.1))
    list(stream(client, config={"httpOptions": {"headers": {"x-goog-api-key": API_KEY}}}))
    client.models.embed_content(
        model=EMBEDDING_MODEL, contents="a", config={"http_options": options}
    )
    with pytest.raises(errors.ClientError):
        generate(client, model="error-403")
    assert gemini_server.requests[0][1]["x-goog-api-key"] == API_KEY  # it was sent
    spans = all_spans(captured)
    assert len(spans) == 4
    assert spans[0].inputs["config"] == {"temperature": 0.1}
    assert "sdk_http_response" not in spans[0].outputs
    assert_no_secret(captured)


def test_threadline_autolog_includes_gemini(captured, client):
    assert registered()["gemini"] == "threadline.integrations.gemini"
    assert threadline.gemini.INTEGRATION.import_name == "google.genai"
    threadline.autolog()
    assert threadline.gemini.INTEGRATION.enabled
    generate(client)
    assert only_span(captured).name == "gemini.models.generate_content"
    threadline.autolog(disable=True)
    assert not threadline.gemini.INTEGRATION.enabled
    assert vars(Models)["generate_content"].__qualname__ == "Models.generate_content"


def test_token_usage_summed_in_the_stored_trace(tmp_path, client):
    threadline.set_tracking_uri(f"sqlite:///{tmp_path}/t.db")
    threadline.gemini.autolog()

    @threadline.trace(span_type=SpanType.AGENT)
    def agent() -> None:
        generate(client)
        list(stream(client))

    agent()
    trace = threadline.get_trace(threadline.get_last_active_trace_id())
    assert trace is not None
    assert trace.info.token_usage == {k: 2 * v for k, v in TOKEN_USAGE.items()}
    stored = {s.name: s for s in trace.data.spans}
    reply = stored["gemini.models.generate_content"].attributes[cf.CHAT_MESSAGES][-1]
    assert json.loads(json.dumps(reply)) == {"role": "assistant", "content": fake.REPLY}


def test_missing_library_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.genai", None)
    with pytest.raises(InvalidArgumentError, match=r'pip install "google-genai>=1\.0\.0"'):
        threadline.gemini.autolog()


def test_too_old_version_is_refused_with_the_upgrade_command(monkeypatch):
    monkeypatch.setattr(genai, "__version__", "0.8.0")
    with pytest.raises(InvalidArgumentError, match=r"supports google-genai 1\.0\.0 or newer"):
        threadline.gemini.autolog()
    assert not threadline.gemini.INTEGRATION.enabled
