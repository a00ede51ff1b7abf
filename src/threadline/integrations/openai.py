"""``threadline.openai.autolog()``: trace every OpenAI API call.

Patched (on the public resource classes, so ``OpenAI``, ``AsyncOpenAI`` and
``AzureOpenAI`` clients are all covered): chat completions ``create`` and ``parse`` (the
``stream()`` helper goes through ``create``), the Responses API ``create`` and ``parse``
(and its ``stream()`` helper), embeddings and legacy completions.

For a streamed chat or text completion, when the caller did not set ``stream_options``,
``{"include_usage": True}`` is sent so that token usage is known; the usage-only chunk
this adds is recorded and not passed on, so the caller sees the stream it would have
seen untraced.
"""

from __future__ import annotations

import abc
import importlib
from types import ModuleType
from typing import Any

from threadline.entities.keys import SpanAttributeKey
from threadline.entities.span import SpanType
from threadline.integrations import _chat_format as cf
from threadline.integrations._base import Integration, Target
from threadline.integrations._llm_call import (
    LLMCall,
    Request,
    given,
    materialize,
    put_attributes,
    request_inputs,
    to_dict,
)
from threadline.integrations._streams import AsyncStreamProxy, StreamProxy
from threadline.tracing._span import LiveSpan

PROVIDER = "openai"
_RAW_RESPONSE_HEADER = "x-stainless-raw-response"

__all__ = ["INTEGRATION", "autolog"]


# --- chat completions ---------------------------------------------------------------------


def _chat_start(request: Request, span: LiveSpan) -> None:
    kwargs = request.kwargs
    materialize(kwargs, ("messages", "tools"))
    span.set_inputs(request_inputs(kwargs))
    _set_common(span, request, _chat_tools(kwargs.get("tools")))
    request.messages = [_chat_message(m) for m in kwargs.get("messages") or ()]
    _ask_for_stream_usage(request)


def _chat_record(span: LiveSpan, request: Request, out: dict[str, Any]) -> None:
    usage = out.get("usage")
    attributes = _usage(usage)
    choices = out.get("choices") or []
    if choices:
        first = choices[0]
        attributes[cf.FINISH_REASON] = first.get("finish_reason")
        if request.messages is not None:
            reply = _chat_message(first.get("message") or {"role": "assistant"})
            attributes[cf.CHAT_MESSAGES] = [*request.messages, reply]
    elif request.messages is not None:  # e.g. a stream abandoned before its first choice
        attributes[cf.CHAT_MESSAGES] = list(request.messages)
    _set_response(span, request, out, attributes)


def _chat_message(raw: Any) -> dict[str, Any]:
    m = raw if isinstance(raw, dict) else (to_dict(raw) or {})
    content = m.get("content")
    if content is None and m.get("refusal"):
        content = m["refusal"]
    calls = [_tool_call(c) for c in m.get("tool_calls") or ()]
    if m.get("function_call"):  # the deprecated single-function form
        fn = m["function_call"]
        calls.append(cf.tool_call(None, fn.get("name"), fn.get("arguments")))
    return cf.message(m.get("role"), cf.text_content(content), calls, m.get("tool_call_id"))


def _tool_call(raw: Any) -> dict[str, Any]:
    c = raw if isinstance(raw, dict) else (to_dict(raw) or {})
    if c.get("type") == "custom":
        custom = c.get("custom") or {}
        return cf.tool_call(c.get("id"), custom.get("name"), custom.get("input"))
    fn = c.get("function") or {}
    return cf.tool_call(c.get("id"), fn.get("name"), fn.get("arguments"))


def _chat_tools(tools: Any) -> list[dict[str, Any]]:
    out = []
    for raw in tools if isinstance(tools, (list, tuple)) else ():
        t = raw if isinstance(raw, dict) else (to_dict(raw) or {})
        spec = t.get("function") or t.get("custom") or t
        out.append(cf.tool(spec.get("name"), spec.get("description"), spec.get("parameters")))
    return out


