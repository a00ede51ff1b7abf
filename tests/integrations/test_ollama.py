"""``threadline.ollama.autolog()`` against a local server speaking Ollama's REST API."""

from __future__ import annotations

import asyncio
import gc
import importlib
import json
import logging
import sys
import types
from collections.abc import Iterator
from typing import Any

import ollama
import pytest

import threadline
from tests.integrations import _fake_ollama as fake
from tests.integrations._fake_openai import SSEServer
from tests.integrations.conftest import API_KEY, all_spans, assert_no_secret, only_span
from threadline.entities.keys import SpanAttributeKey
from threadline.entities.span import SpanType
from threadline.errors import InvalidArgumentError
from threadline.integrations import _chat_format as cf

MODEL = "llama3.2"
MESSAGES = [{"role": "user", "content": "Hello!"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "description": "The city."}},
                "required": ["city"],
            },
        },
    }
]
REPLY_TOKENS = len(fake.pieces({}))
TOKEN_USAGE = {
    "input_tokens": fake.PROMPT_EVAL_COUNT,
    "output_tokens": REPLY_TOKENS,
    "total_tokens": fake.PROMPT_EVAL_COUNT + REPLY_TOKENS,
}
TOOL_CALL = {
    "id": None,
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}
METHODS = ("chat", "generate", "embed", "embeddings")


@pytest.fixture(scope="module")
def ollama_server() -> Iterator[SSEServer]:
    server = fake.serve()
    yield server
    server.stop()


@pytest.fixture
def ollama_url(ollama_server: SSEServer) -> str:
    ollama_server.requests.clear()
    return ollama_server.url


@pytest.fixture
def client(ollama_url: str) -> Iterator[Any]:
    with ollama.Client(host=ollama_url) as c:
        yield c


@pytest.fixture
def default_client(monkeypatch: pytest.MonkeyPatch, ollama_url: str) -> Iterator[Any]:
    """``ollama`` re-imported with ``OLLAMA_HOST`` set, so that its module-level functions
    (``ollama.chat``…) talk to the fake server; re-imported as it was afterwards."""
    monkeypatch.setenv("OLLAMA_HOST", ollama_url)
    importlib.reload(ollama)
    yield ollama
    threadline.ollama.autolog(disable=True, silent=True)
    ollama.chat.__self__.close()
    monkeypatch.delenv("OLLAMA_HOST")
    importlib.reload(ollama)


def chat(client: Any, **kwargs: Any) -> Any:
    return client.chat(**{"model": MODEL, "messages": MESSAGES, **kwargs})


def get_weather(city: str) -> str:
    """The weather in a city.

    Args:
        city: The city.

    Returns:
        The weather.
    """
    return "21 °C"


def test_plain_chat(captured, client):
    threadline.ollama.autolog()
    messages = [{"role": "system", "content": "Be brief."}, *MESSAGES]
    response = chat(client, messages=messages, options={"temperature": 0.2})
    assert response.message.content == fake.REPLY

    span = only_span(captured)
    assert span.name == "ollama.chat"
    assert span.span_type == SpanType.CHAT_MODEL
    assert span.status.status_code == "OK"
    assert span.inputs == {"model": MODEL, "messages": messages, "options": {"temperature": 0.2}}
    assert span.outputs == json.loads(json.dumps(response.model_dump()))
    attrs = span.attributes
    assert attrs[SpanAttributeKey.PROVIDER] == "ollama"
    assert attrs[SpanAttributeKey.MODEL] == MODEL
    assert attrs[SpanAttributeKey.TOKEN_USAGE] == TOKEN_USAGE
    assert attrs[cf.FINISH_REASON] == "stop"
    assert attrs[cf.CHAT_MESSAGES] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello!"},
        {"role": "assistant", "content": fake.REPLY},
    ]


