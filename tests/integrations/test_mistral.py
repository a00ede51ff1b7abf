"""``threadline.mistral.autolog()`` against a local server speaking Mistral's API."""

from __future__ import annotations

import asyncio
import gc
import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

import threadline
from tests.integrations import _fake_mistral as fake
from tests.integrations._fake_openai import SSEServer
from tests.integrations.conftest import API_KEY, all_spans, assert_no_secret, only_span
from threadline.entities.keys import SpanAttributeKey
from threadline.entities.span import SpanType
from threadline.errors import InvalidArgumentError
from threadline.integrations import _chat_format as cf

try:  # mistralai 2.0 and later
    from mistralai.client import Mistral
    from mistralai.client import errors as mistral_errors
    from mistralai.client.chat import Chat
    from mistralai.client.embeddings import Embeddings
    from mistralai.client.utils.eventstreaming import EventStream, EventStreamAsync
except ImportError:  # mistralai 1.x
    from mistralai import Mistral  # type: ignore[no-redef]
    from mistralai import models as mistral_errors  # type: ignore[no-redef]
    from mistralai.chat import Chat  # type: ignore[no-redef]
    from mistralai.embeddings import Embeddings  # type: ignore[no-redef]
    from mistralai.utils.eventstreaming import (  # type: ignore[no-redef]
        EventStream,
        EventStreamAsync,
    )

MODEL = "mistral-small-latest"
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
REPLY_TOKENS = len(fake.pieces({}))
TOKEN_USAGE = {
    "input_tokens": fake.PROMPT_TOKENS,
    "output_tokens": REPLY_TOKENS,
    "total_tokens": fake.PROMPT_TOKENS + REPLY_TOKENS,
}
TOOL_CALL = {
    "id": "D681PevKs",
    "type": "function",
    "function": {"name": "get_weather", "arguments": fake.TOOL_ARGUMENTS},
}
CHAT_METHODS = ("complete", "complete_async", "stream", "stream_async")


@pytest.fixture(scope="module")
def mistral_server() -> Iterator[SSEServer]:
    server = fake.serve()
    yield server
    server.stop()


@pytest.fixture
def mistral_url(mistral_server: SSEServer) -> str:
    mistral_server.requests.clear()
    return mistral_server.url


@pytest.fixture
def client(mistral_url: str) -> Iterator[Any]:
    with Mistral(api_key=API_KEY, server_url=mistral_url) as mistral:
        yield mistral


def complete(client: Any, **kwargs: Any) -> Any:
    return client.chat.complete(**{"model": MODEL, "messages": MESSAGES, **kwargs})


def stream(client: Any, **kwargs: Any) -> Any:
    return client.chat.stream(**{"model": MODEL, "messages": MESSAGES, **kwargs})


def test_plain_call(captured, client):
    threadline.mistral.autolog()
    messages = [{"role": "system", "content": "Be brief."}, *MESSAGES]
    response = complete(client, messages=messages, temperature=0.2)
    assert response.choices[0].message.content == fake.REPLY

    span = only_span(captured)
    assert span.name == "mistral.chat.complete"
    assert span.span_type == SpanType.CHAT_MODEL
    assert span.status.status_code == "OK"
    assert span.inputs == {"model": MODEL, "messages": messages, "temperature": 0.2}
    assert span.outputs == json.loads(json.dumps(response.model_dump(warnings=False)))
    assert span.outputs["choices"][0]["message"]["content"] == fake.REPLY
    attrs = span.attributes
    assert attrs[SpanAttributeKey.PROVIDER] == "mistral"
    assert attrs[SpanAttributeKey.MODEL] == MODEL
    assert attrs[SpanAttributeKey.TOKEN_USAGE] == TOKEN_USAGE
    assert attrs[cf.CACHED_INPUT_TOKENS] == fake.CACHED_TOKENS
    assert attrs[cf.FINISH_REASON] == "stop"
    assert attrs[cf.CHAT_MESSAGES] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello!"},
        {"role": "assistant", "content": fake.REPLY},
    ]


def test_stream_fully_consumed(captured, client):
    untraced = [event.model_dump(warnings=False) for event in stream(client)]
    threadline.mistral.autolog()
    events = stream(client)
    assert isinstance(events, EventStream)
    traced = [event.model_dump(warnings=False) for event in events]
    assert traced == untraced
    assert traced[-1]["data"]["usage"]["total_tokens"] == TOKEN_USAGE["total_tokens"]

    span = only_span(captured)
    assert span.name == "mistral.chat.stream"
    assert span.status.status_code == "OK"
    assert span.inputs == {"model": MODEL, "messages": MESSAGES}
    assert span.outputs["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": fake.REPLY},
            "finish_reason": "stop",
        }
    ]
    assert span.outputs["usage"] == fake.usage(REPLY_TOKENS)
    assert span.attributes[SpanAttributeKey.TOKEN_USAGE] == TOKEN_USAGE
    assert span.attributes[cf.CACHED_INPUT_TOKENS] == fake.CACHED_TOKENS
    assert span.attributes[cf.FINISH_REASON] == "stop"
    assert span.attributes[cf.CHAT_MESSAGES][-1] == {"role": "assistant", "content": fake.REPLY}
    assert SpanAttributeKey.GENERATOR_CLOSED_EARLY not in span.attributes


