"""LlamaIndex's objects as the values a threadline span records.

Messages become the chat format (``_messages``), retrieved nodes become ``_framework``'s
``Document``s (text, score, id, metadata), responses their text, workflow events their
fields, and anything else a snapshot. Every function here returns fresh values that share
nothing with the caller's objects, so spans can hold them without another copy.
"""

from __future__ import annotations

from typing import Any

from threadline.integrations._framework import Document
from threadline.integrations.llama_index._messages import message
from threadline.tracing._serialize import snapshot

_SCALARS = (str, int, float, bool, type(None))
_SCALAR_TYPES = frozenset(_SCALARS)
# Arguments never recorded: credentials, and the workflow context object (its repr is noise).
_SECRET_WORDS = ("api_key", "apikey", "token", "secret", "password", "credential", "headers")


_secret_names: dict[str, bool] = {}


def is_secret(name: str) -> bool:
    """Whether an argument's name says it may hold a credential."""
    known = _secret_names.get(name)
    if known is None:
        lower = name.lower()
        known = any(word in lower for word in _SECRET_WORDS)
        if len(_secret_names) < 4096:
            _secret_names[name] = known
    return known


# --- nodes ----------------------------------------------------------------------------------


def document(item: Any) -> Document:
    """A ``NodeWithScore`` (or a bare node) as a ``Document``."""
    node = getattr(item, "node", item)
    score = getattr(item, "score", None) if node is not item else None
    return Document(
        id=getattr(node, "node_id", None),
        text=_node_text(node),
        score=score if isinstance(score, (int, float)) else None,
        metadata=snapshot(getattr(node, "metadata", None) or {}),
    )


def documents(result: Any) -> dict[str, Any] | None:
    """A retriever's list of nodes as ``{"documents": [...]}``; None for anything else."""
    if type(result) is not list or not all(_is_node(item) for item in result):
        return None
    return {"documents": [document(item) for item in result]}


_node_types: dict[type, bool] = {}


def _is_node(obj: Any) -> bool:
    """Whether ``obj`` is a LlamaIndex node or ``NodeWithScore`` (decided once per class:
    a failed attribute lookup on a pydantic model is slow)."""
    cls = type(obj)
    known = _node_types.get(cls)
    if known is None:
        fields = getattr(cls, "model_fields", None) or {}
        known = ("node" in fields and "score" in fields) or hasattr(cls, "node_id")
        if len(_node_types) < 4096:
            _node_types[cls] = known
    return known


def _node_text(node: Any) -> str | None:
    text = getattr(node, "text", None)
    if isinstance(text, str):
        return text
    get_content = getattr(node, "get_content", None)
    try:
        return get_content() if callable(get_content) else None
    except Exception:
        return None


# --- inputs and outputs ---------------------------------------------------------------------


def value(obj: Any, depth: int = 0) -> Any:
    """Any argument or result as a recordable value (LlamaIndex types by their content)."""
    if type(obj) in _SCALAR_TYPES:
        return obj
    if isinstance(obj, _SCALARS):
        return snapshot(obj)
    if depth > 8:
        return snapshot(obj)
    if isinstance(obj, (list, tuple)):
        return [value(item, depth + 1) for item in obj]
    if isinstance(obj, dict):
        return {k: value(v, depth + 1) for k, v in obj.items() if not _unrecorded(k, v)}
    name = type(obj).__name__
    convert = _CONVERTERS.get(name)
    if convert is not None:
        try:
            return convert(obj, depth)
        except Exception:
            return snapshot(obj)
    if _is_node(obj):
        return snapshot(document(obj))
    if _is_event(obj):
        return _event(obj, depth)
    return snapshot(obj)


def _unrecorded(name: Any, val: Any) -> bool:
    return type(name) is str and (is_secret(name) or type(val).__name__ == "Context")


