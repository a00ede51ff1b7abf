"""``threadline.anthropic.autolog()`` against a local server speaking Anthropic's API."""

from __future__ import annotations

import asyncio
import gc
import json
import sys
from typing import Any

import anthropic
import pytest
from pydantic import BaseModel

import threadline
from tests.integrations import _fake_anthropic as fake
from tests.integrations.conftest import API_KEY, all_spans, assert_no_secret, only_span
from threadline.entities.keys import SpanAttributeKey
from threadline.entities.span import SpanType
from threadline.errors import InvalidArgumentError
from threadline.integrations import _chat_format as cf

MODEL = "claude-sonnet-4-6"
MESSAGES = [{"role": "user", "content": "Hello!"}]
TOOLS = [
    {
        "name": "get_weather",
        "description": "The weather in a city.",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
]
PROMPT = fake.INPUT_TOKENS + fake.CACHE_READ_TOKENS + fake.CACHE_CREATION_TOKENS
REPLY_TOKENS = len(fake.pieces({}))
TOKEN_USAGE = {
    "input_tokens": PROMPT,
    "output_tokens": REPLY_TOKENS,
    "total_tokens": PROMPT + REPLY_TOKENS,
}
TOOL_CALL = {
    "id": "toolu_fake1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}


def create(client: Any, **kwargs: Any) -> Any:
    return client.messages.create(
        **{"model": MODEL, "max_tokens": 1024, "messages": MESSAGES, **kwargs}
    )


def stream_helper(client: Any, **kwargs: Any) -> Any:
    return client.messages.stream(
        **{"model": MODEL, "max_tokens": 1024, "messages": MESSAGES, **kwargs}
    )


def test_plain_call(captured, anthropic_client):
    threadline.anthropic.autolog()
    message = create(anthropic_client, system="Be brief.", stop_sequences=["END"])
    assert message.content[0].text == fake.REPLY

    span = only_span(captured)
    assert span.name == "anthropic.messages.create"
    assert span.span_type == SpanType.CHAT_MODEL
    assert span.status.status_code == "OK"
    assert span.inputs == {
        "model": MODEL,
        "max_tokens": 1024,
        "messages": MESSAGES,
        "system": "Be brief.",
        "stop_sequences": ["END"],
    }
    assert span.outputs["content"] == [{"type": "text", "text": fake.REPLY, "citations": None}]
    attrs = span.attributes
    assert attrs[SpanAttributeKey.PROVIDER] == "anthropic"
    assert attrs[SpanAttributeKey.MODEL] == MODEL
    assert attrs[SpanAttributeKey.TOKEN_USAGE] == TOKEN_USAGE
    assert attrs[cf.CACHED_INPUT_TOKENS] == fake.CACHE_READ_TOKENS
    assert attrs[cf.CACHE_CREATION_INPUT_TOKENS] == fake.CACHE_CREATION_TOKENS
    assert attrs[cf.FINISH_REASON] == "end_turn"
    assert attrs[cf.CHAT_MESSAGES] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello!"},
        {"role": "assistant", "content": fake.REPLY},
    ]


def test_stream_true_fully_consumed(captured, anthropic_client):
    untraced = [e.model_dump() for e in create(anthropic_client, stream=True)]
    threadline.anthropic.autolog()
    stream = create(anthropic_client, stream=True)
    assert isinstance(stream, anthropic.Stream)
    traced = [e.model_dump() for e in stream]
    assert traced == untraced

    span = only_span(captured)
    assert span.status.status_code == "OK"
    assert span.outputs["content"] == [{"type": "text", "text": fake.REPLY, "citations": None}]
    assert span.outputs["stop_reason"] == "end_turn"
    assert span.attributes[SpanAttributeKey.TOKEN_USAGE] == TOKEN_USAGE
    assert span.attributes[cf.CHAT_MESSAGES][-1] == {"role": "assistant", "content": fake.REPLY}


def test_stream_true_abandoned(captured, anthropic_client):
    threadline.anthropic.autolog()
    stream = create(anthropic_client, stream=True)
    texts = []
    for event in stream:
        if event.type == "content_block_delta":
            texts.append(event.delta.text)
            if len(texts) == 2:
                break
    assert all_spans(captured) == []
    del stream, event
    gc.collect()

    span = only_span(captured)
    assert span.status.status_code == "OK"
    assert span.outputs["content"][0]["text"] == "".join(texts) == "Hello! How "
    assert span.attributes[SpanAttributeKey.GENERATOR_CLOSED_EARLY] is True


def test_stream_helper_text_stream(captured, anthropic_client):
    threadline.anthropic.autolog()
    with stream_helper(anthropic_client) as stream:
        assert isinstance(stream, anthropic.MessageStream)
        text = "".join(stream.text_stream)
        assert all_spans(captured) != []  # ended when the text stream ran out
        assert stream.current_message_snapshot.content[0].text == fake.REPLY
    assert text == fake.REPLY
    span = only_span(captured)
    assert span.name == "anthropic.messages.stream"
    assert span.outputs["content"][0]["text"] == fake.REPLY
    assert span.attributes[SpanAttributeKey.TOKEN_USAGE] == TOKEN_USAGE
    assert SpanAttributeKey.GENERATOR_CLOSED_EARLY not in span.attributes


def test_stream_helper_final_message_and_iteration(captured, anthropic_client):
    threadline.anthropic.autolog()
    with stream_helper(anthropic_client) as stream:
        message = stream.get_final_message()
    with stream_helper(anthropic_client) as stream:
        kinds = [event.type for event in stream]
    assert message.content[0].text == fake.REPLY
    assert "text" in kinds and kinds[-1] == "message_stop"
    first, second = all_spans(captured)
    assert first.outputs["content"][0]["text"] == second.outputs["content"][0]["text"]


def test_stream_helper_left_early(captured, anthropic_client):
    threadline.anthropic.autolog()
    with stream_helper(anthropic_client, max_tokens=6) as stream:
        for event in stream:
            if event.type == "text":
                break
    span = only_span(captured)
    assert span.status.status_code == "OK"
    assert span.outputs["content"][0]["text"] == "w0 "
    assert span.attributes[SpanAttributeKey.GENERATOR_CLOSED_EARLY] is True


def test_stream_helper_never_entered_makes_no_span(captured, anthropic_client):
    threadline.anthropic.autolog()
    stream_helper(anthropic_client)
    assert captured.traces == []


def test_async_create_stream_and_helper(captured, anthropic_url):
    threadline.anthropic.autolog()

    async def main() -> list[str]:
        async with anthropic.AsyncAnthropic(base_url=anthropic_url, api_key=API_KEY) as client:
            message = await create(client)
            stream = await create(client, stream=True)
            assert isinstance(stream, anthropic.AsyncStream)
            events = [e.type async for e in stream]
            async with stream_helper(client) as helper:
                text = "".join([t async for t in helper.text_stream])
            async with stream_helper(client) as helper:
                final = await helper.get_final_message()
            return [message.content[0].text, events[-1], text, final.content[0].text]

    assert asyncio.run(main()) == [fake.REPLY, "message_stop", fake.REPLY, fake.REPLY]
    spans = all_spans(captured)
    assert [s.name for s in spans] == [
        "anthropic.messages.create",
        "anthropic.messages.create",
        "anthropic.messages.stream",
        "anthropic.messages.stream",
    ]
    for span in spans:
        assert span.status.status_code == "OK"
        assert span.attributes[SpanAttributeKey.TOKEN_USAGE] == TOKEN_USAGE


def test_async_stream_closed_half_way(captured, anthropic_url):
    threadline.anthropic.autolog()

    async def main() -> None:
        async with anthropic.AsyncAnthropic(base_url=anthropic_url, api_key=API_KEY) as client:
            stream = await create(client, stream=True)
            async for event in stream:
                if event.type == "content_block_delta":
                    break
            await stream.close()

    asyncio.run(main())
    span = only_span(captured)
    assert span.outputs["content"][0]["text"] == "Hello! "
    assert span.attributes[SpanAttributeKey.GENERATOR_CLOSED_EARLY] is True


def test_tool_use_normalised(captured, anthropic_client):
    threadline.anthropic.autolog()
    first = create(anthropic_client, tools=TOOLS)
    tool_use = first.content[1]
    followup = [
        *MESSAGES,
        {"role": "assistant", "content": first.content},  # the pydantic blocks, as documented
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": tool_use.id, "content": "21 °C"},
                {"type": "text", "text": "Thanks."},
            ],
        },
    ]
    create(anthropic_client, tools=TOOLS, messages=followup)
    list(create(anthropic_client, tools=TOOLS, stream=True))

    one, two, streamed = all_spans(captured)
    assert one.attributes[cf.CHAT_TOOLS] == [
        {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": TOOLS[0]["input_schema"],
        }
    ]
    assert one.attributes[cf.FINISH_REASON] == "tool_use"
    reply = {"role": "assistant", "content": "Let me check.", "tool_calls": [TOOL_CALL]}
    assert one.attributes[cf.CHAT_MESSAGES] == [{"role": "user", "content": "Hello!"}, reply]
    assert two.attributes[cf.CHAT_MESSAGES] == [
        {"role": "user", "content": "Hello!"},
        reply,
        {"role": "tool", "content": "21 °C", "tool_call_id": "toolu_fake1"},
        {"role": "user", "content": "Thanks."},
        {"role": "assistant", "content": fake.REPLY},
    ]
    assert streamed.outputs["content"][1]["input"] == fake.TOOL_INPUT
    assert streamed.attributes[cf.CHAT_MESSAGES][-1] == reply


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, anthropic.BadRequestError),
        (429, anthropic.RateLimitError),
        (500, anthropic.InternalServerError),
        (529, anthropic.OverloadedError),
    ],
)
def test_api_error(captured, anthropic_client, status, error_type):
    with pytest.raises(anthropic.APIStatusError) as untraced:
        create(anthropic_client, model=f"error-{status}")
    threadline.anthropic.autolog()
    with pytest.raises(error_type) as traced:
        create(anthropic_client, model=f"error-{status}")
    assert type(traced.value) is type(untraced.value) is error_type
    assert str(traced.value) == str(untraced.value)
    span = only_span(captured)
    assert span.status.status_code == "ERROR"
    assert span.events[0].attributes["exception.type"] == error_type.__name__