def test_stream_abandoned_half_way(captured, client):
    threadline.mistral.autolog()
    events = stream(client)
    texts = []
    for event in events:
        if event.data.choices[0].delta.content:
            texts.append(event.data.choices[0].delta.content)
            if len(texts) == 2:
                break
    assert all_spans(captured) == []  # still open: the caller may read on
    del events, event
    gc.collect()

    span = only_span(captured)
    assert span.status.status_code == "OK"
    assert span.outputs["choices"][0]["message"]["content"] == "".join(texts) == "Hello! How "
    assert span.outputs["choices"][0]["finish_reason"] is None
    assert span.attributes[SpanAttributeKey.GENERATOR_CLOSED_EARLY] is True
    assert SpanAttributeKey.TOKEN_USAGE not in span.attributes


def test_stream_left_in_a_with_block(captured, client):
    threadline.mistral.autolog()
    with stream(client, max_tokens=5) as events:
        first = next(events)
        second = next(events)
    assert first.data.choices[0].delta.role == "assistant"
    assert second.data.choices[0].delta.content == "w0 "
    span = only_span(captured)
    assert span.outputs["choices"][0]["message"]["content"] == "w0 "
    assert span.attributes[SpanAttributeKey.GENERATOR_CLOSED_EARLY] is True


@pytest.mark.skipif(not hasattr(EventStream, "close"), reason="close() came in mistralai 2.0")
def test_stream_closed(captured, client):
    threadline.mistral.autolog()
    events = stream(client, max_tokens=5)
    next(events)
    next(events)
    events.close()
    assert list(events) == []  # closed like the library's stream
    span = only_span(captured)
    assert span.outputs["choices"][0]["message"]["content"] == "w0 "
    assert span.attributes[SpanAttributeKey.GENERATOR_CLOSED_EARLY] is True


def test_async_complete_and_stream(captured, mistral_url):
    threadline.mistral.autolog()

    async def main() -> list[Any]:
        async with Mistral(api_key=API_KEY, server_url=mistral_url) as client:
            response = await client.chat.complete_async(model=MODEL, messages=MESSAGES)
            events = await client.chat.stream_async(model=MODEL, messages=MESSAGES)
            assert isinstance(events, EventStreamAsync)
            texts = [e.data.choices[0].delta.content async for e in events]
            return [response.choices[0].message.content, "".join(texts)]

    assert asyncio.run(main()) == [fake.REPLY, fake.REPLY]
    plain, streamed = all_spans(captured)
    assert [plain.name, streamed.name] == ["mistral.chat.complete", "mistral.chat.stream"]
    for span in (plain, streamed):
        assert span.status.status_code == "OK"
        assert span.attributes[SpanAttributeKey.TOKEN_USAGE] == TOKEN_USAGE
        assert span.attributes[cf.CHAT_MESSAGES][-1] == {
            "role": "assistant",
            "content": fake.REPLY,
        }


def test_async_stream_left_half_way(captured, mistral_url):
    threadline.mistral.autolog()

    async def main() -> None:
        async with Mistral(api_key=API_KEY, server_url=mistral_url) as client:
            events = await client.chat.stream_async(model=MODEL, messages=MESSAGES)
            async with events:
                async for event in events:
                    if event.data.choices[0].delta.content:
                        break

    asyncio.run(main())
    span = only_span(captured)
    assert span.outputs["choices"][0]["message"]["content"] == "Hello! "
    assert span.attributes[SpanAttributeKey.GENERATOR_CLOSED_EARLY] is True


@pytest.mark.skipif(not hasattr(EventStreamAsync, "close"), reason="close() came in mistralai 2.0")
def test_async_stream_closed_half_way(captured, mistral_url):
    threadline.mistral.autolog()

    async def main() -> None:
        async with Mistral(api_key=API_KEY, server_url=mistral_url) as client:
            events = await client.chat.stream_async(model=MODEL, messages=MESSAGES)
            async for event in events:
                if event.data.choices[0].delta.content:
                    break
            await events.close()

    asyncio.run(main())
    span = only_span(captured)
    assert span.outputs["choices"][0]["message"]["content"] == "Hello! "
    assert span.attributes[SpanAttributeKey.GENERATOR_CLOSED_EARLY] is True


