"""``threadline.semconv``: each vocabulary's attributes → span type, payloads, model, tokens
and the conversation in the chat format (pure functions, no OpenTelemetry SDK)."""

from __future__ import annotations

import json

import pytest

from threadline.entities.keys import SpanAttributeKey
from threadline.semconv import map_attributes, span_type_of, threadline_attributes
from threadline.semconv.json_text import MAX_JSON_DEPTH, bounded_json, depth, dumps
from threadline.semconv.mapping import Payload, count
from threadline.semconv.messages import normalize, unflatten


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"openinference.span.kind": " retriever "}, "RETRIEVER"),
        ({"traceloop.span.kind": "workflow"}, "CHAIN"),
        ({"traceloop.span.kind": "agent"}, "AGENT"),
        ({"traceloop.span.kind": "tool"}, "TOOL"),
        ({"gen_ai.operation.name": "chat"}, "CHAT_MODEL"),
        ({"gen_ai.operation.name": "execute_tool"}, "TOOL"),
        ({"gen_ai.operation.name": "invoke_agent"}, "AGENT"),
        ({"gen_ai.operation.name": "embeddings"}, "EMBEDDING"),
        ({"gen_ai.operation.name": "something_new"}, "LLM"),
        ({"llm.request.type": "chat"}, "CHAT_MODEL"),
        ({"llm.request.type": "embedding"}, "EMBEDDING"),
        ({"gen_ai.request.model": "gpt-4o"}, "LLM"),
        ({"http.method": "GET"}, "UNKNOWN"),
        # OpenInference first, then OpenLLMetry's kind, then GenAI
        ({"openinference.span.kind": "TOOL", "gen_ai.operation.name": "chat"}, "TOOL"),
        ({"traceloop.span.kind": "task", "gen_ai.operation.name": "chat"}, "CHAIN"),
    ],
)
def test_span_types(attributes: dict, expected: str) -> None:
    assert span_type_of(attributes) == expected


def test_openinference_flattened_messages_with_tool_calls() -> None:
    prefix = "llm.input_messages"
    attributes = {
        "openinference.span.kind": "LLM",
        "llm.model_name": "gpt-4o-mini",
        "llm.provider": "openai",
        f"{prefix}.0.message.role": "system",
        f"{prefix}.0.message.content": "Be brief.",
        f"{prefix}.1.message.role": "user",
        f"{prefix}.1.message.contents.0.message_content.type": "text",
        f"{prefix}.1.message.contents.0.message_content.text": "Weather in Paris?",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.tool_calls.0.tool_call.id": "call_1",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "weather",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"city":"Paris"}',
        "llm.tools.0.tool.json_schema": json.dumps(
            {
                "type": "function",
                "function": {"name": "weather", "description": "d", "parameters": {}},
            }
        ),
        "llm.token_count.prompt": 10,
        "llm.token_count.completion": 4,
        "llm.token_count.prompt_details.cache_read": 3,
        "llm.token_count.completion_details.reasoning": 2,
    }
    mapped = map_attributes(attributes)
    assert mapped.span_type == "LLM" and mapped.model == "gpt-4o-mini"
    assert mapped.counts == (10, 4, 14)
    assert mapped.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
    ]
    assert mapped.tools == [{"name": "weather", "description": "d", "parameters": {}}]
    extra = threadline_attributes(mapped)
    assert extra[SpanAttributeKey.TOKEN_USAGE] == {
        "input_tokens": 10,
        "output_tokens": 4,
        "total_tokens": 14,
    }
    assert extra[SpanAttributeKey.CACHED_INPUT_TOKENS] == 3
    assert extra[SpanAttributeKey.REASONING_TOKENS] == 2
    assert extra[SpanAttributeKey.PROVIDER] == "openai"
    assert mapped.inputs is not None and mapped.inputs.python_value()[1]["role"] == "user"
    assert all(k.startswith("llm.input_messages.") for k in mapped.inputs.keys)


def test_genai_parts_messages_and_system_instructions() -> None:
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-x",
        "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Be kind."}]),
        "gen_ai.input.messages": json.dumps(
            [
                {"role": "user", "parts": [{"type": "text", "content": "Add 1 and 2"}]},
                {
                    "role": "assistant",
                    "parts": [
                        {"type": "tool_call", "id": "t1", "name": "add", "arguments": {"a": 1}}
                    ],
                },
                {
                    "role": "user",
                    "parts": [{"type": "tool_call_response", "id": "t1", "response": 3}],
                },
            ]
        ),
        "gen_ai.output.messages": json.dumps(
            [
                {
                    "role": "assistant",
                    "parts": [{"type": "text", "content": "3"}],
                    "finish_reason": "stop",
                }
            ]
        ),
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.tool.definitions": json.dumps(
            [{"type": "function", "name": "add", "parameters": {}}]
        ),
        "gen_ai.usage.input_tokens": 7,
        "gen_ai.usage.output_tokens": 1,
    }
    mapped = map_attributes(attributes)
    assert mapped.span_type == "CHAT_MODEL" and mapped.provider == "anthropic"
    assert mapped.messages == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Add 1 and 2"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "t1",
                    "type": "function",
                    "function": {"name": "add", "arguments": '{"a":1}'},
                }
            ],
        },
        {"role": "tool", "content": "3", "tool_call_id": "t1"},
        {"role": "assistant", "content": "3"},
    ]
    assert mapped.finish_reason == "stop"
    assert mapped.tools == [{"name": "add", "description": None, "parameters": {}}]
    assert mapped.inputs is not None and mapped.inputs.keys == ("gen_ai.input.messages",)


