"""``threadline.bedrock.autolog()``: real boto3 clients against a local server speaking
the Bedrock runtime's REST and event-stream protocol (``_fake_bedrock``)."""

from __future__ import annotations

import gc
import io
import json
import sys
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from botocore.config import Config
from botocore.eventstream import EventStream
from botocore.exceptions import ClientError, EventStreamError
from botocore.response import StreamingBody

import threadline
import threadline.integrations as integrations
from tests.integrations import _fake_bedrock as fake
from tests.integrations.conftest import all_spans, only_span
from threadline.entities.keys import SpanAttributeKey
from threadline.entities.span import SpanType
from threadline.errors import InvalidArgumentError
from threadline.integrations import _chat_format as cf

ACCESS_KEY = "AKIAFAKETESTKEY12345"
SECRET_KEY = "SECRET-wJalrXUtnFEMI-fake-9f8e7d6c"
SESSION_TOKEN = "SESSIONTOKEN-fake-0a1b2c3d"
CLAUDE = "anthropic.claude-3-5-sonnet-20240620-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "Hello!"}]}]
SYSTEM = [{"text": "Be brief."}]
TOOL_CONFIG = {
    "tools": [
        {
            "toolSpec": {
                "name": "get_weather",
                "description": "The weather in a city.",
                "inputSchema": {
                    "json": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                        "required": ["city"],
                    }
                },
            }
        }
    ]
}
REPLY_TOKENS = len(fake.pieces())
PROMPT = fake.INPUT_TOKENS + fake.CACHE_READ_TOKENS + fake.CACHE_WRITE_TOKENS
TOKEN_USAGE = {
    "input_tokens": PROMPT,
    "output_tokens": REPLY_TOKENS,
    "total_tokens": PROMPT + REPLY_TOKENS,
}
HEADER_USAGE = {
    "input_tokens": fake.INPUT_TOKENS,
    "output_tokens": REPLY_TOKENS,
    "total_tokens": fake.INPUT_TOKENS + REPLY_TOKENS,
}
TOOL_CALL = {
    "id": "tooluse_fake1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}


@pytest.fixture(scope="module")
def bedrock_server() -> Iterator[fake.BedrockServer]:
    server = fake.serve()
    yield server
    server.stop()


def make_client(url: str, session: Any = boto3) -> Any:
    return session.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        aws_session_token=SESSION_TOKEN,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


@pytest.fixture
def client(bedrock_server: fake.BedrockServer) -> Iterator[Any]:
    bedrock_server.requests.clear()
    client = make_client(bedrock_server.url)
    yield client
    client.close()


def converse(client: Any, **kwargs: Any) -> Any:
    return client.converse(**{"modelId": CLAUDE, "messages": MESSAGES, **kwargs})


def converse_stream(client: Any, **kwargs: Any) -> Any:
    return client.converse_stream(**{"modelId": CLAUDE, "messages": MESSAGES, **kwargs})


def invoke(client: Any, model: str, body: dict[str, Any], **kwargs: Any) -> Any:
    return client.invoke_model(modelId=model, body=json.dumps(body), **kwargs)


# --- the Converse API ---------------------------------------------------------------------


def test_converse(captured, client):
    threadline.bedrock.autolog()
    config = {"maxTokens": 512, "temperature": 0.5}
    response = converse(client, system=SYSTEM, inferenceConfig=config)
    assert response["output"]["message"]["content"] == [{"text": fake.REPLY}]

    span = only_span(captured)
    assert span.name == "bedrock.converse"
    assert span.span_type == SpanType.CHAT_MODEL
    assert span.status.status_code == "OK"
    assert span.parent_id is None
    assert span.inputs == {
        "modelId": CLAUDE,
        "messages": MESSAGES,
        "system": SYSTEM,
        "inferenceConfig": config,
    }
    expected = {k: v for k, v in response.items() if k != "ResponseMetadata"}
    assert span.outputs == expected
    attrs = span.attributes
    assert attrs[SpanAttributeKey.PROVIDER] == "bedrock"
    assert attrs[SpanAttributeKey.MODEL] == CLAUDE
    assert attrs[SpanAttributeKey.TOKEN_USAGE] == TOKEN_USAGE
    assert attrs[cf.CACHED_INPUT_TOKENS] == fake.CACHE_READ_TOKENS
    assert attrs[cf.CACHE_CREATION_INPUT_TOKENS] == fake.CACHE_WRITE_TOKENS
    assert attrs[cf.FINISH_REASON] == "end_turn"
    assert attrs[cf.CHAT_MESSAGES] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello!"},
        {"role": "assistant", "content": fake.REPLY},
    ]