class _ChoiceDeltas:
    """The pieces of one choice of a streamed completion."""

    __slots__ = ("calls", "finish_reason", "refusal", "role", "text")

    def __init__(self) -> None:
        self.role = "assistant"
        self.text: list[str] = []
        self.refusal: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: Any = None

    def add_tool_call(self, delta: Any) -> None:
        call = self.calls.get(delta.index)
        if call is None:
            call = self.calls[delta.index] = {
                "id": None,
                "type": "function",
                "function": {"name": None, "arguments": ""},
            }
        if delta.id:
            call["id"] = delta.id
        if delta.type:
            call["type"] = delta.type
        fn = delta.function
        if fn is not None:
            if fn.name:
                call["function"]["name"] = fn.name
            if fn.arguments:
                call["function"]["arguments"] += fn.arguments


class _StreamBase(abc.ABC):
    """Usage and metadata shared by the chat and text completion stream accumulators."""

    __slots__ = ("choices", "first", "hide_usage", "request", "usage")
    kind = ""  # the "object" of the assembled response
    record = staticmethod(_chat_record)

    def __init__(self, request: Request, inner: Any) -> None:
        self.request = request
        self.hide_usage = request.hide_usage
        self.first: Any = None
        self.usage: Any = None
        self.choices: dict[int, _ChoiceDeltas] = {}

    def add(self, chunk: Any) -> bool:
        choices = chunk.choices
        if self.first is None:
            self.first = chunk
        if not choices:  # the usage-only chunk (or a provider's prelude, e.g. Azure's filters)
            usage = chunk.usage
            if usage is not None:
                self.usage = usage
                return not self.hide_usage
            return True
        if self.add_choices(choices):  # a choice finished: usage may ride on this chunk
            usage = chunk.usage
            if usage is not None:
                self.usage = usage
        return True

    def state(self, index: int) -> _ChoiceDeltas:
        state = self.choices[index] = _ChoiceDeltas()
        return state

    @abc.abstractmethod
    def add_choices(self, choices: Any) -> bool:
        """Take the choices of one chunk; True when one of them finished."""

    def finish(self, span: LiveSpan) -> Any:
        first = self.first
        out = {
            "id": getattr(first, "id", None),
            "object": self.kind,
            "created": getattr(first, "created", None),
            "model": getattr(first, "model", None),
            "system_fingerprint": getattr(first, "system_fingerprint", None),
            "choices": [self.choice(i, s) for i, s in sorted(self.choices.items())],
            "usage": to_dict(self.usage),
        }
        self.record(span, self.request, out)
        return out

    @abc.abstractmethod
    def choice(self, index: int, state: _ChoiceDeltas) -> dict[str, Any]:
        """One reassembled choice of the final output."""


class _ChatStream(_StreamBase):
    """A streamed chat completion reassembled from its deltas."""

    __slots__ = ()
    kind = "chat.completion"

    def add_choices(self, choices: Any) -> bool:
        # Runs for every chunk: the common fields first, the rare ones only when present.
        finished = False
        states = self.choices
        for choice in choices:
            state = states.get(choice.index) or self.state(choice.index)
            delta = choice.delta
            if delta is not None:
                content = delta.content
                if content:
                    state.text.append(content)
                else:
                    if delta.role:
                        state.role = delta.role
                    refusal = getattr(delta, "refusal", None)
                    if refusal:
                        state.refusal.append(refusal)
                calls = delta.tool_calls
                if calls:
                    for call in calls:
                        state.add_tool_call(call)
            reason = choice.finish_reason
            if reason is not None:
                state.finish_reason = reason
                finished = True
        return finished

    def choice(self, index: int, state: _ChoiceDeltas) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": state.role,
            "content": "".join(state.text) if state.text else None,
        }
        if state.refusal:
            message["refusal"] = "".join(state.refusal)
        if state.calls:
            message["tool_calls"] = [state.calls[i] for i in sorted(state.calls)]
        return {"index": index, "message": message, "finish_reason": state.finish_reason}