def test_tool_call_normalised(captured, client):
    threadline.mistral.autolog()
    first = complete(client, tools=TOOLS, tool_choice="auto")
    call = first.choices[0].message.tool_calls[0]
    followup = [
        *MESSAGES,
        first.choices[0].message,  # the SDK's AssistantMessage, as Mistral's docs show
        {"role": "tool", "name": "get_weather", "content": "21 °C", "tool_call_id": call.id},
    ]
    second = complete(client, tools=TOOLS, messages=followup)
    assert second.choices[0].message.content == fake.REPLY
    list(stream(client, tools=TOOLS))

    one, two, streamed = all_spans(captured)
    assert one.attributes[cf.CHAT_TOOLS] == [
        {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": TOOLS[0]["function"]["parameters"],
        }
    ]
    assert one.attributes[cf.FINISH_REASON] == "tool_calls"
    reply = {"role": "assistant", "content": "", "tool_calls": [TOOL_CALL]}
    assert one.attributes[cf.CHAT_MESSAGES] == [{"role": "user", "content": "Hello!"}, reply]
    assert two.attributes[cf.CHAT_MESSAGES] == [
        {"role": "user", "content": "Hello!"},
        reply,
        {"role": "tool", "content": "21 °C", "tool_call_id": "D681PevKs"},
        {"role": "assistant", "content": fake.REPLY},
    ]
    assert two.inputs["messages"][1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert streamed.attributes[cf.FINISH_REASON] == "tool_calls"
    assert streamed.attributes[cf.CHAT_MESSAGES][-1] == reply
    assert streamed.outputs["choices"][0]["message"]["tool_calls"] == [{**TOOL_CALL, "index": 0}]
    assert streamed.attributes[SpanAttributeKey.TOKEN_USAGE]["output_tokens"] == fake.TOOL_TOKENS


def test_reasoning_content_is_left_out_of_the_conversation(captured, client):
    threadline.mistral.autolog()
    response = complete(client, model="magistral-reasoning")
    list(stream(client, model="magistral-reasoning"))
    assert response.choices[0].message.content[0].type == "thinking"

    plain, streamed = all_spans(captured)
    for span in (plain, streamed):
        assert span.attributes[cf.CHAT_MESSAGES][-1] == {
            "role": "assistant",
            "content": fake.REPLY,
        }
    for span in (plain, streamed):
        thinking, text = span.outputs["choices"][0]["message"]["content"]
        assert thinking["type"] == "thinking"
        assert thinking["thinking"][0]["text"] == fake.THINKING
        assert text["text"] == fake.REPLY


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (401, mistral_errors.SDKError),
        (429, mistral_errors.SDKError),
        (500, mistral_errors.SDKError),
        (422, mistral_errors.HTTPValidationError),
    ],
)
def test_api_error(captured, client, status, error_type):
    with pytest.raises(error_type) as untraced:
        complete(client, model=f"error-{status}")
    threadline.mistral.autolog()
    with pytest.raises(error_type) as traced:
        complete(client, model=f"error-{status}")
    with pytest.raises(error_type):
        stream(client, model=f"error-{status}")
    assert type(traced.value) is type(untraced.value) is error_type
    assert str(traced.value) == str(untraced.value)

    plain, streamed = all_spans(captured)
    for span in (plain, streamed):
        assert span.status.status_code == "ERROR"
        assert span.events[0].name == "exception"
        assert span.events[0].attributes["exception.type"] == error_type.__name__
        assert span.attributes[cf.CHAT_MESSAGES] == [{"role": "user", "content": "Hello!"}]


def test_nested_under_agent(captured, client):
    threadline.mistral.autolog()

    @threadline.trace(span_type=SpanType.AGENT)
    def agent() -> str:
        first = complete(client).choices[0].message.content
        second = "".join(e.data.choices[0].delta.content for e in stream(client))
        return first + second

    assert agent() == fake.REPLY * 2
    (trace,) = captured.traces
    root = next(s for s in trace.data.spans if s.parent_id is None)
    children = [s for s in trace.data.spans if s.parent_id is not None]
    assert root.name == "agent"
    assert sorted(s.name for s in children) == ["mistral.chat.complete", "mistral.chat.stream"]
    assert all(s.parent_id == root.span_id for s in children)


def test_disable_restores_originals_and_reenable(captured, client):
    owners = [(Chat, m) for m in CHAT_METHODS] + [
        (Embeddings, "create"),
        (Embeddings, "create_async"),
    ]
    originals = [vars(cls)[name] for cls, name in owners]
    threadline.mistral.autolog()
    assert all(vars(cls)[name] is not o for (cls, name), o in zip(owners, originals))
    threadline.mistral.autolog(disable=True)
    assert all(vars(cls)[name] is o for (cls, name), o in zip(owners, originals))
    complete(client)
    list(stream(client))
    assert captured.traces == []
    threadline.mistral.autolog()
    complete(client)
    assert len(captured.traces) == 1