def test_converse_stream_fully_consumed(captured, client):
    untraced = list(converse_stream(client)["stream"])
    threadline.bedrock.autolog()
    response = converse_stream(client)
    stream = response["stream"]
    assert isinstance(stream, EventStream)
    assert all_spans(captured) == []  # open until the stream is read
    assert list(stream) == untraced

    span = only_span(captured)
    assert span.name == "bedrock.converse_stream"
    assert span.status.status_code == "OK"
    assert span.outputs == {
        "output": {"message": {"role": "assistant", "content": [{"text": fake.REPLY}]}},
        "stopReason": "end_turn",
        "usage": fake.converse_usage(REPLY_TOKENS),
        "metrics": {"latencyMs": 42},
    }
    assert span.attributes[SpanAttributeKey.TOKEN_USAGE] == TOKEN_USAGE
    assert span.attributes[cf.CACHED_INPUT_TOKENS] == fake.CACHE_READ_TOKENS
    assert span.attributes[cf.FINISH_REASON] == "end_turn"
    assert span.attributes[cf.CHAT_MESSAGES][-1] == {"role": "assistant", "content": fake.REPLY}
    assert SpanAttributeKey.GENERATOR_CLOSED_EARLY not in span.attributes


# botocore leaves the connection of an abandoned event stream to the garbage collector,
# which warns about the unclosed socket (untraced as well as traced).
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning"
)
def test_converse_stream_abandoned_half_way(captured, client):
    threadline.bedrock.autolog()
    response = converse_stream(client)
    texts = []
    for event in response["stream"]:
        if "contentBlockDelta" in event:
            texts.append(event["contentBlockDelta"]["delta"]["text"])
            if len(texts) == 2:
                break
    assert all_spans(captured) == []
    del response, event
    gc.collect()

    span = only_span(captured)
    assert span.status.status_code == "OK"
    message = span.outputs["output"]["message"]
    assert message["content"] == [{"text": "".join(texts)}] == [{"text": "Hello! How "}]
    assert span.attributes[SpanAttributeKey.GENERATOR_CLOSED_EARLY] is True
    assert SpanAttributeKey.TOKEN_USAGE not in span.attributes  # the metadata never came


def test_converse_stream_closed(captured, client):
    threadline.bedrock.autolog()
    stream = converse_stream(client)["stream"]
    first = next(iter(stream))
    assert first == {"messageStart": {"role": "assistant"}}
    stream.close()
    span = only_span(captured)
    assert span.attributes[SpanAttributeKey.GENERATOR_CLOSED_EARLY] is True
    assert span.outputs["output"]["message"]["content"] == []


def test_converse_stream_error_event(captured, client):
    threadline.bedrock.autolog()
    stream = converse_stream(client, modelId="error-stream")["stream"]
    with pytest.raises(EventStreamError, match="modelStreamErrorException") as raised:
        list(stream)
    stream.close()  # the rest of the body is never read: release the connection
    assert raised.value.response["Error"]["Code"] == "modelStreamErrorException"
    span = only_span(captured)
    assert span.status.status_code == "ERROR"
    assert span.events[0].attributes["exception.type"] == "EventStreamError"
    assert span.outputs["output"]["message"]["content"] == [{"text": "Hello! "}]