def _ask_for_stream_usage(request: Request) -> None:
    """Ask a streamed call for its usage when the caller left ``stream_options`` unset."""
    kwargs = request.kwargs
    if kwargs.get("stream") is not True:
        return
    if "stream_options" in kwargs and given(kwargs["stream_options"]):
        return
    extra_body = kwargs.get("extra_body")
    if isinstance(extra_body, dict) and "stream_options" in extra_body:
        return
    headers = kwargs.get("extra_headers")
    if isinstance(headers, dict) and any(str(k).lower() == _RAW_RESPONSE_HEADER for k in headers):
        return  # a raw HTTP response: the caller reads the bytes, which must stay unchanged
    kwargs["stream_options"] = {"include_usage": True}
    request.hide_usage = True


# --- legacy text completions ----------------------------------------------------------------


def _completion_start(request: Request, span: LiveSpan) -> None:
    span.set_inputs(request_inputs(request.kwargs))
    _set_common(span, request, None)
    _ask_for_stream_usage(request)


def _completion_record(span: LiveSpan, request: Request, out: dict[str, Any]) -> None:
    attributes = _usage(out.get("usage"))
    choices = out.get("choices") or []
    if choices:
        attributes[cf.FINISH_REASON] = choices[0].get("finish_reason")
    _set_response(span, request, out, attributes)


class _CompletionStream(_StreamBase):
    """A streamed text completion reassembled from its chunks."""

    __slots__ = ()
    kind = "text_completion"
    record = staticmethod(_completion_record)

    def add_choices(self, choices: Any) -> bool:
        finished = False
        states = self.choices
        for choice in choices:
            state = states.get(choice.index) or self.state(choice.index)
            text = choice.text
            if text:
                state.text.append(text)
            reason = choice.finish_reason
            if reason is not None:
                state.finish_reason = reason
                finished = True
        return finished

    def choice(self, index: int, state: _ChoiceDeltas) -> dict[str, Any]:
        return {"index": index, "text": "".join(state.text), "finish_reason": state.finish_reason}


# --- embeddings ---------------------------------------------------------------------------


def _embeddings_start(request: Request, span: LiveSpan) -> None:
    materialize(request.kwargs, ("input",))
    span.set_inputs(request_inputs(request.kwargs))
    _set_common(span, request, None)


def _embeddings_record(span: LiveSpan, request: Request, out: dict[str, Any]) -> None:
    usage = out.get("usage") or {}
    attributes = cf.token_usage(usage.get("prompt_tokens"), 0, usage.get("total_tokens"))
    _set_response(span, request, out, attributes)


# --- the Responses API --------------------------------------------------------------------


def _responses_start(request: Request, span: LiveSpan) -> None:
    kwargs = request.kwargs
    materialize(kwargs, ("input", "tools"))
    span.set_inputs(request_inputs(kwargs))
    _set_common(span, request, _response_tools(kwargs.get("tools")))
    messages = []
    instructions = kwargs.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append(cf.message("system", instructions))
    items = kwargs.get("input")
    if isinstance(items, str):
        messages.append(cf.message("user", items))
    elif isinstance(items, (list, tuple)):
        for item in items:
            message = _response_input_item(item)
            if message is not None:
                messages.append(message)
    request.messages = messages


def _response_input_item(raw: Any) -> dict[str, Any] | None:
    item = raw if isinstance(raw, dict) else (to_dict(raw) or {})
    kind = item.get("type")
    if kind == "function_call":
        call = cf.tool_call(item.get("call_id"), item.get("name"), item.get("arguments"))
        return cf.message("assistant", None, [call])
    if kind == "function_call_output":
        output = cf.text_content(item.get("output"))
        return cf.message("tool", output, tool_call_id=item.get("call_id"))
    if "role" in item and kind in (None, "message"):
        return cf.message(item["role"], cf.text_content(item.get("content")))
    return None


