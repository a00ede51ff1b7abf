"""LangChain's messages, model results and documents in threadline's provider-neutral form.

Read by attribute (``message.type``, ``.content``, ``.tool_calls``, ``LLMResult.generations``),
so this module imports nothing from LangChain: the chat format of ``_chat_format``, token
usage from ``usage_metadata`` (or the provider's ``llm_output``), the model name and
provider LangChain reports (``ls_model_name`` / ``ls_provider`` metadata, then the
response's ``model_name``).
"""

from __future__ import annotations

from typing import Any

from threadline.entities.keys import SpanAttributeKey
from threadline.integrations import _chat_format as cf
from threadline.integrations.litellm import _is_secret

# LangChain message types (``message.type``) -> chat roles; a ``ChatMessage`` has its own.
_ROLES = {
    "human": "user",
    "ai": "assistant",
    "system": "system",
    "tool": "tool",
    "function": "function",
    "HumanMessageChunk": "user",
    "AIMessageChunk": "assistant",
    "SystemMessageChunk": "system",
    "ToolMessageChunk": "tool",
}


def chat_message(message: Any) -> dict[str, Any]:
    """One LangChain message (``HumanMessage``, ``AIMessage``, ``ToolMessage``…).

    Fields are read from the pydantic model's ``__dict__``: ``getattr`` of a field a
    message class lacks (``tool_calls`` on a ``HumanMessage``) goes through pydantic's slow
    missing-attribute path."""
    if isinstance(message, dict):  # an OpenAI-style dict passed through
        return cf.message(message.get("role"), cf.text_content(message.get("content")))
    fields = getattr(message, "__dict__", None)
    if not isinstance(fields, dict):
        fields = {}
    kind = fields.get("type")
    role = _ROLES.get(kind) if isinstance(kind, str) else None
    if role is None:
        role = fields.get("role") or kind
    calls = fields.get("tool_calls")
    return cf.message(
        role,
        cf.text_content(fields.get("content")),
        [
            cf.tool_call(call.get("id"), call.get("name"), call.get("args"))
            for call in calls
            if isinstance(call, dict)
        ]
        if calls
        else None,
        fields.get("tool_call_id"),
    )


def request(invocation_params: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the recorded request parameters, the tools offered) of a model run.

    Parameters named like credentials and LangChain's private ones (``_type``) are left out.
    """
    params: dict[str, Any] = {}
    tools: list[dict[str, Any]] = []
    if not isinstance(invocation_params, dict):
        return params, tools
    for key, value in invocation_params.items():
        if not isinstance(key, str) or key.startswith("_") or _is_secret(key):
            continue
        if key == "tools" and isinstance(value, (list, tuple)):
            tools = [_tool(t) for t in value if isinstance(t, dict)]
        params[key] = value
    return params, tools


def _tool(raw: dict[str, Any]) -> dict[str, Any]:
    function = raw.get("function")
    spec: dict[str, Any] = function if isinstance(function, dict) else raw
    parameters = spec.get("parameters", spec.get("input_schema"))
    return cf.tool(spec.get("name"), spec.get("description"), parameters)


def model_attributes(metadata: Any, invocation_params: Any) -> dict[str, Any]:
    """The model and provider a model run asked for."""
    attributes: dict[str, Any] = {}
    meta = metadata if isinstance(metadata, dict) else {}
    params = invocation_params if isinstance(invocation_params, dict) else {}
    model = meta.get("ls_model_name")
    if not isinstance(model, str):
        model = next(
            (
                params[k]
                for k in ("model", "model_name", "model_id")
                if isinstance(params.get(k), str)
            ),
            None,
        )
    if model is not None:
        attributes[SpanAttributeKey.MODEL] = model
    provider = meta.get("ls_provider")
    if isinstance(provider, str):
        attributes[SpanAttributeKey.PROVIDER] = provider
    return attributes


def first_generation(response: Any) -> Any:
    generations = getattr(response, "generations", None)
    if generations and generations[0]:
        return generations[0][0]
    return None


def has_output(response: Any) -> bool:
    """Whether a failed model run's partial ``LLMResult`` holds any generated text or tool
    call (LangChain also reports a failure as an empty generation)."""
    generation = first_generation(response)
    if generation is None:
        return False
    message = getattr(generation, "message", None)
    return bool(getattr(generation, "text", None) or getattr(message, "tool_calls", None))


def result_attributes(response: Any, has_model: bool) -> dict[str, Any]:
    """Token usage, finish reason and (when the request did not name it) the model of a
    model run's ``LLMResult``."""
    generation = first_generation(response)
    message = getattr(generation, "message", None)
    llm_output = getattr(response, "llm_output", None)
    llm_output = llm_output if isinstance(llm_output, dict) else {}
    metadata = getattr(message, "response_metadata", None)
    metadata = metadata if isinstance(metadata, dict) else {}
    info = getattr(generation, "generation_info", None)
    info = info if isinstance(info, dict) else {}
    attributes = _usage(getattr(message, "usage_metadata", None), llm_output)
    finish = metadata.get("finish_reason") or info.get("finish_reason")
    if finish is not None:
        attributes[cf.FINISH_REASON] = finish
    if not has_model:
        model = metadata.get("model_name") or llm_output.get("model_name")
        if isinstance(model, str):
            attributes[SpanAttributeKey.MODEL] = model
    return attributes


def _usage(usage: Any, llm_output: dict[str, Any]) -> dict[str, Any]:
    if isinstance(usage, dict) and ("input_tokens" in usage or "output_tokens" in usage):
        inp = usage.get("input_token_details") or {}
        out = usage.get("output_token_details") or {}
        return cf.token_usage(
            usage.get("input_tokens"),
            usage.get("output_tokens"),
            usage.get("total_tokens"),
            cached_input_tokens=inp.get("cache_read"),
            cache_creation_input_tokens=inp.get("cache_creation"),
            reasoning_tokens=out.get("reasoning"),
        )
    raw = llm_output.get("token_usage") or llm_output.get("usage")
    if not isinstance(raw, dict):
        return {}
    return cf.token_usage(
        raw.get("prompt_tokens", raw.get("input_tokens")),
        raw.get("completion_tokens", raw.get("output_tokens")),
        raw.get("total_tokens"),
    )


def reply(response: Any) -> dict[str, Any] | None:
    """The model's reply as a chat message (a chat model's), or None (a text LLM's)."""
    message = getattr(first_generation(response), "message", None)
    return chat_message(message) if message is not None else None


def generations_text(response: Any) -> Any:
    """A text LLM run's output: its generated text (a list when several were asked for)."""
    generations = getattr(response, "generations", None) or []
    texts = [getattr(g, "text", None) for group in generations for g in group]
    return texts[0] if len(texts) == 1 else texts


def document(doc: Any) -> dict[str, Any]:
    """A retrieved ``Document``: its text, metadata and id."""
    out = {"page_content": getattr(doc, "page_content", None)}
    out["metadata"] = getattr(doc, "metadata", None)
    doc_id = getattr(doc, "id", None)
    if doc_id is not None:
        out["id"] = doc_id
    return out
