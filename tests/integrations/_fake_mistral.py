"""A local server that speaks Mistral's chat and embeddings API, for tests (stdlib only).

Routes: ``POST /v1/chat/completions`` and ``POST /v1/embeddings``. It answers like a
deterministic model:

- ``model`` ``"error-<status>"``: that status with Mistral's error body (422: the
  validation error body the SDK turns into ``HTTPValidationError``).
- ``tools`` given and the last message is not a tool result: a call of the first tool
  with the JSON text ``{"city": "Paris"}`` (finish reason ``tool_calls``).
- ``response_format`` of type ``json_schema``: the JSON text ``{"answer": "42"}``.
- ``model`` ``"magistral-reasoning"``: a reply whose content is a ``thinking`` chunk
  followed by a text chunk, as Mistral's reasoning models answer.
- otherwise the text ``REPLY``; streamed word by word, or in ``max_tokens`` chunks.

With ``"stream": true`` the reply is server-sent events, ``data: {chunk}`` lines ending
with ``data: [DONE]``; the last chunk carries the finish reason and the usage. The
transport is the OpenAI fake's ``SSEServer``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from tests.integrations._fake_openai import Reply, SSEServer

REPLY = "Hello! How can I help you today?"
TOOL_ARGUMENTS = '{"city": "Paris"}'
STRUCTURED = '{"answer": "42"}'
THINKING = "The user greets me."
CREATED = 1_700_000_000
PROMPT_TOKENS = 12
CACHED_TOKENS = 4
TOOL_TOKENS = 9
EMBEDDING_DIM = 4


def app(path: str, headers: dict[str, str], body: Any) -> Reply:
    """Answer one Mistral API request."""
    model = str(body.get("model", ""))
    if model.startswith("error-"):
        return _error(int(model.removeprefix("error-")))
    bare = path.split("?")[0]
    if bare == "/v1/chat/completions":
        return _chat(body)
    if bare == "/v1/embeddings":
        return _embeddings(body)
    return _error(404, f"Not found: {path}")


def _error(status: int, message: str | None = None) -> Reply:
    if status == 422:
        detail = [{"loc": ["body", "model"], "msg": "Invalid model", "type": "value_error"}]
        return Reply(422, {"detail": detail})
    text = message or f"Simulated error {status} from the fake Mistral server."
    body = {"object": "error", "message": text, "type": "invalid_request_error", "param": None}
    return Reply(status, {**body, "code": str(status)})


def usage(completion_tokens: int) -> dict[str, Any]:
    """The usage block the fake reports for a reply of ``completion_tokens`` tokens."""
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": completion_tokens,
        "total_tokens": PROMPT_TOKENS + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS},
    }


def pieces(body: dict[str, Any]) -> list[str]:
    """The reply text split into the chunks a stream sends."""
    count = body.get("max_tokens")
    if count:
        return [f"w{i} " for i in range(int(count))]
    words = REPLY.split(" ")
    return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]


def _wants_tool(body: dict[str, Any]) -> bool:
    messages = body.get("messages") or []
    return bool(body.get("tools")) and not (messages and messages[-1].get("role") == "tool")


def tool_call(body: dict[str, Any]) -> dict[str, Any]:
    name = body["tools"][0]["function"]["name"]
    return {
        "id": "D681PevKs",
        "type": "function",
        "function": {"name": name, "arguments": TOOL_ARGUMENTS},
        "index": 0,
    }


def _reasoning_content(text: str) -> list[dict[str, Any]]:
    thinking = {"type": "thinking", "thinking": [{"type": "text", "text": THINKING}]}
    return [thinking, {"type": "text", "text": text}]


def _chat(body: dict[str, Any]) -> Reply:
    if body.get("stream"):
        return Reply(events=_chat_events(body))
    message: dict[str, Any] = {"role": "assistant", "tool_calls": None, "prefix": False}
    if _wants_tool(body):
        message["content"] = ""
        message["tool_calls"] = [tool_call(body)]
        finish, tokens = "tool_calls", TOOL_TOKENS
    else:
        text = "".join(pieces(body))
        if (body.get("response_format") or {}).get("type") == "json_schema":
            text = STRUCTURED
        reasoning = body["model"] == "magistral-reasoning"
        message["content"] = _reasoning_content(text) if reasoning else text
        finish, tokens = "stop", len(pieces(body))
    choice = {"index": 0, "message": message, "finish_reason": finish}
    return Reply(
        body={
            "id": "cmpl-fake",
            "object": "chat.completion",
            "created": CREATED,
            "model": body["model"],
            "choices": [choice],
            "usage": usage(tokens),
        }
    )


def _chat_events(body: dict[str, Any]) -> Iterator[tuple[str | None, str]]:
    def chunk(
        delta: dict[str, Any], finish: str | None = None, tokens: int | None = None
    ) -> tuple[None, str]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        data: dict[str, Any] = {
            "id": "cmpl-fake",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": body["model"],
            "choices": [choice],
        }
        if tokens is not None:
            data["usage"] = usage(tokens)
        return None, json.dumps(data)

    yield chunk({"role": "assistant", "content": ""})
    if _wants_tool(body):
        yield chunk({"content": "", "tool_calls": [tool_call(body)]}, "tool_calls", TOOL_TOKENS)
    else:
        parts = pieces(body)
        if body["model"] == "magistral-reasoning":
            thinking = {"type": "thinking", "thinking": [{"type": "text", "text": THINKING}]}
            yield chunk({"content": [thinking]})
        for part in parts[:-1]:
            yield chunk({"content": part})
        yield chunk({"content": parts[-1]}, "stop", len(parts))
    yield None, "[DONE]"


def embedding_vector(index: int) -> list[float]:
    """The vector the fake returns for input number ``index``."""
    return [round((index + 1) * 0.125 + d * 0.25, 3) for d in range(EMBEDDING_DIM)]


def _embeddings(body: dict[str, Any]) -> Reply:
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    data = [
        {"object": "embedding", "embedding": embedding_vector(i), "index": i}
        for i in range(len(inputs))
    ]
    tokens = 3 * len(inputs)
    return Reply(
        body={
            "id": "embd-fake",
            "object": "list",
            "model": body["model"],
            "data": data,
            "usage": {"prompt_tokens": tokens, "completion_tokens": 0, "total_tokens": tokens},
        }
    )


def serve() -> SSEServer:
    """A started fake Mistral server; pass ``server.url`` as the client's ``server_url``."""
    return SSEServer(app).start()