def _response_tools(tools: Any) -> list[dict[str, Any]]:
    out = []
    for raw in tools if isinstance(tools, (list, tuple)) else ():
        t = raw if isinstance(raw, dict) else (to_dict(raw) or {})
        name = t.get("name") or t.get("type")
        out.append(cf.tool(name, t.get("description"), t.get("parameters")))
    return out


def _responses_record(span: LiveSpan, request: Request, out: dict[str, Any]) -> None:
    usage = out.get("usage") or {}
    attributes = cf.token_usage(
        usage.get("input_tokens"),
        usage.get("output_tokens"),
        usage.get("total_tokens"),
        cached_input_tokens=cf.get(usage, "input_tokens_details", "cached_tokens"),
        reasoning_tokens=cf.get(usage, "output_tokens_details", "reasoning_tokens"),
    )
    attributes[cf.FINISH_REASON] = cf.get(out, "incomplete_details", "reason") or out.get("status")
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for item in out.get("output") or ():
        if item.get("type") == "message":
            texts.extend(p.get("text") or "" for p in item.get("content") or () if "text" in p)
        elif item.get("type") == "function_call":
            calls.append(cf.tool_call(item.get("call_id"), item.get("name"), item.get("arguments")))
    if request.messages is not None:
        reply = cf.message("assistant", "".join(texts) if texts else None, calls)
        attributes[cf.CHAT_MESSAGES] = [*request.messages, reply]
    if out.get("status") == "failed":
        span.set_status("ERROR", str(cf.get(out, "error", "message") or "response failed"))
    _set_response(span, request, out, attributes)


class _ResponseStream:
    """A streamed Responses API call: the final response, or what arrived before the end."""

    __slots__ = ("created", "final", "items", "request", "text")

    def __init__(self, request: Request, inner: Any) -> None:
        self.request = request
        self.created: Any = None
        self.final: Any = None
        self.items: list[Any] = []
        self.text: list[str] = []

    def add(self, event: Any) -> bool:
        kind = event.type
        if kind == "response.output_text.delta":
            self.text.append(event.delta)
        elif kind == "response.output_item.done":
            self.items.append(event.item)
            if getattr(event.item, "type", None) == "message":
                self.text.clear()
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            self.final = event.response
        elif kind == "response.created":
            self.created = event.response
        return True

    def finish(self, span: LiveSpan) -> Any:
        out = to_dict(self.final)
        if out is None:
            out = to_dict(self.created) or {}
            output = [to_dict(item) or {} for item in self.items]
            if self.text:
                part = {"type": "output_text", "text": "".join(self.text)}
                output.append({"type": "message", "role": "assistant", "content": [part]})
            out["output"] = output
        _responses_record(span, self.request, out)
        return out


# --- shared -------------------------------------------------------------------------------


def _set_common(span: LiveSpan, request: Request, tools: list[dict[str, Any]] | None) -> None:
    model = request.kwargs.get("model")
    request.model = model if given(model) and isinstance(model, str) else None
    attributes: dict[str, Any] = {SpanAttributeKey.PROVIDER: PROVIDER}
    if request.model is not None:
        attributes[SpanAttributeKey.MODEL] = request.model
    put_attributes(span, attributes)
    if tools:
        span.set_attribute(cf.CHAT_TOOLS, tools)  # holds the caller's schemas: snapshot


def _set_response(
    span: LiveSpan, request: Request, out: dict[str, Any], attributes: dict[str, Any]
) -> None:
    """Attributes read from ``out``, a fresh dict (a dump or an assembled stream)."""
    if request.model is None and isinstance(out.get("model"), str):
        attributes[SpanAttributeKey.MODEL] = out["model"]
    put_attributes(span, attributes)