def test_error_event_mid_stream(captured, anthropic_client):
    threadline.anthropic.autolog()
    with (
        pytest.raises(anthropic.APIStatusError, match="Overloaded"),
        stream_helper(anthropic_client, model="error-stream") as stream,
    ):
        stream.until_done()
    span = only_span(captured)
    assert span.status.status_code == "ERROR"
    assert span.outputs["content"][0]["text"] == "Hello! "


def test_nested_under_agent(captured, anthropic_client):
    threadline.anthropic.autolog()

    @threadline.trace(span_type=SpanType.AGENT)
    def agent() -> str:
        with stream_helper(anthropic_client) as stream:
            return stream.get_final_text()

    assert agent() == fake.REPLY
    (trace,) = captured.traces
    root, llm = sorted(trace.data.spans, key=lambda s: s.parent_id is not None)
    assert llm.parent_id == root.span_id


def test_disable_restores_originals_and_reenable(captured, anthropic_client):
    from anthropic.resources.messages import AsyncMessages, Messages

    names = ("create", "stream", "parse")
    originals = [vars(cls)[n] for cls in (Messages, AsyncMessages) for n in names]
    threadline.anthropic.autolog()
    assert vars(Messages)["stream"] is not originals[1]
    threadline.anthropic.autolog(disable=True)
    assert all(
        vars(cls)[n] is o
        for (cls, n), o in zip(
            [(c, n) for c in (Messages, AsyncMessages) for n in names], originals
        )
    )
    create(anthropic_client)
    assert captured.traces == []
    threadline.anthropic.autolog()
    create(anthropic_client)
    assert len(captured.traces) == 1