def test_tool_use_normalised(captured, client):
    threadline.bedrock.autolog()
    first = converse(client, toolConfig=TOOL_CONFIG)
    tool_use = first["output"]["message"]["content"][1]["toolUse"]
    followup = [
        *MESSAGES,
        first["output"]["message"],
        {
            "role": "user",
            "content": [
                {
                    "toolResult": {
                        "toolUseId": tool_use["toolUseId"],
                        "content": [{"json": {"celsius": 21}}, {"text": "sunny"}],
                    }
                },
                {"text": "Thanks."},
            ],
        },
    ]
    converse(client, toolConfig=TOOL_CONFIG, messages=followup)
    streamed = list(converse_stream(client, toolConfig=TOOL_CONFIG)["stream"])
    assert streamed[-2] == {"messageStop": {"stopReason": "tool_use"}}

    one, two, three = all_spans(captured)
    assert one.attributes[cf.CHAT_TOOLS] == [
        {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": TOOL_CONFIG["tools"][0]["toolSpec"]["inputSchema"]["json"],
        }
    ]
    assert one.attributes[cf.FINISH_REASON] == "tool_use"
    reply = {"role": "assistant", "content": "Let me check.", "tool_calls": [TOOL_CALL]}
    assert one.attributes[cf.CHAT_MESSAGES] == [{"role": "user", "content": "Hello!"}, reply]
    assert two.attributes[cf.CHAT_MESSAGES] == [
        {"role": "user", "content": "Hello!"},
        reply,
        {"role": "tool", "content": '{"celsius": 21}\nsunny', "tool_call_id": "tooluse_fake1"},
        {"role": "user", "content": "Thanks."},
        {"role": "assistant", "content": fake.REPLY},
    ]
    content = three.outputs["output"]["message"]["content"]
    tool = {"toolUseId": "tooluse_fake1", "name": "get_weather", "input": fake.TOOL_INPUT}
    assert content == [{"text": fake.REPLY}, {"toolUse": tool}]
    assert three.attributes[cf.CHAT_MESSAGES][-1] == {
        "role": "assistant",
        "content": fake.REPLY,
        "tool_calls": [TOOL_CALL],
    }


# --- invoke_model -------------------------------------------------------------------------

CLAUDE_BODY = {
    "anthropic_version": "bedrock-2023-05-31",
    "max_tokens": 256,
    "system": "Be brief.",
    "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello!"}]}],
}


def test_invoke_model_claude_body_still_readable(captured, client):
    untraced = invoke(client, CLAUDE, CLAUDE_BODY)["body"].read()
    threadline.bedrock.autolog()
    response = invoke(client, CLAUDE, CLAUDE_BODY, contentType="application/json")
    body = response["body"]
    assert isinstance(body, StreamingBody)
    assert body.read() == untraced
    assert response["contentType"] == "application/json"

    span = only_span(captured)
    assert span.name == "bedrock.invoke_model"
    assert span.span_type == SpanType.CHAT_MODEL
    assert span.inputs == {
        "modelId": CLAUDE,
        "body": CLAUDE_BODY,
        "contentType": "application/json",
    }
    assert span.outputs == json.loads(untraced)
    attrs = span.attributes
    assert attrs[SpanAttributeKey.MODEL] == CLAUDE
    assert attrs[SpanAttributeKey.PROVIDER] == "bedrock"
    assert attrs[SpanAttributeKey.TOKEN_USAGE] == HEADER_USAGE  # from the body's usage
    assert attrs[cf.FINISH_REASON] == "end_turn"
    assert attrs[cf.CHAT_MESSAGES] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello!"},
        {"role": "assistant", "content": fake.REPLY},
    ]


@pytest.mark.parametrize(
    ("model", "body", "reason"),
    [
        ("amazon.titan-text-express-v1", {"inputText": "Hello!"}, "FINISH"),
        ("meta.llama3-8b-instruct-v1:0", {"prompt": "Hello!", "max_gen_len": 64}, "stop"),
        ("us.meta.llama3-2-1b-instruct-v1:0", {"prompt": "Hello!"}, "stop"),
    ],
)
def test_invoke_model_text_families(captured, client, model, body, reason):
    threadline.bedrock.autolog()
    response = invoke(client, model, body)
    answer = json.loads(response["body"].read())
    span = only_span(captured)
    assert span.span_type == SpanType.CHAT_MODEL
    assert span.inputs["body"] == body
    assert span.outputs == answer
    assert span.attributes[cf.FINISH_REASON] == reason
    assert span.attributes[SpanAttributeKey.TOKEN_USAGE] == HEADER_USAGE  # from the headers
    assert span.attributes[cf.CHAT_MESSAGES] == [
        {"role": "user", "content": "Hello!"},
        {"role": "assistant", "content": fake.REPLY},
    ]