def _usage(usage: Any) -> dict[str, Any]:
    """Chat and text completion usage (``prompt_tokens`` / ``completion_tokens``)."""
    if not isinstance(usage, dict):
        return {}
    prompt_details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    return cf.token_usage(
        usage.get("prompt_tokens"),
        usage.get("completion_tokens"),
        usage.get("total_tokens"),
        cached_input_tokens=prompt_details.get("cached_tokens") if prompt_details else None,
        reasoning_tokens=(
            completion_details.get("reasoning_tokens") if completion_details else None
        ),
    )


_CHAT = "openai.resources.chat.completions"
_RESPONSES = "openai.resources.responses"
_EMBEDDINGS = "openai.resources.embeddings"
_COMPLETIONS = "openai.resources.completions"
_BETA_CHAT = "openai.resources.beta.chat.completions"
# The resource module -> its (sync, async) classes.
_CLASSES = {
    _CHAT: ("Completions", "AsyncCompletions"),
    _RESPONSES: ("Responses", "AsyncResponses"),
    _EMBEDDINGS: ("Embeddings", "AsyncEmbeddings"),
    _COMPLETIONS: ("Completions", "AsyncCompletions"),
    _BETA_CHAT: ("Completions", "AsyncCompletions"),
}
_CHAT_MODEL, _EMBEDDING, _LLM = SpanType.CHAT_MODEL, SpanType.EMBEDDING, SpanType.LLM
# (module, method, span type, start, record, stream accumulator or None)
_SPECS: tuple[tuple[Any, ...], ...] = (
    (_CHAT, "create", _CHAT_MODEL, _chat_start, _chat_record, _ChatStream),
    (_CHAT, "parse", _CHAT_MODEL, _chat_start, _chat_record, None),
    (_RESPONSES, "create", _CHAT_MODEL, _responses_start, _responses_record, _ResponseStream),
    (_RESPONSES, "parse", _CHAT_MODEL, _responses_start, _responses_record, None),
    (_EMBEDDINGS, "create", _EMBEDDING, _embeddings_start, _embeddings_record, None),
    (_COMPLETIONS, "create", _LLM, _completion_start, _completion_record, _CompletionStream),
)
# Before ``chat.completions.parse`` existed (older openai 1.x), ``parse`` lived under ``beta``
# (and there called ``create``: the nested call is recorded once, see ``_llm_call``).
_BETA_PARSE = (_BETA_CHAT, "parse", _CHAT_MODEL, _chat_start, _chat_record, None)


def _targets(openai: ModuleType) -> list[Target]:
    stream_types = (openai.Stream, openai.AsyncStream)

    def is_stream(result: Any) -> bool:
        return isinstance(result, stream_types)

    specs = list(_SPECS)
    chat = _optional_module(_CHAT)
    if chat is None or not hasattr(chat.Completions, "parse"):
        specs.append(_BETA_PARSE)
    targets = []
    for module_name, method, span_type, start, record, acc in specs:
        module = _optional_module(module_name)
        name = "openai." + module_name.removeprefix("openai.resources.") + "." + method
        sync_name, async_name = _CLASSES[module_name]
        for cls_name, kind, proxy in (
            (sync_name, "sync", StreamProxy),
            (async_name, "async", AsyncStreamProxy),
        ):
            owner = getattr(module, cls_name, None)
            if owner is None or not hasattr(owner, method):
                continue
            streams = acc is not None
            call = LLMCall(
                name,
                span_type,
                start,
                record,
                is_stream if streams else None,
                acc,
                proxy if streams else None,
            )
            targets.append(Target(owner, method, kind, call))
    return targets


def _optional_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


INTEGRATION = Integration(
    name="openai", distribution="openai", minimum_version="1.40.0", targets=_targets
)


def autolog(disable: bool = False, log_traces: bool = True, silent: bool = False) -> None:
    """Trace every OpenAI API call as a span (chat, responses, embeddings, completions).

    Args:
        disable: remove the tracing and restore the library's original methods.
        log_traces: False patches nothing (and undoes an earlier ``autolog()``).
        silent: no log messages from threadline about autologging.
    """
    INTEGRATION.autolog(disable=disable, log_traces=log_traces, silent=silent)