def arguments(bound: Any) -> dict[str, Any]:
    """A call's bound arguments by parameter name; ``**kwargs`` merged in, credentials and
    the workflow context left out."""
    out: dict[str, Any] = {}
    try:
        parameters = bound.signature.parameters
    except Exception:
        parameters = {}
    for name, val in bound.arguments.items():
        if name == "self" or _unrecorded(name, val):
            continue
        param = parameters.get(name)
        kind = getattr(param, "kind", None)
        if kind == 4 and isinstance(val, dict):  # inspect.Parameter.VAR_KEYWORD
            for key, item in val.items():
                if not _unrecorded(key, item):
                    out[key] = value(item)
        elif kind == 2 and not val:  # an empty *args
            continue
        else:
            out[name] = value(val)
    return out


def _query(obj: Any, depth: int) -> Any:
    return obj.query_str


def _template(obj: Any, depth: int) -> Any:
    return obj.get_template()


def _response(obj: Any, depth: int) -> Any:
    text = getattr(obj, "response", None)
    if isinstance(text, str) or text is None:
        return text
    return value(text, depth + 1)  # PydanticResponse: the model


def _tool_output(obj: Any, depth: int) -> Any:
    return obj.content


def _completion(obj: Any, depth: int) -> Any:
    return obj.text


def _chat_response(obj: Any, depth: int) -> Any:
    return message(obj.message)


def _chat_message(obj: Any, depth: int) -> Any:
    return message(obj)


def _agent_chat_response(obj: Any, depth: int) -> Any:
    return obj.response


def _agent_output(obj: Any, depth: int) -> Any:
    """An agent's answer (the event also carries the provider's raw reply: not recorded)."""
    out = message(obj.response)
    structured = getattr(obj, "structured_response", None)
    if structured is not None:
        out["structured_response"] = value(structured, depth + 1)
    return out


def _tool_selection(obj: Any, depth: int) -> Any:
    return {"id": obj.tool_id, "name": obj.tool_name, "arguments": value(obj.tool_kwargs)}


_CONVERTERS = {
    "QueryBundle": _query,
    "PromptTemplate": _template,
    "ChatPromptTemplate": _template,
    "SelectorPromptTemplate": _template,
    "RichPromptTemplate": _template,
    "Response": _response,
    "PydanticResponse": _response,
    "ToolOutput": _tool_output,
    "CompletionResponse": _completion,
    "ChatResponse": _chat_response,
    "ChatMessage": _chat_message,
    "AgentChatResponse": _agent_chat_response,
    "ToolSelection": _tool_selection,
    "AgentOutput": _agent_output,
}


_event_types: dict[type, bool] = {}


def _is_event(obj: Any) -> bool:
    """Whether ``obj`` is a workflow ``Event`` (without importing the workflows package)."""
    cls = type(obj)
    known = _event_types.get(cls)
    if known is None:
        known = any(
            c.__name__ == "Event" and c.__module__.startswith(("workflows", "llama_index"))
            for c in cls.__mro__
        )
        if len(_event_types) < 4096:
            _event_types[cls] = known
    return known


def _event(obj: Any, depth: int) -> Any:
    """A workflow event: a ``StopEvent``'s result, else its fields and its free-form data."""
    if type(obj).__name__ == "StopEvent":
        return value(getattr(obj, "result", None), depth + 1)
    out = {
        name: value(getattr(obj, name, None), depth + 1)
        for name in type(obj).model_fields
        if not name.startswith("_")
    }
    for key, item in obj.items():
        out[key] = value(item, depth + 1)
    return out


def event_inputs(bound: Any) -> Any:
    """A workflow step's or run's inputs: its event(s), without the context object."""
    events = {name: value(val) for name, val in bound.arguments.items() if _is_event(val)}
    if len(events) == 1:
        (only,) = events.values()
        return only
    return events or arguments(bound)


def text_of(item: Any) -> str | None:
    """A streamed item's text (tokens are strings; structured chunks have ``answer``)."""
    if isinstance(item, str):
        return item
    for name in ("delta", "answer", "text"):
        text = getattr(item, name, None)
        if isinstance(text, str):
            return text
    return None