def test_log_traces_false_and_idempotency(captured, client):
    original = vars(Chat)["complete"]
    threadline.mistral.autolog(log_traces=False)
    assert vars(Chat)["complete"] is original
    threadline.mistral.autolog()
    patched = vars(Chat)["complete"]
    threadline.mistral.autolog()
    assert vars(Chat)["complete"] is patched
    complete(client)
    assert [len(t.data.spans) for t in captured.traces] == [1]
    threadline.mistral.autolog(log_traces=False)
    assert vars(Chat)["complete"] is original


def test_embeddings_sync_and_async(captured, client, mistral_url):
    threadline.mistral.autolog()
    response = client.embeddings.create(model="mistral-embed", inputs=["a", "b"])
    assert response.data[1].embedding == fake.embedding_vector(1)

    async def main() -> Any:
        async with Mistral(api_key=API_KEY, server_url=mistral_url) as aclient:
            return await aclient.embeddings.create_async(model="mistral-embed", inputs="c")

    assert asyncio.run(main()).data[0].embedding == fake.embedding_vector(0)
    sync_span, async_span = all_spans(captured)
    assert sync_span.name == async_span.name == "mistral.embeddings.create"
    assert sync_span.span_type == SpanType.EMBEDDING
    assert sync_span.inputs == {"model": "mistral-embed", "inputs": ["a", "b"]}
    assert sync_span.outputs["data"][1]["embedding"] == fake.embedding_vector(1)
    assert sync_span.attributes[SpanAttributeKey.MODEL] == "mistral-embed"
    assert sync_span.attributes[SpanAttributeKey.TOKEN_USAGE] == {
        "input_tokens": 6,
        "output_tokens": 0,
        "total_tokens": 6,
    }
    assert async_span.inputs == {"model": "mistral-embed", "inputs": "c"}
    assert async_span.attributes[SpanAttributeKey.TOKEN_USAGE]["input_tokens"] == 3


def test_one_shot_iterables_are_recorded_and_still_sent(captured, client, mistral_server):
    threadline.mistral.autolog()
    complete(client, messages=iter(MESSAGES))
    assert mistral_server.last_body["messages"] == MESSAGES
    assert only_span(captured).inputs["messages"] == MESSAGES


def test_api_key_never_in_the_trace(captured, client, mistral_server):
    threadline.mistral.autolog()
    headers = {"Authorization": f"Bearer {API_KEY}", "X-Extra": API_KEY}
    complete(client, http_headers=headers)
    list(stream(client, http_headers=headers))
    with pytest.raises(mistral_errors.SDKError):
        complete(client, model="error-401", http_headers=headers)
    assert API_KEY in str(mistral_server.requests[0][1])  # it was sent
    assert len(all_spans(captured)) == 3
    assert "http_headers" not in all_spans(captured)[0].inputs
    assert_no_secret(captured)


class Answer(BaseModel):
    answer: str


def test_parse_is_one_span(captured, client):
    threadline.mistral.autolog()
    parsed = client.chat.parse(response_format=Answer, model=MODEL, messages=MESSAGES)
    assert parsed.choices[0].message.parsed == Answer(answer="42")
    span = only_span(captured)
    assert span.name == "mistral.chat.complete"
    assert span.inputs["response_format"]["type"] == "json_schema"
    assert span.attributes[cf.CHAT_MESSAGES][-1] == {
        "role": "assistant",
        "content": fake.STRUCTURED,
    }


def test_threadline_autolog_includes_mistral(captured, client):
    threadline.autolog(silent=True)
    assert threadline.mistral.INTEGRATION.enabled
    complete(client)
    assert only_span(captured).attributes[SpanAttributeKey.PROVIDER] == "mistral"
    threadline.autolog(disable=True, silent=True)
    assert not threadline.mistral.INTEGRATION.enabled


def test_missing_library_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "mistralai", None)
    with pytest.raises(InvalidArgumentError, match=r'pip install "mistralai>=1\.0\.0"'):
        threadline.mistral.autolog()


def test_unknown_layout_is_refused_and_patches_nothing(monkeypatch):
    original = vars(Chat)["complete"]
    for name in ("mistralai.client.chat", "mistralai.chat"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(InvalidArgumentError, match=r"found neither mistralai\.client\.chat"):
        threadline.mistral.autolog()
    assert vars(Chat)["complete"] is original
    assert not threadline.mistral.INTEGRATION.enabled


def test_too_old_version_is_refused(monkeypatch):
    monkeypatch.setattr(threadline.mistral.INTEGRATION, "version", lambda module: "0.4.2")
    with pytest.raises(InvalidArgumentError, match=r"supports mistralai 1\.0\.0 or newer; 0\.4\.2"):
        threadline.mistral.autolog()
    assert not threadline.mistral.INTEGRATION.enabled