def test_positional_arguments_are_recorded_by_name(captured, client, ollama_server):
    threadline.ollama.autolog()
    assert client.chat(MODEL, MESSAGES).message.content == fake.REPLY
    assert client.generate(MODEL, "Why?").response == fake.REPLY
    assert ollama_server.requests[0][2]["messages"] == MESSAGES  # sent as given

    chat_span, generate_span = all_spans(captured)
    assert chat_span.inputs == {"model": MODEL, "messages": MESSAGES}
    assert chat_span.attributes[SpanAttributeKey.MODEL] == MODEL
    assert chat_span.attributes[cf.CHAT_MESSAGES][0] == {"role": "user", "content": "Hello!"}
    assert generate_span.inputs == {"model": MODEL, "prompt": "Why?"}


def test_stream_fully_consumed(captured, client):
    untraced = [piece.model_dump() for piece in chat(client, stream=True)]
    threadline.ollama.autolog()
    stream = chat(client, stream=True)
    assert isinstance(stream, types.GeneratorType)
    traced = [piece.model_dump() for piece in stream]
    assert traced == untraced

    span = only_span(captured)
    assert span.name == "ollama.chat"
    assert span.status.status_code == "OK"
    assert span.inputs == {"model": MODEL, "messages": MESSAGES, "stream": True}
    assert span.outputs["message"]["content"] == fake.REPLY
    assert span.outputs["done"] is True
    assert span.outputs["eval_count"] == REPLY_TOKENS
    assert span.attributes[SpanAttributeKey.TOKEN_USAGE] == TOKEN_USAGE
    assert span.attributes[cf.FINISH_REASON] == "stop"
    assert span.attributes[cf.CHAT_MESSAGES][-1] == {"role": "assistant", "content": fake.REPLY}
    assert SpanAttributeKey.GENERATOR_CLOSED_EARLY not in span.attributes


def test_stream_abandoned_half_way(captured, client):
    threadline.ollama.autolog()
    stream = chat(client, stream=True)
    texts = [next(stream).message.content, next(stream).message.content]
    assert all_spans(captured) == []  # still open: the caller may read on
    del stream
    gc.collect()

    span = only_span(captured)
    assert span.status.status_code == "OK"
    assert span.outputs["message"]["content"] == "".join(texts) == "Hello! How "
    assert span.outputs["done"] is False
    assert span.attributes[SpanAttributeKey.GENERATOR_CLOSED_EARLY] is True
    assert SpanAttributeKey.TOKEN_USAGE not in span.attributes


def test_stream_closed(captured, client):
    threadline.ollama.autolog()
    stream = chat(client, stream=True)
    next(stream)
    stream.close()
    assert list(stream) == []  # closed like the library's generator
    span = only_span(captured)
    assert span.outputs["message"]["content"] == "Hello! "
    assert span.attributes[SpanAttributeKey.GENERATOR_CLOSED_EARLY] is True


def test_async_chat_and_stream(captured, ollama_url):
    threadline.ollama.autolog()

    async def main() -> list[str]:
        async with ollama.AsyncClient(host=ollama_url) as client:
            response = await chat(client)
            stream = await chat(client, stream=True)
            assert isinstance(stream, types.AsyncGeneratorType)
            texts = [piece.message.content async for piece in stream]
            return [response.message.content, "".join(texts)]

    assert asyncio.run(main()) == [fake.REPLY, fake.REPLY]
    plain, streamed = all_spans(captured)
    for span in (plain, streamed):
        assert span.name == "ollama.chat"
        assert span.status.status_code == "OK"
        assert span.attributes[SpanAttributeKey.TOKEN_USAGE] == TOKEN_USAGE
        assert span.attributes[cf.CHAT_MESSAGES][-1] == {
            "role": "assistant",
            "content": fake.REPLY,
        }


def test_async_stream_closed_half_way(captured, ollama_url):
    threadline.ollama.autolog()

    async def main() -> None:
        async with ollama.AsyncClient(host=ollama_url) as client:
            stream = await client.generate(model=MODEL, prompt="Hi", stream=True)
            async for piece in stream:
                if piece.response:
                    break
            await stream.aclose()

    asyncio.run(main())
    span = only_span(captured)
    assert span.name == "ollama.generate"
    assert span.outputs["response"] == "Hello! "
    assert span.attributes[SpanAttributeKey.GENERATOR_CLOSED_EARLY] is True


