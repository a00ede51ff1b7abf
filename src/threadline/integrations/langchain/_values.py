"""LangChain's own objects in run inputs and outputs, in the plain forms threadline records.

Imported only by ``autolog()`` (it tests for langchain-core's classes).
"""

from __future__ import annotations

from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import BaseMessage
from langchain_core.prompt_values import PromptValue

from threadline.integrations.langchain import _messages as lm

_SCALARS = frozenset({str, int, float, bool, type(None)})
_DEPTH = 3  # how deep inputs and outputs are searched for LangChain's own objects


def plain(value: Any, depth: int = 0) -> Any:
    """``value`` with LangChain's messages, prompt values and documents (here or in the
    dicts, lists and tuples it holds, a few levels down) in threadline's plain forms: a
    message in the chat format, a prompt value as its messages or text, a document as its
    text, metadata and id. Containers are copied only where something was replaced; the
    result is snapshotted by the span as usual. Cheaper than a pydantic dump of each
    message, and what the UI shows as a conversation."""
    if isinstance(value, BaseMessage):
        return lm.chat_message(value)
    if isinstance(value, PromptValue):
        messages = getattr(value, "messages", None)
        if isinstance(messages, list):
            return {"messages": [lm.chat_message(m) for m in messages]}
        return {"text": value.to_string()}
    if isinstance(value, Document):
        return lm.document(value)
    if depth >= _DEPTH:
        return value
    kind = type(value)
    if kind is dict:
        changed = None
        for key, item in value.items():
            if type(item) in _SCALARS:
                continue
            converted = plain(item, depth + 1)
            if converted is not item:
                if changed is None:
                    changed = dict(value)
                changed[key] = converted
        return value if changed is None else changed
    if kind is list or kind is tuple:
        items = None
        for i, item in enumerate(value):
            if type(item) in _SCALARS:
                continue
            converted = plain(item, depth + 1)
            if converted is not item:
                if items is None:
                    items = list(value)
                items[i] = converted
        return value if items is None else items
    return value
