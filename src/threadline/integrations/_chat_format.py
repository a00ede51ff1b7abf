"""The provider-neutral form of an LLM call that every integration writes on its span.

The UI renders any provider's conversation from two attributes: ``threadline.chat.messages``
(the input messages plus the reply, each ``{"role", "content", "tool_calls"?,
"tool_call_id"?}``) and ``threadline.chat.tools`` (each ``{"name", "description",
"parameters"}``). Tool calls use OpenAI's shape, ``{"id", "type": "function", "function":
{"name", "arguments"}}`` with ``arguments`` as JSON text. Token counts go to
``threadline.token_usage`` (the exporter turns it into token columns and trace sums).
"""

from __future__ import annotations

import json
from typing import Any

from threadline.entities.keys import SpanAttributeKey
from threadline.tracing._serialize import snapshot

CHAT_MESSAGES = SpanAttributeKey.CHAT_MESSAGES
CHAT_TOOLS = SpanAttributeKey.CHAT_TOOLS
FINISH_REASON = SpanAttributeKey.FINISH_REASON
CACHED_INPUT_TOKENS = SpanAttributeKey.CACHED_INPUT_TOKENS
CACHE_CREATION_INPUT_TOKENS = SpanAttributeKey.CACHE_CREATION_INPUT_TOKENS
REASONING_TOKENS = SpanAttributeKey.REASONING_TOKENS


def message(
    role: Any,
    content: Any,
    tool_calls: list[dict[str, Any]] | None = None,
    tool_call_id: str | None = None,
) -> dict[str, Any]:
    """One message of the normalised conversation (optional keys only when set).

    ``content`` must be text or come from ``text_content`` (never a caller's object)."""
    out: dict[str, Any] = {"role": role, "content": content}
    if tool_calls:
        out["tool_calls"] = tool_calls
    if tool_call_id is not None:
        out["tool_call_id"] = tool_call_id
    return out


def tool_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    """A tool call in the normalised (OpenAI) shape; ``arguments`` becomes JSON text."""
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False, default=repr)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def tool(name: Any, description: Any, parameters: Any) -> dict[str, Any]:
    """A tool definition offered to the model."""
    return {"name": name, "description": description, "parameters": parameters}


def text_content(content: Any) -> Any:
    """Content as text when it is only text parts; other content (images…) is kept as a
    snapshot, so that the normalised messages never share objects with the caller."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        texts = []
        for part in content:
            text = _part_text(part)
            if text is None:
                return snapshot(list(content))
            texts.append(text)
        return "\n".join(texts)
    return snapshot(content)


def _part_text(part: Any) -> str | None:
    if isinstance(part, str):
        return part
    if isinstance(part, dict) and part.get("type") in ("text", "input_text", "output_text"):
        text = part.get("text")
        return text if isinstance(text, str) else None
    return None


def token_usage(
    input_tokens: Any,
    output_tokens: Any,
    total_tokens: Any = None,
    *,
    cached_input_tokens: Any = None,
    cache_creation_input_tokens: Any = None,
    reasoning_tokens: Any = None,
) -> dict[str, Any]:
    """Span attributes for a call's token counts (those the provider did not report are left out)."""
    inp, out = _count(input_tokens), _count(output_tokens)
    total = _count(total_tokens)
    if total is None and (inp is not None or out is not None):
        total = (inp or 0) + (out or 0)
    attributes: dict[str, Any] = {}
    if inp is not None or out is not None:
        attributes[SpanAttributeKey.TOKEN_USAGE] = {
            "input_tokens": inp or 0,
            "output_tokens": out or 0,
            "total_tokens": total,
        }
    if cached_input_tokens is not None:
        _put_count(attributes, CACHED_INPUT_TOKENS, cached_input_tokens)
    if cache_creation_input_tokens is not None:
        _put_count(attributes, CACHE_CREATION_INPUT_TOKENS, cache_creation_input_tokens)
    if reasoning_tokens is not None:
        _put_count(attributes, REASONING_TOKENS, reasoning_tokens)
    return attributes


def _put_count(attributes: dict[str, Any], key: str, value: Any) -> None:
    count = _count(value)
    if count is not None:
        attributes[key] = count


def _count(value: Any) -> int | None:
    if type(value) is int:
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)


def get(obj: Any, *path: str) -> Any:
    """``obj[a][b]…`` through dicts, or ``None`` when a step is missing."""
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj
