"""A local server that speaks Anthropic's Messages API, for tests (stdlib only).

``POST /v1/messages`` answers like a deterministic model:

- ``model`` ``"error-<status>"``: that status with Anthropic's error body
  (``{"type": "error", "error": {"type", "message"}}``); ``"error-stream"``: a stream
  that sends an ``error`` event after the first text delta, as the API does when overloaded.
- ``tools`` given and the last user message holds no ``tool_result``: a text block and a
  ``tool_use`` of the first tool with ``{"city": "Paris"}`` (stop reason ``tool_use``);
  ``output_config.format`` given (structured output): the JSON text ``{"answer": "42"}``.
- otherwise the text ``REPLY``; streamed word by word (``max_tokens`` chunks when it is
  below 100).

Streams are the API's named server-sent events: ``message_start``, ``content_block_start``,
``ping``, ``content_block_delta`` (``text_delta`` / ``input_json_delta``),
``content_block_stop``, ``message_delta`` (stop reason and output usage), ``message_stop``.
The transport is the OpenAI fake's ``SSEServer``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from tests.integrations._fake_openai import Reply, SSEServer

REPLY = "Hello! How can I help you today?"
TOOL_INPUT = {"city": "Paris"}
STRUCTURED = '{"answer": "42"}'
INPUT_TOKENS = 10
CACHE_READ_TOKENS = 5
CACHE_CREATION_TOKENS = 2

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def app(path: str, headers: dict[str, str], body: Any) -> Reply:
    """Answer one Anthropic API request."""
    if path.split("?")[0] != "/v1/messages":
        return _error(404, f"Not found: {path}")
    model = str(body.get("model", ""))
    if model.startswith("error-") and model != "error-stream":
        return _error(int(model.removeprefix("error-")))
    blocks, stop_reason = _reply(body)
    if body.get("stream"):
        return Reply(events=_events(body, blocks, stop_reason), headers={"request-id": "req_fake"})
    message = _message(body, blocks, stop_reason, _usage(_output_tokens(blocks)))
    return Reply(body=message, headers={"request-id": "req_fake"})


def _error(status: int, message: str | None = None) -> Reply:
    kind = _ERROR_TYPES.get(status, "api_error")
    text = message or f"Simulated error {status} from the fake Anthropic server."
    body = {"type": "error", "error": {"type": kind, "message": text}, "request_id": "req_fake"}
    return Reply(status, body, headers={"request-id": "req_fake"})


def _usage(output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": INPUT_TOKENS,
        "cache_creation_input_tokens": CACHE_CREATION_TOKENS,
        "cache_read_input_tokens": CACHE_READ_TOKENS,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def pieces(body: dict[str, Any]) -> list[str]:
    count = body.get("max_tokens") or 0
    if 0 < count < 100:
        return [f"w{i} " for i in range(count)]
    words = REPLY.split(" ")
    return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]


def _wants_tool(body: dict[str, Any]) -> bool:
    if not body.get("tools"):
        return False
    last = (body.get("messages") or [{}])[-1]
    content = last.get("content")
    has_result = isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content
    )
    return not has_result


def _reply(body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    if _wants_tool(body):
        tool = {
            "type": "tool_use",
            "id": "toolu_fake1",
            "name": body["tools"][0]["name"],
            "input": TOOL_INPUT,
        }
        return [{"type": "text", "text": "Let me check."}, tool], "tool_use"
    if (body.get("output_config") or {}).get("format"):
        return [{"type": "text", "text": STRUCTURED}], "end_turn"
    return [{"type": "text", "text": "".join(pieces(body)), "parts": pieces(body)}], "end_turn"


def _output_tokens(blocks: list[dict[str, Any]]) -> int:
    return sum(len(b.get("parts") or [1]) for b in blocks)


def _public(block: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in block.items() if k != "parts"}


def _message(
    body: dict[str, Any], blocks: list[dict[str, Any]], stop_reason: Any, usage: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": "msg_fake1",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": [_public(b) for b in blocks],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }


def _events(
    body: dict[str, Any], blocks: list[dict[str, Any]], stop_reason: str
) -> Iterator[tuple[str | None, str]]:
    def event(kind: str, **fields: Any) -> tuple[str, str]:
        return kind, json.dumps({"type": kind, **fields})

    start = _message(body, [], None, {**_usage(1)})
    yield event("message_start", message=start)
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            yield event(
                "content_block_start", index=index, content_block={"type": "text", "text": ""}
            )
            if index == 0:
                yield event("ping")
            for n, part in enumerate(block.get("parts") or [block["text"]]):
                delta = {"type": "text_delta", "text": part}
                yield event("content_block_delta", index=index, delta=delta)
                if body["model"] == "error-stream" and n == 0:
                    error = {"type": "overloaded_error", "message": "Overloaded"}
                    yield event("error", error=error)
                    return
        else:
            empty = {**block, "input": {}}
            yield event("content_block_start", index=index, content_block=empty)
            text = json.dumps(block["input"])
            for part in (text[:5], text[5:12], text[12:]):
                delta = {"type": "input_json_delta", "partial_json": part}
                yield event("content_block_delta", index=index, delta=delta)
        yield event("content_block_stop", index=index)
    yield event(
        "message_delta",
        delta={"stop_reason": stop_reason, "stop_sequence": None},
        usage={"output_tokens": _output_tokens(blocks)},
    )
    yield event("message_stop")


def serve() -> SSEServer:
    """A started fake Anthropic server; pass ``server.url`` as the client's ``base_url``."""
    return SSEServer(app).start()