def test_log_traces_false_and_idempotency(captured, anthropic_client):
    from anthropic.resources.messages import Messages

    original = vars(Messages)["create"]
    threadline.anthropic.autolog(log_traces=False)
    assert vars(Messages)["create"] is original
    threadline.anthropic.autolog()
    threadline.anthropic.autolog()
    create(anthropic_client)
    with stream_helper(anthropic_client) as stream:
        stream.until_done()
    assert [len(t.data.spans) for t in captured.traces] == [1, 1]
    threadline.anthropic.autolog(log_traces=False)
    assert vars(Messages)["create"] is original


def test_api_key_never_in_the_trace(captured, anthropic_client, anthropic_server):
    threadline.anthropic.autolog()
    create(anthropic_client, extra_headers={"x-api-key": API_KEY})
    with stream_helper(anthropic_client) as stream:
        stream.until_done()
    with pytest.raises(anthropic.AuthenticationError):
        create(anthropic_client, model="error-401")
    assert API_KEY in str(anthropic_server.requests[-1][1])  # it was sent
    assert len(all_spans(captured)) == 3
    assert_no_secret(captured)


def test_token_usage_summed_in_the_stored_trace(tmp_path, anthropic_client):
    threadline.set_tracking_uri(f"sqlite:///{tmp_path}/t.db")
    threadline.anthropic.autolog()

    @threadline.trace(span_type=SpanType.AGENT)
    def agent() -> None:
        create(anthropic_client)
        with stream_helper(anthropic_client) as stream:
            stream.until_done()

    agent()
    trace = threadline.get_trace(threadline.get_last_active_trace_id())
    assert trace is not None
    assert trace.info.token_usage == {k: 2 * v for k, v in TOKEN_USAGE.items()}