def test_invoke_model_nova_and_mistral_chat_bodies(captured, client):
    threadline.bedrock.autolog()
    nova = {"schemaVersion": "messages-v1", "system": SYSTEM, "messages": MESSAGES}
    invoke(client, "us.amazon.nova-lite-v1:0", nova)
    mistral = {"messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 64}
    invoke(client, "mistral.mistral-large-2407-v1:0", mistral)

    nova_span, mistral_span = all_spans(captured)
    assert nova_span.attributes[cf.CHAT_MESSAGES] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello!"},
        {"role": "assistant", "content": fake.REPLY},
    ]
    assert nova_span.attributes[SpanAttributeKey.TOKEN_USAGE] == TOKEN_USAGE
    assert mistral_span.attributes[cf.CHAT_MESSAGES] == [
        {"role": "user", "content": "Hello!"},
        {"role": "assistant", "content": fake.REPLY},
    ]
    assert mistral_span.attributes[cf.FINISH_REASON] == "stop"
    assert mistral_span.attributes[SpanAttributeKey.TOKEN_USAGE] == HEADER_USAGE


@pytest.mark.parametrize(
    ("model", "body", "tokens"),
    [
        ("amazon.titan-embed-text-v2:0", {"inputText": "Hello!"}, 3),
        ("cohere.embed-english-v3", {"texts": ["a", "b"], "input_type": "search_document"}, 4),
    ],
)
def test_invoke_model_embeddings(captured, client, model, body, tokens):
    threadline.bedrock.autolog()
    answer = json.loads(invoke(client, model, body)["body"].read())
    span = only_span(captured)
    assert span.span_type == SpanType.EMBEDDING
    assert span.inputs["body"] == body
    assert span.outputs == answer
    assert fake.EMBEDDING in (answer.get("embedding"), *(answer.get("embeddings") or ()))
    assert span.attributes[SpanAttributeKey.TOKEN_USAGE] == {
        "input_tokens": tokens,
        "output_tokens": 0,
        "total_tokens": tokens,
    }
    assert cf.CHAT_MESSAGES not in span.attributes


def test_invoke_model_unknown_body_is_raw_json(captured, client):
    threadline.bedrock.autolog()
    body = {"task": "summarise", "payload": [1, 2, 3]}
    response = client.invoke_model(modelId="acme.custom-model-v1", body=json.dumps(body).encode())
    answer = json.loads(response["body"].read())
    assert answer == {"result": "ok", "echo": body}
    span = only_span(captured)
    assert span.span_type == SpanType.LLM
    assert span.inputs == {"modelId": "acme.custom-model-v1", "body": body}
    assert span.outputs == answer
    assert span.attributes[SpanAttributeKey.TOKEN_USAGE]["input_tokens"] == 7
    assert cf.CHAT_MESSAGES not in span.attributes


@pytest.mark.parametrize(
    "model",
    [
        CLAUDE,
        "amazon.titan-text-express-v1",
        "meta.llama3-8b-instruct-v1:0",
        "amazon.nova-pro-v1:0",
    ],
)
def test_invoke_model_with_response_stream(captured, client, model):
    body = CLAUDE_BODY if model == CLAUDE else {"prompt": "Hello!"}
    if model.startswith("amazon.nova"):
        body = {"messages": MESSAGES}

    def call() -> Any:
        return client.invoke_model_with_response_stream(modelId=model, body=json.dumps(body))

    untraced = list(call()["body"])
    threadline.bedrock.autolog()
    stream = call()["body"]
    assert isinstance(stream, EventStream)
    assert list(stream) == untraced

    span = only_span(captured)
    assert span.name == "bedrock.invoke_model_with_response_stream"
    assert span.span_type == SpanType.CHAT_MODEL
    assert span.status.status_code == "OK"
    assert span.attributes[cf.CHAT_MESSAGES][-1] == {"role": "assistant", "content": fake.REPLY}
    assert span.attributes[SpanAttributeKey.TOKEN_USAGE] == HEADER_USAGE
    assert span.attributes[cf.FINISH_REASON] in ("end_turn", "FINISH", "stop")


