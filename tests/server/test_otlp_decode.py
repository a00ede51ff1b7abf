"""``decode_otlp``: the pure OTLP → rows step, on real ``opentelemetry-proto`` messages."""

from __future__ import annotations

import dataclasses
import json

import pytest

from tests.server.conftest import T0, otlp_json, otlp_request
from threadline.export._otlp import encode_json, encode_protobuf, resource_groups
from threadline.server.ingest.decode import (
    OtlpDecodeError,
    UnsupportedContentType,
    decode_otlp,
    decode_request,
)
from threadline.store.base import SpanRow, TraceRow

PB = "application/x-protobuf"
JS = "application/json"


def _decode(request, header: str | None = None, *, as_json: bool = False):
    if as_json:
        return decode_otlp(otlp_json(request), JS, header)
    return decode_otlp(request.SerializeToString(), PB, header)


@pytest.mark.parametrize("as_json", [False, True])
def test_openinference_spans(as_json: bool) -> None:
    request = otlp_request(
        [
            {
                "trace": 1,
                "span": 1,
                "name": "agent",
                "attributes": {
                    "openinference.span.kind": "AGENT",
                    "input.value": "What is 2+2?",
                    "input.mime_type": "text/plain",
                    "output.value": '{"answer": 4}',
                    "output.mime_type": "application/json",
                    "session.id": "sess-1",
                    "user.id": "alice",
                },
            },
            {
                "trace": 1,
                "span": 2,
                "parent": 1,
                "name": "llm",
                "status": 2,
                "message": "rate limited",
                "attributes": {
                    "openinference.span.kind": "LLM",
                    "llm.model_name": "gpt-4o",
                    "llm.token_count.prompt": 10,
                    "llm.token_count.completion": 5,
                    "llm.input_messages.0.message.role": "user",
                    "llm.input_messages.0.message.content": "2+2?",
                    "llm.provider": "openai",
                },
            },
        ]
    )
    traces, spans = _decode(request, as_json=as_json)
    root, llm = spans
    assert root.trace_id == "tr-" + f"{1:032x}" and root.parent_id is None
    assert root.span_type == "AGENT"
    assert json.loads(root.inputs_json) == "What is 2+2?"
    assert json.loads(root.outputs_json) == {"answer": 4}
    assert llm.span_type == "LLM" and llm.parent_id == f"{1:016x}"
    assert (llm.input_tokens, llm.output_tokens, llm.total_tokens) == (10, 5, 15)
    assert json.loads(llm.inputs_json) == [{"role": "user", "content": "2+2?"}]
    attributes = json.loads(llm.attributes_json)
    assert attributes["threadline.model"] == "gpt-4o"
    assert attributes["threadline.provider"] == "openai"
    assert attributes["threadline.token_usage"] == {
        "input_tokens": 10,
        "output_tokens": 5,
        "total_tokens": 15,
    }
    assert attributes["llm.model_name"] == "gpt-4o"  # the original keys stay searchable
    assert (llm.status_code, llm.status_message) == ("ERROR", "rate limited")

    (trace,) = traces
    assert trace.experiment_id == "0" and trace.state == "OK" and trace.name == "agent"
    assert trace.request_time == T0 // 1_000_000 and trace.execution_duration == 10
    assert trace.request_preview == "What is 2+2?"
    assert trace.response_preview == '{"answer": 4}'
    assert trace.metadata == {"session_id": "sess-1", "user": "alice"}


def test_genai_spans() -> None:
    request = otlp_request(
        [
            {
                "trace": 2,
                "span": 1,
                "attributes": {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.system": "anthropic",
                    "gen_ai.request.model": "claude",
                    "gen_ai.usage.input_tokens": 7,
                    "gen_ai.usage.output_tokens": 3,
                    "gen_ai.input.messages": '[{"role": "user", "content": "hi"}]',
                },
            },
            {
                "trace": 2,
                "span": 2,
                "parent": 1,
                "attributes": {"gen_ai.operation.name": "execute_tool"},
            },
            {
                "trace": 2,
                "span": 3,
                "parent": 1,
                "attributes": {"gen_ai.operation.name": "embeddings"},
            },
            {"trace": 2, "span": 4, "parent": 1, "attributes": {"http.method": "GET"}},
        ]
    )
    _, spans = _decode(request)
    assert [s.span_type for s in spans] == ["CHAT_MODEL", "TOOL", "EMBEDDING", "UNKNOWN"]
    chat = spans[0]
    assert (chat.input_tokens, chat.output_tokens, chat.total_tokens) == (7, 3, 10)
    assert json.loads(chat.inputs_json) == [{"role": "user", "content": "hi"}]
    attributes = json.loads(chat.attributes_json)
    assert attributes["threadline.model"] == "claude"
    assert attributes["threadline.provider"] == "anthropic"
    assert spans[3].inputs_json == "null" and spans[3].outputs_json == "null"