def test_tool_call_normalised(captured, client):
    threadline.ollama.autolog()
    first = chat(client, tools=TOOLS)
    call = first.message.tool_calls[0]
    assert call.function.arguments == fake.TOOL_ARGUMENTS
    followup = [
        *MESSAGES,
        first.message,  # the library's Message, as ollama's examples pass it back
        {"role": "tool", "content": "21 °C", "tool_name": "get_weather"},
    ]
    second = chat(client, tools=[get_weather], messages=followup)
    assert second.message.content == fake.REPLY
    list(chat(client, tools=TOOLS, stream=True))

    one, two, streamed = all_spans(captured)
    tool = {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": TOOLS[0]["function"]["parameters"],
    }
    assert one.attributes[cf.CHAT_TOOLS] == [tool]
    assert two.attributes[cf.CHAT_TOOLS] == [tool]  # a Python function, described as ollama does
    reply = {"role": "assistant", "content": "", "tool_calls": [TOOL_CALL]}
    assert one.attributes[cf.CHAT_MESSAGES] == [{"role": "user", "content": "Hello!"}, reply]
    assert two.attributes[cf.CHAT_MESSAGES] == [
        {"role": "user", "content": "Hello!"},
        reply,
        {"role": "tool", "content": "21 °C"},
        {"role": "assistant", "content": fake.REPLY},
    ]
    assert two.inputs["messages"][1]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}
    assert streamed.attributes[cf.CHAT_MESSAGES][-1] == reply
    assert streamed.outputs["message"]["tool_calls"] == [
        {"function": {"name": "get_weather", "arguments": fake.TOOL_ARGUMENTS}}
    ]
    assert (
        streamed.attributes[SpanAttributeKey.TOKEN_USAGE]["output_tokens"] == fake.TOOL_EVAL_COUNT
    )


def test_thinking_is_kept_in_the_output(captured, client):
    threadline.ollama.autolog()
    plain = chat(client, think=True)
    list(chat(client, think=True, stream=True))
    assert plain.message.thinking == fake.THINKING
    for span in all_spans(captured):
        assert span.outputs["message"]["thinking"] == fake.THINKING
        assert span.outputs["message"]["content"] == fake.REPLY
        assert span.attributes[cf.CHAT_MESSAGES][-1] == {
            "role": "assistant",
            "content": fake.REPLY,
        }


def test_generate_plain_and_streamed(captured, client):
    threadline.ollama.autolog()
    response = client.generate(model=MODEL, prompt="Hi", system="Be brief.")
    pieces = [
        p.response
        for p in client.generate(model=MODEL, prompt="Hi", stream=True, options={"num_predict": 3})
    ]
    assert response.response == fake.REPLY
    assert "".join(pieces) == "w0 w1 w2 "

    plain, streamed = all_spans(captured)
    assert plain.name == streamed.name == "ollama.generate"
    assert plain.span_type == streamed.span_type == SpanType.LLM
    assert plain.inputs == {"model": MODEL, "prompt": "Hi", "system": "Be brief."}
    assert plain.outputs["response"] == fake.REPLY
    assert plain.outputs["context"] == fake.CONTEXT
    assert plain.attributes[SpanAttributeKey.TOKEN_USAGE] == TOKEN_USAGE
    assert plain.attributes[cf.FINISH_REASON] == "stop"
    assert cf.CHAT_MESSAGES not in plain.attributes
    assert streamed.outputs["response"] == "w0 w1 w2 "
    assert streamed.outputs["context"] == fake.CONTEXT
    assert streamed.attributes[cf.FINISH_REASON] == "length"
    assert streamed.attributes[SpanAttributeKey.TOKEN_USAGE] == {
        "input_tokens": fake.PROMPT_EVAL_COUNT,
        "output_tokens": 3,
        "total_tokens": fake.PROMPT_EVAL_COUNT + 3,
    }