def test_invoke_stream_error_event(captured, client):
    threadline.bedrock.autolog()
    body = {"prompt": "Hello!"}
    stream = client.invoke_model_with_response_stream(modelId="error-stream", body=json.dumps(body))
    with pytest.raises(EventStreamError):
        list(stream["body"])
    stream["body"].close()  # the rest of the body is never read: release the connection
    span = only_span(captured)
    assert span.status.status_code == "ERROR"
    assert span.outputs == {"text": "Hello! ", "stop_reason": None}


# --- errors, nesting, switching on and off ------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status"),
    [("ValidationException", 400), ("ThrottlingException", 429), ("AccessDeniedException", 403)],
)
def test_api_error(captured, client, code, status):
    with pytest.raises(ClientError) as untraced:
        converse(client, modelId=f"error-{code}")
    threadline.bedrock.autolog()
    with pytest.raises(ClientError) as traced:
        converse(client, modelId=f"error-{code}")
    assert type(traced.value) is type(untraced.value)
    assert type(traced.value).__name__ == code
    assert str(traced.value) == str(untraced.value)
    assert traced.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    span = only_span(captured)
    assert span.status.status_code == "ERROR"
    assert span.events[0].attributes["exception.type"] == code
    assert span.attributes[cf.CHAT_MESSAGES] == [{"role": "user", "content": "Hello!"}]


def test_invoke_model_error(captured, client):
    threadline.bedrock.autolog()
    with pytest.raises(ClientError, match="ValidationException"):
        invoke(client, "error-ValidationException", CLAUDE_BODY)
    span = only_span(captured)
    assert span.status.status_code == "ERROR"
    assert span.inputs["body"] == CLAUDE_BODY


def test_nested_under_a_traced_function(captured, client):
    threadline.bedrock.autolog()

    @threadline.trace(span_type=SpanType.AGENT)
    def agent() -> str:
        answer = converse(client)["output"]["message"]["content"][0]["text"]
        for _ in converse_stream(client)["stream"]:
            pass
        return str(answer)

    assert agent() == fake.REPLY
    (trace,) = captured.traces
    root = next(s for s in trace.data.spans if s.parent_id is None)
    children = [s for s in trace.data.spans if s.parent_id == root.span_id]
    assert root.name == "agent"
    assert sorted(s.name for s in children) == ["bedrock.converse", "bedrock.converse_stream"]


def test_clients_before_and_after_autolog_and_disable(captured, bedrock_server):
    original = vars(BaseClient)["_make_api_call"]
    before = make_client(bedrock_server.url)
    generated = vars(type(before))["converse"]
    threadline.bedrock.autolog()
    assert vars(BaseClient)["_make_api_call"] is not original
    after = make_client(bedrock_server.url, boto3.session.Session())
    converse(before)
    converse(after)
    assert len(captured.traces) == 2

    threadline.bedrock.autolog(disable=True)
    assert vars(BaseClient)["_make_api_call"] is original
    assert vars(type(before))["converse"] is generated  # the generated class was never touched
    later = make_client(bedrock_server.url)
    for each in (before, after, later):
        converse(each)
    assert len(captured.traces) == 2

    threadline.bedrock.autolog()
    converse(later)
    assert len(captured.traces) == 3
    for each in (before, after, later):
        each.close()


def test_idempotent_and_log_traces_false(captured, client):
    original = vars(BaseClient)["_make_api_call"]
    threadline.bedrock.autolog(log_traces=False)
    assert vars(BaseClient)["_make_api_call"] is original
    threadline.bedrock.autolog()
    patched = vars(BaseClient)["_make_api_call"]
    threadline.bedrock.autolog()
    assert vars(BaseClient)["_make_api_call"] is patched
    converse(client)
    assert [len(t.data.spans) for t in captured.traces] == [1]
    threadline.bedrock.autolog(log_traces=False)
    assert vars(BaseClient)["_make_api_call"] is original


def test_other_operations_pass_through(captured, client):
    threadline.bedrock.autolog()
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        client.count_tokens(modelId=CLAUDE, input={"converse": {"messages": MESSAGES}})
    assert captured.traces == []


def test_tracing_disabled_leaves_the_response_alone(captured, client):
    threadline.bedrock.autolog()
    threadline.tracing.disable()
    try:
        response = invoke(client, CLAUDE, CLAUDE_BODY)
    finally:
        threadline.tracing.enable()
    assert json.loads(response["body"].read())["content"][0]["text"] == fake.REPLY
    assert captured.traces == []


