"""LlamaIndex's LLM messages, tool definitions and responses in threadline's chat format.

``ChatMessage`` (text blocks, ``ToolCallBlock``s or OpenAI-style ``tool_calls``) becomes
``{"role", "content", "tool_calls"?, "tool_call_id"?}`` (``_chat_format``); a response's
token counts come from its provider's raw reply (OpenAI or Anthropic names) or from
LlamaIndex's ``additional_kwargs``.
"""

from __future__ import annotations

from typing import Any

from threadline.integrations import _chat_format as cf
from threadline.tracing._serialize import snapshot

# --- messages -------------------------------------------------------------------------------


def message(msg: Any) -> dict[str, Any]:
    """A LlamaIndex ``ChatMessage`` in the chat format (text, tool calls, tool call id)."""
    role = getattr(msg, "role", "user")
    role = getattr(role, "value", role)
    extra = getattr(msg, "additional_kwargs", None) or {}
    calls = tool_calls(msg, extra)
    call_id = extra.get("tool_call_id") if role == "tool" else None
    return cf.message(
        role, _message_text(msg), calls, str(call_id) if call_id is not None else None
    )


def _message_text(msg: Any) -> Any:
    blocks = getattr(msg, "blocks", None)
    if blocks:
        texts = [b.text for b in blocks if getattr(b, "block_type", None) == "text"]
        others = [b for b in blocks if getattr(b, "block_type", None) not in ("text", "tool_call")]
        if others:  # images, audio, documents…: kept as a snapshot of every block
            return snapshot(list(blocks))
        return "\n".join(texts) if texts else None
    try:
        content = msg.content
    except Exception:
        return None
    return cf.text_content(content)


def tool_calls(msg: Any, extra: dict[str, Any]) -> list[dict[str, Any]]:
    """Tool calls of an assistant message: ``ToolCallBlock``s, or OpenAI-style
    ``additional_kwargs["tool_calls"]`` (older LlamaIndex integrations)."""
    calls = []
    for block in getattr(msg, "blocks", None) or ():
        if getattr(block, "block_type", None) == "tool_call":
            calls.append(cf.tool_call(block.tool_call_id, block.tool_name, block.tool_kwargs))
    for call in extra.get("tool_calls") or ():
        function = _get(call, "function")
        if function is not None:
            calls.append(
                cf.tool_call(_get(call, "id"), _get(function, "name"), _get(function, "arguments"))
            )
    return calls


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def tools(definitions: Any) -> list[dict[str, Any]]:
    """Tool definitions sent to a model (OpenAI or Anthropic dicts, or LlamaIndex tools)."""
    out = []
    for item in definitions or ():
        metadata = getattr(item, "metadata", None)
        if metadata is not None and hasattr(metadata, "get_parameters_dict"):
            out.append(cf.tool(metadata.name, metadata.description, metadata.get_parameters_dict()))
            continue
        if not isinstance(item, dict):
            continue
        nested = item.get("function")
        function: dict[str, Any] = nested if isinstance(nested, dict) else item
        parameters = function.get("parameters", function.get("input_schema"))
        out.append(cf.tool(function.get("name"), function.get("description"), snapshot(parameters)))
    return out


# --- replies and usage ----------------------------------------------------------------------


def reply_message(response: Any) -> dict[str, Any] | None:
    """The model's reply in a ``ChatResponse`` or ``CompletionResponse``."""
    if is_chat_response(response):
        return message(response.message)
    text = getattr(response, "text", None)
    return cf.message("assistant", text) if isinstance(text, str) else None


def is_chat_response(response: Any) -> bool:
    """A ``ChatResponse`` (it has a ``message``) rather than a ``CompletionResponse``."""
    return "message" in (getattr(type(response), "model_fields", None) or ())


def usage(response: Any) -> dict[str, Any]:
    """Token-count attributes of a response: its raw provider reply's ``usage``
    (OpenAI or Anthropic names), else LlamaIndex's ``additional_kwargs`` counts."""
    raw = getattr(response, "raw", None)
    found = _get(raw, "usage") if raw is not None else None
    if found is not None:
        details = _get(found, "prompt_tokens_details")
        reasoning = _get(found, "completion_tokens_details")
        inp = _first(found, "prompt_tokens", "input_tokens")
        out = _first(found, "completion_tokens", "output_tokens")
        if inp is not None or out is not None:
            return cf.token_usage(
                inp,
                out,
                _get(found, "total_tokens"),
                cached_input_tokens=(
                    _get(details, "cached_tokens") if details is not None else None
                )
                or _get(found, "cache_read_input_tokens"),
                cache_creation_input_tokens=_get(found, "cache_creation_input_tokens"),
                reasoning_tokens=(
                    _get(reasoning, "reasoning_tokens") if reasoning is not None else None
                ),
            )
    extra = getattr(response, "additional_kwargs", None)
    if isinstance(extra, dict):
        return cf.token_usage(
            extra.get("prompt_tokens"), extra.get("completion_tokens"), extra.get("total_tokens")
        )
    return {}


def _first(obj: Any, *names: str) -> Any:
    for name in names:
        value = _get(obj, name)
        if value is not None:
            return value
    return None


def response_model(response: Any) -> str | None:
    """The model that served a response, when its raw reply names it."""
    raw = getattr(response, "raw", None)
    return model_name(_get(raw, "model")) if raw is not None else None


def model_name(name: Any) -> str | None:
    """A model name worth recording (LlamaIndex says ``"unknown"`` when it has none)."""
    return name if isinstance(name, str) and name and name != "unknown" else None