def test_embed_and_embeddings_sync_and_async(captured, client, ollama_url):
    threadline.ollama.autolog()
    vectors = client.embed(model="all-minilm", input=["a", "b"]).embeddings
    legacy = client.embeddings(model="all-minilm", prompt="a").embedding
    assert [list(v) for v in vectors] == [fake.embedding_vector(0), fake.embedding_vector(1)]
    assert list(legacy) == fake.embedding_vector(0)

    async def main() -> Any:
        async with ollama.AsyncClient(host=ollama_url) as aclient:
            return await aclient.embed(model="all-minilm", input="c")

    assert list(asyncio.run(main()).embeddings[0]) == fake.embedding_vector(0)
    embed, old, async_embed = all_spans(captured)
    assert [embed.name, old.name, async_embed.name] == [
        "ollama.embed",
        "ollama.embeddings",
        "ollama.embed",
    ]
    assert {s.span_type for s in (embed, old, async_embed)} == {SpanType.EMBEDDING}
    assert embed.inputs == {"model": "all-minilm", "input": ["a", "b"]}
    assert embed.outputs["embeddings"][1] == fake.embedding_vector(1)
    assert embed.attributes[SpanAttributeKey.MODEL] == "all-minilm"
    assert embed.attributes[SpanAttributeKey.TOKEN_USAGE] == {
        "input_tokens": 6,
        "output_tokens": 0,
        "total_tokens": 6,
    }
    assert old.outputs == {"embedding": fake.embedding_vector(0)}
    assert SpanAttributeKey.TOKEN_USAGE not in old.attributes
    assert async_embed.attributes[SpanAttributeKey.TOKEN_USAGE]["input_tokens"] == 3


@pytest.mark.parametrize("status", [404, 500])
def test_api_error(captured, client, status):
    with pytest.raises(ollama.ResponseError) as untraced:
        chat(client, model=f"error-{status}")
    threadline.ollama.autolog()
    with pytest.raises(ollama.ResponseError) as traced:
        chat(client, model=f"error-{status}")
    with pytest.raises(ollama.ResponseError):
        list(chat(client, model=f"error-{status}", stream=True))
    assert type(traced.value) is type(untraced.value)
    assert str(traced.value) == str(untraced.value)
    assert traced.value.status_code == status

    plain, streamed = all_spans(captured)
    for span in (plain, streamed):
        assert span.status.status_code == "ERROR"
        assert span.events[0].name == "exception"
        assert span.events[0].attributes["exception.type"] == "ResponseError"
        assert span.attributes[cf.CHAT_MESSAGES][0] == {"role": "user", "content": "Hello!"}


def test_error_in_the_middle_of_a_stream(captured, client):
    threadline.ollama.autolog()
    texts = []
    with pytest.raises(ollama.ResponseError, match="while running the model"):
        for piece in chat(client, model="error-stream", stream=True):
            texts.append(piece.message.content)
    span = only_span(captured)
    assert span.status.status_code == "ERROR"
    assert span.outputs["message"]["content"] == "".join(texts) == "Hello! How "


def test_nested_under_agent(captured, client):
    threadline.ollama.autolog()

    @threadline.trace(span_type=SpanType.AGENT)
    def agent() -> str:
        first = chat(client).message.content
        second = "".join(p.message.content for p in chat(client, stream=True))
        return first + second

    assert agent() == fake.REPLY * 2
    (trace,) = captured.traces
    root = next(s for s in trace.data.spans if s.parent_id is None)
    children = [s for s in trace.data.spans if s.parent_id is not None]
    assert root.name == "agent"
    assert [s.name for s in children] == ["ollama.chat", "ollama.chat"]
    assert all(s.parent_id == root.span_id for s in children)