def test_credentials_never_in_the_trace(captured, client, bedrock_server):
    threadline.bedrock.autolog()
    converse(client)
    list(converse_stream(client)["stream"])
    invoke(client, CLAUDE, CLAUDE_BODY)["body"].read()
    with pytest.raises(ClientError):
        converse(client, modelId="error-AccessDeniedException")
    headers = bedrock_server.requests[0][1]
    assert ACCESS_KEY in headers["authorization"]  # they were sent…
    assert headers["x-amz-security-token"] == SESSION_TOKEN
    assert len(all_spans(captured)) == 4
    for trace in captured.traces:  # …and recorded nowhere
        text = trace.to_json()
        for secret in (ACCESS_KEY, SECRET_KEY, SESSION_TOKEN, "AWS4-HMAC-SHA256", "Signature="):
            assert secret not in text
        assert "authorization" not in text.lower()
        assert "HTTPHeaders" not in text


def test_token_usage_summed_in_the_stored_trace(tmp_path, client):
    threadline.set_tracking_uri(f"sqlite:///{tmp_path}/t.db")
    threadline.bedrock.autolog()

    @threadline.trace(span_type=SpanType.AGENT)
    def agent() -> None:
        converse(client)
        invoke(client, "meta.llama3-8b-instruct-v1:0", {"prompt": "Hello!"})

    agent()
    trace = threadline.get_trace(threadline.get_last_active_trace_id())
    assert trace is not None
    assert trace.info.token_usage == {k: TOKEN_USAGE[k] + HEADER_USAGE[k] for k in TOKEN_USAGE}


def test_threadline_autolog_picks_it_up(captured, client, monkeypatch):
    module = integrations.registered()["bedrock"]
    assert module == "threadline.integrations.bedrock"
    # Only this entry: importing every other installed library would take long.
    monkeypatch.setattr(integrations, "_REGISTRY", {"bedrock": module})
    threadline.autolog(silent=True)
    converse(client)
    assert only_span(captured).name == "bedrock.converse"
    threadline.autolog(disable=True, silent=True)
    converse(client)
    assert len(captured.traces) == 1


def test_missing_library_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(InvalidArgumentError, match=r'pip install "boto3>=1\.34\.0"'):
        threadline.bedrock.autolog()


def test_too_old_version_is_refused(monkeypatch):
    monkeypatch.setattr(boto3, "__version__", "1.28.0")
    with pytest.raises(InvalidArgumentError, match=r"boto3 1\.34\.0 or newer; 1\.28\.0"):
        threadline.bedrock.autolog()
    assert not threadline.bedrock.INTEGRATION.enabled


def test_file_request_body_is_sent_whole_and_recorded_by_repr(captured, client, bedrock_server):
    threadline.bedrock.autolog()
    raw = json.dumps(CLAUDE_BODY).encode()
    answer = client.invoke_model(modelId=CLAUDE, body=io.BytesIO(raw))["body"].read()
    assert bedrock_server.requests[-1][2] == raw
    span = only_span(captured)
    assert span.inputs["body"].startswith("<_io.BytesIO object")
    assert span.span_type == SpanType.LLM  # the family is unknown without the body
    assert span.outputs == json.loads(answer)
    assert span.attributes[SpanAttributeKey.TOKEN_USAGE] == HEADER_USAGE


def test_botocore_without_the_hook_is_refused(monkeypatch):
    monkeypatch.delattr(BaseClient, "_make_api_call")
    with pytest.raises(InvalidArgumentError, match=r"no BaseClient\._make_api_call"):
        threadline.bedrock.autolog()
    assert not threadline.bedrock.INTEGRATION.enabled


def test_calls_inside_a_library_that_hides_them_are_not_recorded_apart(captured, client):
    from threadline.integrations._llm_call import Config, _calling

    threadline.bedrock.autolog()
    token = _calling.set(Config("litellm-like", hides_inner_calls=True))  # its call is running
    try:
        converse(client)
    finally:
        _calling.reset(token)
    assert captured.traces == []
    converse(client)
    assert len(captured.traces) == 1