def test_openllmetry_spans() -> None:
    request = otlp_request(
        [
            {
                "trace": 9,
                "span": 1,
                "name": "workflow",
                "attributes": {
                    "traceloop.span.kind": "workflow",
                    "traceloop.entity.input": '{"question": "hi"}',
                    "traceloop.entity.output": '"done"',
                },
            },
            {
                "trace": 9,
                "span": 2,
                "parent": 1,
                "name": "openai.chat",
                "attributes": {
                    "llm.request.type": "chat",
                    "gen_ai.system": "openai",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.prompt.0.role": "user",
                    "gen_ai.prompt.0.content": "hi",
                    "gen_ai.completion.0.role": "assistant",
                    "gen_ai.completion.0.content": "hello",
                    "gen_ai.usage.prompt_tokens": 3,
                    "gen_ai.usage.completion_tokens": 2,
                },
            },
        ]
    )
    traces, (workflow, chat) = _decode(request)
    assert workflow.span_type == "CHAIN" and json.loads(workflow.inputs_json) == {"question": "hi"}
    assert traces[0].request_preview == '{"question": "hi"}'
    assert chat.span_type == "CHAT_MODEL" and (chat.input_tokens, chat.total_tokens) == (3, 5)
    assert json.loads(chat.inputs_json) == [{"role": "user", "content": "hi"}]
    attributes = json.loads(chat.attributes_json)
    assert attributes["threadline.chat.messages"] == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
    ]
    assert attributes["threadline.llm.cost"]["total_cost"] > 0
    assert attributes["gen_ai.prompt.0.content"] == "hi"  # the original keys stay searchable


def test_experiment_from_header_then_resource_then_default() -> None:
    spans = [{"trace": 3, "span": 1}]
    resource = {"service.name": "x", "threadline.experiment_id": "5"}
    assert _decode(otlp_request(spans))[0][0].experiment_id == "0"
    assert _decode(otlp_request(spans, resource))[0][0].experiment_id == "5"
    assert _decode(otlp_request(spans, resource), "9")[0][0].experiment_id == "9"
    with pytest.raises(OtlpDecodeError, match="experiment id"):
        _decode(otlp_request(spans), "bad\nid")


def test_traces_without_their_root_get_an_in_progress_row() -> None:
    traces, spans = _decode(otlp_request([{"trace": 4, "span": 2, "parent": 1, "start": 5}]), "3")
    assert len(spans) == 1
    (row,) = traces
    assert (row.state, row.experiment_id) == ("IN_PROGRESS", "3")
    assert row.request_time == (T0 + 5) // 1_000_000


def test_error_status_on_the_root_makes_an_error_trace() -> None:
    traces, _ = _decode(otlp_request([{"trace": 5, "span": 1, "status": 2}]))
    assert traces[0].state == "ERROR"


def test_invalid_spans_are_rejected_and_counted() -> None:
    request = otlp_request([{"trace": 6, "span": 1}, {"trace": 7, "span": 1}])
    request.resource_spans[0].scope_spans[0].spans[1].trace_id = b"\x00" * 16
    result = decode_request(request.SerializeToString(), PB, None)
    assert len(result.spans) == 1 and result.rejected_spans == 1
    assert "trace id" in result.error_message


def test_previews_are_truncated() -> None:
    long_text = "x" * 5000
    attributes = {"input.value": long_text, "input.mime_type": "text/plain"}
    traces, spans = _decode(otlp_request([{"trace": 8, "span": 1, "attributes": attributes}]))
    assert len(traces[0].request_preview or "") == 1000
    assert json.loads(spans[0].inputs_json) == long_text