def test_module_level_functions(captured, default_client):
    original = default_client.chat
    threadline.ollama.autolog()
    assert default_client.chat is not original
    assert default_client.chat(MODEL, MESSAGES).message.content == fake.REPLY
    streamed = "".join(p.response for p in default_client.generate(MODEL, "Hi", stream=True))
    assert streamed == fake.REPLY
    default_client.embed(model="all-minilm", input="a")

    chat_span, generate_span, embed_span = all_spans(captured)  # one span each
    assert chat_span.name == "ollama.chat"
    assert chat_span.inputs == {"model": MODEL, "messages": MESSAGES}
    assert chat_span.attributes[SpanAttributeKey.TOKEN_USAGE] == TOKEN_USAGE
    assert generate_span.outputs["response"] == fake.REPLY
    assert embed_span.span_type == SpanType.EMBEDDING
    threadline.ollama.autolog(disable=True)
    assert default_client.chat is original


def test_disable_restores_originals_and_reenable(captured, client):
    owners: list[Any] = [ollama.Client, ollama.AsyncClient, ollama]
    originals = [vars(owner)[m] for owner in owners for m in METHODS]
    threadline.ollama.autolog()
    patched = [vars(owner)[m] for owner in owners for m in METHODS]
    assert all(p is not o for p, o in zip(patched, originals))
    threadline.ollama.autolog(disable=True)
    assert all(
        vars(owner)[m] is o
        for (owner, m), o in zip([(owner, m) for owner in owners for m in METHODS], originals)
    )
    chat(client)
    list(chat(client, stream=True))
    assert captured.traces == []
    threadline.ollama.autolog()
    chat(client)
    assert len(captured.traces) == 1


def test_a_wrapper_stacked_on_a_module_function_is_kept(captured, caplog, client):
    original = ollama.chat
    threadline.ollama.autolog()
    ours = ollama.chat

    def theirs(*args: Any, **kwargs: Any) -> Any:
        return ours(*args, **kwargs)

    try:
        ollama.chat = theirs
        with caplog.at_level(logging.WARNING, logger="threadline"):
            threadline.ollama.autolog(disable=True)
        assert ollama.chat is theirs  # another tool's wrapper stays, ours goes inert
        assert "ollama.chat were wrapped again" in caplog.text
        assert vars(ollama.Client)["chat"] is not ours
    finally:
        ollama.chat = original


def test_log_traces_false_and_idempotency(captured, client):
    original = vars(ollama.Client)["chat"]
    threadline.ollama.autolog(log_traces=False)
    assert vars(ollama.Client)["chat"] is original
    threadline.ollama.autolog()
    patched = vars(ollama.Client)["chat"]
    threadline.ollama.autolog()
    assert vars(ollama.Client)["chat"] is patched
    chat(client)
    assert [len(t.data.spans) for t in captured.traces] == [1]
    threadline.ollama.autolog(log_traces=False)
    assert vars(ollama.Client)["chat"] is original


def test_authorization_header_never_in_the_trace(captured, ollama_server, ollama_url):
    threadline.ollama.autolog()
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with ollama.Client(host=ollama_url, headers=headers) as client:
        chat(client)
        list(chat(client, stream=True))
        with pytest.raises(ollama.ResponseError):
            chat(client, model="error-401")
    assert API_KEY in str(ollama_server.requests[0][1])  # it was sent
    assert len(all_spans(captured)) == 3
    assert_no_secret(captured)


def test_threadline_autolog_includes_ollama(captured, client):
    threadline.autolog(silent=True)
    assert threadline.ollama.INTEGRATION.enabled
    chat(client)
    assert only_span(captured).attributes[SpanAttributeKey.PROVIDER] == "ollama"
    threadline.autolog(disable=True, silent=True)
    assert not threadline.ollama.INTEGRATION.enabled


def test_missing_library_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "ollama", None)
    with pytest.raises(InvalidArgumentError, match=r'pip install "ollama>=0\.4\.0"'):
        threadline.ollama.autolog()


def test_too_old_version_is_refused(monkeypatch):
    monkeypatch.setattr(threadline.ollama.INTEGRATION, "version", lambda module: "0.3.3")
    with pytest.raises(InvalidArgumentError, match=r"supports ollama 0\.4\.0 or newer; 0\.3\.3"):
        threadline.ollama.autolog()
    assert not threadline.ollama.INTEGRATION.enabled