def test_openllmetry_prompts_completions_and_entities() -> None:
    llm = {
        "llm.request.type": "chat",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.prompt.0.role": "user",
        "gen_ai.prompt.0.content": "Hi there",
        "gen_ai.completion.0.role": "assistant",
        "gen_ai.completion.0.content": "Hello!",
        "gen_ai.completion.0.finish_reason": "stop",
        "gen_ai.completion.1.role": "assistant",
        "gen_ai.completion.1.tool_calls.0.id": "c9",
        "gen_ai.completion.1.tool_calls.0.name": "lookup",
        "gen_ai.completion.1.tool_calls.0.arguments": "{}",
        "llm.request.functions.0.name": "lookup",
        "llm.request.functions.0.description": "Looks up",
        "llm.request.functions.0.parameters": '{"type": "object"}',
        "gen_ai.usage.prompt_tokens": 5,
        "gen_ai.usage.completion_tokens": 2,
        "llm.usage.total_tokens": 7,
        "traceloop.association.properties.session_id": "s-1",
    }
    mapped = map_attributes(llm)
    assert mapped.span_type == "CHAT_MODEL" and mapped.counts == (5, 2, 7)
    assert mapped.messages[0] == {"role": "user", "content": "Hi there"}
    assert mapped.messages[1] == {"role": "assistant", "content": "Hello!"}
    assert mapped.messages[2]["tool_calls"][0]["function"] == {"name": "lookup", "arguments": "{}"}
    assert mapped.finish_reason == "stop"
    assert mapped.tools == [
        {"name": "lookup", "description": "Looks up", "parameters": {"type": "object"}}
    ]
    assert mapped.metadata == {"session_id": "s-1"}
    assert mapped.outputs is not None
    assert mapped.outputs.python_value()[0] == {
        "role": "assistant",
        "content": "Hello!",
        "finish_reason": "stop",
    }

    task = {
        "traceloop.span.kind": "task",
        "traceloop.entity.input": '{"inputs": {"q": "x"}}',
        "traceloop.entity.output": "plain text out",
    }
    mapped = map_attributes(task)
    assert mapped.span_type == "CHAIN" and mapped.messages == []
    assert mapped.inputs is not None and mapped.inputs.python_value() == {"inputs": {"q": "x"}}
    assert mapped.outputs is not None and mapped.outputs.json_text() == '"plain text out"'


def test_genai_message_events() -> None:
    events = [
        {"name": "gen_ai.system.message", "timestamp_ns": 1, "attributes": {"content": "sys"}},
        {"name": "gen_ai.user.message", "timestamp_ns": 2, "attributes": {"content": "question"}},
        {
            "name": "gen_ai.choice",
            "timestamp_ns": 3,
            "attributes": {"index": 0, "finish_reason": "stop", "message": '{"content": "answer"}'},
        },
    ]
    mapped = map_attributes({"gen_ai.operation.name": "chat"}, events)
    assert mapped.messages == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "question"},
        {"role": "assistant", "content": "answer"},
    ]
    assert mapped.inputs is not None and len(mapped.inputs.python_value()) == 2
    legacy = [
        {
            "name": "gen_ai.content.prompt",
            "timestamp_ns": 1,
            "attributes": {"gen_ai.prompt": '[{"role": "user", "content": "old"}]'},
        }
    ]
    assert map_attributes({"gen_ai.operation.name": "chat"}, legacy).messages == [
        {"role": "user", "content": "old"}
    ]


def test_tool_call_arguments_and_result_are_the_payloads() -> None:
    mapped = map_attributes(
        {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.call.arguments": '{"a": 1}',
            "gen_ai.tool.call.result": "done",
        }
    )
    assert mapped.span_type == "TOOL" and mapped.messages == [] and mapped.tools == []
    assert mapped.inputs is not None and mapped.inputs.python_value() == {"a": 1}
    assert mapped.outputs is not None and mapped.outputs.python_value() == "done"


def test_payload_readings() -> None:
    assert Payload('{"a": 1}', "application/json").json_text() == '{"a": 1}'
    assert Payload('{"a": 1}', "text/plain").json_text() == '"{\\"a\\": 1}"'
    assert Payload("[1, 2]", None).python_value() == [1, 2]
    assert Payload("{not json", None).python_value() == "{not json"
    assert Payload({"k": (1, 2)}, None).json_text() == '{"k":[1,2]}'
    assert Payload("plain", "application/json").python_value() == "plain"


def test_unflatten_orders_positions_and_ignores_stray_keys() -> None:
    attributes = {
        "p.2.role": "c",
        "p.0.role": "a",
        "p.10.role": "d",
        "p.x.role": "ignored",
        "p.1234567.role": "not a position",
        "p.3": "no field",
        "other.0.role": "elsewhere",
    }
    assert unflatten(attributes, "p.") == [{"role": "a"}, {"role": "c"}, {"role": "d"}]
    assert normalize("not json") == [] and normalize(5) == []


def test_token_counts_are_bounded() -> None:
    assert count("12") == 12 and count(3.0) == 3
    assert count(True) is None and count(-1) is None and count(float("nan")) is None
    assert count(10**13) is None and count("1e3") is None
    mapped = map_attributes({"gen_ai.usage.input_tokens": -5, "gen_ai.usage.output_tokens": 2})
    assert mapped.counts == (None, 2, 2)


def test_bounded_json_keeps_deep_payloads_readable() -> None:
    deep = "[" * (MAX_JSON_DEPTH + 5) + "]" * (MAX_JSON_DEPTH + 5)
    assert json.loads(bounded_json(deep)) == deep  # a string now, readable without recursion
    shallow = "[[1]]"
    assert bounded_json(shallow) == shallow and bounded_json("not json [[[") == "not json [[["
    assert depth({"a": [{"b": 1}]}) == 3
    assert dumps(float("nan")) == "NaN" and dumps({"x": "ü"}) == '{"x":"ü"}'