@pytest.mark.parametrize(
    ("body", "content_type", "error"),
    [
        (b"\xff\xff\xff garbage", PB, OtlpDecodeError),
        (b"{not json", JS, OtlpDecodeError),
        (b"[1, 2]", JS, OtlpDecodeError),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}',
            JS,
            OtlpDecodeError,
        ),
        (b'{"resourceSpans": "nope"}', JS, OtlpDecodeError),
        (b"[" * 10_000 + b"]" * 10_000, JS, OtlpDecodeError),
        (b'{"a": "\xff\xfe"}', JS, OtlpDecodeError),
        (b"{}", "text/plain", UnsupportedContentType),
        (b"{}", "", UnsupportedContentType),
    ],
)
def test_malformed_bodies(body: bytes, content_type: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        decode_otlp(body, content_type, None)


def test_empty_requests_decode_to_nothing() -> None:
    assert decode_otlp(b"", PB, None) == ([], [])
    assert decode_otlp(b"{}", "application/json; charset=utf-8", None) == ([], [])


# --- threadline's own OTLP export maps back losslessly ---------------------------------

TRACE = TraceRow(
    trace_id="tr-" + "ab" * 16,
    experiment_id="7",
    request_time=T0 // 1_000_000,
    state="ERROR",
    execution_duration=12,
    name="root",
    request_preview='{"q":"hi"}',
    response_preview="hello",
    tags={"env": "prod"},
    metadata={"session_id": "s1", "user": "u1", "run_id": "r1"},
)
ROOT = SpanRow(
    trace_id=TRACE.trace_id,
    span_id="1" * 16,
    parent_id=None,
    name="root",
    span_type="CHAIN",
    start_time_ns=T0,
    end_time_ns=T0 + 12_000_000,
    status_code="ERROR",
    status_message="failed",
    inputs_json='{"q":"hi"}',
    outputs_json='"hello"',
    attributes_json='{"a":1,"flag":true,"tags":["x","y"]}',
    events_json="[]",
)
LLM = SpanRow(
    trace_id=TRACE.trace_id,
    span_id="2" * 16,
    parent_id="1" * 16,
    name="llm",
    span_type="CHAT_MODEL",
    start_time_ns=T0 + 1_000_000,
    end_time_ns=T0 + 11_000_000,
    status_code="OK",
    status_message="",
    inputs_json='{"messages":[{"role":"user","content":"hi"}]}',
    outputs_json="null",
    attributes_json=json.dumps(
        {
            "threadline.model": "gpt-4o",
            "threadline.token_usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
            "input.value": "set by the user",
        }
    ),
    events_json=json.dumps(
        [{"name": "exception", "timestamp_ns": T0 + 2, "attributes": {"exception.type": "E"}}]
    ),
    input_tokens=3,
    output_tokens=4,
    total_tokens=7,
)


def _comparable(row: SpanRow) -> dict:
    values = dataclasses.asdict(row)
    for key in ("inputs_json", "outputs_json", "attributes_json", "events_json"):
        values[key] = json.loads(values[key])
    return values


@pytest.mark.parametrize(("encode", "content_type"), [(encode_protobuf, PB), (encode_json, JS)])
def test_threadline_export_round_trips(encode, content_type: str) -> None:
    body = encode(resource_groups([TRACE], [ROOT, LLM]))
    traces, spans = decode_otlp(body, content_type, None)
    assert [_comparable(s) for s in spans] == [_comparable(ROOT), _comparable(LLM)]
    assert traces == [TRACE]


def test_attribute_text_keeps_non_finite_floats_non_ascii_and_nested_values() -> None:
    """Span attributes are written by orjson when it can, by the standard encoder when a
    value would not survive it (NaN and infinities): either way they read back the same."""
    attributes = {
        "plain": 1.5,
        "nan": float("nan"),
        "inf": float("-inf"),
        "text": 'grüße 你好 "quoted" \n',
        "list": [1, "two", 3.25],
    }
    _, spans = _decode(otlp_request([{"trace": 1, "span": 1, "attributes": attributes}]))
    stored = spans[0].attributes_json
    assert "NaN" in stored and "-Infinity" in stored  # not turned into null
    values = json.loads(stored)
    assert values["plain"] == 1.5 and values["text"] == attributes["text"]
    assert values["list"] == [1, "two", 3.25]
    _, finite = _decode(otlp_request([{"trace": 2, "span": 1, "attributes": {"x": "grüße"}}]))
    assert finite[0].attributes_json == '{"x":"grüße"}'  # compact, non-ASCII kept
