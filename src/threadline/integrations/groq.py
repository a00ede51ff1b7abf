"""``threadline.groq.autolog()``: trace every Groq chat completion.

Patched on the public resource classes, so ``Groq`` and ``AsyncGroq`` clients are both
covered: ``chat.completions.create``, plain and ``stream=True``. Groq's API is OpenAI's
chat completions API, so requests and replies are read with the openai integration's
functions; only the provider differs.

A streamed reply's token usage comes in the last chunk's ``x_groq.usage``, which Groq
always sends: nothing is added to the request, and the caller sees the stream it would
have seen untraced.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from threadline.entities.keys import SpanAttributeKey
from threadline.entities.span import SpanType
from threadline.integrations import _chat_format as cf
from threadline.integrations import openai as oa
from threadline.integrations._base import Integration, Target
from threadline.integrations._llm_call import (
    LLMCall,
    Request,
    given,
    materialize,
    put_attributes,
    request_inputs,
)
from threadline.integrations._streams import AsyncStreamProxy, StreamProxy
from threadline.tracing._span import LiveSpan

PROVIDER = "groq"

__all__ = ["INTEGRATION", "autolog"]


def _start(request: Request, span: LiveSpan) -> None:
    kwargs = request.kwargs
    materialize(kwargs, ("messages", "tools"))
    span.set_inputs(request_inputs(kwargs))
    model = kwargs.get("model")
    request.model = model if given(model) and isinstance(model, str) else None
    attributes: dict[str, Any] = {SpanAttributeKey.PROVIDER: PROVIDER}
    if request.model is not None:
        attributes[SpanAttributeKey.MODEL] = request.model
    put_attributes(span, attributes)
    tools = oa._chat_tools(kwargs.get("tools"))
    if tools:
        span.set_attribute(cf.CHAT_TOOLS, tools)  # holds the caller's schemas: snapshot
    request.messages = [oa._chat_message(m) for m in kwargs.get("messages") or ()]


class _ChatStream(oa._ChatStream):
    """A streamed Groq chat completion: OpenAI's chunks, usage in ``x_groq``."""

    __slots__ = ()

    def add(self, chunk: Any) -> bool:
        keep = super().add(chunk)
        x_groq = getattr(chunk, "x_groq", None)
        if x_groq is not None:
            usage = getattr(x_groq, "usage", None)
            if usage is not None:
                self.usage = usage
        return keep


_CHAT = "groq.resources.chat.completions"


def _targets(groq: ModuleType) -> list[Target]:
    stream_types = (groq.Stream, groq.AsyncStream)

    def is_stream(result: Any) -> bool:
        return isinstance(result, stream_types)

    chat = importlib.import_module(_CHAT)
    targets = []
    for owner, kind, proxy in (
        (chat.Completions, "sync", StreamProxy),
        (chat.AsyncCompletions, "async", AsyncStreamProxy),
    ):
        call = LLMCall(
            "groq.chat.completions.create",
            SpanType.CHAT_MODEL,
            _start,
            oa._chat_record,
            is_stream,
            _ChatStream,
            proxy,
        )
        targets.append(Target(owner, "create", kind, call))
    return targets


INTEGRATION = Integration(
    name="groq", distribution="groq", minimum_version="0.9.0", targets=_targets
)


def autolog(disable: bool = False, log_traces: bool = True, silent: bool = False) -> None:
    """Trace every Groq chat completion as a span (``Groq`` and ``AsyncGroq``, streamed or not).

    Args:
        disable: remove the tracing and restore the library's original methods.
        log_traces: False patches nothing (and undoes an earlier ``autolog()``).
        silent: no log messages from threadline about autologging.
    """
    INTEGRATION.autolog(disable=disable, log_traces=log_traces, silent=silent)