class Answer(BaseModel):
    answer: str


def test_parse_structured_output(captured, anthropic_client):
    threadline.anthropic.autolog()
    message = anthropic_client.messages.parse(
        model=MODEL, max_tokens=1024, messages=MESSAGES, output_format=Answer
    )
    assert message.parsed_output == Answer(answer="42")
    span = only_span(captured)
    assert span.name == "anthropic.messages.parse"
    assert span.outputs == json.loads(json.dumps(message.model_dump()))
    assert span.attributes[cf.CHAT_MESSAGES][-1] == {
        "role": "assistant",
        "content": fake.STRUCTURED,
    }


def test_missing_library_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "anthropic", None)
    with pytest.raises(InvalidArgumentError, match=r'pip install "anthropic>=0\.40\.0"'):
        threadline.anthropic.autolog()


def test_beta_messages_create_stream_and_helper(captured, anthropic_client, anthropic_server):
    threadline.anthropic.autolog()
    betas = ["token-efficient-tools-2025-02-19"]
    beta = anthropic_client.beta.messages
    message = beta.create(model=MODEL, max_tokens=1024, messages=MESSAGES, betas=betas)
    assert message.content[0].text == fake.REPLY
    chunks = list(beta.create(model=MODEL, max_tokens=1024, messages=MESSAGES, stream=True))
    assert chunks[-1].type == "message_stop"
    with beta.stream(model=MODEL, max_tokens=1024, messages=MESSAGES) as stream:
        assert "".join(stream.text_stream) == fake.REPLY
    headers = {k.lower(): v for k, v in anthropic_server.requests[0][1].items()}
    assert headers["anthropic-beta"] == betas[0]

    spans = [trace.data.spans[0] for trace in captured.traces]
    assert [s.name for s in spans] == [
        "anthropic.beta.messages.create",
        "anthropic.beta.messages.create",
        "anthropic.beta.messages.stream",
    ]
    for span in spans:
        assert span.span_type == SpanType.CHAT_MODEL
        assert span.attributes[SpanAttributeKey.TOKEN_USAGE] == TOKEN_USAGE
        assert span.attributes[cf.CHAT_MESSAGES][-1] == {"role": "assistant", "content": fake.REPLY}
    assert spans[0].inputs["betas"] == betas


def test_beta_messages_async_and_disable(captured, anthropic_url):
    from anthropic.resources.beta.messages import AsyncMessages, Messages

    originals = {
        (cls, n): vars(cls)[n] for cls in (Messages, AsyncMessages) for n in ("create", "stream")
    }
    threadline.anthropic.autolog()

    async def run() -> str:
        client = anthropic.AsyncAnthropic(base_url=anthropic_url, api_key=API_KEY, max_retries=0)
        try:
            message = await client.beta.messages.create(
                model=MODEL, max_tokens=1024, messages=MESSAGES
            )
            return message.content[0].text
        finally:
            await client.close()

    assert asyncio.run(run()) == fake.REPLY
    assert only_span(captured).name == "anthropic.beta.messages.create"
    threadline.anthropic.autolog(disable=True)
    assert all(vars(cls)[n] is fn for (cls, n), fn in originals.items())
