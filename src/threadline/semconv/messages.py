"""Conversations in any vocabulary → threadline's chat format (``integrations/_chat_format``).

OpenInference flattens messages into keys (``llm.input_messages.0.message.role``),
OpenLLMetry too (``gen_ai.prompt.0.role``); the GenAI conventions give a JSON list of
messages made of typed ``parts`` (``gen_ai.input.messages``), or one span event per message
(``gen_ai.user.message`` …, ``gen_ai.choice``). Each becomes ``{"role", "content",
"tool_calls"?, "tool_call_id"?}`` with tool calls in OpenAI's shape. Pure functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from threadline.semconv import vocabulary as v
from threadline.semconv.json_text import INVALID, dumps, json_value

MAX_INDEX_DIGITS = 6  # list positions in flattened keys; longer numbers are not positions


def unflatten(attrs: Mapping[str, Any], prefix: str) -> list[Any]:
    """``prefix + "0.message.role" = "user"`` … back into ``[{"message": {"role": "user"}}]``.

    Numbered segments become list positions (in order; gaps are closed up).
    """
    root: dict[Any, Any] = {}
    for key, value in attrs.items():
        if not key.startswith(prefix):
            continue
        parts = key[len(prefix) :].split(".")
        if not _is_index(parts[0]) or len(parts) < 2 or "" in parts:
            continue
        node = root
        for part in parts[:-1]:
            step = int(part) if _is_index(part) else part
            child = node.get(step)
            if not isinstance(child, dict):
                child = node[step] = {}
            node = child
        last = parts[-1]
        node[int(last) if _is_index(last) else last] = value
    listed = _lists(root)
    return listed if isinstance(listed, list) else []


def _is_index(part: str) -> bool:
    return part.isdigit() and len(part) <= MAX_INDEX_DIGITS


def _lists(node: Any) -> Any:
    """Dicts keyed by positions → lists, all the way down."""
    if not isinstance(node, dict):
        return node
    if node and all(isinstance(k, int) for k in node):
        return [_lists(node[k]) for k in sorted(node)]
    return {str(k): _lists(item) for k, item in node.items()}


def flattened_messages(attrs: Mapping[str, Any], prefix: str) -> list[dict[str, Any]]:
    """Flattened messages as plain dicts (OpenInference's ``message.`` level removed)."""
    out = []
    for item in unflatten(attrs, prefix):
        if isinstance(item, dict):
            inner = item.get("message")
            out.append(inner if isinstance(inner, dict) and len(item) == 1 else item)
    return out


def normalize(messages: Any, default_role: str | None = None) -> list[dict[str, Any]]:
    """A list of messages in any of the known shapes → the chat format."""
    if isinstance(messages, str):
        parsed = json_value(messages)
        messages = [] if parsed is INVALID else parsed
    if isinstance(messages, dict):
        messages = [messages]
    if not isinstance(messages, list):
        return []
    out: list[dict[str, Any]] = []
    for item in messages:
        if isinstance(item, dict):
            out.extend(_message(item, default_role))
    return out


def _message(item: Mapping[str, Any], default_role: str | None) -> list[dict[str, Any]]:
    role = item.get("role", default_role) or "user"
    parts = item.get("parts")
    if isinstance(parts, list):
        return _from_parts(str(role), parts)
    content = item.get("content")
    if content is None and isinstance(item.get("contents"), list):
        content = _joined_texts(item["contents"])
    calls = [c for c in (_tool_call(t) for t in _as_list(item.get("tool_calls"))) if c]
    message: dict[str, Any] = {"role": str(role), "content": _content(content)}
    if calls:
        message["tool_calls"] = calls
    call_id = item.get("tool_call_id")
    if isinstance(call_id, (str, int)):
        message["tool_call_id"] = str(call_id)
    return [message]


def _from_parts(role: str, parts: list[Any]) -> list[dict[str, Any]]:
    """A GenAI message of typed parts: text joined; tool calls; each tool response apart."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    responses: list[dict[str, Any]] = []
    others: list[Any] = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("content"), str):
            texts.append(part["content"])
        elif kind == "tool_call":
            call = _tool_call(part)
            if call:
                calls.append(call)
        elif kind == "tool_call_response":
            result = part.get("response", part.get("result"))
            responses.append(
                {"role": "tool", "content": _content(result), "tool_call_id": str(part.get("id"))}
            )
        else:
            others.append(part)
    out: list[dict[str, Any]] = []
    if texts or calls or others or not responses:
        content = "\n".join(texts) if texts else (_content(others) if others else None)
        message: dict[str, Any] = {"role": role, "content": content}
        if calls:
            message["tool_calls"] = calls
        out.append(message)
    return out + responses


def _tool_call(item: Any) -> dict[str, Any] | None:
    """One tool call from OpenAI's, OpenInference's, GenAI's or OpenLLMetry's shape."""
    if not isinstance(item, dict):
        return None
    if isinstance(item.get("tool_call"), dict):  # OpenInference: tool_calls.N.tool_call.…
        item = item["tool_call"]
    function = item.get("function")
    if isinstance(function, dict):
        name, arguments = function.get("name"), function.get("arguments")
    else:
        name, arguments = item.get("name"), item.get("arguments")
    if name is None:
        return None
    if not isinstance(arguments, str):
        arguments = dumps(arguments) if arguments is not None else "{}"
    return {
        "id": item.get("id"),
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def _joined_texts(contents: list[Any]) -> Any:
    """OpenInference ``contents.N.message_content.{type,text}`` → text when all are text."""
    texts = []
    for entry in contents:
        part = entry.get("message_content", entry) if isinstance(entry, dict) else None
        if not isinstance(part, dict) or not isinstance(part.get("text"), str):
            return contents
        texts.append(part["text"])
    return "\n".join(texts)


def _content(value: Any) -> Any:
    """Message content: text as it is, anything else as JSON text."""
    if value is None or isinstance(value, str):
        return value
    return dumps(value)


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, str):
        parsed = json_value(value)
        value = parsed if parsed is not INVALID else None
    return list(value) if isinstance(value, (list, tuple)) else []


def system_instructions(value: Any) -> list[dict[str, Any]]:
    """``gen_ai.system_instructions`` (text, or a JSON list of parts) as a system message."""
    if isinstance(value, str):
        parsed = json_value(value)
        value = value if parsed is INVALID or isinstance(parsed, str) else parsed
    if isinstance(value, str):
        return [{"role": "system", "content": value}] if value else []
    if isinstance(value, list):
        return _from_parts("system", value)
    return []


def event_messages(events: list[dict[str, Any]], direction: str) -> list[dict[str, Any]]:
    """Messages carried by GenAI span events, for ``direction`` ``input`` or ``output``."""
    out: list[dict[str, Any]] = []
    for event in events:
        name = event.get("name")
        attrs = event.get("attributes") or {}
        if direction == "input" and name in v.MESSAGE_EVENTS:
            item = dict(attrs)
            item.setdefault("role", v.MESSAGE_EVENTS[name])
            if isinstance(item.get("content"), str):
                parsed = json_value(item["content"])
                if isinstance(parsed, list):
                    item["content"] = parsed
            out.extend(_message(item, v.MESSAGE_EVENTS[name]))
        elif direction == "output" and name == v.CHOICE_EVENT:
            message = attrs.get("message")
            if isinstance(message, str):
                parsed = json_value(message)
                message = parsed if isinstance(parsed, dict) else {"content": message}
            if isinstance(message, dict):
                out.extend(_message(message, "assistant"))
        elif name == v.CONTENT_EVENTS.get(direction):
            out.extend(normalize(attrs.get(v.LEGACY_GENAI[direction])))
    return out


def tools(attrs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Tool definitions offered to the model, as ``{"name", "description", "parameters"}``."""
    found: list[Any] = []
    genai = attrs.get(v.GENAI_TOOLS)
    if genai is not None:
        found = _as_list(genai)
    if not found:
        found = [
            (entry.get("tool") or {}).get("json_schema") if isinstance(entry, dict) else None
            for entry in unflatten(attrs, v.OPENINFERENCE_TOOLS)
        ]
    if not found:
        found = unflatten(attrs, v.OPENLLMETRY_TOOLS)
    out = []
    for item in found:
        if isinstance(item, str):
            parsed = json_value(item)
            item = parsed if parsed is not INVALID else None
        if not isinstance(item, dict):
            continue
        spec = item["function"] if isinstance(item.get("function"), dict) else item
        if spec.get("name") is None:
            continue
        parameters = spec.get("parameters")
        if isinstance(parameters, str):
            parsed = json_value(parameters)
            parameters = parsed if parsed is not INVALID else parameters
        out.append(
            {
                "name": spec.get("name"),
                "description": spec.get("description"),
                "parameters": parameters,
            }
        )
    return out
